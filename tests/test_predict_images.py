"""`mixtape predict` on image files, a plain folder, an ImageFolder, tar shards and HDF5,
with class names carried in the checkpoint: one row per image, probabilities that are the
softmax of the /logits written for the same inputs (so top-1 == argmax), names from the
checkpoint's class_names (written by `train` from the ImageFolder), the checkpoint's mean/std
as the eval transform, hostile class_names refused, outputs never replacing inputs."""
import csv
import json
import os
import shutil
import tempfile

import harness
from harness import check
from tinydata import png as png_bytes

h5py, np = harness.require("h5py", "numpy")
try:
    from PIL import Image
except ImportError:
    Image = None


def mt(*args):
    return harness.mt(*args, timeout=180)


def save(path, a, jpeg):
    if jpeg and Image is not None:
        Image.fromarray(a).save(path, quality=95)
    else:
        open(path, "wb").write(png_bytes(a))


def softmax(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


NAMES = ["alpha", "beta", 'gamma, "q"']  # a comma and quotes: CSV / JSON quoting is exercised
MODEL = ["--model", "mixer_s16_224", "--img-size", "16", "--patch-size", "8", "--embed-dim", "32", "--depth", "2",
         "--num-classes", "3"]

with tempfile.TemporaryDirectory() as tmp:
    P = lambda *n: os.path.join(tmp, *n)  # noqa: E731
    rng = np.random.default_rng(0)
    files = []
    for c, name in enumerate(NAMES):
        os.makedirs(P("if", name))
        for i in range(4):
            a = np.clip(rng.random((16 + 4 * i, 16, 3)) * 90 + c * 70, 0, 255).astype(np.uint8)
            jpeg = i % 2 == 0 and Image is not None
            f = P("if", name, f"{i}.{'jpg' if jpeg else 'png'}")
            save(f, a, jpeg)
            files.append((f, c))
    print(f"{len(files)} images, JPEG {'via PIL' if Image else 'not available (PNG only)'}")

    rc, out = mt("train", *MODEL, "--train", P("if"), "-b", "4", "--epochs", "1", "--max-steps", "2",
                 "--output", P("run"), "--threads", "2")
    check(rc == 0, f"train 2 steps on the ImageFolder: {out.strip()[-200:]}")
    ck = P("run", "last.h5")
    with h5py.File(ck, "r") as f:
        stored = json.loads(f.attrs["class_names"])
        mean = f.attrs["data_mean"][...]
    check(stored == NAMES, f"train stores class_names from the ImageFolder: {stored}")

    # ---- ImageFolder: CSV + JSONL + HDF5 from one run ----
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("if"), "--topk", "3", "--out", P("p.h5"),
                 "--out-csv", P("p.csv"), "--out-jsonl", P("p.jsonl"))
    check(rc == 0 and "names from the checkpoint" in out, f"predict on an ImageFolder: {out.strip()}")
    with h5py.File(P("p.h5"), "r") as f:
        logits, labels = f["logits"][...], f["labels"][...]
    rows = list(csv.reader(open(P("p.csv"), newline="")))
    js = [json.loads(line) for line in open(P("p.jsonl"))]
    head, rows = rows[0], rows[1:]
    check(head == ["key", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"], f"CSV header {head}")
    check(len(rows) == len(js) == logits.shape[0] == len(files), "one row per image in CSV, JSONL and /logits")
    check([r[0] for r in rows] == [f for f, _ in files] and [j["key"] for j in js] == [f for f, _ in files],
          "rows are keyed by file path in ImageFolder order")
    probs = np.array([[float(r[2]), float(r[4]), float(r[6])] for r in rows])
    check(np.allclose(probs.sum(1), 1, atol=1e-4), "top-3 probabilities of 3 classes sum to 1")
    sm = softmax(logits)
    check(all(r[1] == NAMES[int(np.argmax(logits[i]))] for i, r in enumerate(rows)), "CSV top-1 name == argmax of /logits")
    check(all(np.allclose(sorted(sm[i], reverse=True), probs[i], atol=2e-6) for i in range(len(rows))),
          "CSV probabilities are the softmax of /logits, sorted")
    check(all(j["classes"] == [NAMES[k] for k in j["indices"]] and j["indices"][0] == int(np.argmax(logits[i]))
              and np.allclose(j["probs"], sm[i][j["indices"]], atol=2e-6) for i, j in enumerate(js)),
          "JSONL names / indices / probs agree with /logits")
    check(list(labels) == [c for _, c in files] and [j["label"] for j in js] == [c for _, c in files],
          "labels from the ImageFolder in /labels and JSONL")

    # ---- a plain folder (with one corrupt image) and image files on the command line ----
    os.makedirs(P("flat"))
    for i, (f, _) in enumerate(files):
        shutil.copy(f, P("flat", f"img{i:02d}{os.path.splitext(f)[1]}"))
    open(P("flat", "zz_broken.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("flat"), "--topk", "2", "--out-csv", P("flat.csv"),
                 "--out", P("flat.h5"))
    rows2 = list(csv.reader(open(P("flat.csv"), newline="")))[1:] if rc == 0 else []
    check(rc == 0 and len(rows2) == len(files) and "zz_broken.png" in out and "1 skipped" in out,
          f"plain folder: a row per readable image, the corrupt one named and skipped: {out.strip()[:300]}")
    with h5py.File(P("flat.h5"), "r") as f:
        check(np.allclose(f["logits"][...], logits, atol=1e-5) and "labels" not in f,
              "plain folder: same logits as the ImageFolder, no /labels")
    rc, out = mt("predict", "--checkpoint", ck, files[5][0], files[0][0], "--out-jsonl", P("two.jsonl"))
    two = [json.loads(line) for line in open(P("two.jsonl"))] if rc == 0 else []
    check(rc == 0 and [j["key"] for j in two] == [files[5][0], files[0][0]] and "label" not in two[0]
          and two[0]["indices"][0] == int(np.argmax(logits[5])), "image files on the command line, in their order")

    # ---- tar shards (written by mixtape shards) ----
    rc, out = mt("shards", "--from", "imagefolder", P("if"), "--out", P("sh", "part"), "--per-shard", "5")
    check(rc == 0, f"shards: {out.strip()[:200]}")
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("sh"), "--out", P("sh.h5"), "--out-csv", P("sh.csv"))
    with h5py.File(P("sh.h5"), "r") as f:
        sl, sb = f["logits"][...], f["labels"][...]
    order = np.lexsort(logits.T), np.lexsort(sl.T)
    check(rc == 0 and sl.shape == logits.shape and np.allclose(sl[order[1]], logits[order[0]], atol=1e-5)
          and sorted(sb) == sorted(labels), "shards: the same logits and labels as the ImageFolder (in shard order)")

    # ---- HDF5 ----
    x = rng.standard_normal((5, 3, 16, 16)).astype(np.float32)
    with h5py.File(P("x.h5"), "w") as f:
        f["images"] = x
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("x.h5"), "--out-jsonl", P("x.jsonl"), "--out", P("xl.h5"))
    xj = [json.loads(line) for line in open(P("x.jsonl"))] if rc == 0 else []
    with h5py.File(P("xl.h5"), "r") as f:
        xl = f["logits"][...]
    check(rc == 0 and [j["key"] for j in xj] == [f"#{i}" for i in range(5)]
          and all(j["indices"][0] == int(np.argmax(xl[i])) for i, j in enumerate(xj)), "HDF5 rows keyed #i")

    # ---- the checkpoint's mean/std is the transform: change it, and --mean restores it ----
    shutil.copy(ck, P("m.h5"))
    with h5py.File(P("m.h5"), "r+") as f:
        f.attrs["data_mean"] = np.array([0.1, 0.1, 0.1], np.float32)
    mt("predict", "--checkpoint", P("m.h5"), "--data", P("if"), "--out", P("m1.h5"))
    mt("predict", "--checkpoint", P("m.h5"), "--data", P("if"), "--mean", ",".join(f"{v:.9g}" for v in mean),
       "--out", P("m2.h5"))
    with h5py.File(P("m1.h5"), "r") as f1, h5py.File(P("m2.h5"), "r") as f2:
        check(not np.allclose(f1["logits"][...], logits, atol=1e-4) and np.allclose(f2["logits"][...], logits, atol=1e-6),
              "predict normalises with the checkpoint's data_mean (a changed one changes logits; --mean overrides)")

    # ---- without names: indices; --classes FILE; eval names classes from the checkpoint ----
    shutil.copy(ck, P("nn.h5"))
    with h5py.File(P("nn.h5"), "r+") as f:
        del f.attrs["class_names"]
    rc, out = mt("predict", "--checkpoint", P("nn.h5"), "--data", P("x.h5"), "--out-csv", P("nn.csv"))
    nn = list(csv.reader(open(P("nn.csv"), newline="")))[1:] if rc == 0 else []
    check(rc == 0 and all(r[1] == str(int(np.argmax(xl[i]))) for i, r in enumerate(nn)), "no names: class indices")
    open(P("cls.txt"), "w").write("uno\ndos\ntres\n")
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("x.h5"), "--classes", P("cls.txt"), "--out-csv", P("c.csv"))
    cr = list(csv.reader(open(P("c.csv"), newline="")))[1:] if rc == 0 else []
    check(rc == 0 and all(r[1] == ["uno", "dos", "tres"][int(np.argmax(xl[i]))] for i, r in enumerate(cr)),
          "--classes FILE names the classes")
    with h5py.File(P("xe.h5"), "w") as f:
        f["images"] = x
        f["labels"] = np.array([0, 1, 2, 0, 1])
    rc, out = mt("eval", "--checkpoint", ck, "--data", P("xe.h5"))
    check(rc == 0 and "alpha" in out and "beta" in out, "eval prints the checkpoint's class names")

    # ---- hostile class_names: exit 1 naming the file and the attribute ----
    bad = {"wrong count": json.dumps(["a", "b"]), "control char": json.dumps(["a", "b\x07", "c"]),
           "not JSON": "[a, b, c]", "too long": json.dumps(["a", "b", "x" * 300]),
           "not strings": json.dumps([1, 2, 3]), "trailing": json.dumps(["a", "b", "c"]) + "]"}
    for name, val in bad.items():
        shutil.copy(ck, P("h.h5"))
        with h5py.File(P("h.h5"), "r+") as f:
            f.attrs["class_names"] = val
        rc, out = mt("predict", "--checkpoint", P("h.h5"), "--data", P("x.h5"), "--out-csv", P("h.csv"))
        check(rc == 1 and "class_names" in out and P("h.h5") in out and not os.path.exists(P("h.csv")),
              f"hostile class_names ({name}): {out.strip()[:160]}")

    # ---- outputs never replace inputs ----
    before = open(ck, "rb").read()
    for flag in ("--out-csv", "--out-jsonl", "--out"):
        rc, out = mt("predict", "--checkpoint", ck, "--data", P("x.h5"), flag, ck)
        check(rc == 2 and open(ck, "rb").read() == before, f"{flag} onto the checkpoint refused: {out.strip()[:120]}")
    rc, out = mt("predict", "--checkpoint", ck, files[0][0], "--out-csv", files[0][0])
    check(rc == 2, "--out-csv onto an input image refused")
    img_before = open(files[3][0], "rb").read()
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("if"), "--out-jsonl", files[3][0])
    check(rc == 2 and open(files[3][0], "rb").read() == img_before, f"--out-jsonl onto an image of --data refused: {out.strip()[:120]}")
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("x.h5"))
    check(rc == 2, "predict without an output is a usage error")
    rc, out = mt("predict", "--checkpoint", ck, "--data", P("nowhere"), "--out-csv", P("n.csv"))
    check(rc == 2 and "nowhere" in out, f"missing --data named: {out.strip()[:120]}")

harness.finish()
