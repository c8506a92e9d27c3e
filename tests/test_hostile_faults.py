#!/usr/bin/env python3
"""Outputs never destroy inputs, faults leave no debris, results are honest.

Builds its own inputs (a tiny checkpoint via `mixtape init`, HDF5 data with
h5py, NaN images and NaN weights), runs $MIXTAPE with a timeout per case and
checks the exit code, that no signal killed it, the message, that the inputs
are byte-identical afterwards, and that no temporary file is left behind.

Parts:
  inputs    an output naming an input (same path, symlink, hard link) -> exit 2
  honest    NaN images / NaN weights / zero usable samples -> exit 1, said so
  diskfull  train on a tiny tmpfs (needs mount) and under RLIMIT_FSIZE
  debris    stale temporaries of dead processes removed, nothing else touched
A part that cannot be set up here (tmpfs mount refused) is reported; the
test then exits 77 (skipped) unless something failed.
"""
import glob
import os
import resource
import shutil
import signal
import subprocess
import time

import harness

h5py, np = harness.require("h5py", "numpy")
M = harness.MIXTAPE
ENV = {"OMP_NUM_THREADS": "2"}
T = harness.tempdir("faults")
MODEL = ["--model", "mixer_tiny", "--img-size", "16", "--in-chans", "1", "--num-classes", "4",
         "--patch-size", "4", "--embed-dim", "32", "--depth", "2"]


def p(*a):
    return os.path.join(T, *a)


def check(name, cond, detail=""):  # this file's order: the name first
    harness.check(cond, name, detail)


def run(args, timeout=60, preexec=None):
    return harness.run(args, timeout, env=ENV, preexec=preexec)


def temps(d):
    return harness.temporaries(d, recursive=False)


def expect(name, args, code, needles, unchanged=(), timeout=60, preexec=None):
    if unchanged and os.path.exists(p("pristine", "c.h5")):
        restore()
    before = {f: harness.sha256(f) for f in unchanged}
    rc, out = run(args, timeout, preexec)
    ok = rc == code and rc >= 0 and rc != 139
    missing = [n for n in needles if n not in out]
    changed = [f for f in unchanged if harness.sha256(f) != before[f]]
    check(name, ok and not missing and not changed,
          f"exit {rc} (want {code}), missing {missing}, changed {changed}: {out[-600:]}")
    return rc, out


def make_data(path, n, seed, nan_rows=(), labels=True):
    r = np.random.default_rng(seed)
    y = r.integers(0, 4, n)
    x = r.normal(0, 1, (n, 1, 16, 16)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 0, 4 * k:4 * k + 3, :] += 2.5
    for i in nan_rows:
        x[i, 0, 3, 5] = np.nan
    with h5py.File(path, "w") as f:
        f["images"] = x
        if labels:
            f["labels"] = y.astype(np.int64)
        else:
            f["labels"] = -np.ones(n, np.int64)


def dead_pid():
    q = subprocess.Popen(["true"])
    q.wait()
    return q.pid


# ---------------------------------------------------------------- inputs
make_data(p("d.h5"), 64, 1)
make_data(p("nan.h5"), 64, 2, nan_rows=(3, 17))
make_data(p("nolabels.h5"), 8, 3, labels=False)
harness.must(["init"] + MODEL + ["--seed", "3", "--out", p("c.h5")], env=ENV)
shutil.copy(p("c.h5"), p("nanw.h5"))
with h5py.File(p("nanw.h5"), "r+") as f:
    w = f["model/stem.proj.weight"]
    a = w[...]
    a[0, 0, 0, 0] = np.nan
    w[...] = a
os.symlink("c.h5", p("c_link.h5"))
os.link(p("d.h5"), p("d_hard.h5"))
ins = [p("c.h5"), p("d.h5")]
os.mkdir(p("pristine"))
for f in ("c.h5", "d.h5"):
    shutil.copy(p(f), p("pristine", f))


def restore():
    """Each case starts from intact inputs, so one destroyed input does not hide the next case."""
    for f in ("c.h5", "d.h5"):
        shutil.copy(p("pristine", f), p(f))
    for f in glob.glob(p("*.tmp.*")):
        os.unlink(f)

