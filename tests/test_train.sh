#!/usr/bin/env bash
# End-to-end `mixtape train` / `eval`: learning on generated data, exact resume,
# fine-tuning with a new head and freezing, SIGINT checkpoints, NaN stop,
# bad flags, and h5py-readable checkpoints.
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_py h5py numpy
tmpdir train

# Generated data: 4 classes of 1x16x16 images, class k = a bright horizontal bar
# in band k plus noise. Learnable quickly, far from trivial for chance (25%).
"$PY" - "$T" <<'EOF'
import sys, numpy as np, h5py
d = sys.argv[1]
def make(n, seed, K=4):
    r = np.random.default_rng(seed)
    y = r.integers(0, K, n)
    x = r.normal(0, 1.0, (n, 1, 16, 16)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 0, 4 * k:4 * k + 3, :] += 2.5
    return x, y.astype(np.int64)
for name, n, seed in (("train", 512, 1), ("val", 256, 2)):
    x, y = make(n, seed)
    with h5py.File(f"{d}/{name}.h5", "w") as f:
        f["images"] = x
        f["labels"] = y
x, y = make(256, 3, K=2)   # a 2-class set for fine-tuning
with h5py.File(f"{d}/ft.h5", "w") as f:
    f["images"] = x
    f["labels"] = y
EOF

MODEL=(--model mixer_tiny --img-size 16 --in-chans 1 --num-classes 4 --patch-size 4 --embed-dim 32 --depth 2)
COMMON=(--train "$T/train.h5" --val "$T/val.h5" -b 32 --lr 3e-3 --warmup-epochs 0 --threads 2 --seed 7
        --smoothing 0 --log-interval 4 -j 1)

# 1. it learns
"$M" train "${MODEL[@]}" "${COMMON[@]}" --epochs 6 --output "$T/a" > "$T/a.log"
top1=$("$PY" -c "import json;r=[json.loads(l) for l in open('$T/a/metrics.jsonl')];print(max(x.get('val_top1') or 0 for x in r))")
first=$("$PY" -c "import json;r=[json.loads(l) for l in open('$T/a/metrics.jsonl') if 'val_top1' not in l];print(r[0]['loss'])")
last=$("$PY" -c "import json;r=[json.loads(l) for l in open('$T/a/metrics.jsonl') if 'val_top1' in l];print(r[-1]['loss'])")
check "learns: val top-1 $top1 > 0.8" "$PY -c 'import sys; sys.exit(0 if $top1 > 0.8 else 1)'"
check "loss falls: $first -> $last" "$PY -c 'import sys; sys.exit(0 if $last < 0.5 * $first else 1)'"
check "run dir has last.h5 best.h5 args.yaml metrics.jsonl" \
  "[ -f $T/a/last.h5 ] && [ -f $T/a/best.h5 ] && [ -f $T/a/args.yaml ] && [ -f $T/a/metrics.jsonl ]"
check "metrics rows carry epoch step lr loss val_loss val_top1 val_top5" \
  "$PY -c \"import json,sys;r=[json.loads(l) for l in open('$T/a/metrics.jsonl')];v=[x for x in r if 'val_top1' in x];sys.exit(0 if v and all(k in v[-1] for k in ('epoch','step','lr','loss','val_loss','val_top1','val_top5')) else 1)\""

# 2. h5py reads the documented layout
check "checkpoint readable by h5py with timm keys and attributes" "$PY - <<EOF
import h5py, json
f = h5py.File('$T/a/last.h5', 'r')
assert f.attrs['format'] in (b'mixtape', 'mixtape')
cfg = json.loads(f.attrs['config'])
assert cfg['embed_dim'] == 32, cfg
assert f['model/stem.proj.weight'].shape == (32, 1, 4, 4)
assert f['model/blocks.0.mlp_tokens.fc1.weight'].shape[1] == 16
assert 'exp_avg' in f['optimizer'] and 'exp_avg_sq' in f['optimizer']
assert int(f.attrs['epoch']) == 6
EOF"

# 3. exact resume: 2 epochs straight == 1 epoch + resume for 1 more (dropout on, EMA on)
EXTRA=(--drop-path 0.1 --model-ema --model-ema-decay 0.9)
"$M" train "${MODEL[@]}" "${COMMON[@]}" "${EXTRA[@]}" --epochs 2 --output "$T/s" > /dev/null
"$M" train "${MODEL[@]}" "${COMMON[@]}" "${EXTRA[@]}" --epochs 2 --max-steps 16 --output "$T/r" > /dev/null
"$M" train "${MODEL[@]}" "${COMMON[@]}" "${EXTRA[@]}" --epochs 2 --resume "$T/r" > "$T/r.log"
cmp_ck() { h5_identical "$1" "$2"; }  # same /model, /ema and optimizer state, bit for bit
check "resume mid-run (step 16 of 32) gives bit-identical weights, EMA and optimizer state" "cmp_ck $T/s/last.h5 $T/r/last.h5"
check "resume says where it continues" "grep -q 'resuming .* after step 16: epoch 2 of 2, batch 0' $T/r.log"
# mid-epoch resume: stop at step 10 (epoch 0, batch 10 of 16)
"$M" train "${MODEL[@]}" "${COMMON[@]}" "${EXTRA[@]}" --epochs 2 --max-steps 10 --output "$T/m" > /dev/null
"$M" train "${MODEL[@]}" "${COMMON[@]}" "${EXTRA[@]}" --epochs 2 --resume "$T/m/last.h5" > /dev/null
check "resume mid-epoch gives bit-identical weights" "cmp_ck $T/s/last.h5 $T/m/last.h5"

