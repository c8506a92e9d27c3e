# Shared by the study scripts in scripts/reproduce/ (sourced, not run).
#
# Every study accepts:
#   --quick | --full        size of the study (default --quick); --smoke is a hidden
#                           seconds-sized budget used by tests/test_reproduce.sh
#   --out DIR               results dir (default results/<study>/ under the repo root):
#                           <study>.md (the table), <study>.json (per-seed numbers), PNG
#                           plots, and the runs in DIR/runs/
#   --runs DIR              where the training runs go instead (checkpoints, logs)
#   --cache DIR             where Fashion-MNIST is converted once
#                           (default $MIXTAPE_CACHE or ~/.cache/mixtape)
#   --train S --val S       your own data instead of Fashion-MNIST: anything
#                           `mixtape train --train/--val` accepts (shards, ImageFolder, .h5)
#   --num-classes K --img-size N --in-chans C --mean M.. --std S..   for your own data
#   --epochs N --batch-size N --lr LR   override the size's budget
#   --n-train N --n-val N   Fashion-MNIST samples used (0 = all) instead of the size's
#   --seeds N               train every configuration once per seed, seeds 1..N (default:
#                           1 for --smoke/--quick, 3 for --full); the table pairs
#                           configurations by seed
#   --seed-list S,S,...     these seeds instead (e.g. --seed-list 42)
#   --precision fp32|bf16   GEMM precision of every run (default: bf16 for --full, the
#                           faster on AVX-512-BF16 CPUs; fp32 for --smoke/--quick)
#   --redo                  retrain runs that already finished (default: a finished
#                           configuration+seed is skipped, so an interrupted study continues
#                           where it stopped; a run killed mid-way resumes from its last.h5)
#   -- FLAGS...             extra flags passed to every `mixtape train`
# Env: MIXTAPE (binary; default ./build/mixtape), MIXTAPE_PYTHON (python with
# matplotlib, numpy, h5py; default /usr/bin/python3), FASHION_MNIST (directory
# with the four IDX .gz files; default /usr/share/datasets/fashion-mnist),
# OMP_NUM_THREADS (threads per run), MIXTAPE_STUDY_PAUSE (a file path: while that file
# exists, the study waits before starting its next run, so a benchmark can have the machine
# without disturbing the wall time of a run in progress).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MIXTAPE=${MIXTAPE:-$REPO/build/mixtape}
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}

die() { echo "$STUDY: $*" >&2; exit 1; }

SIZE=quick OUT="" RUNS="" CACHE=${MIXTAPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mixtape}
USER_TRAIN="" USER_VAL="" NUM_CLASSES="" IMG_SIZE="" IN_CHANS="" MEAN="" STD=""
EPOCHS="" BATCH="" LR="" EXTRA=() STUDY_ARGS=() OVR_N_TRAIN="" OVR_N_VAL=""
SEEDS_ARG="" SEEDS=() REDO=0 BASELINE="" PRECISION=""

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
            --seeds) [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--seeds '${2:-}': want a count N (seeds 1..N)"
                      SEEDS_ARG=$2; shift ;;
            --seed-list) [[ "${2:-}" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--seed-list '${2:-}': want S,S,..."
                      SEEDS_ARG=list:$2; shift ;;
            --redo) REDO=1 ;;
            --precision) PRECISION=$2; shift ;;
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
    parse_seeds
    PRECISION=${PRECISION:-$( [ "$SIZE" = full ] && echo bf16 || echo fp32)}
    case "$PRECISION" in fp32|bf16) ;; *) die "--precision '$PRECISION': want fp32 or bf16" ;; esac
}

