#!/bin/bash
# Tests of the reproduction machinery (scripts/reproduce/):
#  1. table.py's Student-t quantile against known values, its paired intervals, matrix
#     tables and missing seeds on run dirs generated here with known numbers;
#  2. finetune.sh — the study with the most moving parts (class-subset HDF5 files drawn per
#     seed, one pre-training per seed, head removal, linear-probe freeze list, three
#     fine-tuning runs per size, matrix table, plots) — at its hidden --smoke budget with
#     2 seeds: the table has mean ± std and intervals that check_table.py recomputes from
#     the per-seed numbers;
#  3. resumability: the same command again retrains nothing; a removed success marker
#     resumes that run and retrains the fine-tuning runs that read from it.
# Uses Fashion-MNIST when installed, else a synthetic HDF5 dataset through the
# --pre-train/--train arguments.
# Env: MIXTAPE (binary), MIXTAPE_SRC (source root), MIXTAPE_PYTHON (python with h5py,
# numpy, matplotlib).
set -u
source "$(dirname "$0")/common.sh"
require_py h5py numpy matplotlib
tmpdir repro
export MIXTAPE=$M MIXTAPE_PYTHON=$PY MIXTAPE_CACHE=$T/cache OMP_NUM_THREADS=1  # tiny batches: one thread is fastest (and robust on a loaded machine)
FM=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
R=$SRC/scripts/reproduce

# ---- 1. statistics ------------------------------------------------------------------------
for pv in "0.975 2 4.303" "0.975 4 2.776" "0.975 30 2.042" "0.975 1 12.706" "0.995 10 3.169" \
          "0.95 5 2.015" "0.025 3 -3.182" "0.975 1000 1.962"; do
    set -- $pv
    got=$("$PY" "$R/table.py" --t-quantile "$1" "$2") || { bad "t-quantile $1 $2 exited non-zero"; continue; }
    "$PY" -c "import sys; sys.exit(abs(float('$got') - $3) > 6e-4)" || bad "t_{$1,$2} = $got, want $3"
done
echo "t quantiles ok"

# configurations with known final top-1 per seed: base 80,81,82; better 81,83,82 (d = 1,2,0:
# mean 1, sd 1, 95% interval 1 ± 4.303/sqrt(3) = [-1.48, +3.48]); worse 70,71,72.5 (d = -10,
# -10,-9.5: interval [-10.55, -9.12], excludes 0); 'gap' lacks seed 2
"$PY" - "$T/stats" <<'PYEOF' || { echo "FAIL cannot write synthetic runs"; exit 1; }
import json, os, sys
root = sys.argv[1]
cfgs = {"base": [80, 81, 82], "better": [81, 83, 82], "worse": [70, 71, 72.5], "gap": [79, None, 84]}
for name, vals in cfgs.items():
    for s, v in enumerate(vals, 1):
        if v is None:
            continue
        d = os.path.join(root, name, f"seed-{s}")
        os.makedirs(d)
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            f.write(json.dumps({"epoch": 1, "step": 5, "loss": 2.0}) + "\n")
            f.write(json.dumps({"epoch": 1, "step": 10, "val_top1": (v - 5) / 100, "val_loss": 0.9, "img_per_s": 100}) + "\n")
            f.write(json.dumps({"epoch": 2, "step": 20, "val_top1": v / 100, "val_loss": 0.5, "img_per_s": 300}) + "\n")
        open(os.path.join(d, "wall_seconds"), "w").write("61\n")
PYEOF
S=$T/stats
"$PY" "$R/table.py" --seeds 1,2,3 --json "$S/t.json" --label base --label better --label worse --label gap \
    "$S/base" "$S/better" "$S/worse" "$S/gap" >"$S/t.md" || bad "table.py on synthetic runs"
