#!/usr/bin/env bash
# mixtape vs PyTorch (Debian's python3-torch) on the same CPU, in one run: the same model, batch,
# thread count and AdamW step on random in-memory data, so only compute is timed. Each row compares
# mixtape's faster precision with PyTorch's faster mode — plain fp32 or torch.autocast(bfloat16)
# (oneDNN's bf16 kernels, AMX where the CPU has it) — and reads mixtape's GFLOP/s against the
# hardware measured by `mixtape bench --sgemm` in the same run: the bf16 GEMM rate on a model-sized
# problem (6272x2048x512) and the register peak of vdpbf16ps on all threads (fp32 rates and the
# vfmadd peak when bf16 is not measured). "ceiling vs PyTorch" is that peak over PyTorch's best
# achieved GFLOP/s: no implementation can be faster than PyTorch by more on this CPU.
# Prints Markdown tables: training, forward, peak RSS.
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

cpuinfo() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'; }
echo "machine: $(cpuinfo 'model name') (family $(cpuinfo 'cpu family') model $(cpuinfo model)), $(nproc) cores; threads $THREADS; $STEPS timed steps$([ "$REPEAT" -gt 1 ] && echo ", medians of $REPEAT alternating runs"); $(date -u +%Y-%m-%d); load average $(cut -d' ' -f1-3 /proc/loadavg)"
SG=$("$M" bench --sgemm --threads "$THREADS")
echo "$SG"
GEMM_FP32=$(sed -n 's/.*fp32 gemm: \([0-9.]*\) GFLOP.*/\1/p' <<< "$SG")
GEMM_MODEL=$(sed -n 's/^bf16 gemm [0-9x]*: \([0-9.]*\) GFLOP.*/\1/p' <<< "$SG")
PEAK_BF16=$(sed -n 's/.*register peak: bf16 \([0-9.]*\) GFLOP.*/\1/p' <<< "$SG")
PEAK_FP32=$(sed -n 's/.*register peak: .*fp32 \([0-9.]*\) GFLOP.*/\1/p' <<< "$SG")

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
  local key=$1 what=$2
  echo
  echo "### $what (img/s, $THREADS threads)"
  echo
  local h="| model | batch |" s="|---|---|"
  for p in $MODES; do h="$h mixtape $p |"; s="$s---|"; done
  h="$h PyTorch fp32 | PyTorch autocast bf16 | mixtape best vs PyTorch best |"; s="$s---|---|---|"
  h="$h mixtape GFLOP/s | % of GEMM rate | % of register peak | ceiling vs PyTorch |"; s="$s---|---|---|---|"
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
    # the GFLOP/s against the GEMM rate and the register peak of the same precision; the
    # ceiling: that peak over PyTorch's best rate (FLOPs per image from mixtape's own count)
    local ep=bf16 rate=$GEMM_MODEL peak=$PEAK_BF16
    case " $MODES " in *" bf16 "*) ;; *) ep=fp32; rate=$GEMM_FP32; peak=$PEAK_FP32 ;; esac
    gf=$(col "$key" "$T/$model.m.$ep" 4); ips=$(col "$key" "$T/$model.m.$ep" 2)
    row="$row $gf ($ep) | $(awk -v a="$gf" -v b="$rate" 'BEGIN{printf "%.0f%% of %s", 100*a/b, b}') |"
    row="$row $(awk -v a="$gf" -v b="$peak" 'BEGIN{if (b > 0) printf "%.0f%% of %s", 100*a/b, b; else print "n/a"}') |"
    row="$row $(awk -v p="$peak" -v g="$gf" -v i="$ips" -v t="$tv" 'BEGIN{if (p > 0 && g > 0) printf "%.2fx", p/(t*g/i); else print "n/a"}') |"
    echo "$row"
  done
}
table train: "Training: forward + backward + AdamW step"
table forward: "Forward (inference)"

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
