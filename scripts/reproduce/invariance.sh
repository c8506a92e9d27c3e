#!/usr/bin/env bash
# usage: scripts/reproduce/invariance.sh [--quick|--full] [--out DIR] [--train S --val S ...]
#
# Invariance to input permutations (MLP-Mixer paper, Tolstikhin et al., NeurIPS 2021, Sec. 3.4
# and Appendix: Mixer's accuracy is unchanged when one fixed permutation of the patches and of
# the pixels within a patch, or of all pixels, is applied to every image; a ResNet, whose
# convolutions assume neighbouring pixels belong together, loses accuracy, most under the
# global shuffle). Here: mixer_tiny against a model with convolutional priors, poolformer_tiny
# (conv stem, 3x3 pooling token mixer, strided conv downsampling: all local), each on the
# original images, `--permute patches` and `--permute global`. Both models see the same
# permuted images: --permute-patch 4 (mixer_tiny's patch) and --permute-seed 0 for every run
# and every training seed. Table of top-1 in results/invariance/.
#   --permute-seed S   another permutation (default 0)
#
# Budgets (6 configurations): smoke 128/128 images, 1 epoch; quick 2,000/1,000 images,
# 3 epochs, batch 64; full: all 60,000/10,000 images, 2 epochs, batch 128, --precision bf16.
# Full measured 27 minutes for the 18 runs (3 seeds, 2 threads) on 2 quiet cores; sized with:
# `mixtape bench -b 128 --precision bf16 --in-chans 1` trains mixer_tiny at 850-1300 img/s
# and poolformer_tiny at 930-1280 img/s on 2 quiet cores (docs/performance.md), i.e. about
# 2 x 60,000 / 900 + 2 x 10,000 / 4,000 s = 140 s a run at the slower rate, 42 min for 18.
set -euo pipefail
STUDY=invariance
source "$(dirname "$0")/common.sh"
parse_args "$@"
PSEED=0
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --permute-seed) PSEED=$2; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
#            smoke             quick              full
set_budget "128,128,1,32,0" "2000,1000,3,64,10" "0,0,2,128,200"
prepare_data
runs=()
for model in mixer_tiny poolformer_tiny; do
    for perm in none patches global; do
        name=$model-$perm
        col=$( [ "$perm" = none ] && echo original || echo "--permute $perm")
        train_run "$name" --model "$model" --permute "$perm" --permute-seed "$PSEED" --permute-patch 4 \
            --train "$TRAIN" --val "$VAL"
        runs+=("$model|$col=$name")
    done
done
NOTE="$DATA_DESC; $(recipe_desc). patches: one fixed permutation of the 7x7 grid of 4x4 patches and one of the 16 pixels inside a patch; global: one fixed permutation of the 28x28 pixels; permutation seed $PSEED, the same for every run. img/s is the logged training throughput (machine-load dependent)."
MATRIX="model" BASELINE="original"
finish "Invariance to input permutations ($SIZE)" "${runs[@]}"
