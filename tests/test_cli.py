"""Command-line conventions of every mixtape command: ranges with overflow detection
(exit 2 naming flag, value and range), generated --help defaults, `help CMD`, -V,
attached short values, `--`, flags in place of positionals, config-file errors with
file and line, timm args.yaml keys, thread limits and a few messages."""
import os
import struct
import tempfile

import harness
from harness import check


def run(args, env=None, timeout=120):
    r = harness.run(args, timeout, env=env)
    return r.rc, r.out, r.err


TRAIN = ["train", "--dry-run", "--model", "mixer_tiny", "--train", "x"]


def ranges():
    cases = [
        (TRAIN + ["--threads", "-1"], "--threads", "-1", "[0, 1024]"),
        (TRAIN + ["--threads", "100000"], "--threads", "100000", "[0, 1024]"),
        (TRAIN + ["-j", "-2"], "--workers", "-2", "[0, 1024]"),
        (TRAIN + ["--workers=-2"], "--workers", "-2", "[0, 1024]"),
        (TRAIN + ["--max-steps", "-5"], "--max-steps", "-5", "[0,"),
        (TRAIN + ["--checkpoint-every", "-1"], "--checkpoint-every", "-1", "[0,"),
        (TRAIN + ["--keep-last", "-1"], "--keep-last", "-1", "[0,"),
        (TRAIN + ["--val-every", "0"], "--val-every", "0", "[1,"),
        (TRAIN + ["--clip-grad", "-1"], "--clip-grad", "-1", "[0,"),
        (TRAIN + ["--lr", "-1"], "--lr", "-1", "[1e-12,"),
        (TRAIN + ["--epochs", "99999999999999"], "--epochs", "99999999999999", "[1, 1000000]"),
        (TRAIN + ["--epochs", "999999999999999999999999"], "--epochs", "999999999999999999999999", "integer"),
        (TRAIN + ["--epochs", "3x"], "--epochs", "3x", "integer"),
        (TRAIN + ["--lr", "inf"], "--lr", "inf", "finite"),
        (TRAIN + ["--lr", "nan"], "--lr", "nan", "finite"),
        (TRAIN + ["--lr", "1e999"], "--lr", "1e999", "finite"),
        (TRAIN + ["--hflip", "1.5"], "--hflip", "1.5", "[0, 1]"),
        (TRAIN + ["--scale", "0.5", "2"], "--scale", "0.5,2", "[1e-06, 1]"),
        (TRAIN + ["--opt", "adamx"], "--opt", "adamx", "adamw|adam"),
        (TRAIN + ["--model-ema-decay", "2"], "--model-ema-decay", "2", "[0, 1]"),
        (TRAIN + ["--depth", "0"], "--depth", "0", "[1, 1024]"),
        (["bench-data", "--data", "x", "--world", "0"], "--world", "0", "[1,"),
        (["bench-data", "--data", "x", "--batches", "0"], "--batches", "0", "[1,"),
        (["shards", "--from", "idx", "x", "--out", "y", "--per-shard", "0"], "--per-shard", "0", "[1,"),
        (["shards", "--from", "idx", "x", "--out", "y", "--shard-size", "0"], "--shard-size", "0", "[0.002,"),
        (["bench", "--model", "mixer_tiny", "--steps", "0"], "--steps", "0", "[1,"),
        (["bench", "--model", "mixer_tiny", "--warmup", "-1"], "--warmup", "-1", "[0,"),
        (["eval", "--checkpoint", "c", "--data", "d", "-b", "0"], "--batch-size", "0", "[1,"),
        (["predict", "--checkpoint", "c", "--data", "d", "--out", "o", "-b", "-3"], "--batch-size", "-3", "[1,"),
        (["models", "--threads", "-4"], "--threads", "-4", "[0, 1024]"),
        (["init", "--model", "mixer_tiny", "--out", "o", "--seed", "-1"], "--seed", "-1", "[0,"),
    ]
    for args, flag, val, rng in cases:
        rc, out, err = run(args)
        check(rc == 2 and flag in err and val in err and rng in err,
              "%s -> exit 2 naming flag, value and range (%d: %s)" % (" ".join(args[-2:]), rc, err.strip()[:160]))


