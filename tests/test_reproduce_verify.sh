#!/bin/bash
# scripts/reproduce/verify.sh: the verification run documented in docs/results.md still
# gives the published per-seed numbers (exit 0), and verify.sh does fail (exit 1, printing
# both tables) against a copy of the page with one number changed. The second check reuses
# the finished runs of the first (--out), so it also shows that finished runs are skipped.
# Needs Fashion-MNIST (exit 77 without it).
# Env: MIXTAPE (binary), MIXTAPE_SRC (source root), MIXTAPE_PYTHON, FASHION_MNIST.
set -u
source "$(dirname "$0")/common.sh"
require_py h5py numpy matplotlib
require_fashion_mnist
tmpdir verify_test
export MIXTAPE=$M MIXTAPE_PYTHON=$PY MIXTAPE_CACHE=$T/cache
V=$SRC/scripts/reproduce/verify.sh
DOC=$SRC/docs/results.md

bash "$V" --doc "$DOC" --out "$T/out" >"$T/log" 2>&1
rc=$?
cat "$T/log"
[ "$rc" -eq 0 ] || bad "verify.sh exit $rc: the documented verification run no longer gives its numbers"

# the same page with the first per-seed top-1 raised by 0.01: must fail
awk '/<!-- verify:begin -->/ { on = 1 } on && !done && /^\| [^r-]/ && match($0, /[0-9]+\.[0-9][0-9] \//) {
        v = substr($0, RSTART, RLENGTH - 2) + 0.01
        $0 = substr($0, 1, RSTART - 1) sprintf("%.2f /", v) substr($0, RSTART + RLENGTH); done = 1 }
     { print }' "$DOC" >"$T/tampered.md"
cmp -s "$DOC" "$T/tampered.md" && { bad "could not tamper with the verification table"; finish; }
bash "$V" --doc "$T/tampered.md" --out "$T/out" >"$T/log2" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { bad "verify.sh against a changed number: exit $rc, want 1"; cat "$T/log2"; }
grep -q "FAILED" "$T/log2" && grep -q "^+++ this run" "$T/log2" || bad "verify.sh did not print both tables"
grep -q ": mixtape train" "$T/out/verify.log" && bad "the second verify.sh retrained finished runs"

# a page without the section, and one whose command is verify.sh itself: clear errors
printf '# results\n' >"$T/empty.md"
bash "$V" --doc "$T/empty.md" >"$T/log3" 2>&1 && bad "verify.sh accepted a page without the section"
grep -q "no <!-- verify:begin -->" "$T/log3" || bad "message: $(cat "$T/log3")"
printf '<!-- verify:begin -->\n    scripts/reproduce/verify.sh\n| a |\n<!-- verify:end -->\n' >"$T/self.md"
bash "$V" --doc "$T/self.md" >"$T/log4" 2>&1 && bad "verify.sh ran itself"

finish