# 4. fine-tuning: new 2-class head, body frozen but for the head
"$M" train --model mixer_tiny --img-size 16 --in-chans 1 --num-classes 2 --patch-size 4 --embed-dim 32 --depth 2 \
  --train "$T/ft.h5" -b 32 --lr 1e-2 --warmup-epochs 0 --epochs 1 --threads 2 -j 1 \
  --initial-checkpoint "$T/a/best.h5" --freeze 'stem.*,blocks.*,norm.*' --output "$T/ft" > "$T/ft.log"
check "fine-tune reports the re-initialised head" "grep -q 're-initialised head.weight' $T/ft.log && grep -q 're-initialised head.bias' $T/ft.log"
check "frozen body unchanged, head trained" "$PY - <<EOF
import h5py, numpy as np
a, b = h5py.File('$T/a/best.h5', 'r')['model'], h5py.File('$T/ft/last.h5', 'r')['model']
for k in a:
    if k.startswith('head'): continue
    assert np.array_equal(a[k][...], b[k][...]), k
assert b['head.weight'].shape == (2, 32)
assert np.abs(b['head.weight'][...]).sum() > 0
EOF"

# 5. eval of a checkpoint
"$M" eval --checkpoint "$T/a/best.h5" --data "$T/val.h5" --confusion "$T/conf.csv" -j 1 > "$T/eval.log"
check "eval prints top-1 equal to the best validation top-1" \
  "grep -q \"top-1 $("$PY" -c "print('%.2f' % (100 * $top1))")%\" $T/eval.log"
check "eval writes a confusion matrix" "[ \$(wc -l < $T/conf.csv) -eq 5 ]"

# 6. SIGINT finishes the step, writes a resumable checkpoint, exits 130
"$M" train "${MODEL[@]}" "${COMMON[@]}" --epochs 1000 --output "$T/i" > "$T/i.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -f "$T/i/last.h5" ] && break; sleep 0.1; done
sleep 0.5
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
check "SIGINT exits 130 (got $rc)" "[ $rc -eq 130 ]"
check "SIGINT prints how to resume" "grep -q 'resume with' $T/i.log"
"$M" train "${MODEL[@]}" "${COMMON[@]}" --epochs 1000 --max-steps 1 --resume "$T/i" > "$T/i2.log" 2>&1 || true
check "the interrupted run resumes" "grep -q 'resuming' $T/i2.log"

# 7. NaN loss stops with the step number and keeps the last good checkpoint (written every step)
set +e
"$M" train "${MODEL[@]}" "${COMMON[@]}" --epochs 3 --lr 1e30 --opt sgd --checkpoint-every 1 --output "$T/n" > "$T/n.log" 2>&1
rc=$?
set -e
nan_step=$(grep -Eo 'loss is (NaN|not finite) at step [0-9]+' "$T/n.log" | grep -Eo '[0-9]+$' || echo -1)
check "NaN loss exits 1 (got $rc)" "[ $rc -eq 1 ]"
check "NaN message names the step ($nan_step)" "[ $nan_step -ge 1 ]"
check "the checkpoint before the NaN step is intact" "$PY -c \"import h5py,sys; f=h5py.File('$T/n/last.h5','r'); sys.exit(0 if int(f.attrs['step']) == $nan_step else 1)\""
# an existing run directory is not overwritten by another run
cp "$T/n/last.h5" "$T/good.h5"
set +e
"$M" train "${MODEL[@]}" "${COMMON[@]}" --epochs 1 --output "$T/n" > "$T/n2.log" 2>&1; rc=$?
set -e
check "a second run into $T/n is refused (rc $rc) and last.h5 is untouched" \
  "[ $rc -eq 2 ] && grep -q 'already holds a run' $T/n2.log && cmp -s $T/good.h5 $T/n/last.h5"

# 8. bad input: exit 2 with a message naming the thing
set +e
"$M" train --model nosuchmodel --train "$T/train.h5" --output "$T/x" 2> "$T/e1"; r1=$?
"$M" train "${MODEL[@]}" --train "$T/train.h5" --output "$T/x" --lrr 1 2> "$T/e2"; r2=$?
"$M" train --model resmlp_tiny --resume "$T/a" --train "$T/train.h5" 2> "$T/e3"; r3=$?
"$M" train "${MODEL[@]}" --train "$T/nothere.h5" --output "$T/x" 2> "$T/e4"; r4=$?
set -e
check "unknown model -> 2 naming it" "[ $r1 -eq 2 ] && grep -q nosuchmodel $T/e1"
check "unknown flag -> 2 naming it" "[ $r2 -eq 2 ] && grep -q -- '--lrr' $T/e2"
check "checkpoint of another model -> 2" "[ $r3 -eq 2 ] && grep -q 'mixer_tiny' $T/e3"
check "missing data -> 2 naming the file" "[ $r4 -eq 2 ] && grep -q nothere.h5 $T/e4"

finish
