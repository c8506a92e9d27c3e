"""Hostile HDF5 checkpoints and HDF5 data files.

Every hostile file is built here with h5py from a small legitimate checkpoint, run
directory and data file. Each case runs the mixtape binary with a timeout and asserts:
exit code 1 or 2 (no signal, no hang), a message naming the file and the key or field,
every file in the work directory unchanged (hashes before / after) and no new file left
behind. Peak memory of the child is checked where a file declares far more than it holds.

Classes covered:
  - objects outside the file: external storage, external links, virtual datasets, soft
    links (checkpoint /model, /ema, /optimizer and whole groups; data 'images' / 'labels'),
    for inspect, eval, eval --ema, predict, train --initial-checkpoint, train --resume,
    train --train;
  - a stored model config outside the command-line limits or over the parameter limit;
  - declared sizes the file does not hold (inspect, eval --ema, eval / predict data);
  - /ema missing keys or wrong shapes; labels outside the model's classes;
  - train_state that is not valid JSON or out of range on --resume.
"""
import json
import os
import shutil
import time

import harness

h5py, np = harness.require("h5py", "numpy")
T = harness.tempdir("hostile_h5")
P = lambda *a: os.path.join(T, *a)
MODEL = ["--model", "mixer_tiny", "--embed-dim", "16", "--depth", "1"]
ENV = {"OMP_NUM_THREADS": "1"}


def run(args, timeout=30):
    """A Proc: rc (None on a timeout), text, rss_mib (the child's peak RSS), secs."""
    return harness.run(args, timeout, env=ENV, cwd=T)


def must_run(args, timeout=120):
    return harness.must(args, timeout, env=ENV, cwd=T).text


def snapshot():
    return harness.snapshot(T)


def refused(name, args, must, timeout=30, max_rss_mib=None):
    """The command must fail cleanly: exit 1/2, message naming every string in must,
    nothing in the work directory changed or added."""
    before = snapshot()
    r = run(args, timeout)
    rc, out, rss = r.rc, r.text, r.rss_mib
    after = snapshot()
    why = []
    if rc is None:
        why.append(f"timed out after {timeout} s")
    elif rc < 0:
        why.append(f"killed by signal {-rc}")
    elif rc not in (1, 2):
        why.append(f"exit code {rc}, expected 1 or 2")
    for m in must:
        if m not in out:
            why.append(f"message does not name {m!r}")
    changed = sorted(k for k in before if after.get(k) != before[k])
    added = sorted(k for k in after if k not in before)
    if changed:
        why.append(f"changed or removed: {changed}")
    if added:
        why.append(f"left behind: {added}")
    if max_rss_mib is not None and rss > max_rss_mib:
        why.append(f"peak memory {rss:.0f} MiB > {max_rss_mib} MiB")
    harness.check(not why, f"{name}: {'; '.join(why) or 'refused'}",
            f"$ mixtape {' '.join(args)}\n" + out.strip()[:1500])
    # remove whatever a failing build left, so later cases start clean
    for k in sorted(set(after) - set(before), reverse=True):
        if os.path.isdir(k):
            shutil.rmtree(k, ignore_errors=True)
        elif os.path.exists(k):
            os.unlink(k)


def mutate(src, dst, fn):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


# ---------------------------------------------------------------- legitimate inputs

rng = np.random.default_rng(0)
with h5py.File(P("data.h5"), "w") as f:
    f["images"] = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    f["labels"] = (np.arange(16) % 10).astype(np.int64)
with h5py.File(P("other.h5"), "w") as f:  # the "outside" file links point to
    f["x"] = np.full((10,), 7.0, np.float32)
    f["w"] = np.full((10, 16), 7.0, np.float32)
    f["images"] = np.full((16, 1, 28, 28), 7.0, np.float32)
    f["labels"] = np.zeros((16,), np.int64)
with open(P("secret.bin"), "wb") as f:  # raw bytes external storage points to
    f.write(b"\x00\x00\xe0\x40" * 1024 * 1024)  # 4 MiB of float 7.0

