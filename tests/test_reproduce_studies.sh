#!/bin/bash
# Smoke test of the study scripts other than finetune.sh (tests/test_reproduce.sh) and
# from_scratch.sh (tests/test_reproduce_verify.sh), each at its hidden --smoke budget on a
# subset of its configurations:
#   token_mixer.sh --layout isotropic (2 seeds): the model has one stage and no downsampling
#   token_mixer.sh (poolformer layout, 1 seed), norm_act.sh and resmlp_depth.sh (2 seeds):
#   tables with mean ± std and intervals recomputed by check_table.py, plots;
# and a run killed mid-way (SIGKILL after its first epoch) that the next invocation
# resumes from last.h5 to exactly the numbers of an uninterrupted run.
# Needs Fashion-MNIST (exit 77 without it).
# Env: MIXTAPE (binary), MIXTAPE_SRC (source root), MIXTAPE_PYTHON (python with h5py,
# numpy, matplotlib), FASHION_MNIST.
set -u
source "$(dirname "$0")/common.sh"
require_py h5py numpy matplotlib
require_fashion_mnist
tmpdir repro_studies
export MIXTAPE=$M MIXTAPE_PYTHON=$PY MIXTAPE_CACHE=$T/cache OMP_NUM_THREADS=1
R=$SRC/scripts/reproduce

study() {   # study OUT ROWS SEEDS SCRIPT ARGS...
    local out=$T/$1 rows=$2 seeds=$3 script=$4; shift 4
    local t0; t0=$(date +%s)
    if ! bash "$R/$script" --smoke --out "$out" "$@" >"$out.log" 2>&1; then
        bad "$script $* exited non-zero"; tail -n 20 "$out.log"; return 1
    fi
    local md; md=$(ls "$out"/*.md)
    echo "$script $* took $(( $(date +%s) - t0 )) s"
    "$PY" "$R/check_table.py" "$md" "$rows" "$seeds" || { cat "$md"; bad "$script table"; }
    [ -s "$out/val_top1.png" ] && [ -s "$out/metrics.png" ] || bad "$script: no plots in $out"
}

study iso 2 2 token_mixer.sh --layout isotropic --seeds 2 --mixers "pool;identity"
[ -s "$T/iso/token_mixer_iso.md" ] && grep -q "isotropic layout" "$T/iso/token_mixer_iso.md" || bad "isotropic table title"
"$PY" - "$T/iso/runs/identity/seed-1/last.h5" <<'PYEOF' || bad "the isotropic model is not one stage without downsampling"
import sys, h5py, json
with h5py.File(sys.argv[1], "r") as f:
    keys = list(f["model"])
    cfg = json.loads(f.attrs["config"])
    assert cfg["num_stages"] == 1 and cfg["depths"][0] == 6, cfg
    assert f["model/stem.conv.weight"].shape == (128, 1, 4, 4), f["model/stem.conv.weight"].shape
    assert cfg["stem_stride"] == 4 and cfg["stem_pad"] == 0
    assert not [k for k in keys if "downsample" in k or k.startswith("stages.1")], keys
    assert cfg["token_mixer"][0] == "identity"
print("isotropic model: stem 4x4/4 -> 7x7 tokens, stages.0 only")
PYEOF
study pool 2 1 token_mixer.sh --mixers "pool;identity"
grep -q "(1 seed)" "$T/pool/token_mixer.md" || bad "one seed: no '(1 seed)' difference"
study norm 2 2 norm_act.sh --seeds 2 --variants "groupnorm/gelu;none/gelu"
study depth 2 2 resmlp_depth.sh --seeds 2 --depth 2 --variants "affine/on;none/off"
grep -q "^| none, layer scale off | 2 |" "$T/depth/resmlp_depth.md" || bad "resmlp_depth row labels"
"$PY" -c "
import h5py, sys
k = list(h5py.File('$T/depth/runs/none-ls-off/seed-1/last.h5', 'r')['model'])
sys.exit(any('ls1' in x or 'norm' in x for x in k) or not any(x.startswith('blocks.1.') for x in k) or any(x.startswith('blocks.2.') for x in k))" ||
    bad "resmlp_depth none/off: norm or layer scale present, or depth not 2"

# ---- a run killed after its first epoch resumes to the uninterrupted numbers ----------------
args=(--smoke --models mixer_tiny --n-train 256 --epochs 3 --seeds 1)
bash "$R/from_scratch.sh" "${args[@]}" --out "$T/ref" >"$T/ref.log" 2>&1 || bad "reference run"
bash "$R/from_scratch.sh" "${args[@]}" --out "$T/cut" >"$T/cut.log" 2>&1 &
study_pid=$!
run=$T/cut/runs/mixer_tiny/seed-1
killed=0
for _ in $(seq 1 1200); do   # up to 60 s
    # last.h5 appears (atomically) at the end of epoch 1
    if [ -s "$run/last.h5" ] && ! grep -q '"epoch": 3.*val_top1' "$run/metrics.jsonl" 2>/dev/null; then
        child=$(pgrep -P "$study_pid" || true)
        if [ -n "$child" ]; then kill -KILL "$child" && killed=1; fi
        break
    fi
    kill -0 "$study_pid" 2>/dev/null || break
    sleep 0.05
done
wait "$study_pid" 2>/dev/null
if [ "$killed" = 1 ]; then
    [ -f "$run/done" ] && bad "a killed run has a success marker"
    bash "$R/from_scratch.sh" "${args[@]}" --out "$T/cut" >"$T/cut2.log" 2>&1 || bad "resuming the killed study"
    grep -q "resuming the interrupted run" "$T/cut2.log" || bad "the killed run was not resumed: $(grep '^==' "$T/cut2.log")"
    "$PY" - "$T/ref/runs/mixer_tiny/seed-1" "$run" <<'PYEOF' || bad "the resumed run differs from the uninterrupted one"
import json, sys
def val(d):
    rows = {}
    for line in open(d + "/metrics.jsonl"):
        r = json.loads(line)
        if "val_top1" in r:
            rows[r["epoch"]] = (r["step"], r["loss"], r["val_loss"], r["val_top1"], r["val_top5"])
    return rows
a, b = val(sys.argv[1]), val(sys.argv[2])
print("uninterrupted:", a[3], "\nkilled+resumed:", b[3])
sys.exit(not (a == b and len(a) == 3))
PYEOF
    grep -q "(resumed)" "$T/cut/from_scratch.md" || bad "the table does not mark the resumed run's wall time"
else
    echo "note: the run finished before it could be killed; resume not exercised"
fi

finish
