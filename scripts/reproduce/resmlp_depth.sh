#!/usr/bin/env bash
# usage: scripts/reproduce/resmlp_depth.sh [--quick|--full] [--seeds N] [--out DIR] [--train S --val S ...]
#
# ResMLP's normalisation claim at depth (Touvron et al., 2021: Affine, a per-channel
# scale and shift without statistics, replaces LayerNorm, and with layer scale a deep
# ResMLP trains stably without any normalisation statistics). A 12-block resmlp_tiny
# (--depth 12; layer scale init 0.1) with Affine, LayerNorm or no norm in every block,
# each with and without layer scale. Table (mean ± std over seeds, paired 95% intervals
# against Affine + layer scale, the ResMLP recipe) in results/resmlp_depth/.
#   --depth N        blocks (default 12)
#   --variants LIST  semicolon-separated NORM/LAYER_SCALE pairs, the first the baseline
#                    (default "affine/on;layernorm/on;none/on;affine/off;layernorm/off;none/off")
# Budget --full: all 60,000 training / 10,000 test images, 2 epochs, batch 128, bf16,
#   3 seeds: 18 runs, 77 min of runs measured on 2 cores (a 12-block resmlp_tiny trains at
#   ≈490 img/s; 4 min 15 s a run).
set -euo pipefail
STUDY=resmlp_depth
source "$(dirname "$0")/common.sh"
parse_args "$@"
DEPTH=12
VARIANTS="affine/on;layernorm/on;none/on;affine/off;layernorm/off;none/off"
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --depth) DEPTH=$2; shift ;;
        --variants) VARIANTS=$2; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
#            smoke             quick              full
set_budget "128,128,1,32,0" "2000,1000,3,64,10" "0,0,2,128,95"
prepare_data

runs=()
IFS=';' read -r -a variants <<<"$VARIANTS"
for v in "${variants[@]}"; do
    norm=${v%/*} ls=${v#*/}
    case "$ls" in on|off) ;; *) die "variant '$v': want NORM/on or NORM/off" ;; esac
    train_run "$norm-ls-$ls" --model resmlp_tiny --depth "$DEPTH" --norm "$norm" --layer-scale "$ls" \
        --train "$TRAIN" --val "$VAL"
    runs+=("$norm, layer scale $ls=$norm-ls-$ls")
done
NOTE="resmlp_tiny --depth $DEPTH (layer scale init 0.1 when on), $DATA_DESC; $(recipe_desc). The norm kind applies to norm1/norm2 of every block and to the norm before pooling."
finish "ResMLP at depth $DEPTH: norm × layer scale ($SIZE)" "${runs[@]}"