must_run(["init"] + MODEL + ["--out", "base.h5"])
must_run(["train"] + MODEL + ["--train", "data.h5", "-b", "4", "--epochs", "1", "-j", "1", "--model-ema",
                              "--warmup-epochs", "0", "--output", "run"], timeout=300)
LAST = P("run", "last.h5")
with h5py.File(LAST, "r") as f:
    assert "ema" in f and "optimizer" in f, "the training run wrote no EMA / optimizer state"
    TS = json.loads(f.attrs["train_state"])

# the legitimate files work (so a refusal below is about the hostility, not the setup)
must_run(["inspect", "base.h5"])
must_run(["eval", "--checkpoint", "base.h5", "--data", "data.h5", "-j", "1"])
must_run(["eval", "--checkpoint", "run/last.h5", "--data", "data.h5", "--ema", "-j", "1"])
shutil.copytree(P("run"), P("run_ok"))
must_run(["train", "--resume", "run_ok/last.h5", "--train", "data.h5", "-b", "4", "--epochs", "2", "-j", "1"],
         timeout=300)
shutil.rmtree(P("run_ok"))
os.makedirs(P("bad"))


def resume_args(ck):
    return ["train", "--resume", ck, "--train", "data.h5", "-b", "4", "--epochs", "3", "-j", "1"]


# ---------------------------------------------------------------- 1. nothing outside the file

def replace_with(kind, key, like):
    """fn(f) replacing dataset key (shape / dtype of `like` there) by a reference outside the file."""
    def fn(f):
        shape, dtype = f[key].shape, f[key].dtype
        del f[key]
        if kind == "external-storage":
            f.create_dataset(key, shape=shape, dtype=dtype, external=[(P("secret.bin"), 0, h5py.h5f.UNLIMITED)])
        elif kind == "external-link":
            f[key] = h5py.ExternalLink(P("other.h5"), like)
        elif kind == "virtual":
            lay = h5py.VirtualLayout(shape=shape, dtype=dtype)
            lay[...] = h5py.VirtualSource(P("other.h5"), like, shape=shape)
            f.create_virtual_dataset(key, lay)
        elif kind == "soft-link":
            f["stash"] = np.full(shape, 7.0, dtype)
            f[key] = h5py.SoftLink("/stash")
    return fn


KINDS = ["external-storage", "external-link", "virtual", "soft-link"]
for kind in KINDS:
    ck = mutate(P("base.h5"), P("bad", f"model-{kind}.h5"), replace_with(kind, "model/head.bias", "/x"))
    rel = os.path.relpath(ck, T)
    need = [rel, "head.bias"]
    refused(f"inspect {kind}", ["inspect", rel], need)
    refused(f"eval {kind}", ["eval", "--checkpoint", rel, "--data", "data.h5", "-j", "1"], need)
    refused(f"predict {kind}", ["predict", "--checkpoint", rel, "--data", "data.h5", "--out", "p.h5"], need)
    refused(f"grads {kind}", ["grads", "--checkpoint", rel, "--data", "data.h5", "-b", "2", "--out", "g.h5"], need)
    refused(f"train --initial-checkpoint {kind}",
            ["train"] + MODEL + ["--initial-checkpoint", rel, "--train", "data.h5", "-b", "4", "--epochs", "1",
                                 "-j", "1", "--output", "ft"], need)
    os.unlink(ck)
    for group in ["model", "ema", "optimizer/exp_avg"]:
        ck = mutate(LAST, P("bad", f"r-{kind}-{group.replace('/', '_')}", "last.h5"),
                    replace_with(kind, f"{group}/head.bias", "/x"))
        rel = os.path.relpath(ck, T)
        refused(f"train --resume {kind} in /{group}", resume_args(rel), [rel, "head.bias"])
        if group == "ema":
            refused(f"eval --ema {kind}", ["eval", "--checkpoint", rel, "--data", "data.h5", "--ema", "-j", "1"],
                    [rel, "head.bias"])
        shutil.rmtree(os.path.dirname(ck))