def threads_env():
    rc, out, err = run(["models"], env={"OMP_NUM_THREADS": "100000"})
    check(rc == 0 and "clamped to 1024" in err and "mixer_tiny" in out,
          "OMP_NUM_THREADS=100000 is clamped with a note, no crash (%d %s)" % (rc, err.strip()[:120]))
    rc, out, err = run(["models"], env={"OMP_NUM_THREADS": "-3"})
    check(rc == 0 and "not a positive integer" in err, "OMP_NUM_THREADS=-3 is refused with a note (%d)" % rc)


def help_and_version():
    rc, out, err = run(["help", "train"])
    rc2, out2, _ = run(["train", "--help"])
    check(rc == 0 and out == out2 and "usage: mixtape train" in out, "mixtape help train = mixtape train --help")
    rc, out, _ = run(["help", "eval"])
    check(rc == 0 and "usage: mixtape eval" in out, "mixtape help eval prints eval's help")
    rc, out, err = run(["help", "nosuch"])
    check(rc == 2 and "nosuch" in err, "mixtape help nosuch -> 2")
    for v in (["-V"], ["--version"], ["version"]):
        rc, out, _ = run(v)
        check(rc == 0 and out.startswith("mixtape ") and out.strip().split()[1][0].isdigit(), "%s prints the version" % v[0])
    # defaults in --help are the ones the code uses
    rc, out, _ = run(["train", "--help"])
    aa = [l for l in out.splitlines() if l.strip().startswith("--aa ")]
    check(len(aa) == 1 and "default none" in aa[0], "train --help: --aa default none (%s)" % aa)
    rc, out, _ = run(["bench", "--help"])
    w = [l for l in out.splitlines() if l.strip().startswith("--warmup ")]
    check(len(w) == 1 and "default 3" in w[0], "bench --help: --warmup default 3 (%s)" % w)
    for c in ("models", "init", "train", "eval", "predict", "grads", "bench", "bench-data", "shards", "inspect", "reparam"):
        rc, out, err = run([c, "--help"])
        check(rc == 0 and ("usage: mixtape " + c) in out and "--" in out, "%s --help exits 0 with usage and flags" % c)
        rc, out, err = run([c, "--list-flags"])
        ok = rc == 0 and out.strip() and all(l.startswith("{\"name\": \"--") for l in out.splitlines())
        check(ok, "%s --list-flags prints JSON lines (%d %s)" % (c, rc, err.strip()[:100]))
        import json
        fl = [json.loads(l) for l in out.splitlines()] if ok else []
        bad = [f["name"] for f in fl if not f["help"] or (f["type"] in ("int", "float", "list", "ints") and f["min"] is None)]
        check(ok and not bad, "%s: every flag has help and every numeric flag a range (missing: %s)" % (c, bad))


