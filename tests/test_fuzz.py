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
if bad:
    sys.exit(1)
print("ok   classifier: %d synthetic outcomes classified as expected" % (len(checks) + 1))

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
