# Shared by the study scripts in scripts/reproduce/ (sourced, not run).
#
# Every study accepts:
#   --quick | --full        size of the study (default --quick); --smoke is a hidden
#                           seconds-sized budget used by tests/test_reproduce.sh
#   --out DIR               results dir (default results/<study>/ under the repo root):
#                           <study>.md (the table), PNG plots, and the runs in DIR/runs/
#   --runs DIR              where the training runs go instead (checkpoints, logs)
#   --cache DIR             where Fashion-MNIST is converted once
#                           (default $MIXTAPE_CACHE or ~/.cache/mixtape)
#   --train S --val S       your own data instead of Fashion-MNIST: anything
#                           `mixtape train --train/--val` accepts (shards, ImageFolder, .h5)
#   --num-classes K --img-size N --in-chans C --mean M.. --std S..   for your own data
#   --epochs N --batch-size N --lr LR   override the size's budget
#   --n-train N --n-val N   Fashion-MNIST samples used (0 = all) instead of the size's
#   -- FLAGS...             extra flags passed to every `mixtape train`
# Env: MIXTAPE (binary; default ./build/mixtape), MIXTAPE_PYTHON (python with
# matplotlib, numpy, h5py; default /usr/bin/python3), FASHION_MNIST (directory
# with the four IDX .gz files; default /usr/share/datasets/fashion-mnist),
# OMP_NUM_THREADS (threads per run).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MIXTAPE=${MIXTAPE:-$REPO/build/mixtape}
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}

die() { echo "$STUDY: $*" >&2; exit 1; }

SIZE=quick OUT="" RUNS="" CACHE=${MIXTAPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mixtape}
USER_TRAIN="" USER_VAL="" NUM_CLASSES="" IMG_SIZE="" IN_CHANS="" MEAN="" STD=""
EPOCHS="" BATCH="" LR="" EXTRA=() STUDY_ARGS=() OVR_N_TRAIN="" OVR_N_VAL=""

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    echo
    awk 'NR > 3 && /^#/ { sub(/^# ?/, ""); print; next } NR > 3 { exit }' "$REPO/scripts/reproduce/common.sh"
    exit "${1:-0}"
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --quick) SIZE=quick ;;
            --full) SIZE=full ;;
            --smoke) SIZE=smoke ;;
            --out) OUT=$2; shift ;;
            --runs) RUNS=$2; shift ;;
            --cache) CACHE=$2; shift ;;
            --train) USER_TRAIN=$2; shift ;;
            --val) USER_VAL=$2; shift ;;
            --num-classes) NUM_CLASSES=$2; shift ;;
            --img-size) IMG_SIZE=$2; shift ;;
            --in-chans) IN_CHANS=$2; shift ;;
            --mean) MEAN=$2; shift ;;
            --std) STD=$2; shift ;;
            --epochs) EPOCHS=$2; shift ;;
            -b|--batch-size) BATCH=$2; shift ;;
            --lr) LR=$2; shift ;;
            --n-train) OVR_N_TRAIN=$2; shift ;;
            --n-val) OVR_N_VAL=$2; shift ;;
            -h|--help) usage 0 ;;
            --) shift; EXTRA=("$@"); break ;;
            *) STUDY_ARGS+=("$1") ;;   # left for the study to interpret
        esac
        shift
    done
    OUT=${OUT:-$REPO/results/$STUDY}
    RUNS=${RUNS:-$OUT/runs}
    mkdir -p "$OUT" "$RUNS"
    OUT=$(cd "$OUT" && pwd); RUNS=$(cd "$RUNS" && pwd)
    [ -x "$MIXTAPE" ] || die "no mixtape binary at $MIXTAPE (build it, or set MIXTAPE)"
    "$PY" -c 'import matplotlib, numpy, h5py' 2>/dev/null ||
        die "$PY lacks matplotlib/numpy/h5py (set MIXTAPE_PYTHON)"
    if [ -n "$USER_TRAIN" ] && [ -z "$USER_VAL" ]; then die "--train needs --val"; fi
}

# Budget of one size: N_TRAIN samples (0 = all), N_VAL (0 = all), epochs, batch, warmup
# steps; lr 2e-3 (AdamW, cosine to 0, weight decay 0.05, label smoothing 0.1).
set_budget() {   # set_budget SMOKE QUICK FULL, each "ntrain,nval,epochs,batch,warmup_steps"
    local spec
    case "$SIZE" in smoke) spec=$1 ;; quick) spec=$2 ;; full) spec=$3 ;; esac
    IFS=, read -r N_TRAIN N_VAL B_EPOCHS B_BATCH WARMUP <<<"$spec"
    N_TRAIN=${OVR_N_TRAIN:-$N_TRAIN} N_VAL=${OVR_N_VAL:-$N_VAL}
    EPOCHS=${EPOCHS:-$B_EPOCHS}
    BATCH=${BATCH:-$B_BATCH}
    LR=${LR:-2e-3}
}

