#!/usr/bin/env bash
# usage: scripts/reproduce/token_mixer.sh [--quick|--full] [--out DIR] [--train S --val S ...]
#
# Token-mixer ablation on the PoolFormer layout (poolformer_tiny; MetaFormer paper,
# Yu et al., CVPR 2022, Table 5: PoolFormer-S12 77.2 % vs identity mapping 74.3 % top-1 on ImageNet-1k).
# Same budget for every run; mixers: pool, identity, random, mlp, attention, and the
# hybrid pool,pool,attention,attention. Table: top-1, params, img/s (results/token_mixer/).
#   --model M     another MetaFormer layout (default poolformer_tiny)
#   --mixers LIST  semicolon-separated mixers (default "pool;identity;random;mlp;attention;pool,pool,attention,attention")
set -euo pipefail
STUDY=token_mixer
source "$(dirname "$0")/common.sh"
parse_args "$@"
MODEL=poolformer_tiny
MIXERS="pool;identity;random;mlp;attention;pool,pool,attention,attention"
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift ;;
        --mixers) MIXERS=$2; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
#            smoke             quick              full
set_budget "128,128,1,32,0" "2000,1000,3,64,10" "0,0,10,128,470"
prepare_data

IFS=';' read -r -a mixer_list <<<"$MIXERS"
runs=()
for mx in "${mixer_list[@]}"; do
    name=${mx//,/-}
    train_run "$name" --model "$MODEL" --token-mixer "$mx" --train "$TRAIN" --val "$VAL"
    runs+=("$mx=$name")
done
NOTE="$MODEL, $DATA_DESC; $EPOCHS epochs, batch $BATCH, AdamW lr $LR (cosine, warmup $WARMUP steps), weight decay 0.05, label smoothing 0.1, $SEED_DESC. img/s is the logged training throughput (machine-load dependent)."
finish "Token mixers on $MODEL ($SIZE)" "${runs[@]}"
