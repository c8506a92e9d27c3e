#!/usr/bin/env bash
# usage: scripts/reproduce/finetune.sh [--quick|--full] [--out DIR] [--model M]
#            [--pre-train S --pre-val S --pre-num-classes K0 --train S --val S --num-classes K]
#
# Transfer on small data: pre-train on one half of Fashion-MNIST's classes (0-4: T-shirt,
# trouser, pullover, dress, coat), then learn the other half (5-9: sandal, shirt, sneaker,
# bag, ankle boot) from N images per class (N = 10, 20, 50, 100) with a new 5-way head:
#   full fine-tune (every weight, lr 5e-4), linear probe (only the classifier trains,
#   lr 5e-3), and the same images from scratch (lr 2e-3) - same epochs and batch.
# Seeds: one pre-training run per seed; seed S fine-tunes pre-training S and draws its own
# N images per class (the same images for the three methods), so the paired difference
# fine-tune − scratch covers the pre-training, the choice of images and the init.
# Epochs: max(--ft-epochs, enough for --ft-steps optimizer steps), so the smallest sets
# get as many steps as the larger ones; validation 5 times per run and at its end.
# The pre-trained checkpoint's classifier is removed (scripts/reproduce/strip_head.py),
# so `--initial-checkpoint` re-initialises it even when both heads have 5 classes.
# Table (results/finetune/): top-1 by images per class for the three methods, with the
# 95% intervals of (fine-tune − scratch) and (linear probe − scratch) paired by seed.
#   --model M          default mixer_tiny
#   --per-class LIST   comma-separated images per class (default 10,20,50,100; --smoke 10,20)
#   --ft-epochs N      least fine-tuning epochs (default 30; 1 at --smoke)
#   --ft-steps N       least fine-tuning steps (default 200; 4 at --smoke)
# Own data: --pre-train/--pre-val (K0 classes) for pre-training, --train/--val (K classes)
# for the fine-tuning set (one size: the whole --train).
# Budget --full: pre-training on all 30,000 training images of classes 0-4, 10 epochs,
#   batch 128, bf16, one run per seed (3); fine-tuning 36 runs on 50-500 images (batch 32,
#   200-480 steps) validated on the 5,000 test images of classes 5-9: 22 min of runs
#   measured on 2 cores (pre-training ≈4 min per seed, a fine-tuning run 7-19 s); the
#   published table runs --seeds 10 (the smallest sets need them): 65 min.
set -euo pipefail
STUDY=finetune
source "$(dirname "$0")/common.sh"
parse_args "$@"
MODEL=mixer_tiny PER_CLASS="" FT_EPOCHS="" FT_STEPS="" PRE_TRAIN="" PRE_VAL="" PRE_K=""
set -- "${STUDY_ARGS[@]+"${STUDY_ARGS[@]}"}"
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift ;;
        --per-class) PER_CLASS=$2; shift ;;
        --ft-epochs) FT_EPOCHS=$2; shift ;;
        --ft-steps) FT_STEPS=$2; shift ;;
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
    smoke) FT_EPOCHS=${FT_EPOCHS:-1} FT_STEPS=${FT_STEPS:-4} FT_VAL=100 PER_CLASS=${PER_CLASS:-10,20} ;;
    quick) FT_EPOCHS=${FT_EPOCHS:-30} FT_STEPS=${FT_STEPS:-200} FT_VAL=1000 PER_CLASS=${PER_CLASS:-10,20,50,100} ;;
    full)  FT_EPOCHS=${FT_EPOCHS:-30} FT_STEPS=${FT_STEPS:-200} FT_VAL=0 PER_CLASS=${PER_CLASS:-10,20,50,100} ;;
