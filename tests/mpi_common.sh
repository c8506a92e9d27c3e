# Shared by the MPI tests (sourced, not run): the binary, the checks and the MPI environment.
#   mpi_require        exits 77 (skipped) when the binary has no MPI, 1 when mpirun is missing
#   check NAME EXPR    prints ok/FAIL and counts failures in $fails
#   finish [DIR]       prints the logs of DIR on failure and exits 1, else 0
set -uo pipefail
M=${MIXTAPE:?MIXTAPE must point to the mixtape binary}
M=$(readlink -f "$M")
PY=${MIXTAPE_PYTHON:-/usr/bin/python3}
SRC=${MIXTAPE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PYTHONPATH="$SRC/tests${PYTHONPATH:+:$PYTHONPATH}"
fails=0

mpi_require() {
  local libs
  libs=$(ldd "$M" 2>/dev/null)   # (not `ldd | grep -q`: with pipefail, grep's early exit can fail ldd)
  if [[ "$libs" != *libmpi* ]]; then
    echo "SKIP: $M was built without MPI (cmake -DMIXTAPE_MPI=OFF or no MPI found); nothing to test"
    exit 77
  fi
  if ! command -v mpirun > /dev/null; then
    echo "FAIL: $M is built with MPI but mpirun is not on PATH (scripts/install-deps.sh installs openmpi-bin)"
    exit 1
  fi
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # CI runs as root
  export OMPI_MCA_btl_vader_single_copy_mechanism=none              # containers without CMA/ptrace
  export OMPI_MCA_rmaps_base_oversubscribe=1
}

check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

finish() {
  if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed${1:+; logs:}"
    if [ -n "${1:-}" ]; then for f in "$1"/*.log; do echo "== $f"; grep -v setpgid "$f" | tail -15; done; fi
    exit 1
  fi
  echo "all checks passed"
  exit 0
}
