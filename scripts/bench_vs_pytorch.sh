#!/usr/bin/env bash
# mixtape vs PyTorch (Debian's python3-torch) on the same CPU, in one run: the
# same model, batch, thread count and AdamW step on random in-memory data, so
# only compute is timed. Prints a Markdown table per precision. mixtape bf16 is compared with
# PyTorch fp32 and with PyTorch under torch.autocast(bfloat16) (oneDNN's bf16 kernels, AMX where
# the CPU has it). On a shared machine one run of either side can move by 2x; --repeat R
# alternates R runs of each and reports medians.
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
[ -x "$M" ] || { echo "bench_vs_pytorch: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=$THREADS
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { grep "^$1" "$2" | awk -v k="$3" '{print $k}' | median; } # median of field k of the lines starting with $1
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; threads $THREADS; $(date -u +%Y-%m-%d)"
"$M" bench --sgemm --threads "$THREADS" | head -1
for prec in ${PRECISIONS//,/ }; do
  amps=fp32; [ "$prec" = bf16 ] && amps="fp32 bf16" # PyTorch sides: plain, and autocast to bf16
  echo
  reps=""; [ "$REPEAT" -gt 1 ] && reps=", medians of $REPEAT alternating runs"
  vs=""; for a in $amps; do vs="$vs${vs:+ and }PyTorch $a"; done
  echo "### mixtape $prec vs $vs ($THREADS threads, $STEPS timed steps$reps)"
  echo
  h="| model | batch | mixtape train img/s |"; sep="|---|---|---|"
  for a in $amps; do h="$h PyTorch $a train img/s | ratio |"; sep="$sep---|---|"; done
  h="$h mixtape fwd img/s |"; sep="$sep---|"
  for a in $amps; do h="$h PyTorch $a fwd img/s | ratio |"; sep="$sep---|---|"; done
  h="$h mixtape GFLOP/s (train) | mixtape RSS MB |"; sep="$sep---|---|"
  for a in $amps; do h="$h PyTorch $a RSS MB |"; sep="$sep---|"; done
  echo "$h"; echo "$sep"
  for mb in $MODELS; do
    model=${mb%%:*}; b=${mb##*:}
    "$M" init --model "$model" --out "$T/$model.h5" > /dev/null
    : > "$T/m.all"; for a in $amps; do : > "$T/p.$a"; done
    for r in $(seq "$REPEAT"); do
      "$M" bench --model "$model" -b "$b" --steps "$STEPS" --threads "$THREADS" --precision "$prec" >> "$T/m.all"
      for a in $amps; do
        "$PY" scripts/bench_torch.py "$T/$model.h5" -b "$b" --threads "$THREADS" --steps "$STEPS" --amp "$a" >> "$T/p.$a"
      done
    done
    mt=$(col train: "$T/m.all" 2); mf=$(col forward: "$T/m.all" 2)
    gf=$(col train: "$T/m.all" 4); mr=$(col 'peak RSS:' "$T/m.all" 3)
    row="| $model | $b | $mt |"
    for a in $amps; do pt=$(col train: "$T/p.$a" 2); row="$row $pt | $(ratio "$mt" "$pt") |"; done
    row="$row $mf |"
    for a in $amps; do pf=$(col forward: "$T/p.$a" 2); row="$row $pf | $(ratio "$mf" "$pf") |"; done
    row="$row $gf | $mr |"
    for a in $amps; do row="$row $(col 'peak RSS:' "$T/p.$a" 3) |"; done
    echo "$row"
  done
done
