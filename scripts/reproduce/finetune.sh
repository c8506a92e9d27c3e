#!/usr/bin/env bash
# usage: scripts/reproduce/finetune.sh [--quick|--full] [--out DIR] [--model M]
#            [--pre-train S --pre-val S --pre-num-classes K0 --train S --val S --num-classes K]
#
# Transfer: pre-train on one half of Fashion-MNIST's classes (0-4: T-shirt, trouser,
# pullover, dress, coat), then learn the other half (5-9: sandal, shirt, sneaker, bag,
# ankle boot) from a small subset (100 images per class) with a new 5-way head:
#   full fine-tune (every weight, lr 5e-4), linear probe (only the classifier trains,
#   lr 5e-3), and the same subset from scratch (lr 2e-3) - same epochs and batch.
# The pre-trained checkpoint's classifier is removed (scripts/reproduce/strip_head.py),
# so `--initial-checkpoint` re-initialises it even when both heads have 5 classes.
#   --model M          default mixer_tiny
#   --per-class N      fine-tuning images per class (default 100)
#   --ft-epochs N      fine-tuning epochs (default: 10 quick, 30 full)
# Own data: --pre-train/--pre-val (K0 classes) for pre-training, --train/--val (K classes)
# for the fine-tuning set (use a small --train to see the effect).
set -euo pipefail
STUDY=finetune
source "$(dirname "$0")/common.sh"
parse_args "$@"
MODEL=mixer_tiny PER_CLASS=100 FT_EPOCHS="" PRE_TRAIN="" PRE_VAL="" PRE_K=""
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift ;;
        --per-class) PER_CLASS=$2; shift ;;
        --ft-epochs) FT_EPOCHS=$2; shift ;;
        --pre-train) PRE_TRAIN=$2; shift ;;
        --pre-val) PRE_VAL=$2; shift ;;
        --pre-num-classes) PRE_K=$2; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
# pre-training budget:  smoke             quick              full
set_budget            "128,128,1,32,0" "2500,1000,3,64,10" "0,0,10,128,235"
case "$SIZE" in
    smoke) FT_EPOCHS=${FT_EPOCHS:-1} FT_VAL=100 FT_PER_CLASS=10 VAL_EVERY=1 ;;
    quick) FT_EPOCHS=${FT_EPOCHS:-10} FT_VAL=1000 FT_PER_CLASS=$PER_CLASS VAL_EVERY=2 ;;
    full)  FT_EPOCHS=${FT_EPOCHS:-30} FT_VAL=0 FT_PER_CLASS=$PER_CLASS VAL_EVERY=1 ;;
esac
FT_BATCH=32

DATA_FLAGS=()
if [ -n "$USER_TRAIN" ]; then
    [ -n "$PRE_TRAIN" ] && [ -n "$PRE_VAL" ] || die "own data needs --pre-train/--pre-val and --train/--val"
    prepare_data            # sets DATA_FLAGS (img size, chans, mean/std; --num-classes is K)
    PRE_FLAGS=("${DATA_FLAGS[@]}")
    if [ -n "$NUM_CLASSES" ]; then     # the pre-training head has K0 classes
        for i in "${!PRE_FLAGS[@]}"; do [ "${PRE_FLAGS[$i]}" = --num-classes ] && PRE_FLAGS[$((i + 1))]=${PRE_K:-$NUM_CLASSES}; done
    fi
    [ -n "$PRE_K" ] && [ -z "$NUM_CLASSES" ] && PRE_FLAGS+=(--num-classes "$PRE_K")
    FT_TRAIN=$USER_TRAIN FT_VALSET=$USER_VAL FT_FLAGS=("${DATA_FLAGS[@]}")
    PRE_LABEL="pre-train"
    DESC="pre-train $PRE_TRAIN (val $PRE_VAL); fine-tune $USER_TRAIN (val $USER_VAL)"
else
    lim=() vlim=() fvlim=()
    [ "$N_TRAIN" != 0 ] && lim=(--limit "$N_TRAIN")
    [ "$N_VAL" != 0 ] && vlim=(--limit "$N_VAL")
    [ "$FT_VAL" != 0 ] && fvlim=(--limit "$FT_VAL")
    PRE_TRAIN=$(fm_subset "c0-4-train-$N_TRAIN" train --classes 0-4 "${lim[@]}")
    PRE_VAL=$(fm_subset "c0-4-val-$N_VAL" t10k --classes 0-4 "${vlim[@]}")
    FT_TRAIN=$(fm_subset "c5-9-train-pc$FT_PER_CLASS" train --classes 5-9 --per-class "$FT_PER_CLASS" --seed 1)
    FT_VALSET=$(fm_subset "c5-9-val-$FT_VAL" t10k --classes 5-9 "${fvlim[@]}")
    PRE_FLAGS=(--num-classes 5 --mean 0.286 --std 0.353) FT_FLAGS=(--num-classes 5 --mean 0.286 --std 0.353) PRE_LABEL="pre-train (classes 0-4)"
    DESC="Fashion-MNIST; pre-train: classes 0-4, $( [ "$N_TRAIN" = 0 ] && echo 30000 || echo "$N_TRAIN") images, $EPOCHS epochs, batch $BATCH, lr $LR; fine-tune: classes 5-9 (as labels 0-4), $FT_PER_CLASS images per class, $FT_EPOCHS epochs, batch $FT_BATCH; validation on $( [ "$FT_VAL" = 0 ] && echo 5000 || echo "$FT_VAL") test images of classes 5-9"
fi

# 1. pre-train
DATA_FLAGS=()
train_run pretrain --model "$MODEL" --train "$PRE_TRAIN" --val "$PRE_VAL" "${PRE_FLAGS[@]}"
"$PY" "$REPO/scripts/reproduce/strip_head.py" "$RUNS/pretrain/best.h5" "$RUNS/pretrain_nohead.h5" >&2
FREEZE=$("$PY" "$REPO/scripts/reproduce/strip_head.py" --freeze-patterns "$RUNS/pretrain/best.h5")

# 2. fine-tune three ways: same data, epochs, batch; ~10% warmup
EPOCHS=$FT_EPOCHS BATCH=$FT_BATCH
steps=$(( (FT_PER_CLASS * 5 + FT_BATCH - 1) / FT_BATCH ))
[ -n "$USER_TRAIN" ] && steps=10
WARMUP=$(( steps * FT_EPOCHS / 10 ))
common=(--model "$MODEL" --train "$FT_TRAIN" --val "$FT_VALSET" --val-every "$VAL_EVERY" "${FT_FLAGS[@]}")
LR=5e-4 train_run full_finetune "${common[@]}" --initial-checkpoint "$RUNS/pretrain_nohead.h5"
LR=5e-3 train_run linear_probe "${common[@]}" --initial-checkpoint "$RUNS/pretrain_nohead.h5" --freeze "$FREEZE"
LR=2e-3 train_run scratch "${common[@]}"

NOTE="$MODEL; $DESC. Linear probe freezes \`$FREEZE\`. The first row is the pre-training run, validated on its own classes. Top-5 is trivially 100% with 5 classes."
finish "Fine-tuning vs from scratch on a small subset ($SIZE)" \
    "$PRE_LABEL=pretrain" "full fine-tune (lr 5e-4)=full_finetune" \
    "linear probe (lr 5e-3)=linear_probe" "from scratch (lr 2e-3)=scratch"