# SEEDS=(...) from --seeds N (1..N) or --seed-list S,S,... (default by size: 3 for --full, else 1).
# to_uints ARRAY FLAG MIN MAX: ARRAY's entries (decimal digits) become numbers without leading
# zeros; one outside MIN..MAX (or longer than MAX's digits) stops the study naming FLAG
to_uints() {
    local -n _arr=$1
    local i v
    for i in "${!_arr[@]}"; do
        v=${_arr[$i]}
        [ "${#v}" -le "${#4}" ] && [ "$((10#$v))" -ge "$3" ] && [ "$((10#$v))" -le "$4" ] || die "$2: $v out of range $3..$4"
        _arr[$i]=$((10#$v))
    done
}

parse_seeds() {
    local spec=${SEEDS_ARG:-$( [ "$SIZE" = full ] && echo 3 || echo 1)} s
    SEEDS=()
    if [[ "$spec" =~ ^[0-9]+$ ]]; then
        [ "${#spec}" -le 4 ] && [ "$((10#$spec))" -ge 1 ] && [ "$((10#$spec))" -le 1000 ] ||
            die "--seeds $spec: want 1..1000 seeds"
        spec=$((10#$spec))
        for ((s = 1; s <= spec; s++)); do SEEDS+=("$s"); done
    elif [[ "$spec" =~ ^list:[0-9]+(,[0-9]+)*$ ]]; then
        IFS=, read -r -a SEEDS <<<"${spec#list:}"
        to_uints SEEDS --seed-list 0 4294967295
        [ "$(printf '%s\n' "${SEEDS[@]}" | sort -u | wc -l)" -eq "${#SEEDS[@]}" ] || die "--seed-list ${spec#list:}: a seed is repeated"
    else
        die "--seeds/--seed-list '$spec': want a count N or a list S,S,..."
    fi
    SEED_DESC="$( [ "${#SEEDS[@]}" = 1 ] && echo "seed ${SEEDS[0]}" || echo "${#SEEDS[@]} seeds ($(IFS=,; echo "${SEEDS[*]}"))")"
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

# One line on the training recipe of the runs, for the study's NOTE.
recipe_desc() {
    echo "$EPOCHS epochs, batch $BATCH, AdamW lr $LR (cosine, warmup $WARMUP steps), weight decay 0.05, label smoothing 0.1, $PRECISION GEMMs, $SEED_DESC"
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

# train_run NAME FLAGS... : `mixtape train` once per seed into $RUNS/NAME/seed-S (--seed S);
# log in seed-S/train.log. "{seed}" in a flag is replaced by the seed (e.g. a per-seed
# --initial-checkpoint). A seed whose run finished with the same flags (marker seed-S/done,
# written only after success; seed-S/study_cmd holds the flags) is skipped unless --redo;
# a run killed mid-way continues from its last.h5 (`mixtape train --resume`, exact), or
# restarts when there is none. A run whose flags name a file in another run dir of the
# study (e.g. a pre-trained checkpoint) is retrained when that run is.
train_run() {
    local name=$1; shift
    local seed
    for seed in "${SEEDS[@]}"; do
        train_one "$name" "$seed" "$@"
    done
}

train_one() {
    local name=$1 seed=$2; shift 2
    local dir="$RUNS/$name/seed-$seed" a args=()
    for a in "$@"; do args+=("${a//\{seed\}/$seed}"); done
    local cmd=(--epochs "$EPOCHS" -b "$BATCH" --lr "$LR" --seed "$seed" --precision "$PRECISION" --log-interval 10
               --warmup-epochs 0 --warmup-steps "$WARMUP" "${DATA_FLAGS[@]}" "${args[@]}" "${EXTRA[@]}")
    local want; want=$(printf '%q ' "${cmd[@]}")
    # a flag naming a file of another run of this study (a pre-trained --initial-checkpoint)
    # ties this run to that run's completion: retraining it retrains this one
    for a in "${args[@]}"; do
        if [[ "$a" == "$RUNS"/* ]] && [ -f "$(dirname "$a")/done" ]; then
            want+="# after $(dirname "$a") $(cat "$(dirname "$a")/done") "
        fi
    done
    local have=""; [ -f "$dir/study_cmd" ] && have=$(cat "$dir/study_cmd")
    if [ "$REDO" = 0 ] && [ "$have" = "$want" ]; then
        if [ -f "$dir/done" ] && [ -s "$dir/summary.csv" ]; then
            echo "== $STUDY/$name seed $seed: finished before, skipped (--redo retrains)" >&2
            return 0
        fi
        if [ -s "$dir/last.h5" ] && [ -s "$dir/args.yaml" ]; then
            wait_unpaused
            echo "== $STUDY/$name seed $seed: resuming the interrupted run from $dir/last.h5" >&2
            local t0; t0=$(date +%s)
            if "$MIXTAPE" train --resume "$dir" >>"$dir/train.log" 2>&1; then
                echo $(( $(date +%s) - t0 )) >"$dir/wall_seconds"
                : >"$dir/resumed"
                finish_run "$dir"
                return 0
            fi
            echo "== $STUDY/$name seed $seed: resume failed (log: $dir/train.log); training from scratch" >&2
        fi
    elif [ -n "$have" ] && [ "$REDO" = 0 ]; then
        echo "== $STUDY/$name seed $seed: flags changed since the run in $dir: training again" >&2
    fi
    wait_unpaused
    rm -rf "$dir"; mkdir -p "$dir"
    printf '%s' "$want" >"$dir/study_cmd"
    local t0; t0=$(date +%s)
    echo "== $STUDY/$name seed $seed: mixtape train ${args[*]}" >&2
    if ! "$MIXTAPE" train --output "$dir" "${cmd[@]}" >"$dir/train.log" 2>&1; then
        tail -n 20 "$dir/train.log" >&2
        die "run $name seed $seed failed (log: $dir/train.log)"
    fi
    echo $(( $(date +%s) - t0 )) >"$dir/wall_seconds"
    finish_run "$dir"
}

wait_unpaused() {
    [ -n "${MIXTAPE_STUDY_PAUSE:-}" ] && [ -e "$MIXTAPE_STUDY_PAUSE" ] || return 0
    echo "== $STUDY: paused while $MIXTAPE_STUDY_PAUSE exists" >&2
    while [ -e "$MIXTAPE_STUDY_PAUSE" ]; do sleep 5; done
}

# the success marker, written last (temp + rename): only a complete run is ever skipped
finish_run() {
    local dir=$1
    [ -s "$dir/summary.csv" ] || die "run $dir ended without a summary.csv (log: $dir/train.log)"
    grep -E "^done|^epoch .*top-1" "$dir/train.log" | tail -n 1 >&2
    date -u +%FT%T.%NZ >"$dir/done.tmp" && mv "$dir/done.tmp" "$dir/done"
}

# finish TITLE LABEL=NAME... : the Markdown table ($OUT/$STUDY.md; per-seed numbers in $STUDY.json) (mean ± std over the seeds, paired 95%
# intervals of each difference to the baseline: $BASELINE, a label or run name, default the
# first; with $MATRIX set, labels are ROW|COLUMN and $BASELINE a column: see table.py), the plots (mean with min-max band over seeds), and the table on stdout.
finish() {
    local title=$1; shift
    local table="$OUT/$STUDY.md"
    local dirs=() labels=() base=()
    for lr in "$@"; do labels+=(--label "${lr%%=*}"); dirs+=("$RUNS/${lr#*=}"); done
    [ -n "$BASELINE" ] && base=(--baseline "$BASELINE")
    [ -n "${MATRIX:-}" ] && base+=(--matrix "$MATRIX")
    "$PY" "$REPO/scripts/reproduce/table.py" --title "$title" --note "$NOTE" \
        --seeds "$(IFS=,; echo "${SEEDS[*]}")" "${base[@]}" \
        --json "$OUT/$STUDY.json" "${labels[@]}" "${dirs[@]}" >"$table.tmp" || die "cannot write the table"
    mv "$table.tmp" "$table"
    "$PY" "$REPO/scripts/plot_metrics.py" "${dirs[@]}" "${labels[@]}" \
        --seeds "$(IFS=,; echo "${SEEDS[*]}")" \
        --out "$OUT" --title "$STUDY" >/dev/null || die "cannot plot"
    echo
    cat "$table"
    echo
    echo "$STUDY: table $table, plots $OUT/*.png, runs $RUNS ($(( $(date +%s) - STUDY_T0 )) s)"
}

STUDY_T0=$(date +%s)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
