#!/usr/bin/env bash
# Mutation fuzzing of mixtape's untrusted inputs (checkpoints, HDF5 data files, tar shards) for a
# fixed time, against the ASan+UBSan build when there is one. See docs/checkpoint.md, "Fuzzing".
#
#   scripts/fuzz.sh --minutes N [--build DIR] [--seed S] [--jobs J] [--kinds ckpt,h5data,shard]
#                   [--out DIR] [--timeout SEC] [--verbose]
#
# Prints inputs tried / ok / clean errors / crashes / hangs / debris / escapes per input kind and
# command; failing inputs are saved under --out (default fuzz-results/<seed>) with cmd.sh to replay.
# Exit status: 0 when nothing failed, 1 otherwise. ASan runs apply tests/fuzz/asan.supp (reports from
# inside libhdf5 on damaged files, which data/h5crash.c and the HDF5 read limit turn into exit 1).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
minutes=10 build="" seed="" out="" extra=()
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes=${2:?--minutes needs a value}; shift 2 ;;
        --build) build=${2:?--build needs a directory}; shift 2 ;;
        --seed) seed=${2:?--seed needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --jobs|--kinds|--timeout|--only|--budget) extra+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
        --verbose) extra+=("$1"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fuzz.sh: unknown flag '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -z "$build" ]; then
    if [ -x "$SRC/build-asan/mixtape" ]; then build=$SRC/build-asan; else build=$SRC/build; fi
fi
[ -x "$build/mixtape" ] || { echo "fuzz.sh: no mixtape binary in $build (build it first)" >&2; exit 2; }
seed=${seed:-$(date +%s)}
out=${out:-fuzz-results/$seed}
echo "fuzzing $build/mixtape for $minutes min, seed $seed, failures to $out"
exec "$PY" "$SRC/tests/fuzz/mtfuzz.py" --mixtape "$build/mixtape" --minutes "$minutes" --seed "$seed" \
    --out "$out" "${extra[@]}"
