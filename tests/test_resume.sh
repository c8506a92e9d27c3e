#!/usr/bin/env bash
# The run lifecycle of `mixtape train`: `--resume DIR` alone continues a run bit for bit
# (flags and data read back from DIR/args.yaml, list-valued flags included), flags given
# with --resume are applied with a printed line or refused naming the flag, run
# directories are protected (--overwrite, --experiment), summary.csv, --checkpoint-hist,
# --keep-last, best.h5 judged on the EMA weights, 1-based epochs in metrics.jsonl, the
# EMA update (with and without --model-ema-warmup) against a numpy reference, and the
# warning for a warmup longer than the run.
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_py h5py numpy PIL
tmpdir resume
run() { set +e; "$@"; rc=$?; set -e; }

# Tiny PNG shards (grayscale 20x20, 4 classes: a bright band per class), so that the
# augmentation flags (--scale, --mean, --std) change what the model sees.
"$PY" - "$T" <<'EOF'
import io, sys, tarfile, numpy as np
from PIL import Image
d = sys.argv[1]
def shard(path, n, seed):
    r = np.random.default_rng(seed)
    with tarfile.open(path, "w") as t:
        for i in range(n):
            k = int(r.integers(0, 4))
            x = r.normal(90, 30, (20, 20))
            x[5 * k:5 * k + 4, :] += 120
            b = io.BytesIO()
            Image.fromarray(np.clip(x, 0, 255).astype(np.uint8), "L").save(b, "PNG")
            for name, data in ((f"{i:05d}.png", b.getvalue()), (f"{i:05d}.cls", str(k).encode())):
                ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
shard(f"{d}/train-000000.tar", 96, 1)
shard(f"{d}/val-000000.tar", 32, 2)
open(f"{d}/classes.txt", "w").write("a\nb\nc\nd\n")
EOF

MODEL=(--model mixer_tiny --img-size 16 --in-chans 1 --num-classes 4 --patch-size 4 --embed-dim 16 --depth 1)
RUN=("${MODEL[@]}" --train "$T/train-000000.tar" --val "$T/val-000000.tar" -b 16 --lr 3e-3 --warmup-epochs 0
     --threads 1 -j 1 --seed 5 --log-interval 2 --drop-path 0.1
     --scale 0.5 1 --mean 0.3 --std 0.35
     --model-ema --model-ema-decay 0.95 --model-ema-warmup --checkpoint-hist 2 --keep-last 1 --epochs 3)

cmp_ck() { h5_identical "$1" "$2" ema; }  # same /model, /ema and optimizer state, bit for bit

# 1. uninterrupted vs stopped mid-epoch 2 (step 8 of 18) and resumed by `--resume DIR` alone
run "$M" train "${RUN[@]}" --output "$T/u" > "$T/u.log" 2>&1
run "$M" train "${RUN[@]}" --max-steps 8 --output "$T/i" > "$T/i.log" 2>&1
check "args.yaml records the list flags (scale, mean, std) [recorded by train/args.c + data_flags.c; without them no resume can be exact]" "$PY - $T/i/args.yaml <<'EOF'
import sys
y, key = {}, None
for line in open(sys.argv[1]):       # flat YAML: key: v | key: [a, b] | key: + '- item' lines
    line = line.rstrip()
    if line.startswith('- ') and key: y.setdefault(key, []).append(float(line[2:])); continue
    key, _, v = line.partition(':'); v = v.strip()
    if v.startswith('['): y[key] = [float(t) for t in v.strip('[]').split(',')]
    elif v: y[key] = v
def nums(k):
    v = y.get(k); return v if isinstance(v, list) else [float(t) for t in str(v).replace(',', ' ').split()] if v not in (None, 'null') else None
assert nums('scale') == [0.5, 1.0] and nums('mean') == [0.3] and nums('std') == [0.35], (nums('scale'), nums('mean'), nums('std'))
EOF"
check "--max-steps stop prints how to continue" "grep -q 'continue with: mixtape train --resume $T/i' $T/i.log"
run "$M" train --resume "$T/i" > "$T/r.log" 2>&1
check "train --resume DIR alone runs (rc $rc) from step 8" "[ $rc -eq 0 ] && grep -q 'resuming .* after step 8: epoch 2 of 3, batch 2' $T/r.log"
check "resumed == uninterrupted: /model, /ema, /optimizer bit-identical" "cmp_ck $T/u/last.h5 $T/i/last.h5"
check "resumed == uninterrupted: best.h5 bit-identical" "cmp_ck $T/u/best.h5 $T/i/best.h5"
check "summary.csv identical" "cmp -s $T/u/summary.csv $T/i/summary.csv"
check "same --checkpoint-hist and --keep-last files" \
  "[ \"\$(cd $T/u && ls *.h5 | tr '\n' ' ')\" = \"\$(cd $T/i && ls *.h5 | tr '\n' ' ')\" ]"