# a whole group that is a link to another file
def model_group_link(f):
    del f["model"]
    f["model"] = h5py.ExternalLink(P("base.h5"), "/model")
ck = os.path.relpath(mutate(P("base.h5"), P("bad", "group-link.h5"), model_group_link), T)
refused("inspect group external link", ["inspect", ck], [ck, "model", "external link"])
refused("eval group external link", ["eval", "--checkpoint", ck, "--data", "data.h5", "-j", "1"], [ck, "model"])
os.unlink(P(ck))

# HDF5 data files
for kind in KINDS:
    for key in ["images", "labels"]:
        d = os.path.relpath(mutate(P("data.h5"), P("bad", f"data-{kind}-{key}.h5"),
                                   replace_with(kind, key, "/" + key)), T)
        need = [d, key]
        refused(f"eval --data {kind} {key}", ["eval", "--checkpoint", "base.h5", "--data", d, "-j", "1"], need)
        refused(f"predict --data {kind} {key}", ["predict", "--checkpoint", "base.h5", "--data", d, "--out", "p.h5"],
                need)
        refused(f"train --train {kind} {key}", ["train"] + MODEL + ["--train", d, "-b", "4", "--epochs", "1", "-j", "1",
                                                                    "--output", "t"], need)
        os.unlink(P(d))


# ---------------------------------------------------------------- 2. stored config validated like flags

def with_config(**kv):
    def fn(f):
        cfg = json.loads(f.attrs["config"])
        cfg.update(kv)
        f.attrs["config"] = json.dumps(cfg)
    return fn


CONFIGS = [("embed_dim", 100000), ("num_classes", 2000000000), ("img_size", 2 ** 30), ("mem_units", 2000000000),
           ("mlp_ratio", 1e30), ("mlp_ratio", 1e300), ("depth", 100000), ("in_chans", 2 ** 20), ("patch_size", 0),
           ("drop_rate", -1), ("heads", -3), ("layer_scale", 7), ("name", "\u001b[31mred")]
for key, value in CONFIGS:
    ck = os.path.relpath(mutate(P("base.h5"), P("bad", f"cfg-{key}.h5"), with_config(**{key: value})), T)
    refused(f"eval config {key}={value!r}", ["eval", "--checkpoint", ck, "--data", "data.h5", "-j", "1"],
            [ck, key if key != "name" else "config"], timeout=20, max_rss_mib=300)
    refused(f"inspect config {key}={value!r}", ["inspect", ck], [ck, key if key != "name" else "config"],
            timeout=20, max_rss_mib=300)
    refused(f"predict config {key}={value!r}", ["predict", "--checkpoint", ck, "--data", "data.h5", "--out", "p.h5"],
            [ck, key if key != "name" else "config"], timeout=20, max_rss_mib=300)
    os.unlink(P(ck))
# within every per-field limit, over the parameter limit (65536^2 x 8 x 1024 weights)
ck = os.path.relpath(mutate(P("base.h5"), P("bad", "cfg-huge.h5"),
                            with_config(embed_dim=65536, depth=1024, mlp_ratio=4)), T)
refused("eval config over the parameter limit", ["eval", "--checkpoint", ck, "--data", "data.h5", "-j", "1"],
        [ck, "parameters"], timeout=20, max_rss_mib=300)
os.unlink(P(ck))
for key, value in [("in_chans", 2 ** 20), ("depth", 100000), ("embed_dim", 100000)]:
    ck = os.path.relpath(mutate(LAST, P("bad", f"rcfg-{key}", "last.h5"), with_config(**{key: value})), T)
    refused(f"train --resume config {key}={value}", resume_args(ck), [ck, key], timeout=20, max_rss_mib=300)
    shutil.rmtree(P(os.path.dirname(ck)))

# deep models build in linear time (parameter names are hashed)
r = run(["init", "--model", "mixer_tiny", "--embed-dim", "4", "--depth", "1024", "--out", "deep.h5"], 60)
harness.check(r.rc == 0 and r.secs <= 20, f"init --depth 1024: exit {r.rc} in {r.secs:.1f} s (at most 20)", r.text)
if os.path.exists(P("deep.h5")):
    os.unlink(P("deep.h5"))