def conventions(T):
    d = os.path.join(T, "o")
    rc, out, err = run(TRAIN + ["--output", d, "-b64", "-j3"])
    y = open(os.path.join(d, "args.yaml")).read() if rc == 0 else ""
    check(rc == 0 and "batch_size: 64\n" in y and "workers: 3\n" in y, "-b64 -j3 attached short values (%s)" % err.strip())
    rc, out, err = run(TRAIN + ["--output", d, "-b", "64", "--", "--lr"])
    check(rc == 2 and "unexpected argument '--lr'" in err, "after --, '--lr' is an argument, not a flag (%s)" % err.strip())
    ck = os.path.join(T, "c.h5")
    rc, out, err = run(["init", "--model", "mixer_tiny", "--img-size", "8", "--patch-size", "4", "--embed-dim", "4",
                        "--depth", "1", "--num-classes", "3", "--out", ck])
    check(rc == 0, "init writes a checkpoint (%s)" % err.strip())
    rc1, out1, _ = run(["inspect", ck, "--no-params"])
    rc2, out2, err2 = run(["inspect", "--checkpoint", ck, "--no-params"])
    rc3, out3, _ = run(["inspect", "--no-params", "--", ck])
    check(rc1 == 0 and rc2 == 0 and rc3 == 0 and out1 == out2 == out3, "inspect C.h5 = inspect --checkpoint C.h5 = inspect -- C.h5 (%s)" % err2.strip())
    dep = os.path.join(T, "d.h5")
    rc, out, err = run(["reparam", "--checkpoint", ck, "--out", dep])
    check(rc == 0 and os.path.exists(dep), "reparam --checkpoint IN --out OUT (%s)" % err.strip())
    rc, out, err = run(["reparam", ck])
    check(rc == 2 and "OUT.h5" in err, "reparam with one path -> 2")
    rc, out, err = run(["train", "--model", "nosuchmodel", "--train", "x", "--output", d])
    check(rc == 2 and err.count("mixer_tiny") == 1 and (out + err).count("known models") == 1,
          "unknown model lists the models once")
    # small parameter counts are exact; "trainable after freezing" only when something is frozen
    import h5py
    import numpy as np
    data = os.path.join(T, "t.h5")
    with h5py.File(data, "w") as f:
        f["images"] = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)
        f["labels"] = np.arange(8) % 2
    tiny = ["train", "--model", "mixer_tiny", "--img-size", "8", "--patch-size", "4", "--embed-dim", "4", "--depth", "1",
            "--num-classes", "2", "--in-chans", "1", "--train", data, "-b", "4", "--epochs", "1", "--max-steps", "1",
            "--threads", "1", "--warmup-epochs", "0"]
    rc, out, err = run(tiny + ["--output", os.path.join(T, "r1")])
    line = [l for l in out.splitlines() if l.startswith("model mixer_tiny:")]
    check(rc == 0 and line and "0.00M" not in line[0] and "trainable" not in line[0] and line[0].split()[2].isdigit(),
          "tiny model: exact parameter count, no 'trainable' line (%s %s)" % (line, err.strip()[-200:]))
    rc, out, err = run(tiny + ["--output", os.path.join(T, "r2"), "--freeze", "stem.*"])
    line = [l for l in out.splitlines() if l.startswith("model mixer_tiny:")]
    check(rc == 0 and line and "trainable after freezing" in line[0], "frozen stem: trainable count shown (%s)" % line)


def config_files(T):
    p = os.path.join(T, "bad.yaml")
    open(p, "w").write("model: mixer_tiny\nepochs: 3\nlrr: 0.1\n")
    rc, out, err = run(TRAIN + ["--config", p])
    check(rc == 2 and p in err and "line 3" in err and "lrr" in err, "unknown config key names file and line (%s)" % err.strip())
    open(p, "w").write("model: mixer_tiny\nepochs: -3\n")
    rc, out, err = run(TRAIN + ["--config", p])
    check(rc == 2 and p in err and "line 2" in err and "--epochs" in err, "bad config value names file and line (%s)" % err.strip())
    open(p, "w").write("model: mixer_tiny\nnot yaml\n")
    rc, out, err = run(TRAIN + ["--config", p])
    check(rc == 2 and "line 2" in err, "malformed config names the line (%s)" % err.strip())
    rc, out, err = run(TRAIN + ["--config", os.path.join(T, "missing.yaml")])
    check(rc == 2 and "missing.yaml" in err, "missing config file -> 2 naming it")
    # a timm train.py args.yaml: timm-only keys skipped with one warning, shared keys used
    timm = os.path.join(T, "timm.yaml")
    open(timm, "w").write("""aa: rand-m9-mstd0.5-inc1
amp: true
amp_dtype: float16
batch_size: 96
bce_loss: false
channels_last: true
checkpoint_hist: 10
clip_grad: null
clip_mode: norm
color_jitter: 0.4
cooldown_epochs: 10
crop_pct: null
cutmix: 1.0
cutmix_minmax: null
data_dir: /data/imagenet
dataset: ''
decay_epochs: 90
decay_milestones:
- 90
- 180
- 270
decay_rate: 0.1
dist_bn: reduce
drop: 0.0
drop_path: 0.1
epochs: 300
experiment: ''
gp: null
hflip: 0.5
img_size: null
initial_checkpoint: ''
input_size: null
interpolation: ''
log_interval: 50
lr: null
lr_base: 0.005
lr_base_scale: ''
lr_base_size: 256
lr_noise: null
mean: null
min_lr: 0
mixup: 0.8
mixup_mode: batch
mixup_prob: 1.0
mixup_switch_prob: 0.5
model: mixer_tiny
model_ema: true
model_ema_decay: 0.9998
model_kwargs: {}
momentum: 0.9
no_aug: false
num_classes: null
opt: adamw
opt_betas: null
opt_eps: null
output: ''
pin_mem: false
pretrained: false
ratio:
- 0.75
- 1.3333333333333333
recount: 1
remode: pixel
reprob: 0.25
resume: ''
scale:
- 0.08
- 1.0
sched: cosine
seed: 42
smoothing: 0.1
std: null
sync_bn: false
train_interpolation: random
vflip: 0.0
warmup_epochs: 5
warmup_lr: 1.0e-06
warmup_prefix: false
weight_decay: 0.05
workers: 4
""")
    d = os.path.join(T, "fromtimm")
    rc, out, err = run(["train", "--dry-run", "--config", timm, "--output", d])
    warn = [l for l in err.splitlines() if "timm-only" in l]
    check(rc == 0 and len(warn) == 1 and all(k in warn[0] for k in ("amp", "channels_last", "pin_mem", "dist_bn", "decay_milestones")),
          "timm args.yaml accepted with one warning listing the timm-only keys (%d %s)" % (rc, err.strip()[:300]))
    check("gp" not in (warn[0].split(":")[-1].split() if warn else []), "null timm-only keys are not listed")
    y = open(os.path.join(d, "args.yaml")).read() if rc == 0 else ""
    check("batch_size: 96\n" in y and "reprob: 0.25\n" in y and "aa: rand-m9-mstd0.5-inc1\n" in y and "mixup: 0.8\n" in y
          and "data_dir: /data/imagenet\n" in y, "timm keys mixtape shares are used")
    open(timm, "a").write("frobnicate: 3\n")
    rc, out, err = run(["train", "--dry-run", "--config", timm, "--output", d])
    n = len(open(timm).read().splitlines())
    check(rc == 2 and "frobnicate" in err and ("line %d" % n) in err, "a key neither mixtape's nor timm's still fails with its line")