check "metrics.jsonl rows match (loss, lr, val, step, epoch)" "$PY - $T/u/metrics.jsonl $T/i/metrics.jsonl <<'EOF'
import json, sys
K = ('epoch', 'step', 'lr', 'loss', 'val_loss', 'val_top1', 'val_top5', 'val_top1_ema', 'val_loss_ema', 'best_epoch')
a, b = ([{k: r.get(k) for k in K} for r in map(json.loads, open(p))] for p in sys.argv[1:])
assert a == b, (len(a), len(b), [x for x in zip(a, b) if x[0] != x[1]][:2])
EOF"

# 1b. the same after SIGINT at whatever step it lands (a 40-epoch run, interrupted)
run "$M" train "${RUN[@]}" --epochs 40 --output "$T/u40" > /dev/null 2>&1
"$M" train "${RUN[@]}" --epochs 40 --output "$T/s" > "$T/s.log" 2>&1 &
pid=$!
for _ in $(seq 200); do [ -f "$T/s/last.h5" ] && break; sleep 0.05; done
sleep 0.3
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
check "SIGINT mid-run exits 130 (got $rc) and prints 'mixtape train --resume DIR'" \
  "[ $rc -eq 130 ] && grep -q 'mixtape train --resume $T/s\$' $T/s.log"
stopped=$("$PY" -c "import h5py; print(int(h5py.File('$T/s/last.h5', 'r').attrs['step']))")
run "$M" train --resume "$T/s" > "$T/s2.log" 2>&1
check "SIGINT at step $stopped, resumed by --resume DIR alone (rc $rc) == uninterrupted (bit-identical)" \
  "[ $rc -eq 0 ] && cmp_ck $T/u40/last.h5 $T/s/last.h5 && cmp -s $T/u40/summary.csv $T/s/summary.csv"

# 1c. a bare checkpoint (no args.yaml beside it): its recorded EMA cannot be dropped
mkdir "$T/bare" && cp "$T/u/last.h5" "$T/bare/last.h5"
set +e; "$M" train "${MODEL[@]}" --train "$T/train-000000.tar" -b 16 --epochs 3 --resume "$T/bare" > "$T/b.log" 2>&1; rc=$?; set -e
check "resuming an EMA checkpoint without --model-ema is refused (rc $rc)" "[ $rc -eq 2 ] && grep -q 'would drop it' $T/b.log"