esac
[[ "$PER_CLASS" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--per-class '$PER_CLASS': want N,N,..."
[[ "$FT_EPOCHS" =~ ^[0-9]{1,5}$ ]] && [ "$FT_EPOCHS" -ge 1 ] || die "--ft-epochs '$FT_EPOCHS': want 1..99999"
[[ "$FT_STEPS" =~ ^[0-9]{1,7}$ ]] || die "--ft-steps '$FT_STEPS': want 0..9999999"
FT_BATCH=32
IFS=, read -r -a sizes <<<"$PER_CLASS"
to_uints sizes --per-class 1 99999

DATA_FLAGS=()
if [ -n "$USER_TRAIN" ]; then
    [ -n "$PRE_TRAIN" ] && [ -n "$PRE_VAL" ] || die "own data needs --pre-train/--pre-val and --train/--val"
    prepare_data            # sets DATA_FLAGS (img size, chans, mean/std; --num-classes is K)
    PRE_FLAGS=("${DATA_FLAGS[@]}")
    if [ -n "$NUM_CLASSES" ]; then     # the pre-training head has K0 classes
        for i in "${!PRE_FLAGS[@]}"; do [ "${PRE_FLAGS[$i]}" = --num-classes ] && PRE_FLAGS[$((i + 1))]=${PRE_K:-$NUM_CLASSES}; done
    fi
    [ -n "$PRE_K" ] && [ -z "$NUM_CLASSES" ] && PRE_FLAGS+=(--num-classes "$PRE_K")
    FT_VALSET=$USER_VAL FT_FLAGS=("${DATA_FLAGS[@]}")
    sizes=(all)
    PRE_LABEL="pre-train"
    DESC="pre-train $PRE_TRAIN (val $PRE_VAL); fine-tune $USER_TRAIN (val $USER_VAL)"
else
    lim=() vlim=() fvlim=()
    [ "$N_TRAIN" != 0 ] && lim=(--limit "$N_TRAIN")
    [ "$N_VAL" != 0 ] && vlim=(--limit "$N_VAL")
    [ "$FT_VAL" != 0 ] && fvlim=(--limit "$FT_VAL")
    PRE_TRAIN=$(fm_subset "c0-4-train-$N_TRAIN" train --classes 0-4 "${lim[@]}")
    PRE_VAL=$(fm_subset "c0-4-val-$N_VAL" t10k --classes 0-4 "${vlim[@]}")
    FT_VALSET=$(fm_subset "c5-9-val-$FT_VAL" t10k --classes 5-9 "${fvlim[@]}")
    # seed S draws its own images: c5-9-train-pcN-sS.h5
    for n in "${sizes[@]}"; do
        for seed in "${SEEDS[@]}"; do
            fm_subset "c5-9-train-pc$n-s$seed" train --classes 5-9 --per-class "$n" --seed "$seed" >/dev/null
        done
    done
    PRE_FLAGS=(--num-classes 5 --mean 0.286 --std 0.353) FT_FLAGS=(--num-classes 5 --mean 0.286 --std 0.353)
    PRE_LABEL="pre-train (classes 0-4)"
    DESC="Fashion-MNIST; pre-train: classes 0-4, $( [ "$N_TRAIN" = 0 ] && echo 30000 || echo "$N_TRAIN") images, $(recipe_desc); fine-tune: classes 5-9 (as labels 0-4), N images per class drawn per seed, batch $FT_BATCH, max($FT_EPOCHS epochs, $FT_STEPS steps), ~10% warmup; validation on $( [ "$FT_VAL" = 0 ] && echo 5000 || echo "$FT_VAL") test images of classes 5-9"
fi

# 1. pre-train, once per seed; its head removed for the fine-tuning runs
DATA_FLAGS=()
train_run pretrain --model "$MODEL" --train "$PRE_TRAIN" --val "$PRE_VAL" "${PRE_FLAGS[@]}"
for seed in "${SEEDS[@]}"; do
    "$PY" "$REPO/scripts/reproduce/strip_head.py" "$RUNS/pretrain/seed-$seed/best.h5" \
        "$RUNS/pretrain/seed-$seed/nohead.h5" >&2 || die "cannot strip the head of pre-training seed $seed"
done
FREEZE=$("$PY" "$REPO/scripts/reproduce/strip_head.py" --freeze-patterns "$RUNS/pretrain/seed-${SEEDS[0]}/best.h5")
PRE_STAT=$("$PY" "$REPO/scripts/reproduce/table.py" --stat --seeds "$(IFS=,; echo "${SEEDS[*]}")" "$RUNS/pretrain")

# 2. per size, fine-tune three ways: same images, epochs, batch; ~10% warmup
runs=()
PRE_EPOCHS=$EPOCHS
for n in "${sizes[@]}"; do
    if [ "$n" = all ]; then
        ft_train=$USER_TRAIN steps=10
    else
        ft_train="$CACHE/fashion-mnist/c5-9-train-pc$n-s{seed}.h5"
        steps=$(( (n * 5 + FT_BATCH - 1) / FT_BATCH ))
    fi
    EPOCHS=$(( FT_EPOCHS > (FT_STEPS + steps - 1) / steps ? FT_EPOCHS : (FT_STEPS + steps - 1) / steps ))
    BATCH=$FT_BATCH WARMUP=$(( steps * EPOCHS / 10 ))
    val_every=$(( EPOCHS / 5 > 1 ? EPOCHS / 5 : 1 ))
    common=(--model "$MODEL" --train "$ft_train" --val "$FT_VALSET" --val-every "$val_every" "${FT_FLAGS[@]}")
    LR=2e-3 train_run "n$n/scratch" "${common[@]}"
    LR=5e-4 train_run "n$n/full_finetune" "${common[@]}" --initial-checkpoint "$RUNS/pretrain/seed-{seed}/nohead.h5"
    LR=5e-3 train_run "n$n/linear_probe" "${common[@]}" --initial-checkpoint "$RUNS/pretrain/seed-{seed}/nohead.h5" --freeze "$FREEZE"
    runs+=("$n|from scratch=n$n/scratch" "$n|full fine-tune=n$n/full_finetune" "$n|linear probe=n$n/linear_probe")
done
EPOCHS=$PRE_EPOCHS

NOTE="$MODEL; $DESC. Pre-training top-1 on its own classes: $PRE_STAT. Learning rates: from scratch 2e-3, full fine-tune 5e-4, linear probe 5e-3 (it freezes \`$FREEZE\`)."
MATRIX="images per class" BASELINE="from scratch"
finish "Fine-tuning vs from scratch on small subsets ($SIZE)" "${runs[@]}"