expect("predict --out onto its --checkpoint is refused", ["predict", "--checkpoint", p("c.h5"), "--data",
       p("d.h5"), "--out", p("c.h5")], 2, ["--out", "--checkpoint", p("c.h5"), "same file"], ins)
expect("predict --out onto its --data is refused", ["predict", "--checkpoint", p("c.h5"), "--data", p("d.h5"),
       "--out", p("d.h5")], 2, ["--out", "--data", p("d.h5"), "same file"], ins)
expect("grads --out through a symlink to its --checkpoint is refused",
       ["grads", "--checkpoint", p("c.h5"), "--data", p("d.h5"), "-b", "4", "--out", p("c_link.h5")], 2,
       ["--out", p("c_link.h5"), "--checkpoint", p("c.h5")], ins)
check("the symlink is still a symlink", os.path.islink(p("c_link.h5")))
expect("grads --out onto a hard link of its --data is refused",
       ["grads", "--checkpoint", p("c.h5"), "--data", p("d.h5"), "-b", "4", "--out", p("d_hard.h5")], 2,
       ["--out", p("d_hard.h5"), "--data", p("d.h5")], ins)
expect("eval --confusion onto its --checkpoint is refused",
       ["eval", "--checkpoint", p("c.h5"), "--data", p("d.h5"), "--confusion", p("c.h5")], 2,
       ["--confusion", "--checkpoint", p("c.h5")], ins)
expect("eval --confusion onto its --data is refused",
       ["eval", "--checkpoint", p("c.h5"), "--data", p("d.h5"), "--confusion", p("d_hard.h5")], 2,
       ["--confusion", "--data"], ins)
# ordinary outputs still work, and appear whole
expect("predict to a new file works", ["predict", "--checkpoint", p("c.h5"), "--data", p("d.h5"), "--out",
       p("p.h5")], 0, ["wrote"], ins)
try:
    with h5py.File(p("p.h5"), "r") as f:
        check("predict output has logits (64,4) and labels", f["logits"].shape == (64, 4) and f["labels"].shape == (64,))
except OSError as e:
    check("predict output is readable", False, str(e))
expect("eval --confusion to a new file works",
       ["eval", "--checkpoint", p("c.h5"), "--data", p("d.h5"), "--confusion", p("conf.csv")], 0, ["confusion"], ins)
rows = open(p("conf.csv")).read().splitlines() if os.path.exists(p("conf.csv")) else []
check("confusion CSV: header + 4 rows summing to 64", len(rows) == 5 and
      sum(int(v) for r in rows[1:] for v in r.split(",")[1:]) == 64, str(rows))
check("no temporaries left by the refused and the good outputs", temps(T) == [], str(temps(T)))

# ---------------------------------------------------------------- honest
rc, out = expect("eval on NaN images exits 1 saying the loss is not finite",
                 ["eval", "--checkpoint", p("c.h5"), "--data", p("nan.h5"), "--confusion", p("conf_nan.csv")], 1,
                 ["not finite", "2 of 64"], ins + [p("nan.h5")])
check("eval on NaN images does not write the confusion matrix", not os.path.exists(p("conf_nan.csv")))
rc, out = expect("eval with NaN weights exits 1", ["eval", "--checkpoint", p("nanw.h5"), "--data", p("d.h5")], 1,
                 ["not finite", "64 of 64"])
check("NaN weights: top-1 and top-5 are 0%, not 'every label in the top 5'",
      "top-1 0.00%" in out and "top-5 0.00%" in out, out[:400])
expect("eval with zero usable samples exits 1", ["eval", "--checkpoint", p("c.h5"), "--data", p("nolabels.h5")], 1,
       ["no usable samples"])
rc, out = expect("train with NaN validation images stops with exit 1",
                 ["train"] + MODEL + ["--train", p("d.h5"), "--val", p("nan.h5"), "-b", "16", "--epochs", "1",
                                      "--threads", "2", "-j", "1", "--output", p("runnan")], 1,
                 ["validation", "not finite"], [p("nan.h5")], timeout=120)
