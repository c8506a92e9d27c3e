#!/usr/bin/python3
"""Fixed-seed mutation fuzzing of mixtape's untrusted inputs (tests/fuzz/mtfuzz.py).

About 2,000 mutated checkpoints, HDF5 data files and tar shards (600 under the ASan build, whose
runs cost ~3x more), each through one real command (inspect / eval / predict / grads / train
--initial-checkpoint / train --resume / train on the data). Fails on any crash (signal, odd exit
code, sanitizer report), hang, debris (temp file left, input modified, output left after a failed
run), escape (a file outside the input was read) or exit 1/2 without a message, and prints each
distinct failure as "<CLASS> <input kind> via <command>" with its reproducer directory
(cmd.sh replays it; `mtfuzz.py --seed 20261204 --only N` regenerates input N).
Env: MIXTAPE (binary), MIXTAPE_FUZZ_BUDGET (inputs), MIXTAPE_FUZZ_SEED.
"""
import os
import shutil
import sys

import harness

harness.require("h5py", "numpy", "PIL")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz"))
import mtfuzz  # noqa: E402

mixtape = harness.MIXTAPE
# ---- the classifier itself must be able to fail
class _Case:
    kind, cmd, argv, root = "ckpt", "predict", ["predict"], "."


snap = {"in.h5": "a", "d.h5": "b"}
checks = [
    (dict(rc=-11, err=""), "crash"),
    (dict(rc=1, err="==1==ERROR: AddressSanitizer: heap-buffer-overflow\n    #0 0x1 in f /x/mixtape+0x1\n"), "crash"),
    (dict(rc=1, err="core/op.c:3:5: runtime error: signed integer overflow"), "crash"),
    (dict(rc=3, err="x"), "crash"),
    (dict(rc=0, err="", timed_out=True), "hang"),
    (dict(rc=2, err=""), "silent"),
    (dict(rc=2, err="mixtape predict: bad"), "error"),
    (dict(rc=0, err=""), "ok"),
    (dict(rc=0, err="", after=dict(snap, **{"out.h5": "c"})), "ok"),
    (dict(rc=1, err="x", after=dict(snap, **{"out.h5": "c"})), "debris"),
    (dict(rc=1, err="predict: 2 samples have non-finite logits\nwrote out.h5", after=dict(snap, **{"out.h5": "c"})),
     "error"),
    (dict(rc=0, err="", after=dict(snap, **{"out.h5.tmp.12": "c", "out.h5": "c"})), "debris"),
    (dict(rc=1, err="x", after=dict(snap, **{"in.h5": "changed"})), "debris"),
    (dict(rc=0, err="", escaped=["outside"]), "escape"),
]
bad = 0
for kw, want in checks:
    got, why = mtfuzz.classify(_Case, kw["rc"], "", kw["err"], kw.get("timed_out", False), snap,
                               kw.get("after", snap), kw.get("escaped", []))
    if got != want:
        print("FAIL classifier: %r -> %s (%s), wanted %s" % (kw, got, why, want))
        bad += 1
ev = _Case()
ev.argv = ["eval"]
got, _ = mtfuzz.classify(ev, 0, "c.h5 on d.h5: 4 samples  top-1 25.00%  loss nan", "", False, snap, snap, [])
if got != "nan-ok":
    print("FAIL classifier: eval exit 0 with loss nan -> %s" % got)
    bad += 1
# a renamed run directory in a mutated train config is the run's output, not debris
yc = _Case()
yc.kind, yc.cmd, yc.argv = "yaml", "train", ["train", "--config", "args.yaml"]
yc.out_dirs = mtfuzz.config_output_dirs(b"model: mixer_tiny\noutput: './o\xfft/' # moved\nexperiment: e1\n")
after = dict(snap, **{"o\udcfft/": "dir", "o\udcfft/last.h5": "c", "output/train/e1/args.yaml": "d"})
got, why = mtfuzz.classify(yc, 0, "", "", False, snap, after, [])
if got != "ok":
    print("FAIL classifier: run dir named by the mutated config -> %s (%s)" % (got, why))
    bad += 1
got, why = mtfuzz.classify(yc, 1, "", "x", False, snap, dict(snap, **{"elsewhere/x": "c"}), [])
if got != "debris" or "elsewhere" not in mtfuzz.printable(why):
    print("FAIL classifier: a file outside the config's run dir -> %s (%s)" % (got, why))
    bad += 1
try:  # file names from mutations need not be UTF-8: what the fuzzer prints or saves must encode
    mtfuzz.printable("left behind: o\udcfft/").encode("utf-8")
except UnicodeEncodeError as e:
    print("FAIL printable: %r" % e)
    bad += 1
if bad:
    sys.exit(1)
print("ok   classifier: %d synthetic outcomes classified as expected" % (len(checks) + 4))

# ---- mutations write bounded amounts whatever the input declares (the work dir is tmpfs)
import random  # noqa: E402
import tempfile  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import mutate as mu  # noqa: E402


