#!/usr/bin/env bash
# Evaluation under mpirun on the quickstart's own data layout (docs/distributed.md):
#  1. one validation shard serves 2 ranks: `train --val one.tar` runs, and `mixtape eval`
#     with 2 ranks prints exactly the single-process line (samples, top-1, top-5, loss,
#     per-class counts) and writes the same confusion matrix: each sample counted once;
#  2. an odd sample count (17) and skipped samples (a bad image) split without loss;
#  3. the progress output under mpirun is plain lines: no carriage return, no escape code.
# Skipped (exit 77) when the binary has no MPI.
set -uo pipefail
M=${MIXTAPE:?MIXTAPE must point to the mixtape binary}
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
libs=$(ldd "$M" 2>/dev/null)
if [[ "$libs" != *libmpi* ]]; then echo "SKIP: $M was built without MPI"; exit 77; fi
command -v mpirun > /dev/null || { echo "FAIL: $M has MPI but mpirun is not on PATH"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
TO="timeout -k 5 60"

# Tiny 8x8 grey PNG shards: 64 training samples in 2 shards, 17 validation samples (one
# of them not an image) in one shard, 4 classes, class = the bright row pair.
"$PY" - "$T" <<'EOF'
import sys, io, tarfile, zlib, struct, numpy as np
d = sys.argv[1]
def png(a):
    raw = b"".join(b"\x00" + bytes(row) for row in a)
    def chunk(t, b): return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
rng = np.random.default_rng(7)
def sample(k):
    a = rng.integers(0, 90, (8, 8))
    a[2 * k:2 * k + 2, :] += 150
    return png(a.astype(np.uint8))
def shard(path, items):
    with tarfile.open(path, "w") as t:
        for key, img, cls in items:
            for ext, data in (("png", img), ("cls", b"%d" % cls)):
                ti = tarfile.TarInfo(f"{key}.{ext}"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
for s in range(2):
    shard(f"{d}/train-{s:06d}.tar", [(f"t{s}_{i:03d}", sample(i % 4), i % 4) for i in range(32)])
items = [(f"v{i:03d}", sample(i % 4), i % 4) for i in range(17)]
items[5] = ("v005", b"not an image", 1)
shard(f"{d}/val-000000.tar", items)
open(f"{d}/classes.txt", "w").write("top\nupper\nlower\nbottom\n")
EOF

MODEL=(--model mixer_tiny --img-size 8 --in-chans 1 --num-classes 4 --patch-size 4 --embed-dim 32 --depth 2)
NOAUG=(--aa none --reprob 0 --hflip 0 --smoothing 0 --mixup 0 --cutmix 0 --scale 1 1 --ratio 1 1)
$TO "${MPI[@]}" -np 2 "$M" train "${MODEL[@]}" "${NOAUG[@]}" --train "$T/train-{000000..000001}.tar" \
  --val "$T/val-000000.tar" -b 8 --epochs 2 --warmup-epochs 0 --lr 1e-2 --threads 1 -j 1 --log-interval 2 \
  --output "$T/run" > "$T/train.log" 2>&1
rc=$?
check "train under mpirun -np 2 with one validation shard succeeds (rc $rc)" "[ $rc = 0 ]"
[ $rc = 0 ] || tail -20 "$T/train.log"
check "validation rows in metrics.jsonl" "[ \$(grep -c val_top1 $T/run/metrics.jsonl 2>/dev/null) = 2 ]"
check "progress under mpirun: plain lines, no carriage return or escape code" \
  "! grep -q \$'\\r' $T/train.log && ! grep -q \$'\\033' $T/train.log && grep -q 'epoch 1/2 step' $T/train.log"

CK="$T/run/last.h5"
$TO "$M" eval --checkpoint "$CK" --data "$T/val-000000.tar" --threads 1 -j 1 -b 4 --confusion "$T/c1.csv" \
  > "$T/e1.log" 2> "$T/e1.err"
r1=$?
$TO "${MPI[@]}" -np 2 "$M" eval --checkpoint "$CK" --data "$T/val-000000.tar" --threads 1 -j 1 -b 4 \
  --confusion "$T/c2.csv" > "$T/e2.log" 2> "$T/e2.err"
r2=$?
$TO "${MPI[@]}" -np 3 "$M" eval --checkpoint "$CK" --data "$T/val-000000.tar" --threads 1 -j 1 -b 3 \
  > "$T/e3.log" 2> "$T/e3.err"
r3=$?
check "eval with 1, 2 and 3 ranks succeeds (rc $r1 $r2 $r3)" "[ $r1 = 0 ] && [ $r2 = 0 ] && [ $r3 = 0 ]"
[ $r2 = 0 ] || cat "$T/e2.err"
check "16 usable samples, 1 skipped, counted once" "grep -q ': 16 samples .*(skipped 1)' $T/e1.log"
check "2 ranks print exactly the single-process result" "grep -q samples $T/e2.log && diff $T/e1.log <(sed 's/c2.csv/c1.csv/' $T/e2.log)"
check "3 ranks (batch 3) print exactly the single-process result" \
  "grep -q samples $T/e3.log && diff <(grep -v confusion $T/e1.log) $T/e3.log"
check "the confusion matrices are identical" "cmp $T/c1.csv $T/c2.csv"
check "only rank 0 prints" "[ \$(grep -c 'per-class accuracy' $T/e2.log) = 1 ]"

if [ $fails -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all checks passed"
