#!/usr/bin/env bash
# `train --precision auto`: the timing runs on a throwaway copy, so a run that chose X is the
# run of `--precision X` bit for bit (every checkpoint dataset, every logged loss); the choice
# is printed with both rates and recorded in args.yaml, `--resume DIR` continues with it without
# timing again (and ends equal to the uninterrupted run), `--resume DIR --precision auto` and
# auto on a bare checkpoint (no args.yaml) are refused with exit 2; `bench --precision auto`.
set -euo pipefail
M=${MIXTAPE:?MIXTAPE must point to the mixtape binary}
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
SRC=${MIXTAPE_SRC:-$(dirname "$0")/..}
"$PY" -c "import h5py, numpy" 2>/dev/null || { echo "needs h5py, numpy"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
run() { set +e; "$@"; rc=$?; set -e; }
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

PYTHONPATH="$SRC/tests" "$PY" -c "import tinydata, sys; tinydata.write_h5_bands(sys.argv[1], n=96)" "$T/d.h5"
FLAGS=(--model mixer_tiny --img-size 8 --in-chans 1 --num-classes 4 --patch-size 4 --embed-dim 16 --depth 1
       --train "$T/d.h5" --val "$T/d.h5" -b 16 --epochs 2 --lr 3e-3 --warmup-epochs 0 --drop-path 0.1
       --threads 1 -j 1 --seed 3 --log-interval 1)

run "$M" train "${FLAGS[@]}" --precision auto --output "$T/auto" > "$T/auto.out" 2>&1
check "auto run exits 0" '[ $rc = 0 ]'
X=$(sed -n 's/^--precision auto: \(fp32\|bf16\) (.*/\1/p' "$T/auto.out")
if grep -q avx512_bf16 /proc/cpuinfo; then
  check "auto prints its choice ($X) with both rates" '[ -n "$X" ] && grep -q "fp32 [0-9.]* img/s, bf16 [0-9.]* img/s" "$T/auto.out"'
else
  check "no AVX512-BF16: fp32, untimed" '[ "$X" = fp32 ] && grep -q "no AVX512-BF16" "$T/auto.out"'
fi
[ -n "$X" ] || { cat "$T/auto.out"; X=fp32; }
check "args.yaml records precision: $X" 'grep -qx "precision: $X" "$T/auto/args.yaml"'

run "$M" train "${FLAGS[@]}" --precision "$X" --output "$T/fixed" > "$T/fixed.out" 2>&1
check "--precision $X run exits 0" '[ $rc = 0 ]'
check "--precision $X does not time" '! grep -q "precision auto" "$T/fixed.out"'

same() {  # every dataset of two checkpoints and every loss / lr / val field of two metrics.jsonl, exactly
  "$PY" - "$1" "$2" <<'PYEOF'
import sys, json, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
def walk(g, p=''):
    for k, v in g.items():
        if isinstance(v, h5py.Dataset): yield p + k, v[...]
        else: yield from walk(v, p + k + '/')
da, db = dict(walk(h5py.File(a + '/last.h5', 'r'))), dict(walk(h5py.File(b + '/last.h5', 'r')))
assert da.keys() == db.keys() and any(k.startswith('model/') for k in da), set(da) ^ set(db)
bad = [k for k in da if not np.array_equal(da[k], db[k])]
assert not bad, bad[:5]
keys = ('epoch', 'step', 'lr', 'loss', 'val_loss', 'val_top1', 'val_top5')
ma = [{k: r[k] for k in keys if k in r} for r in map(json.loads, open(a + '/metrics.jsonl'))]
mb = [{k: r[k] for k in keys if k in r} for r in map(json.loads, open(b + '/metrics.jsonl'))]
assert len(ma) > 4 and ma == mb, (len(ma), len(mb))
PYEOF
}
check "auto ($X) = --precision $X: weights, optimizer state, losses" 'same "$T/auto" "$T/fixed"'

# Interrupted after 5 steps, resumed from its directory: the recorded choice, no new timing.
run "$M" train "${FLAGS[@]}" --precision auto --max-steps 5 --output "$T/part" > "$T/part.out" 2>&1
check "auto run with --max-steps exits 0" '[ $rc = 0 ]'
Y=$(sed -n 's/^--precision auto: \(fp32\|bf16\) (.*/\1/p' "$T/part.out")
if [ "$Y" = "$X" ]; then
  run "$M" train --resume "$T/part" --max-steps 0 > "$T/resume.out" 2>&1
  check "--resume exits 0" '[ $rc = 0 ]'
  check "--resume does not time again" '! grep -q "precision auto" "$T/resume.out"'
  check "--resume keeps precision: $X" 'grep -qx "precision: $X" "$T/part/args.yaml"'
  check "interrupted + resumed auto run = --precision $X run" 'same "$T/part" "$T/fixed"'
else
  echo "note: the second timing chose $Y, the first $X (a loaded machine); resume compared with its own choice"
  run "$M" train --resume "$T/part" --max-steps 0 > "$T/resume.out" 2>&1
  check "--resume exits 0" '[ $rc = 0 ] && ! grep -q "precision auto" "$T/resume.out"'
  check "--resume keeps precision: $Y" 'grep -qx "precision: $Y" "$T/part/args.yaml"'
fi

run "$M" train --resume "$T/part" --precision auto > "$T/r2.out" 2>&1
check "--resume DIR --precision auto refused (exit 2, names the flag)" '[ $rc = 2 ] && grep -q -- "--precision auto differs" "$T/r2.out"'
mkdir "$T/bare"; cp "$T/part/last.h5" "$T/bare/c.h5"
run "$M" train "${FLAGS[@]}" --precision auto --resume "$T/bare/c.h5" --output "$T/bare/run" > "$T/r3.out" 2>&1
check "auto on a bare checkpoint refused (exit 2, names args.yaml)" '[ $rc = 2 ] && grep -q "args.yaml" "$T/r3.out"'

run "$M" bench --model mixer_tiny -b 8 --steps 1 --warmup 0 --threads 1 --mode train --precision auto > "$T/b.out" 2>&1
check "bench --precision auto: choice and a train line" '[ $rc = 0 ] && grep -q "^--precision auto: \(fp32\|bf16\)" "$T/b.out" && grep -q "^train: [0-9.]* img/s" "$T/b.out"'

[ $fails = 0 ] || { echo "$fails failure(s)"; for f in "$T"/*.out; do echo "== $f"; tail -5 "$f"; done; exit 1; }
echo "all ok"