# 2. outputs: summary.csv, 1-based epochs, --checkpoint-hist by the EMA weights, --keep-last
check "summary.csv has timm's columns and epochs 1..3" "$PY - $T/u <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1] + '/summary.csv')))
assert list(rows[0].keys()) == ['epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'lr'], rows[0].keys()
assert [int(r['epoch']) for r in rows] == [1, 2, 3], rows
EOF"
check "metrics.jsonl epochs are 1-based: epoch == ceil(step / 6) on every row" "$PY - $T/u/metrics.jsonl <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows and all(r['epoch'] == (r['step'] + 5) // 6 for r in rows), [(r['epoch'], r['step']) for r in rows]
assert [r['epoch'] for r in rows if 'val_top1' in r] == [1, 2, 3]
assert all('val_top1_ema' in r and 'val_top5_ema' in r for r in rows if 'val_top1' in r)
EOF"
check "summary eval_* and best.h5 / checkpoint-hist follow the EMA top-1" "$PY - $T/u <<'EOF'
import csv, json, sys, os, h5py
d = sys.argv[1]
val = [json.loads(l) for l in open(d + '/metrics.jsonl') if 'val_top1' in l]
rows = list(csv.DictReader(open(d + '/summary.csv')))
for v, r in zip(val, rows):
    assert abs(float(r['eval_top1']) - 100 * v['val_top1_ema']) < 1e-4, (r, v)
    assert abs(float(r['eval_loss']) - v['val_loss_ema']) < 1e-5 * max(1, v['val_loss_ema']), (r, v)
ema = [v['val_top1_ema'] for v in val]
order = sorted(range(3), key=lambda i: (-ema[i], i))   # best first, ties: the earlier epoch
want = sorted('checkpoint-%d.h5' % (i + 1) for i in order[:2])
have = sorted(f for f in os.listdir(d) if f.startswith('checkpoint-'))
assert have == want, (have, want, ema)
best = h5py.File(d + '/best.h5', 'r')
assert int(best.attrs['epoch']) == order[0] + 1, (int(best.attrs['epoch']), ema)
assert abs(float(best.attrs['best_top1']) - ema[order[0]]) < 1e-9
files = sorted(f for f in os.listdir(d) if f.startswith('epoch-'))
assert files == ['epoch-3.h5'], files
EOF"

# 3. flags given with --resume: applied with a printed line, or refused naming the flag
cp -r "$T/i" "$T/i0"
run "$M" train --resume "$T/i" --epochs 4 > "$T/e.log" 2>&1
check "--epochs 4 on resume: applied and printed (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q 'resume: --epochs 4 (the run had 3)' $T/e.log && [ \$(grep -c '' $T/i/summary.csv) -eq 5 ]"
check "args.yaml of the continued run says epochs: 4 and keeps the EMA" \
  "grep -q '^epochs: 4' $T/i/args.yaml && grep -q '^model_ema: true' $T/i/args.yaml && grep -q '^model_ema_warmup: true' $T/i/args.yaml"
refuse() {  # flag args...: exit 2 naming the flag, the run untouched
  local flag=$1; shift
  cp "$T/i0/last.h5" "$T/before.h5"
  set +e; "$M" train --resume "$T/i0" "$@" > "$T/ref.log" 2>&1; local rc=$?; set -e
  check "--resume with $* refused (rc $rc) naming $flag; last.h5 untouched" \
    "[ $rc -eq 2 ] && grep -q -- '$flag' $T/ref.log && cmp -s $T/before.h5 $T/i0/last.h5"
}
refuse --lr --lr 0.1
refuse --batch-size -b 8
refuse --scale --scale 0.08 1
refuse --mean --mean 0.5
refuse --model-ema --model-ema=false
refuse --seed --seed 6
refuse --precision --precision bf16
refuse --embed-dim --embed-dim 32
refuse --config --config "$T/u/args.yaml"
run "$M" train --resume "$T/i0" --val "$T/train-000000.tar" --max-steps 13 > "$T/v.log" 2>&1
check "a new --val and --max-steps on resume are applied and printed (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q 'resume: --val' $T/v.log && grep -q 'resume: --max-steps 13' $T/v.log"

# 4. run directories are protected
cp "$T/u/last.h5" "$T/before.h5"
set +e; "$M" train "${RUN[@]}" --output "$T/u" > "$T/p.log" 2>&1; rc=$?; set -e
check "--output into an existing run is refused (rc $rc), nothing changed" \
  "[ $rc -eq 2 ] && grep -q 'already holds a run' $T/p.log && cmp -s $T/before.h5 $T/u/last.h5 && [ \$(grep -c '' $T/u/summary.csv) -eq 4 ]"
set +e; "$M" train "${RUN[@]}" --output "$T/u" --overwrite --initial-checkpoint "$T/u/best.h5" > "$T/p.log" 2>&1; rc=$?; set -e
check "--overwrite refuses to delete its own --initial-checkpoint (rc $rc)" \
  "[ $rc -eq 2 ] && grep -q 'this run reads' $T/p.log && [ -f $T/u/best.h5 ] && [ -f $T/u/checkpoint-1.h5 -o -f $T/u/checkpoint-2.h5 ]"
run "$M" train "${MODEL[@]}" --train "$T/train-000000.tar" -b 16 --epochs 1 --threads 1 -j 1 --output "$T/u" --overwrite \
  > "$T/p.log" 2>&1
check "--overwrite replaces the run: no file of the old one is left (rc $rc)" \
  "[ $rc -eq 0 ] && [ \"\$(cd $T/u && ls | tr '\n' ' ')\" = 'args.yaml epoch-1.h5 last.h5 metrics.jsonl summary.csv ' -o \"\$(cd $T/u && ls | tr '\n' ' ')\" = 'args.yaml last.h5 metrics.jsonl summary.csv ' ] && [ \$(grep -c '' $T/u/summary.csv) -eq 2 ]"
check "args.yaml does not replay --overwrite / --resume" "grep -q '^overwrite: null' $T/u/args.yaml && ! grep -q '^resume: [^n]' $T/u/args.yaml"
cp "$T/u/args.yaml" "$T/args_before.yaml"
run "$M" train "${RUN[@]}" --lr 0.5 --output "$T/u" --dry-run > "$T/dry.log" 2>&1
check "--dry-run into an existing run keeps its args.yaml (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q 'already holds a run' $T/dry.log && cmp -s $T/args_before.yaml $T/u/args.yaml"
for k in 1 2; do
  "$M" train "${MODEL[@]}" --train "$T/train-000000.tar" -b 16 --epochs 1 --max-steps 1 --threads 1 -j 1 \
    --output "$T/out" --experiment exp > "$T/x$k.log" 2>&1
done
check "--experiment NAME: DIR/NAME, then DIR/NAME-1 (timm get_outdir)" \
  "[ -f $T/out/exp/last.h5 ] && [ -f $T/out/exp-1/last.h5 ] && grep -q 'writing to $T/out/exp-1' $T/x2.log"

# 5. a warmup longer than the run is reported
"$M" train "${MODEL[@]}" --train "$T/train-000000.tar" -b 16 --epochs 2 --max-steps 1 --threads 1 -j 1 \
  --output "$T/w" > "$T/w.log" 2>&1
check "--epochs 2 with the default 5 warmup epochs prints a warning" "grep -q 'warning: the learning-rate warmup' $T/w.log"

# 6. EMA update against numpy: one step per invocation (each a resume), weights and EMA
#    read after every step: ema_k = d_k ema_(k-1) + (1 - d_k) w_k, timm ModelEmaV3's d_k
for wu in 0 1; do
  E=("${MODEL[@]}" --train "$T/train-000000.tar" -b 16 --epochs 2 --lr 1e-2 --warmup-epochs 0 --threads 1 -j 1
     --model-ema --model-ema-decay 0.9 --seed 3)
  [ $wu = 1 ] && E+=(--model-ema-warmup)
  "$M" train "${E[@]}" --max-steps 1 --output "$T/ema$wu" > /dev/null 2>&1
  cp "$T/ema$wu/last.h5" "$T/ema$wu-1.h5"
  for k in 2 3 4 5; do
    "$M" train --resume "$T/ema$wu" --max-steps $k > /dev/null 2>&1
    cp "$T/ema$wu/last.h5" "$T/ema$wu-$k.h5"
  done
  check "EMA (warmup $wu) matches the numpy reference over steps 1..5" "$PY - $T/ema$wu $wu <<'EOF'
import sys, h5py, numpy as np
pre, wu = sys.argv[1], int(sys.argv[2])
def d(n):       # timm ModelEmaV3.get_decay(step=n), gamma 1, power 2/3; without warmup: the decay
    if not wu: return 0.9
    t = n - 1
    return 0.0 if t <= 0 else min(0.9, 1 - (1 + t) ** (-2 / 3))
f = [h5py.File('%s-%d.h5' % (pre, k), 'r') for k in range(1, 6)]
keys = list(f[0]['model'])
if wu:  # update 1 copies the weights
    assert all(np.array_equal(f[0]['ema'][k][...], f[0]['model'][k][...]) for k in keys)
else:   # update 1 moves the init weights 10% towards the trained ones: not equal
    assert not all(np.array_equal(f[0]['ema'][k][...], f[0]['model'][k][...]) for k in keys)
worst = 0
for n in range(2, 6):
    dn = np.float32(d(n)); a = np.float32(1 - d(n))
    for k in keys:
        want = dn * f[n - 2]['ema'][k][...] + a * f[n - 1]['model'][k][...]
        got = f[n - 1]['ema'][k][...]
        worst = max(worst, float(np.max(np.abs(got - want) / (np.abs(want) + 1e-3))))
assert worst < 1e-6, worst
print('worst relative difference', worst)
EOF"
done
check "warmup changes the EMA (d_2 = 0.37 instead of 0.9)" "! cmp_ck $T/ema0-5.h5 $T/ema1-5.h5 2>/dev/null"

finish