cat "$S/t.md"
row() { grep -E "^\| $1 \|" "$S/t.md"; }
row base | grep -q "| 3 | — | 81.00 ± 1.00 | 0.500 ± 0.000 | baseline |" || bad "base row: $(row base)"
row better | grep -q "| +1.00 \[-1.48, +3.48\] | no |" || bad "better row: $(row better)"
row worse | grep -q "| -9.83 \[-10.55, -9.12\] | yes ↓ |" || bad "worse row: $(row worse)"
row better | grep -q "| 200 | 1m01s |" || bad "img/s (mean of the epochs) or wall time: $(row better)"
# gap: seeds 1 and 3 only -> d = -1, +2: 2 pairs, t_{0.975,1} = 12.706: 0.5 ± 12.706*2.1213/1.4142
row gap | grep -q "| 2 (missing 2) |.*| +0.50 \[-18.56, +19.56\] | no |" || bad "gap row: $(row gap)"
grep -q "^| better | 81.00 / 0.5000 | 83.00 / 0.5000 | 82.00 / 0.5000 |" "$S/t.md" || bad "per-seed table"
"$PY" "$R/check_table.py" "$S/t.md" 4 3 >/dev/null && bad "check_table.py accepted a table with a missing seed"
"$PY" "$R/table.py" --seeds 1,2,3 --json "$S/u.json" --label base --label better --label worse \
    "$S/base" "$S/better" "$S/worse" >"$S/u.md" && "$PY" "$R/check_table.py" "$S/u.md" 3 3 || bad "check_table.py on a good table"
# tampered interval: the checker must notice
sed 's/+1.00 \[-1.48, +3.48\]/+1.00 [-1.40, +3.48]/' "$S/u.md" >"$S/v.md" && cp "$S/u.json" "$S/v.json"
"$PY" "$R/check_table.py" "$S/v.md" 3 3 >/dev/null && bad "check_table.py accepted a wrong interval"
# baseline by label, and matrix mode
"$PY" "$R/table.py" --seeds 1,2,3 --baseline better --label base --label better "$S/base" "$S/better" >"$S/b.md"
grep -q "^| base |.*| -1.00 \[-3.48, +1.48\] | no |" "$S/b.md" || bad "--baseline better"
"$PY" "$R/table.py" --seeds 1,2,3 --matrix n --baseline scratch --label "10|scratch" --label "10|ft" \
    --label "20|scratch" --label "20|ft" "$S/base" "$S/worse" "$S/base" "$S/better" >"$S/m.md" || bad "matrix table"
grep -q "^| 10 | 81.00 ± 1.00 | 71.17 ± 1.26 | -9.83 \[-10.55, -9.12\] | yes ↓ | 3 |" "$S/m.md" || bad "matrix row 10: $(grep '^| 10' "$S/m.md")"
grep -q "^- ft − scratch: n 10: below 0; n 20: contains 0" "$S/m.md" || bad "matrix verdict line"
[ "$("$PY" "$R/table.py" --stat --seeds 1,2,3 "$S/better")" = "82.00 ± 1.00 % (3 seeds)" ] || bad "--stat"
# plots: a config dir of seeds is one curve with a band
"$PY" "$SRC/scripts/plot_metrics.py" "$S/base" "$S/worse" --out "$S/plots" >/dev/null && [ -s "$S/plots/val_top1.png" ] ||
    bad "plot_metrics.py on seed dirs"
echo "statistics checks done"

# ---- 2. finetune.sh --smoke with 2 seeds -------------------------------------------------
if [ -f "$FM/train-images-idx3-ubyte.gz" ] && [ -f "$FM/t10k-labels-idx1-ubyte.gz" ]; then
    args=(--per-class 10)
    rows=1
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
    rows=1
fi
start=$(date +%s)
if ! bash "$R/finetune.sh" --smoke --seeds 2 --out "$T/out" "${args[@]}" >"$T/log" 2>&1; then
    echo "FAIL finetune.sh --smoke exited non-zero:"; tail -n 40 "$T/log"; exit 1
