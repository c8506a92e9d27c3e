#!/bin/bash
# Smoke test of the reproduction scripts (scripts/reproduce/): runs finetune.sh — the
# study with the most moving parts (class-subset HDF5 files, pre-training, head removal,
# linear-probe freeze list, three fine-tuning runs, table, plots) — on its hidden --smoke
# budget (a few steps on ~100 images), then checks the Markdown table has a numeric top-1
# for every row and that the plots exist. Uses Fashion-MNIST when installed, else a
# synthetic HDF5 dataset through the --pre-train/--train arguments.
# Env: MIXTAPE (binary), MIXTAPE_SRC (source root), MIXTAPE_PYTHON (python with h5py,
# numpy, matplotlib).
set -u
source "$(dirname "$0")/common.sh"
require_py h5py numpy matplotlib
tmpdir repro
export MIXTAPE=$M MIXTAPE_PYTHON=$PY MIXTAPE_CACHE=$T/cache OMP_NUM_THREADS=1  # tiny batches: one thread is fastest (and robust on a loaded machine)
FM=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}

if [ -f "$FM/train-images-idx3-ubyte.gz" ] && [ -f "$FM/t10k-labels-idx1-ubyte.gz" ]; then
    args=()
    echo "using Fashion-MNIST in $FM"
else
    echo "no Fashion-MNIST in $FM: synthetic data"
    "$PY" - "$T" <<'PYEOF' || { echo "FAIL cannot make synthetic data"; exit 1; }
import sys, numpy as np, h5py
t = sys.argv[1]
rng = np.random.default_rng(0)
for name, n, k in [("pre_train", 96, 3), ("pre_val", 48, 3), ("ft_train", 40, 2), ("ft_val", 40, 2)]:
    y = np.arange(n) % k
    x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32) + y[:, None, None, None]
    with h5py.File(f"{t}/{name}.h5", "w") as f:
        f["images"] = x
        f["labels"] = y.astype(np.int64)
PYEOF
    args=(--pre-train "$T/pre_train.h5" --pre-val "$T/pre_val.h5" --pre-num-classes 3
          --train "$T/ft_train.h5" --val "$T/ft_val.h5" --num-classes 2)
fi

start=$(date +%s)
if ! bash "$SRC/scripts/reproduce/finetune.sh" --smoke --out "$T/out" "${args[@]}" >"$T/log" 2>&1; then
    echo "FAIL finetune.sh --smoke exited non-zero:"; tail -n 40 "$T/log"; exit 1
fi
echo "finetune.sh --smoke took $(( $(date +%s) - start )) s"
table=$T/out/finetune.md
if [ ! -s "$table" ]; then echo "FAIL no table $table"; tail -n 40 "$T/log"; exit 1; fi
cat "$table"
# every data row (| label | params | top-1 | ...) must carry a number in the top-1 column
rows=$(grep -cE '^\| [^-]' "$table" || true)
numeric=$(awk -F'|' '/^\| / && $4 ~ /^ *[0-9]+\.[0-9]+ *$/ {n++} END {print n+0}' "$table")
[ "$numeric" -eq 4 ] || bad "$numeric of 4 rows have a numeric top-1 ($rows table rows)"
for p in metrics.png val_top1.png train_loss.png lr.png; do
    [ -s "$T/out/$p" ] || bad "no plot $p"
done
grep -q "initialised (missing) head" "$T/out/runs/full_finetune/train.log" ||
    bad "fine-tuning did not start from a fresh head"
grep -Eq "\([0-9]{1,5} trainable after freezing\)" "$T/out/runs/linear_probe/train.log" ||
    bad "linear probe did not freeze the body"
# the plot script by itself: default output is the run dir
"$PY" "$SRC/scripts/plot_metrics.py" "$T/out/runs/scratch" >/dev/null &&
    [ -s "$T/out/runs/scratch/val_top1.png" ] || bad "plot_metrics.py RUN_DIR"
finish