# fm_subset NAME SPLIT ARGS... : an HDF5 subset of Fashion-MNIST in the cache (made once).
fm_subset() {
    local name=$1 split=$2; shift 2
    local f="$CACHE/fashion-mnist/$name.h5"
    if [ ! -s "$f" ]; then
        [ -f "$FASHION_MNIST/$split-images-idx3-ubyte.gz" ] ||
            die "Fashion-MNIST not found in $FASHION_MNIST (set FASHION_MNIST, or give --train/--val)"
        mkdir -p "$CACHE/fashion-mnist"
        "$PY" "$REPO/scripts/make_subset.py" "$FASHION_MNIST/$split-images-idx3-ubyte.gz" \
            --out "$f" "$@" >&2 || die "cannot write $f"
    fi
    echo "$f"
}

# Sets TRAIN, VAL and DATA_FLAGS: the user's data, or Fashion-MNIST subsets of the budget.
prepare_data() {
    DATA_FLAGS=()
    if [ -n "$USER_TRAIN" ]; then
        TRAIN=$USER_TRAIN VAL=$USER_VAL
        [ -n "$NUM_CLASSES" ] && DATA_FLAGS+=(--num-classes "$NUM_CLASSES")
        [ -n "$IMG_SIZE" ] && DATA_FLAGS+=(--img-size "$IMG_SIZE")
        [ -n "$IN_CHANS" ] && DATA_FLAGS+=(--in-chans "$IN_CHANS")
        # shards / ImageFolder: a plain pipeline (no RandAugment, erasing); .h5 ignores these
        DATA_FLAGS+=(--aa none --reprob 0)
        # shellcheck disable=SC2206
        [ -n "$MEAN" ] && DATA_FLAGS+=(--mean $MEAN)
        # shellcheck disable=SC2206
        [ -n "$STD" ] && DATA_FLAGS+=(--std $STD)
        DATA_DESC="train $USER_TRAIN, val $USER_VAL"
    else
        local lim=() vlim=()
        [ "$N_TRAIN" != 0 ] && lim=(--limit "$N_TRAIN")
        [ "$N_VAL" != 0 ] && vlim=(--limit "$N_VAL")
        # the HDF5 files are normalised with these; train records them in the checkpoints
        # (for a later `mixtape eval --data val-000000.tar --crop-pct 1` on shards)
        DATA_FLAGS+=(--mean 0.286 --std 0.353)
        TRAIN=$(fm_subset "train-${N_TRAIN}" train "${lim[@]}")
        VAL=$(fm_subset "val-${N_VAL}" t10k "${vlim[@]}")
        DATA_DESC="Fashion-MNIST, $( [ "$N_TRAIN" = 0 ] && echo 60000 || echo "$N_TRAIN") training samples (class-stratified), $( [ "$N_VAL" = 0 ] && echo 10000 || echo "$N_VAL") test samples"
    fi
}

# train_run NAME FLAGS... : one `mixtape train` into $RUNS/NAME (replaced), log in NAME/train.log.
train_run() {
    local name=$1; shift
    local dir="$RUNS/$name"
    rm -rf "$dir"; mkdir -p "$dir"
    local t0; t0=$(date +%s)
    echo "== $STUDY/$name: mixtape train $*" >&2
    if ! "$MIXTAPE" train --output "$dir" --epochs "$EPOCHS" -b "$BATCH" --lr "$LR" \
            --seed 42 --log-interval 10 \
            --warmup-epochs 0 --warmup-steps "$WARMUP" "${DATA_FLAGS[@]}" "$@" "${EXTRA[@]}" >"$dir/train.log" 2>&1; then
        tail -n 20 "$dir/train.log" >&2
        die "run $name failed (log: $dir/train.log)"
    fi
    echo $(( $(date +%s) - t0 )) >"$dir/wall_seconds"
    grep -E "^done|^epoch .*top-1" "$dir/train.log" | tail -n 1 >&2
}

# finish TITLE LABEL=RUN... : the Markdown table, the plots, and the table on stdout.
finish() {
    local title=$1; shift
    local table="$OUT/$STUDY.md"
    local dirs=() labels=()
    for lr in "$@"; do labels+=(--label "${lr%%=*}"); dirs+=("$RUNS/${lr#*=}"); done
    "$PY" "$REPO/scripts/reproduce/table.py" --title "$title" --note "$NOTE" \
        "${labels[@]}" "${dirs[@]}" >"$table" || die "cannot write the table"
    "$PY" "$REPO/scripts/plot_metrics.py" "${dirs[@]}" "${labels[@]}" \
        --out "$OUT" --title "$STUDY" >/dev/null || die "cannot plot"
    echo
    cat "$table"
    echo
    echo "$STUDY: table $table, plots $OUT/*.png, runs $RUNS ($(( $(date +%s) - STUDY_T0 )) s)"
}

STUDY_T0=$(date +%s)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