check("NaN validation is not recorded as best (no best.h5)", not os.path.exists(p("runnan", "best.h5")))
if os.path.exists(p("runnan", "metrics.jsonl")):
    import json
    v = [json.loads(l) for l in open(p("runnan", "metrics.jsonl")) if "val_top1" in l]
    check("metrics row: val_loss null, val_nonfinite 2", v and v[-1]["val_loss"] is None and
          v[-1].get("val_nonfinite") == 2, str(v))

# ---------------------------------------------------------------- diskfull
TRAIN = ["train"] + MODEL + ["--train", p("d.h5"), "--val", p("d.h5"), "-b", "16", "--epochs", "1",
                             "--threads", "2", "-j", "1"]


def full_disk_case(name, outdir, code_ok=(1,), needles=(), preexec=None):
    rc, out = run(TRAIN + ["--output", outdir], 120, preexec)
    left = temps(outdir) if os.path.isdir(outdir) else []
    empty = [f for f in ("args.yaml", "metrics.jsonl") if os.path.exists(os.path.join(outdir, f)) and
             os.path.getsize(os.path.join(outdir, f)) == 0]
    missing = [n for n in needles if n not in out]
    check(name, rc in code_ok and not left and not missing and not empty,
          f"exit {rc}, temporaries {left}, 0-byte {empty}, missing {missing}: {out[-700:]}")
    return rc, out


mnt = p("mnt")
os.mkdir(mnt)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", mnt], capture_output=True).returncode == 0
if mounted:
    try:
        rc, out = full_disk_case("full tmpfs: train exits 1 naming last.h5, no crash", os.path.join(mnt, "run"),
                                 needles=("last.h5", "No space left on device"))
        check("no 'previous one is intact' when there was no previous checkpoint", "intact" not in out, out[-300:])
        shutil.rmtree(os.path.join(mnt, "run"))
        # fill it completely, then leave 0 and 1 pages free
        subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(mnt, "fill"), "bs=4k"], capture_output=True)
        full_disk_case("0 bytes free: exit 1 naming args.yaml", os.path.join(mnt, "r0"),
                       needles=("args.yaml", "No space left on device"))
        os.truncate(os.path.join(mnt, "fill"), os.path.getsize(os.path.join(mnt, "fill")) - 8192)
        rc, out = full_disk_case("8 KB free: exit 1, metrics or checkpoint named", os.path.join(mnt, "r1"),
                                 needles=("No space left on device",))
        check("8 KB free: the message names the file", "metrics.jsonl" in out or ".h5" in out, out[-300:])
    finally:
        subprocess.run(["umount", mnt])
else:
    harness.part_skipped("full tmpfs cases: mount not permitted")


def fsize_limit(nbytes):
    def f():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return f


rc, out = full_disk_case("RLIMIT_FSIZE 100 KB: train exits 1 naming the checkpoint, no crash", p("rl"),
                         needles=(".h5", "File too large"), preexec=fsize_limit(100 * 1024))
check("RLIMIT_FSIZE: no checkpoint file is half-written", not any(
    os.path.getsize(f) >= 100 * 1024 for f in glob.glob(p("rl", "*.h5"))))
rc, out = expect("RLIMIT_FSIZE 4 KB: predict exits 1 naming --out, input intact",
                 ["predict", "--checkpoint", p("c.h5"), "--data", p("d.h5"), "--out", p("big.h5")], 1,
                 [p("big.h5"), "File too large"], ins, preexec=fsize_limit(4096))
check("RLIMIT_FSIZE: no partial predict output", not os.path.exists(p("big.h5")) and temps(T) == [], str(temps(T)))

# ---------------------------------------------------------------- debris
run_dir = p("stale")
os.mkdir(run_dir)
dp = dead_pid()
ours = ["last.h5.tmp.%d" % dp, "best.h5.tmp.%d" % dp, "epoch-3.h5.tmp.%d" % dp, "args.yaml.tmp.%d" % dp]
keep = ["notes.tmp.%d" % dp, "last.h5.tmp.4294967297", "last.h5.tmp.%d" % os.getpid(), "last.h5.tmp.12x", "epoch-x.h5.tmp.%d" % dp,
        "mydata.h5", "last.h5.tmp.%d.bak" % dp]
for n in ours + keep:
    with open(os.path.join(run_dir, n), "wb") as f:
        f.write(b"x" * 1000)
