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

try:
    import h5py  # noqa: F401
    import numpy  # noqa: F401
    import PIL  # noqa: F401
except ImportError as e:
    print("skip: the fuzzer needs h5py, numpy and PIL (%s)" % e)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz"))
import mtfuzz  # noqa: E402

mixtape = os.environ.get("MIXTAPE")
if not mixtape or not os.access(mixtape, os.X_OK):
    print("FAIL: set MIXTAPE to the mixtape binary")
    sys.exit(1)
asan = mtfuzz.is_asan(mixtape)
budget = int(os.environ.get("MIXTAPE_FUZZ_BUDGET", "0")) or (600 if asan else 2000)
seed = os.environ.get("MIXTAPE_FUZZ_SEED", "20261204")
out = os.path.abspath("fuzz-results-ctest")  # ctest's working directory is the build directory
shutil.rmtree(out, ignore_errors=True)
rc = mtfuzz.main(["--mixtape", mixtape, "--seed", seed, "--budget", str(budget), "--jobs", "2", "--out", out])
if rc:
    print("\nFAIL: see the distinct failures above; inputs and cmd.sh under %s" % out)
else:
    print("\nok: %d mutated inputs, no crash, hang, debris or escape" % budget)
sys.exit(rc)