def shards_message(T):
    img = os.path.join(T, "train-images-idx3-ubyte")
    lab = os.path.join(T, "train-labels-idx1-ubyte")
    with open(img, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, 3, 4, 4) + bytes(range(48)))
    with open(lab, "wb") as f:
        f.write(struct.pack(">II", 0x801, 3) + bytes([0, 1, 0]))
    rc, out, err = run(["shards", "--from", "idx", img, "--out", os.path.join(T, "sh", "train")])
    check(rc == 0 and "1 shard," in out and "3 samples" in out, "shards: '1 shard' (%s %s)" % (out.strip(), err.strip()))
    rc, out, err = run(["shards", "--from", "idx", "--src", img, "--out", os.path.join(T, "sh2", "train")])
    check(rc == 0, "shards --src SRC in place of the positional (%s)" % err.strip())


def sgemm_lines():
    # scripts/bench_vs_pytorch.sh reads these two lines: GEMM rates, then the model-sized rate and the peaks
    import re
    rc, out, err = run(["bench", "--sgemm", "--threads", "1"])
    lines = out.splitlines()
    ok = rc == 0 and len(lines) >= 2
    first = ok and re.match(r"sgemm: [0-9.]+ GFLOP/s .* bf16 gemm: [0-9.]+ GFLOP/s .* fp32 gemm: [0-9.]+ GFLOP/s", lines[0])
    second = ok and re.match(r"bf16 gemm [0-9]+x[0-9]+x[0-9]+: ([0-9.]+) GFLOP/s  register peak: bf16 ([0-9.]+) GFLOP/s, "
                             r"fp32 ([0-9.]+) GFLOP/s", lines[1])
    check(bool(first and second), "bench --sgemm prints the rate line and the model-size/peak line (%s %s)" % (out, err))
    if second:
        check(all(float(v) >= 0 for v in second.groups()) and float(second.group(1)) > 0,
              "bench --sgemm: a positive model-size rate, peaks >= 0 (%s)" % lines[1])


def main():
    sgemm_lines()
    ranges()
    threads_env()
    help_and_version()
    with tempfile.TemporaryDirectory() as T:
        conventions(T)
        config_files(T)
        shards_message(T)
    harness.finish()


if __name__ == "__main__":
    main()