class _Op:  # a random.Random whose randrange picks the mutation op
    def __init__(self, op):
        self.op, self.r = op, random.Random(1)

    def randrange(self, n, *a):
        return self.op if not a and n == 14 else self.r.randrange(n, *a)

    def __getattr__(self, k):
        return getattr(self.r, k)


tmp = tempfile.mkdtemp(prefix="test_fuzz.")
try:
    h5 = os.path.join(tmp, "c.h5")
    with h5py.File(h5, "w") as f:
        f.create_dataset("w", shape=(2 ** 31, 4), dtype="f4", chunks=(64, 4), maxshape=(2 ** 31, 4))
    import resource  # noqa: E402
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)
    for op in (0, 1, 5, 6, 7, 8, 12):
        # a runaway write fails at 64 MiB here (EFBIG: Python ignores SIGXFSZ) instead of filling RAM
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, fsize[1]))
        with h5py.File(h5, "r+") as f:
            try:
                mu.mutate_h5_dataset(_Op(op), f, "w", os.path.join(tmp, "outside"))
            except (ValueError, TypeError, KeyError):
                pass  # h5py refusing a mutation is fine (the fuzzer falls back to bytes)
            except OSError as e:
                print("FAIL mutation op %d on a 2^31 x 4 dataset: %r (a write over 64 MiB?)" % (op, e))
                sys.exit(1)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, fsize)
        used = mtfuzz.disk_bytes(tmp)
        if used > 4 * mu.MAX_WRITE:
            print("FAIL mutation op %d on a 2^31 x 4 dataset wrote %d bytes" % (op, used))
            sys.exit(1)
        with h5py.File(h5, "w") as f:  # the next op starts from the huge declared shape again
            f.create_dataset("w", shape=(2 ** 31, 4), dtype="f4", chunks=(64, 4), maxshape=(2 ** 31, 4))
    sparse = os.path.join(tmp, "img.png")
    with open(sparse, "wb") as f:
        f.write(b"\x89PNG")
        f.truncate(1 << 30)
    os.makedirs(os.path.join(tmp, "case"))
    os.replace(sparse, os.path.join(tmp, "case", "img.png"))
    mtfuzz.copy_case(os.path.join(tmp, "case"), os.path.join(tmp, "copy"))
    st = os.stat(os.path.join(tmp, "copy", "img.png"))
    if st.st_size != 1 << 30 or st.st_blocks * 512 > (8 << 20):
        print("FAIL copy_case of a 1 GiB sparse file: size %d, %d bytes allocated" % (st.st_size, st.st_blocks * 512))
        sys.exit(1)
    # stacked tar mutations re-read headers earlier ones damaged (size fields in base-256 etc.)
    tar = mtfuzz.sd.tar_bytes(mtfuzz.sd.shard_members(np.random.default_rng(1)))
    for i in range(3000):
        r, d = random.Random(i), tar
        for _ in range(3):
            d, _ = mu.mutate_tar(r, d)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("ok   mutations: bounded writes on huge declared shapes, sparse copies, stacked tar mutations")

asan = mtfuzz.is_asan(mixtape)
budget = int(os.environ.get("MIXTAPE_FUZZ_BUDGET", "0")) or (600 if asan else 2000)
seed = os.environ.get("MIXTAPE_FUZZ_SEED", "20261204")
out = os.path.abspath("fuzz-results-ctest")  # ctest's working directory is the build directory
shutil.rmtree(out, ignore_errors=True)
rc = mtfuzz.main(["--mixtape", mixtape, "--seed", seed, "--budget", str(budget), "--jobs", "2", "--out", out])
# mutations must reach the parsers: every input kind has inputs that run and inputs that are refused
for kind, counts in sorted(mtfuzz.LAST_STATS.items()):
    if not counts.get("ok") or not counts.get("error"):
        print("FAIL %s: %d ok, %d clean errors: the mutations do not exercise the reader" % (
            kind, counts.get("ok", 0), counts.get("error", 0)))
        rc = 1
if rc == 0 and len(mtfuzz.LAST_STATS) != len(mtfuzz.KINDS):
    print("FAIL: input kinds run: %s" % sorted(mtfuzz.LAST_STATS))
    rc = 1
if rc:
    print("\nFAIL: failing input classes (class, input kind via command: signature  count, reproducer):")
    for cls, kind, cmd, why, n, dest in sorted(mtfuzz.LAST_FAILURES, key=lambda f: (mtfuzz.FAIL_CLASSES.index(f[0]),) + f[1:4]):
        print("  %-7s %s via %s: %s  x%d\n          %s/cmd.sh" % (cls.upper(), kind, cmd, why, n, dest))
    print("inputs, cmd.sh (replay), stderr.txt and meta.json under %s" % out)
else:
    print("\nok: %d mutated inputs, no crash, hang, debris or escape" % budget)
sys.exit(rc)
