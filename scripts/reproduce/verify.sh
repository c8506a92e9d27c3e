#!/usr/bin/env bash
# usage: scripts/reproduce/verify.sh [--doc FILE] [--out DIR] [--print]
#
# Re-runs the verification study that docs/results.md documents (the command in its
# "Verification run" section, between the markers <!-- verify:begin --> and
# <!-- verify:end -->) and compares the per-seed table it prints (final val top-1 and val
# loss of every run and seed) with the one in the doc, exactly. Exit 0 when they agree;
# exit 1 printing both when they differ (the code changed what the published numbers say:
# fix the code, or re-run and update the doc), or when the run fails.
#   --doc FILE   the results page (default docs/results.md)
#   --out DIR    keep the study's output there (default: a temporary dir, removed); a
#                finished run in DIR is reused, not retrained
#   --print      print the section as it should read (command and table), then compare
# Runs are deterministic per seed, thread count and GEMM kernel path: the check pins
# OMP_NUM_THREADS=1 and fp32. The doc's numbers are from an x86-64 CPU with AVX-512; a CPU
# whose kernels sum in another order (AVX2 only, AMX) may differ in the last digits.
# Env: MIXTAPE, MIXTAPE_PYTHON, MIXTAPE_CACHE, FASHION_MNIST as for the studies.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DOC=$REPO/docs/results.md OUT="" PRINT=0
while [ $# -gt 0 ]; do
    case "$1" in
        --doc) DOC=${2:?--doc needs a file}; shift ;;
        --out) OUT=${2:?--out needs a dir}; shift ;;
        --print) PRINT=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "verify: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -f "$DOC" ] || { echo "verify: no results page $DOC" >&2; exit 1; }
section=$(awk '/<!-- verify:begin -->/ { on = 1; next } /<!-- verify:end -->/ { on = 0 } on' "$DOC")
[ -n "$section" ] || { echo "verify: $DOC has no <!-- verify:begin --> ... <!-- verify:end --> section" >&2; exit 1; }

# the command: the one indented line that starts with scripts/reproduce/ (no shell
# evaluation: split into words; only a study script of this repo is run)
cmdline=$(printf '%s\n' "$section" | grep -E '^    scripts/reproduce/[a-z_]+\.sh( |$)' || true)
[ "$(printf '%s\n' "$cmdline" | grep -c .)" = 1 ] ||
    { echo "verify: want exactly one '    scripts/reproduce/STUDY.sh ...' command line in the section of $DOC" >&2; exit 1; }
read -r -a words <<<"$cmdline"
script=${words[0]}
study=$(basename "$script" .sh)
[ -f "$REPO/$script" ] && [ "$study" != verify ] || { echo "verify: $DOC names no study script ($script)" >&2; exit 1; }
for w in "${words[@]:1}"; do
    case "$w" in --out|--runs|--out=*|--runs=*) echo "verify: the documented command must not set $w" >&2; exit 1 ;; esac
done
want=$(printf '%s\n' "$section" | grep -E '^\|' || true)
[ -n "$want" ] || { echo "verify: the section of $DOC has no table" >&2; exit 1; }

tmp=""
if [ -z "$OUT" ]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/mixtape_verify.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    OUT=$tmp
fi
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
start=$(date +%s)
if ! bash "$REPO/$script" "${words[@]:1}" --precision fp32 --out "$OUT" >"$OUT/verify.log" 2>&1; then
    echo "verify: '${words[*]}' failed:" >&2
    tail -n 30 "$OUT/verify.log" >&2
    exit 1
fi
table=$OUT/$study.md
# the per-seed table of the study's Markdown
got=$(awk '/^Per seed/ { on = 1; next } on && /^\|/ { print; n++; next } on && n > 0 { exit }' "$table")
if [ "$PRINT" = 1 ]; then
    echo "    ${words[*]}"
    echo
    printf '%s\n' "$got"
    echo
fi
if [ "$got" = "$want" ]; then
    echo "verify: ok, '${words[*]}' reproduces the table in $DOC ($(( $(date +%s) - start )) s)"
    exit 0
fi
echo "verify: FAILED, '${words[*]}' no longer reproduces the table in $DOC"
echo "--- $DOC"
printf '%s\n' "$want"
echo "+++ this run ($table)"
printf '%s\n' "$got"
diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") || true
exit 1
