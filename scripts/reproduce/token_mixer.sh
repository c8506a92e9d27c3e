#!/usr/bin/env bash
# usage: scripts/reproduce/token_mixer.sh [--quick|--full] [--layout poolformer|isotropic]
#            [--seeds N] [--out DIR] [--train S --val S ...]
#
# Token-mixer ablation (MetaFormer paper, Yu et al., CVPR 2022, Table 5: PoolFormer-S12
# 77.2 % vs identity mapping 74.3 % top-1 on ImageNet-1k). Same budget for every run,
# paired by seed; the baseline (first mixer) is pool.
#   --layout poolformer   (default) poolformer_tiny: 3x3 stride-2 stem and downsampling
#                         convs between four stages, which mix space by themselves.
#                         Mixers: pool, identity, random, mlp, attention (and, at --smoke /
#                         --quick, the hybrid pool,pool,attention,attention). Results in
#                         results/token_mixer/.
#   --layout isotropic    an isotropic MetaFormer where the token mixer is the only spatial
#                         mixing: 4x4 patch embedding (28 px -> 7x7 tokens of 128 channels),
#                         then 6 blocks at that one resolution, no downsampling
#                         (poolformer_tiny --depths 6 --dims 128 --stem-kernel 4
#                         --stem-stride 4 --stem-pad 0); the identity model sees only each
#                         4x4 patch. Mixers: pool, identity, random, mlp, attention.
#                         Results in results/token_mixer_iso/.
#   --mixers LIST         semicolon-separated mixers (the first is the baseline)
#   --model M             another MetaFormer model for the poolformer layout
# Budget --full: all 60,000 training / 10,000 test images, 3 seeds, bf16, batch 128;
#   poolformer layout 3 epochs, isotropic 4 epochs. Measured on 2 cores: poolformer 46 min
#   of runs (pool and identity ≈2 min a run, random 2.3, mlp 3.3, attention 5.6); isotropic
#   83 min (pool, identity, random ≈4 min a run, mlp ≈6.4, attention ≈8.9).
set -euo pipefail
LAYOUT=poolformer
for ((i = 1; i <= $#; i++)); do
    [ "${!i}" = -- ] && break
    if [ "${!i}" = --layout ]; then j=$((i + 1)); LAYOUT=${!j:-}; fi
done
case "$LAYOUT" in
    poolformer) STUDY=token_mixer ;;
    isotropic) STUDY=token_mixer_iso ;;
    *) echo "token_mixer: --layout '$LAYOUT': want poolformer or isotropic" >&2; exit 2 ;;
esac
source "$(dirname "$0")/common.sh"
parse_args "$@"
MODEL=poolformer_tiny MIXERS=""
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --layout) shift ;;
        --model) MODEL=$2; shift ;;
        --mixers) MIXERS=$2; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
if [ "$LAYOUT" = poolformer ]; then
    #            smoke             quick              full
    set_budget "128,128,1,32,0" "2000,1000,3,64,10" "0,0,3,128,140"
    LAYOUT_FLAGS=(--model "$MODEL")
    DEFAULT_MIXERS="pool;identity;random;mlp;attention"
    [ "$SIZE" != full ] && DEFAULT_MIXERS+=";pool,pool,attention,attention"
    DESC="$MODEL"
else
    set_budget "128,128,1,32,0" "2000,1000,3,64,10" "0,0,4,128,190"
    LAYOUT_FLAGS=(--model poolformer_tiny --depths 6 --dims 128 --stem-kernel 4 --stem-stride 4 --stem-pad 0)
    DEFAULT_MIXERS="pool;identity;random;mlp;attention"
    DESC="isotropic MetaFormer (poolformer_tiny --depths 6 --dims 128, 4x4 patch stem: 7x7 tokens, no downsampling)"
fi
MIXERS=${MIXERS:-$DEFAULT_MIXERS}
prepare_data

IFS=';' read -r -a mixer_list <<<"$MIXERS"
runs=()
for mx in "${mixer_list[@]}"; do
    name=${mx//,/-}
    train_run "$name" "${LAYOUT_FLAGS[@]}" --token-mixer "$mx" --train "$TRAIN" --val "$VAL"
    runs+=("$mx=$name")
done
NOTE="$DESC, $DATA_DESC; $(recipe_desc). img/s is the logged training throughput (machine-load dependent)."
finish "Token mixers, $LAYOUT layout ($SIZE)" "${runs[@]}"
