#!/usr/bin/env bash
# usage: scripts/reproduce/from_scratch.sh [--quick|--full] [--out DIR] [--train S --val S ...]
#
# MLP-like models learn images without convolutions or attention: MLP-Mixer
# (mixer_tiny), ResMLP (resmlp_tiny) and PoolFormer (poolformer_tiny) trained from
# scratch with the same budget (samples, epochs, batch, optimizer). Table of top-1
# (mean ± std over seeds; intervals paired by seed against the first model) in
# results/from_scratch/.
#   --models LIST   comma-separated models (default mixer_tiny,resmlp_tiny,poolformer_tiny)
# Budget --full: all 60,000 training / 10,000 test images, 6 epochs, batch 128, bf16,
#   3 seeds: 9 runs, 43 min of runs measured on 2 cores (≈4-5 min per run: 1,150-1,520
#   img/s with validation).
set -euo pipefail
STUDY=from_scratch
source "$(dirname "$0")/common.sh"
parse_args "$@"
MODELS=mixer_tiny,resmlp_tiny,poolformer_tiny
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --models) MODELS=$2; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
#            smoke             quick              full
set_budget "128,128,1,32,0" "3000,1000,3,64,10" "0,0,6,128,280"
prepare_data

runs=()
IFS=, read -r -a models <<<"$MODELS"
for m in "${models[@]}"; do
    train_run "$m" --model "$m" --train "$TRAIN" --val "$VAL"
    runs+=("$m=$m")
done
NOTE="$DATA_DESC; $(recipe_desc), no augmentation. img/s is the logged training throughput (machine-load dependent)."
finish "From scratch, same budget ($SIZE)" "${runs[@]}"
