# Shared by the MPI tests (sourced, not run): tests/common.sh (binary, checks, skip, tmpdir,
# finish) and the MPI environment.
#   mpi_require        exits 77 (skipped) when the binary has no MPI, 1 when mpirun is missing
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mpi_require() {
  local libs
  libs=$(ldd "$M" 2>/dev/null)   # (not `ldd | grep -q`: with pipefail, grep's early exit can fail ldd)
  if [[ "$libs" != *libmpi* ]]; then
    skip "$M was built without MPI (cmake -DMIXTAPE_MPI=OFF or no MPI found); nothing to test"
  fi
  if ! command -v mpirun > /dev/null; then
    echo "FAIL: $M is built with MPI but mpirun is not on PATH (scripts/install-deps.sh installs openmpi-bin)"
    exit 1
  fi
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # CI runs as root
  export OMPI_MCA_btl_vader_single_copy_mechanism=none              # containers without CMA/ptrace
  export OMPI_MCA_rmaps_base_oversubscribe=1
}
