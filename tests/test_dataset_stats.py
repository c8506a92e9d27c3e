#!/usr/bin/env python3
"""Datasets that describe themselves: `mixtape shards` records dataset.json (pixel mean/std, sizes,
channels, counts per split) for IDX, CIFAR and ImageFolder sources; an ImageFolder used directly
gets the same statistics cached in .mixtape-dataset.json; train/eval normalise with them when
neither --mean/--std nor a checkpoint give the values, and say so. Every input is made here (gzip
IDX bytes, CIFAR records, PNG bytes via zlib+struct); values are checked against numpy; hostile
dataset.json files must fail with a message naming the file and the key.

Env: MIXTAPE (the binary). Exit 77 without numpy or h5py.
"""
import gzip
import json
import os
import shutil
import struct

import harness
from harness import check
from tinydata import png

h5py, np = harness.require("h5py", "numpy")
T = harness.tempdir("dstats")


def run(*args, timeout=60):
    return harness.run(args, timeout, env={"OMP_NUM_THREADS": "1"}, cwd=T)


def P(*a):
    return os.path.join(T, *a)


def luma(rgb):  # PIL's convert('L'), as the decoder does for a 1-channel model
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def close(a, b, tol=1e-6):
    return np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), atol=tol, rtol=0)


rng = np.random.default_rng(7)

