# Sourced by the shell tests (not run): the binary, the checks, skipping, a temporary directory.
# The shell counterpart of tests/harness.py; it sets no shell options (each test keeps its own).
#   M, PY, SRC             the binary ($MIXTAPE, absolute), python ($MIXTAPE_PYTHON), sources
#                          ($MIXTAPE_SRC); tests/ is put on PYTHONPATH (tinydata.py, harness.py)
#   skip REASON            one line "SKIP: REASON", exit 77 (ctest reports it as skipped)
#   require_py MOD...      skip unless $PY imports every module
#   tmpdir NAME            T=a fresh directory, removed at exit (a test's own EXIT trap replaces it)
#   ok TEXT / bad TEXT     print "ok   TEXT" / "FAIL TEXT" (bad counts a failure in $fails)
#   check NAME EXPR        evaluates EXPR: ok NAME or bad NAME
#   expect CODE TEXT -- CMD...  runs CMD (output in $T/out): it must exit CODE and print TEXT
#   h5_identical A B [GROUP...]  same datasets in two HDF5 files, bit for bit (each GROUP present)
#   finish [DIR]           exit 1 if a check failed (showing the tails of DIR/*.log), else 0
M=${MIXTAPE:?MIXTAPE must point to the mixtape binary}
M=$(readlink -f "$M")
[ -x "$M" ] || { echo "FAIL: MIXTAPE=$M is not an executable"; exit 1; }
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
SRC=${MIXTAPE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PYTHONPATH="$SRC/tests${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
fails=0

skip() { echo "SKIP: $*"; exit 77; }

require_py() {
  local m
  for m in "$@"; do
    "$PY" -c "import $m" 2>/dev/null || skip "needs the python module $m ($PY)"
  done
}

# FM: Debian's Fashion-MNIST (or $FASHION_MNIST); skips the test when it is not there.
require_fashion_mnist() {
  FM=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
  if [ ! -f "$FM/train-images-idx3-ubyte.gz" ] || [ ! -f "$FM/t10k-labels-idx1-ubyte.gz" ]; then
    skip "no Fashion-MNIST in $FM"
  fi
}

tmpdir() {
  T=$(mktemp -d "${TMPDIR:-/tmp}/mixtape_$1.XXXXXX")
  trap 'rm -rf "$T"' EXIT
}

ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

expect() {
  local code=$1 pat=$2 rc; shift 3
  "$@" > "$T/out" 2>&1 && rc=0 || rc=$?   # (safe under set -e)
  if [ "$rc" != "$code" ]; then bad "'$*' exited $rc, wanted $code: $(head -c 600 "$T/out")"; return; fi
  if [ -n "$pat" ] && ! grep -qF -- "$pat" "$T/out"; then bad "'$*' output lacks '$pat': $(head -c 600 "$T/out")"; return; fi
  ok "$* -> $code"
}

h5_identical() {
  "$PY" - "$@" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
def walk(g, p=''):
    for k, v in g.items():
        if isinstance(v, h5py.Dataset): yield p + k, v[...]
        else: yield from walk(v, p + k + '/')
da, db = dict(walk(a)), dict(walk(b))
for g in sys.argv[3:]:
    assert any(k.startswith(g + '/') for k in da), 'no /' + g
assert da.keys() == db.keys(), set(da) ^ set(db)
bad = [k for k in da if not np.array_equal(da[k], db[k])]
assert not bad, bad[:5]
EOF
}

finish() {
  if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed${1:+; logs:}"
    if [ -n "${1:-}" ]; then for f in "$1"/*.log; do echo "== $f"; grep -v setpgid "$f" | tail -15; done; fi
    exit 1
  fi
  echo "all checks passed"
  exit 0
}