# ---------------------------------------------------------------- 3. declared sizes the file does not hold

def huge(key, n, chunk):
    """key replaced by a float32 dataset declaring n values, only its first chunk written."""
    def fn(f):
        del f[key]
        d = f.create_dataset(key, shape=(n,), dtype="<f4", chunks=(chunk,), compression="gzip")
        d[:chunk] = 1.0
    return fn


ck = os.path.relpath(mutate(P("base.h5"), P("bad", "inspect-huge.h5"), huge("model/head.weight", 2 ** 28, 2 ** 16)), T)
refused("inspect 2^28 declared floats", ["inspect", ck], [ck, "head.weight"], timeout=20, max_rss_mib=300)
os.unlink(P(ck))
def unwritten(f):
    del f["model/head.weight"]
    f.create_dataset("model/head.weight", shape=(2 ** 31,), dtype="<f4")  # contiguous, never written
ck = os.path.relpath(mutate(P("base.h5"), P("bad", "inspect-unwritten.h5"), unwritten), T)
refused("inspect 2^31 unwritten floats", ["inspect", ck], [ck, "head.weight"], timeout=20, max_rss_mib=300)
os.unlink(P(ck))


# ---------------------------------------------------------------- 4. eval --ema is strict

def ema_empty(f):
    del f["ema"]
    f.create_group("ema")
def ema_transposed(f):
    w = f["ema/head.weight"][...]
    del f["ema/head.weight"]
    f["ema/head.weight"] = np.ascontiguousarray(w.reshape(w.shape[1], w.shape[0]))
def ema_missing(f):
    del f["ema"]
def ema_extra(f):
    f["ema/extra.weight"] = np.zeros((3,), np.float32)
CASES_EMA = [("empty", ema_empty, ["/ema/", "missing"]), ("transposed", ema_transposed, ["head.weight", "(16,10)", "(10,16)"]),
             ("absent", ema_missing, ["/ema"]), ("extra key", ema_extra, ["extra.weight"]),
             ("2^28 declared", huge("ema/head.weight", 2 ** 28, 2 ** 16), ["head.weight", "(268435456)", "(10,16)"])]
for name, fn, need in CASES_EMA:
    ck = os.path.relpath(mutate(LAST, P("bad", "ema.h5"), fn), T)
    refused(f"eval --ema {name}", ["eval", "--checkpoint", ck, "--data", "data.h5", "--ema", "-j", "1"], [ck] + need,
            timeout=20, max_rss_mib=300)
    os.unlink(P(ck))


# ---------------------------------------------------------------- 5. data files: declared rows, labels

with h5py.File(P("bad", "rows.h5"), "w") as f:  # a few KiB declaring 2^28 images
    f.create_dataset("images", shape=(2 ** 28, 1, 28, 28), dtype="<f4", chunks=(1, 1, 28, 28))
    f.create_dataset("labels", shape=(2 ** 28,), dtype="<i8", chunks=(1024,))
d = "bad/rows.h5"
refused("eval 2^28 declared images", ["eval", "--checkpoint", "base.h5", "--data", d, "-j", "1"], [d, "images"],
        timeout=20, max_rss_mib=300)
refused("predict 2^28 declared images", ["predict", "--checkpoint", "base.h5", "--data", d, "--out", "p.h5"],
        [d, "images"], timeout=20, max_rss_mib=300)
refused("train 2^28 declared images", ["train"] + MODEL + ["--train", d, "-b", "4", "--epochs", "1", "-j", "1",
                                                           "--output", "t"], [d, "images"], timeout=20)