rc, out = run(TRAIN + ["--output", run_dir], 120)
check("train in a dir with stale temporaries succeeds", rc == 0, out[-400:])
check("stale temporaries of dead processes removed", not any(os.path.exists(os.path.join(run_dir, n)) for n in ours),
      str(os.listdir(run_dir)))
check("files that are not mixtape's dead temporaries are kept",
      all(os.path.exists(os.path.join(run_dir, n)) for n in keep), str(os.listdir(run_dir)))
check("the removal is reported", "stale temporary" in out, out[:400])
stale = p("p.h5.tmp.%d" % dp)
open(stale, "wb").write(b"y" * 5000)
expect("predict removes its own output's stale temporary", ["predict", "--checkpoint", p("c.h5"), "--data",
       p("d.h5"), "--out", p("p.h5")], 0, ["wrote"], ins)
check("  ... the stale p.h5.tmp.PID is gone", not os.path.exists(stale))

# double SIGTERM while training: exits at once (128+15), leaves no temporary
make_data(p("many.h5"), 2048, 5)
d2 = p("sig")
q = subprocess.Popen([M] + ["train"] + MODEL + ["--train", p("many.h5"), "-b", "16", "--epochs", "50",
                            "--threads", "2", "-j", "1", "--checkpoint-every", "1", "--output", d2],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(harness.BASE_ENV, **ENV))
t0 = time.time()
while time.time() - t0 < 30 and not os.path.exists(os.path.join(d2, "last.h5")):
    time.sleep(0.05)
q.send_signal(signal.SIGTERM)
q.send_signal(signal.SIGTERM)
try:
    err = q.communicate(timeout=60)[1]
except subprocess.TimeoutExpired:
    q.kill()
    err = q.communicate()[1]
check("double SIGTERM: exit 143 or a clean stop, no crash", q.returncode in (143, 1, 0), f"exit {q.returncode}: {err[-300:]}")
check("double SIGTERM: no temporary left", temps(d2) == [], str(temps(d2)))

# ---------------------------------------------------------------- limits
# a config file is a few KB: a huge one is refused by its size before it is read, naming it
big_cfg = p("big.yaml")
with open(big_cfg, "w") as f:
    f.write("model: mixer_tiny\n" + "# padding\n" * 600000)  # 6 MB of comments
expect("--config of 6 MB is refused naming the file and the limit", ["train", "--config", big_cfg, "--output",
       p("runbig")], 2, [big_cfg, "4 MiB"], [big_cfg])
check("  ... no run directory made", not os.path.exists(p("runbig")))
os.mkdir(p("resbig"))
shutil.copy(p("c.h5"), p("resbig", "last.h5"))
shutil.copy(big_cfg, p("resbig", "args.yaml"))
expect("--resume beside a 6 MB args.yaml is refused naming it", ["train", "--resume", p("resbig", "last.h5")], 2,
       [p("resbig", "args.yaml"), "4 MiB"], [p("resbig", "last.h5")])
# skipped samples leaving no full batch: an error before anything is saved, not "train loss nan"
try:
    import io
    import tarfile
    from PIL import Image
    shard = p("two.tar")
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as t:
        for i, (cls, px) in enumerate(((b"1", 40), (b"9", 200))):  # sample 1's label is outside 4 classes
            b = io.BytesIO()
            Image.fromarray(np.full((16, 16), px, np.uint8), "L").save(b, format="PNG")
            for ext, data in (("png", b.getvalue()), ("cls", cls)):
                ti = tarfile.TarInfo("s%04d.%s" % (i, ext))
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    rc, out = expect("train: 2 samples, 1 skipped, -b 2 -> exit 1 naming count and batch size",
                     ["train"] + MODEL + ["--train", shard, "-b", "2", "--epochs", "2", "--threads", "1", "-j", "1",
                                          "--output", p("runskip")], 1,
                     [shard, "2 samples", "1 of them skipped", "batch of 2"], [shard])
    check("  ... no 'train loss nan' and no checkpoint", "loss nan" not in out and
          not os.path.exists(p("runskip", "last.h5")), out[-400:])
except ImportError:
    harness.part_skipped("limits/no full batch (needs PIL)")

harness.finish()
