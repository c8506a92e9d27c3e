#!/usr/bin/env bash
# usage: scripts/reproduce/norm_act.sh [--quick|--full] [--out DIR] [--train S --val S ...]
#
# Normalisation / activation ablation (MetaFormer paper Table 6 for PoolFormer;
# ResMLP's Affine instead of LayerNorm): on poolformer_tiny (default norm: GroupNorm
# with one group, GELU) runs groupnorm, layernorm, affine, none with GELU, and
# groupnorm with ReLU. Table of top-1 in results/norm_act/.
#   --model M        another model (e.g. resmlp_tiny, whose default is affine)
#   --variants LIST  semicolon-separated NORM/ACT pairs
#                    (default "groupnorm/gelu;layernorm/gelu;affine/gelu;none/gelu;groupnorm/relu")
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
set_budget "128,128,1,32,0" "2000,1000,3,64,10" "0,0,10,128,470"
prepare_data

runs=()
IFS=';' read -r -a variants <<<"$VARIANTS"
for v in "${variants[@]}"; do
    norm=${v%/*} act=${v#*/}
    train_run "$norm-$act" --model "$MODEL" --norm "$norm" --act "$act" --train "$TRAIN" --val "$VAL"
    runs+=("$norm + $act=$norm-$act")
done
NOTE="$MODEL, $DATA_DESC; $EPOCHS epochs, batch $BATCH, AdamW lr $LR (cosine, warmup $WARMUP steps), weight decay 0.05, label smoothing 0.1, $SEED_DESC. The norm applies to norm1/norm2 of every block (PoolFormer's head norm stays a LayerNorm)."
finish "Norm / activation on $MODEL ($SIZE)" "${runs[@]}"