os.unlink(P(d))
for bad_label, idx in [(99, 5), (-2, 3), (10, 15)]:  # -1 means "no label"
    def fn(f, bad_label=bad_label, idx=idx):
        lab = f["labels"][...]
        lab[idx] = bad_label
        f["labels"][...] = lab
    d = os.path.relpath(mutate(P("data.h5"), P("bad", "labels.h5"), fn), T)
    need = [d, f"[{idx}]"]
    refused(f"eval label {bad_label}", ["eval", "--checkpoint", "base.h5", "--data", d, "-j", "1"], need)
    refused(f"predict label {bad_label}", ["predict", "--checkpoint", "base.h5", "--data", d, "--out", "p.h5"], need)
    refused(f"train label {bad_label}", ["train"] + MODEL + ["--train", d, "-b", "4", "--epochs", "1", "-j", "1",
                                                             "--output", "t"], need)
    os.unlink(P(d))


# ---------------------------------------------------------------- 6. train_state on --resume

def with_state(state, **attrs):
    def fn(f):
        f.attrs["train_state"] = state if isinstance(state, str) else json.dumps(state)
        for k, v in attrs.items():
            f.attrs[k] = np.int64(v)
    return fn


STATES = [
    ("not JSON", '{"epoch": 1, "batch"', {}, ["train_state"]),
    ("unknown key", dict(TS, bogus=1), {}, ["train_state"]),
    ("negative epoch", dict(TS, epoch=-5), {"epoch": -5}, ["epoch"]),
    ("epoch disagrees", dict(TS, epoch=0), {}, ["epoch"]),
    ("huge batch", dict(TS, batch=10 ** 12), {}, ["batch"]),
    ("negative step", dict(TS, step=-1), {"step": -1}, ["step"]),
    ("best_top1 7", dict(TS, best_top1=7), {}, ["best_top1"]),
    ("best_epoch ahead", dict(TS, best_epoch=50), {}, ["best_epoch"]),
    ("fractional batch", dict(TS, batch=0.5), {}, ["batch"]),
    ("negative seed", '{"epoch": %d, "step": %d, "seed": -4}' % (TS["epoch"], TS["step"]), {}, ["seed"]),
]
for name, state, attrs, need in STATES:
    ck = os.path.relpath(mutate(LAST, P("bad", "ts", "last.h5"), with_state(state, **attrs)), T)
    refused(f"train --resume train_state {name}", resume_args(ck), [ck] + need)
    shutil.rmtree(P("bad", "ts"))

# ---------------------------------------------------------------- damaged global heap
# mixtape stores string attributes as variable-length strings, kept in the file's global heap
# collection ("GCOL"). libhdf5 1.10 trusts its object headers: a free-space object of size 0
# makes it loop forever while loading the collection, and a huge object size makes H5HG_read
# copy far past the collection. Both must end with exit 1 naming the file, in bounded time (a
# wall-clock limit around string-attribute reads, set short here).
def gheap_damaged(dst, idx, size):
    b = bytearray(open(P("base.h5"), "rb").read())
    g = b.find(b"GCOL")
    if g < 0:
        harness.die("base.h5 has no global heap collection (no variable-length string attributes?)")
    b[g + 16:g + 18] = idx.to_bytes(2, "little")   # first object: heap index, refs, reserved, size
    b[g + 24:g + 32] = size.to_bytes(8, "little")
    with open(P(dst), "wb") as f:
        f.write(b)


gheap_damaged("gheap_loop.h5", 0, 0)
gheap_damaged("gheap_huge.h5", 1, 0xFF0000000007)
ENV["MIXTAPE_H5_READ_LIMIT"] = "3"
for name in ("gheap_loop.h5", "gheap_huge.h5"):
    for args in (["inspect", name], ["eval", "--checkpoint", name, "--data", "data.h5", "--threads", "1"]):
        t0 = time.time()
        refused(f"{args[0]} on a damaged global heap ({name})", args, [name], timeout=45)
        harness.check(time.time() - t0 < 40, f"{args[0]} {name}: ends well within 40 s with a 3 s read limit",
                      f"took {time.time() - t0:.0f} s")
del ENV["MIXTAPE_H5_READ_LIMIT"]
r = run(["inspect", "base.h5"], 60)  # a sane file under the default limit
harness.check(r.rc == 0 and "did not finish" not in r.text, "inspect base.h5 with the read limit in place", r.text)

harness.finish()