fi
echo "finetune.sh --smoke --seeds 2 took $(( $(date +%s) - start )) s"
table=$T/out/finetune.md
if [ ! -s "$table" ]; then echo "FAIL no table $table"; tail -n 40 "$T/log"; exit 1; fi
cat "$table"
"$PY" "$R/check_table.py" --matrix "$table" "$rows" 2 3 || bad "finetune table"
grep -q "Pre-training top-1 on its own classes: [0-9.]* ± [0-9.]* % (2 seeds)" "$table" || bad "pre-training line"
for p in metrics.png val_top1.png train_loss.png lr.png; do
    [ -s "$T/out/$p" ] || bad "no plot $p"
done
ft=$(ls -d "$T"/out/runs/n*/full_finetune | head -1)
lp=$(ls -d "$T"/out/runs/n*/linear_probe | head -1)
for s in 1 2; do
    grep -q "initialised (missing) head" "$ft/seed-$s/train.log" || bad "fine-tuning seed $s did not start from a fresh head"
    grep -q "pretrain/seed-$s/nohead.h5" "$ft/seed-$s/args.yaml" || bad "fine-tuning seed $s does not start from pre-training seed $s"
    grep -Eq "\([0-9]{1,5} trainable after freezing\)" "$lp/seed-$s/train.log" || bad "linear probe seed $s did not freeze the body"
    grep -q "^seed: $s\$" "$ft/seed-$s/args.yaml" || bad "run seed-$s was not trained with --seed $s"
done
if [ "${#args[@]}" -eq 2 ]; then   # Fashion-MNIST: each seed draws its own images
    cmp -s "$T/cache/fashion-mnist/c5-9-train-pc10-s1.h5" "$T/cache/fashion-mnist/c5-9-train-pc10-s2.h5" &&
        bad "seeds 1 and 2 fine-tune on the same images"
fi
# the plot script by itself: default output is the run dir
"$PY" "$SRC/scripts/plot_metrics.py" "$ft/seed-1" >/dev/null && [ -s "$ft/seed-1/val_top1.png" ] ||
    bad "plot_metrics.py RUN_DIR"

# ---- 3. resumability ----------------------------------------------------------------------
cp "$table" "$T/table1.md"
bash "$R/finetune.sh" --smoke --seeds 2 --out "$T/out" "${args[@]}" >"$T/log2" 2>&1 || bad "second finetune.sh exited non-zero"
nruns=$(grep -c "^== finetune/.* seed [12]: mixtape train" "$T/log")
nskip=$(grep -c "finished before, skipped" "$T/log2")
[ "$nskip" -eq "$nruns" ] && ! grep -q ": mixtape train" "$T/log2" ||
    bad "second invocation skipped $nskip of $nruns runs: $(grep '^==' "$T/log2" | grep -v skipped | head -3)"
# the table is rebuilt from the same runs: same numbers (wall/img/s columns aside)
cut -d'|' -f1-9 "$table" | diff -q - <(cut -d'|' -f1-9 "$T/table1.md") >/dev/null || bad "table changed without retraining"
rm "$T/out/runs/pretrain/seed-2/done"
bash "$R/finetune.sh" --smoke --seeds 2 --out "$T/out" "${args[@]}" >"$T/log3" 2>&1 || bad "third finetune.sh exited non-zero"
grep -q "pretrain seed 2: resuming" "$T/log3" || bad "pre-training seed 2 without its marker was not resumed"
grep -q "pretrain seed 1: finished before" "$T/log3" || bad "pre-training seed 1 was not skipped"
[ "$(grep -c "seed 2: flags changed" "$T/log3")" -eq 2 ] || bad "the fine-tuning runs of seed 2 were not retrained after their pre-training"
grep -q "scratch seed 2: finished before" "$T/log3" || bad "the from-scratch run of seed 2 (no pre-training) was retrained"
bash "$R/finetune.sh" --smoke --seed-list 1 --redo --out "$T/out" "${args[@]}" >"$T/log4" 2>&1 || bad "--redo exited non-zero"
grep -q "finished before" "$T/log4" && bad "--redo skipped a run"
grep -q "seed 2" "$T/log4" && bad "--seed-list 1 trained seed 2"

finish
