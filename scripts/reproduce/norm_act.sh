#!/usr/bin/env bash
# usage: scripts/reproduce/norm_act.sh [--quick|--full] [--out DIR] [--train S --val S ...]
#
# Normalisation / activation ablation (MetaFormer paper Table 6 for PoolFormer;
# ResMLP's Affine instead of LayerNorm): on poolformer_tiny (default norm: GroupNorm
# with one group, GELU) runs groupnorm, layernorm, affine, none with GELU, and
# groupnorm with ReLU. Table of top-1 (mean ± std over seeds, paired 95% intervals
# against the first variant) in results/norm_act/. ResMLP's claim at depth is
# scripts/reproduce/resmlp_depth.sh.
#   --model M        another model (e.g. resmlp_tiny, whose default is affine)
#   --variants LIST  semicolon-separated NORM/ACT pairs
#                    (default "groupnorm/gelu;layernorm/gelu;affine/gelu;none/gelu;groupnorm/relu";
#                    the first is the baseline)
# Budget --full: all 60,000 training / 10,000 test images, 4 epochs, batch 128, bf16,
#   3 seeds: 15 runs of poolformer_tiny, 42 min of runs measured on 2 cores (≈1,400-1,570
#   img/s).
set -euo pipefail
STUDY=norm_act
source "$(dirname "$0")/common.sh"
parse_args "$@"
MODEL=poolformer_tiny
VARIANTS="groupnorm/gelu;layernorm/gelu;affine/gelu;none/gelu;groupnorm/relu"
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift ;;
        --variants) VARIANTS=$2; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
#            smoke             quick              full
set_budget "128,128,1,32,0" "2000,1000,3,64,10" "0,0,4,128,190"
prepare_data

runs=()
IFS=';' read -r -a variants <<<"$VARIANTS"
for v in "${variants[@]}"; do
    norm=${v%/*} act=${v#*/}
    train_run "$norm-$act" --model "$MODEL" --norm "$norm" --act "$act" --train "$TRAIN" --val "$VAL"
    runs+=("$norm + $act=$norm-$act")
done
NOTE="$MODEL, $DATA_DESC; $(recipe_desc). The norm applies to norm1/norm2 of every block (PoolFormer's head norm stays a LayerNorm)."
finish "Norm / activation on $MODEL ($SIZE)" "${runs[@]}"