# ---- IDX (Fashion-MNIST layout, gzip): train and test splits in one directory ----
os.makedirs(P("fm_src"))
idx = {}
for split, n in (("train", 300), ("t10k", 60)):
    # class-dependent brightness so that the statistics are not those of uniform noise
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = np.clip(rng.normal(20 * y[:, None, None], 40, (n, 28, 28)), 0, 255).astype(np.uint8)
    with gzip.open(P("fm_src", f"{split}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + x.tobytes())
    with gzip.open(P("fm_src", f"{split}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + y.tobytes())
    idx[split] = x.astype(np.float64) / 255
rc, out = run("shards", "--from", "idx", P("fm_src", "train-images-idx3-ubyte.gz"), "--out", P("fm", "train"))
check(rc == 0 and "dataset.json (split train)" in out, "shards idx train: exit 0, names dataset.json", out)
rc, out = run("shards", "--from", "idx", P("fm_src", "t10k-images-idx3-ubyte.gz"), "--out", P("fm", "test"))
check(rc == 0, "shards idx test", out)
doc = json.load(open(P("fm", "dataset.json")))
check(doc.get("format") == "mixtape-dataset" and doc.get("version") == 1 and doc.get("class_names") == "classes.txt",
      "dataset.json: format, version, class_names -> classes.txt")
check(sorted(doc["splits"]) == ["test", "train"], f"both splits kept: {sorted(doc['splits'])}")
for name, src in (("train", "train"), ("test", "t10k")):
    s = doc["splits"][name]
    x = idx[src]
    check(s["samples"] == len(x) and s["channels"] == 1 and s["height"] == 28 and s["width"] == 28 and
          s["classes"] == 10, f"{name}: samples {s['samples']}, 1 channel, 28x28, 10 classes")
    check(close(s["mean"], [x.mean()]) and close(s["std"], [x.std()]),
          f"{name}: mean {s['mean']} std {s['std']} = numpy {x.mean():.9f} {x.std():.9f}")
left = [f for f in os.listdir(P("fm")) if ".tmp." in f]
check(not left, f"no temporaries left beside the shards: {left}")

# ---- CIFAR-10 batch: 3 channels, gray statistics are the luma's ----
os.makedirs(P("c10_src"))
cx = rng.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
with open(P("c10_src", "data_batch_1.bin"), "wb") as f:
    for i in range(7):
        f.write(bytes([i % 10]) + cx[i].tobytes())
rc, out = run("shards", "--from", "cifar", P("c10_src"), "--out", P("c10", "train"))
check(rc == 0, "shards cifar", out)
s = json.load(open(P("c10", "dataset.json")))["splits"]["train"]
hwc = cx.transpose(0, 2, 3, 1)
xf = hwc.astype(np.float64) / 255
g = luma(hwc).astype(np.float64) / 255
check(s["channels"] == 3 and close(s["mean"], xf.mean(axis=(0, 1, 2))) and close(s["std"], xf.std(axis=(0, 1, 2))),
      f"cifar: per-channel mean {s['mean']} std {s['std']} = numpy")
check(close(s["mean_gray"], g.mean()) and close(s["std_gray"], g.std()), "cifar: mean_gray/std_gray = numpy luma")

# ---- ImageFolder of PNGs (gray and RGB, two sizes) ----
imgs = []
for ci, cls in enumerate(("cat", "dog")):
    os.makedirs(P("if", cls))
    for i in range(5):
        h, w = (24, 20) if i % 2 else (28, 28)
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if i == 4:
            a = a[..., 0]  # a gray PNG: counts as the same value in R, G and B
        open(P("if", cls, f"{i}.png"), "wb").write(png(a))
        imgs.append(a)
rgb = np.concatenate([(a if a.ndim == 3 else np.repeat(a[..., None], 3, 2)).reshape(-1, 3) for a in imgs])
gr = np.concatenate([(luma(a) if a.ndim == 3 else a).reshape(-1) for a in imgs])
rc, out = run("shards", "--from", "imagefolder", P("if"), "--out", P("ifs", "train"))
check(rc == 0, "shards imagefolder", out)
s = json.load(open(P("ifs", "dataset.json")))["splits"]["train"]
check(s["channels"] == 3 and close(s["mean"], rgb.mean(0) / 255) and close(s["std"], (rgb / 255).std(0)),
      f"imagefolder: mean {s['mean']} std {s['std']} = numpy")
check(close(s["mean_gray"], gr.mean() / 255) and close(s["std_gray"], (gr / 255).std()), "imagefolder: luma = numpy")
check((s.get("height_min"), s.get("height_max"), s.get("width_min"), s.get("width_max")) == (24, 28, 20, 28),
      f"imagefolder: varying sizes as min/max: {s}")

# ---- train: the dataset's statistics without flags, the flags' with them ----
TR = ["--model", "mixer_tiny", "--train", P("fm", "train-000000.tar"), "-b", "50", "--epochs", "1",
      "--max-steps", "1", "--threads", "1"]
m_tr, s_tr = idx["train"].mean(), idx["train"].std()
rc, out = run("train", *TR, "--output", P("r_ds"))
line = next((l for l in out.splitlines() if l.startswith("normalisation:")), "")
check(rc == 0 and "dataset.json, split train" in line and f"{m_tr:.4g}" in line,
      f"train without --mean/--std names dataset.json: '{line}'", out)
with h5py.File(P("r_ds", "last.h5"), "r") as f:
    dm, ds = f.attrs["data_mean"], f.attrs["data_std"]
check(close(dm, [m_tr]) and close(ds, [s_tr]), f"checkpoint records the dataset's data_mean {dm} data_std {ds}")
rc, out = run("train", *TR, "--mean", "0.3", "--std", "0.4", "--output", P("r_fl"))
line = next((l for l in out.splitlines() if l.startswith("normalisation:")), "")
check(rc == 0 and "command line" in line and "dataset.json" not in line, f"flags win: '{line}'", out)
with h5py.File(P("r_fl", "last.h5"), "r") as f:
    check(close(f.attrs["data_mean"], [0.3]) and close(f.attrs["data_std"], [0.4]), "checkpoint records the flags' values")
rc, out = run("train", *TR, "--mean", "0.3", "--output", P("r_half"))
line = next((l for l in out.splitlines() if l.startswith("normalisation:")), "")
check(rc == 0 and "0.3 (command line)" in line and "dataset.json" in line, f"--mean alone: std from the data: '{line}'")

# fine-tuning: the checkpoint's recorded values come before the data's
rc, out = run("train", *TR, "--initial-checkpoint", P("r_fl", "last.h5"), "--output", P("r_ft"))
line = next((l for l in out.splitlines() if l.startswith("normalisation:")), "")
check(rc == 0 and "0.3 (checkpoint)" in line and "0.4 (checkpoint)" in line and "dataset.json" not in line,
      f"--initial-checkpoint: the checkpoint's mean/std win over dataset.json: '{line}'", out)

# ---- eval: the checkpoint's values; without them, the data's ----
rc, out = run("eval", "--checkpoint", P("r_ds", "last.h5"), "--data", P("fm", "test-000000.tar"))
check(rc == 0 and "(checkpoint)" in out, "eval: the checkpoint's mean/std", out)
shutil.copy(P("r_ds", "last.h5"), P("nostats.h5"))
with h5py.File(P("nostats.h5"), "a") as f:
    del f.attrs["data_mean"], f.attrs["data_std"]
rc, out = run("eval", "--checkpoint", P("nostats.h5"), "--data", P("fm", "test-000000.tar"))
m_te = idx["t10k"].mean()
check(rc == 0 and "dataset.json, split test" in out and f"{m_te:.4g}" in out,
      "eval, checkpoint without data_mean: the test split's statistics", out)

# ---- ImageFolder used directly: computed once, cached, reused ----
IF = ["--model", "mixer_tiny", "--num-classes", "2", "-b", "5", "--epochs", "1", "--max-steps", "1", "--threads", "1",
      "--data-convert"]  # RGB images for a 1-channel model: read as grey (the luma statistics apply)
cache = P("if", ".mixtape-dataset.json")
rc, out = run("train", *IF, "--train", P("if"), "--output", P("r_if1"))
check(rc == 0 and "computing the statistics of 10 images" in out and os.path.exists(cache),
      "ImageFolder: statistics computed and cached", out)
c = json.load(open(cache))["splits"]["images"]
check(close(c["mean_gray"], gr.mean() / 255) and close(c["std_gray"], (gr / 255).std()), "cache values = numpy")
with h5py.File(P("r_if1", "last.h5"), "r") as f:
    check(close(f.attrs["data_mean"], [gr.mean() / 255]), "1-channel model: the luma mean recorded")
t0 = os.stat(cache).st_mtime_ns
rc, out = run("train", *IF, "--train", P("if"), "--output", P("r_if2"))
check(rc == 0 and "cached" in out and "computing" not in out and os.stat(cache).st_mtime_ns == t0,
      "second run reuses the cache (not rewritten)", out)
open(P("if", "dog", "9.png"), "wb").write(png(np.full((28, 28), 255, np.uint8)))
rc, out = run("train", *IF, "--train", P("if"), "--output", P("r_if3"))
check(rc == 0 and "computing the statistics of 11 images" in out, "a changed folder is recomputed", out)
open(cache, "w").write('{"format": "mixtape-dataset", "splits": {"images": {"std": [-1]}}}')
rc, out = run("train", *IF, "--train", P("if"), "--output", P("r_if4"))
check(rc == 0 and "ignoring an invalid cache" in out and "computing" in out, "an invalid cache is recomputed", out)

# a cache that cannot be written (here: a directory holds its name; running as root, a read-only
# folder would not stop the write): computed, used, reported, never an error
os.remove(cache)
os.mkdir(cache)
rc, out = run("train", *IF, "--train", P("if"), "--output", P("r_if5"))
line = next((l for l in out.splitlines() if l.startswith("normalisation:")), "")
check(rc == 0 and "not cached" in out and "computed, not cached" in line and os.path.isdir(cache),
      f"an unwritable cache: computed and used anyway: '{line}'", out)
os.rmdir(cache)

# ---- hostile dataset.json: each refused naming the file and the key ----
good = open(P("fm", "dataset.json")).read()
split = json.loads(good)["splits"]["train"]


def doc_with(**kw):
    s = dict(split)
    s.update(kw)
    return json.dumps({"format": "mixtape-dataset", "version": 1, "splits": {"train": s}})


HOSTILE = [
    ("huge integer", doc_with(samples=10**30), "splits.train.samples"),
    ("float where an integer goes", doc_with(samples=1e400).replace("Infinity", "1e400"), "splits.train.samples"),
    ("huge mean", doc_with(mean=[1]).replace("[1]", "[1e400]"), "splits.train.mean[0]"),
    ("mean above 1", doc_with(mean=[3.5]), "splits.train.mean[0]"),
    ("negative std", doc_with(std=[-0.25]), "splits.train.std[0]"),
    ("zero std", doc_with(std=[0]), "splits.train.std[0]"),
    ("string channels", doc_with(channels="1"), "splits.train.channels"),
    ("two channels", doc_with(channels=2), "splits.train.channels"),
    ("mean not a list", doc_with(mean=0.5), "splits.train.mean"),
    ("mean longer than channels", doc_with(mean=[0.1, 0.2, 0.3]), "splits.train"),
    ("four values", doc_with(mean=[0.1] * 4, channels=3), "splits.train.mean"),
    ("wrong format", json.dumps({"format": "other", "splits": {}}), "format"),
    ("nested garbage", '{"format": "mixtape-dataset", "x": ' + "[" * 5000 + "]" * 5000 + "}", "x"),
    ("not JSON", "\x00\xff garbage", "dataset.json"),
    ("split not an object", '{"format": "mixtape-dataset", "splits": {"train": [1, 2]}}', "splits.train"),
]
for name, text, key in HOSTILE:
    open(P("fm", "dataset.json"), "w", encoding="utf-8", errors="surrogateescape").write(text)
    rc, out = run("train", *TR, "--output", P("r_bad"))
    check(rc == 2 and "dataset.json" in out and key in out and "--mean and --std" in out,
          f"hostile dataset.json ({name}): exit {rc}, names the file and '{key}'", out)
# mutated copies of a valid file: accepted (exit 0) or refused naming the file (exit 2), never a crash
mrng = np.random.default_rng(3)
odd = 0
for i in range(16):
    b = bytearray(good.encode())
    if i % 2:
        b = b[:int(mrng.integers(1, len(b)))]
    else:
        for _ in range(3):
            b[int(mrng.integers(0, len(b)))] = int(mrng.choice(list(b'{}[]",:0123456789.-e \\x\xff')))
    open(P("fm", "dataset.json"), "wb").write(bytes(b))
    rc, out = run("train", *TR, "--output", P("r_mut"))
    if not (rc == 0 or (rc == 2 and "dataset.json" in out)):
        odd += 1
        print(out[-800:])
check(odd == 0, f"16 mutated dataset.json files: each accepted or refused naming the file ({odd} otherwise)")
with open(P("fm", "dataset.json"), "wb") as f:
    f.write(b'{"format": "mixtape-dataset", "x": "' + b"a" * (10 << 20) + b'"}')
rc, out = run("train", *TR, "--output", P("r_bad"))
check(rc == 2 and "dataset.json" in out and "larger than" in out, "10 MB dataset.json refused, named", out)
rc, out = run("train", *TR, "--mean", "0.3", "--std", "0.4", "--output", P("r_bad2"))
check(rc == 0, "with --mean and --std a bad dataset.json is not read", out)
open(P("fm", "dataset.json"), "w").write(json.dumps({"format": "mixtape-dataset", "version": 1,
                                                     "splits": {"other": split}}))
rc, out = run("train", *TR, "--output", P("r_nosplit"))
check(rc == 0 and "describes no split 'train'" in out and "(default)" in out, "a missing split: note, ImageNet default", out)

# ---- a new conversion replaces an invalid dataset.json, keeps valid splits ----
open(P("fm", "dataset.json"), "w").write("{broken")
rc, out = run("shards", "--from", "idx", P("fm_src", "t10k-images-idx3-ubyte.gz"), "--out", P("fm", "test"), "--overwrite")
d2 = json.load(open(P("fm", "dataset.json")))
check(rc == 0 and "replacing an invalid" in out and list(d2["splits"]) == ["test"], "invalid dataset.json replaced", out)
rc, out = run("shards", "--from", "idx", P("fm_src", "train-images-idx3-ubyte.gz"), "--out", P("fm", "train"), "--overwrite")
d3 = json.load(open(P("fm", "dataset.json")))
check(rc == 0 and sorted(d3["splits"]) == ["test", "train"] and d3["splits"]["test"] == d2["splits"]["test"],
      "re-converting train keeps the test split", out)
# a failed conversion leaves dataset.json as it was
before = open(P("fm", "dataset.json")).read()
open(P("fm_src", "bad-images-idx3-ubyte"), "wb").write(struct.pack(">IIII", 0x803, 5, 28, 28) + b"\0" * 100)
open(P("fm_src", "bad-labels-idx1-ubyte"), "wb").write(struct.pack(">II", 0x801, 5) + b"\0" * 5)
rc, out = run("shards", "--from", "idx", P("fm_src", "bad-images-idx3-ubyte"), "--out", P("fm", "bad"))
check(rc == 1 and open(P("fm", "dataset.json")).read() == before, "failed conversion: dataset.json unchanged", out)

harness.finish()
