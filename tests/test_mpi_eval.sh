#!/usr/bin/env bash
# Evaluation under mpirun on the quickstart's own data layout (docs/distributed.md):
#  1. one validation shard serves 2 ranks: `train --val one.tar` runs, and `mixtape eval`
#     with 2 ranks prints exactly the single-process line (samples, top-1, top-5, loss,
#     per-class counts) and writes the same confusion matrix: each sample counted once;
#  2. an odd sample count (17) and skipped samples (a bad image) split without loss;
#  3. the progress output under mpirun is plain lines: no carriage return, no escape code.
# Skipped (exit 77) when the binary has no MPI.
source "$(dirname "$0")/mpi_common.sh"
mpi_require
tmpdir mpi_eval
TO="timeout -k 5 60"

# Tiny 8x8 grey PNG shards: 64 training samples in 2 shards, 17 validation samples (one
# of them not an image) in one shard, 4 classes, class = the bright row pair.
"$PY" - "$T" <<'EOF'
import sys, numpy as np
from tinydata import png_gray, write_shard
d = sys.argv[1]
rng = np.random.default_rng(7)
def sample(k):
    a = rng.integers(0, 90, (8, 8))
    a[2 * k:2 * k + 2, :] += 150
    return png_gray(a.astype(np.uint8))
for s in range(2):
    write_shard(f"{d}/train-{s:06d}.tar", [(f"t{s}_{i:03d}", sample(i % 4), i % 4) for i in range(32)])
items = [(f"v{i:03d}", sample(i % 4), i % 4) for i in range(17)]
items[5] = ("v005", b"not an image", 1)
write_shard(f"{d}/val-000000.tar", items)
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

finish
