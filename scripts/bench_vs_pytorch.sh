#!/usr/bin/env bash
# mixtape vs PyTorch (Debian's python3-torch) on the same CPU, in one run: the same model, batch,
# thread count and AdamW step on random in-memory data, so only compute is timed. Each row compares
# mixtape's faster precision with PyTorch's faster mode — plain fp32 or torch.autocast(bfloat16)
# (oneDNN's bf16 kernels, AMX where the CPU has it) — and gives the whole-step efficiency: mixtape's
# train GFLOP/s over the bf16 GEMM rate that `mixtape bench --sgemm` measures in the same run (the
# fp32 rate when bf16 is not measured). Prints Markdown tables: training, forward, peak RSS.
# On a shared machine one run of either side can move by 2x; --repeat R alternates R runs of each
# and reports medians.
#   scripts/bench_vs_pytorch.sh [--threads 2] [--steps 10] [--repeat 1] [--precision fp32,bf16]
#                               [--models "M:B ..."]
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MIXTAPE:-./build/mixtape}
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
THREADS=2; STEPS=10; REPEAT=1; PRECISIONS=fp32,bf16
MODELS="mixer_s16_224:32 resmlp_12_224:32 poolformer_s12:32 mixer_tiny:128 resmlp_tiny:128 poolformer_tiny:128"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --precision) PRECISIONS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    *) echo "bench_vs_pytorch: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$REPEAT" in ''|*[!0-9]*|0) echo "bench_vs_pytorch: --repeat needs a whole number >= 1, got '$REPEAT'" >&2; exit 2 ;; esac
for p in ${PRECISIONS//,/ }; do
  case "$p" in fp32|bf16) ;; *) echo "bench_vs_pytorch: --precision takes fp32 and/or bf16, got '$p'" >&2; exit 2 ;; esac
done
[ -x "$M" ] || { echo "bench_vs_pytorch: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=$THREADS
MODES="${PRECISIONS//,/ }"   # mixtape's precisions
TORCH="fp32 bf16"            # PyTorch: plain fp32, autocast to bf16
median() { sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { grep "^$1" "$2" | awk -v k="$3" '{print $k}' | median; } # median of field k of the lines starting with $1
# "name value" pairs on stdin -> "value name" of the largest value
best() { sort -k2 -g | tail -1; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; threads $THREADS; $STEPS timed steps$([ "$REPEAT" -gt 1 ] && echo ", medians of $REPEAT alternating runs"); $(date -u +%Y-%m-%d); load average $(cut -d' ' -f1-3 /proc/loadavg)"
SG=$("$M" bench --sgemm --threads "$THREADS" | head -1)
echo "$SG"
GEMM_BF16=$(sed -n 's/.*bf16 gemm: \([0-9.]*\) GFLOP.*/\1/p' <<< "$SG")
GEMM_FP32=$(sed -n 's/.*fp32 gemm: \([0-9.]*\) GFLOP.*/\1/p' <<< "$SG")

# Measure: per model, R rounds of every mixtape precision and both PyTorch modes, one after the other.
for mb in $MODELS; do
  model=${mb%%:*}; b=${mb##*:}
  "$M" init --model "$model" --out "$T/$model.h5" > /dev/null
  for r in $(seq "$REPEAT"); do
    for p in $MODES; do
      "$M" bench --model "$model" -b "$b" --steps "$STEPS" --threads "$THREADS" --precision "$p" >> "$T/$model.m.$p"
    done
    for a in $TORCH; do
      "$PY" scripts/bench_torch.py "$T/$model.h5" -b "$b" --threads "$THREADS" --steps "$STEPS" --amp "$a" >> "$T/$model.t.$a"
    done
  done
done

label() { case "$1" in m.*) echo "${1#m.}" ;; t.fp32) echo "fp32" ;; t.bf16) echo "autocast" ;; esac; }
# One table of img/s for `key` (train: / forward:), with the ratio of the two sides' best.
table() {
  local key=$1 what=$2 eff=$3
  echo
  echo "### $what (img/s, $THREADS threads)"
  echo
  local h="| model | batch |" s="|---|---|"
  for p in $MODES; do h="$h mixtape $p |"; s="$s---|"; done
  h="$h PyTorch fp32 | PyTorch autocast bf16 | mixtape best vs PyTorch best |"; s="$s---|---|---|"
  [ "$eff" = 1 ] && { h="$h mixtape GFLOP/s | whole step / GEMM rate |"; s="$s---|---|"; }
  echo "$h"; echo "$s"
  for mb in $MODELS; do
    model=${mb%%:*}; b=${mb##*:}
    local row="| $model | $b |" mine="" theirs=""
    for p in $MODES; do
      v=$(col "$key" "$T/$model.m.$p" 2); row="$row $v |"; mine="$mine m.$p $v"$'\n'
    done
    for a in $TORCH; do
      v=$(col "$key" "$T/$model.t.$a" 2); row="$row $v |"; theirs="$theirs t.$a $v"$'\n'
    done
    read -r mn mv <<< "$(printf '%s' "$mine" | best)"
    read -r tn tv <<< "$(printf '%s' "$theirs" | best)"
    row="$row $(awk -v a="$mv" -v b="$tv" 'BEGIN{printf "%.2fx", a/b}') ($(label "$mn") vs $(label "$tn")) |"
    if [ "$eff" = 1 ]; then
      # the whole step's GFLOP/s against the GEMM kernel's rate of the same precision
      local ep=bf16 rate=$GEMM_BF16
      case " $MODES " in *" bf16 "*) ;; *) ep=fp32; rate=$GEMM_FP32 ;; esac
      gf=$(col "$key" "$T/$model.m.$ep" 4)
      row="$row $gf ($ep) | $(awk -v a="$gf" -v b="$rate" 'BEGIN{printf "%.0f%%", 100*a/b}') of $rate |"
    fi
    echo "$row"
  done
}
table train: "Training: forward + backward + AdamW step" 1
table forward: "Forward (inference)" 0

echo
echo "### Peak RSS (MB)"
echo
h="| model | batch |"; s="|---|---|"
for p in $MODES; do h="$h mixtape $p |"; s="$s---|"; done
echo "$h PyTorch fp32 | PyTorch autocast bf16 |"; echo "$s---|---|"
for mb in $MODELS; do
  model=${mb%%:*}; b=${mb##*:}
  row="| $model | $b |"
  for p in $MODES; do row="$row $(col 'peak RSS:' "$T/$model.m.$p" 3) |"; done
  for a in $TORCH; do row="$row $(col 'peak RSS:' "$T/$model.t.$a" 3) |"; done
  echo "$row"
done
