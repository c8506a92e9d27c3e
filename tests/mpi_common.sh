# Shared by the MPI tests (sourced, not run): tests/common.sh (binary, checks, skip, tmpdir,
# finish) and the MPI environment.
#   mpi_available      true when the binary has MPI and mpirun is there (then exports the
#                      Open MPI settings below and sets MPI)
#   mpi_require        exits 77 (skipped) when the binary has no MPI, 1 when mpirun is missing;
#                      sets MPI=(mpirun ... ) for ranks on this machine
#   mpi_same_run_setup $T/train.h5 and MODEL, NOAUG, COMMON: a run whose result must not depend
#                      on the number of ranks (1 rank x batch 8 == 2 ranks x batch 4)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mpi_linked() {
  local libs
  libs=$(ldd "$M" 2>/dev/null)   # (not `ldd | grep -q`: with pipefail, grep's early exit can fail ldd)
  [[ "$libs" == *libmpi* ]]
}

mpi_available() {
  mpi_linked && command -v mpirun > /dev/null || return 1
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # CI runs as root
  export OMPI_MCA_btl_vader_single_copy_mechanism=none              # containers without CMA/ptrace
  export OMPI_MCA_rmaps_base_oversubscribe=1
  MPI=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
}

mpi_require() {
  mpi_linked || skip "$M was built without MPI (cmake -DMIXTAPE_MPI=OFF or no MPI found); nothing to test"
  if ! mpi_available; then
    echo "FAIL: $M is built with MPI but mpirun is not on PATH (scripts/install-deps.sh installs openmpi-bin)"
    exit 1
  fi
}

mpi_same_run_setup() {
  "$PY" -c "import tinydata; tinydata.write_h5_bands('$T/train.h5')"
  MODEL=(--model mixer_tiny --img-size 8 --in-chans 1 --num-classes 4 --patch-size 4 --embed-dim 32 --depth 2
         --drop 0 --drop-path 0)
  NOAUG=(--aa none --reprob 0 --hflip 0 --smoothing 0 --mixup 0 --cutmix 0)
  # SGD: AdamW would turn the rounding noise of gradients that are exactly zero in exact
  # arithmetic (e.g. the token-MLP fc2 bias, which every LayerNorm downstream cancels) into
  # lr-sized steps of random sign, so its weights cannot be compared to 1e-5.
  COMMON=(--train "$T/train.h5" --seed 3 --warmup-epochs 0 --threads 1 -j 1 --log-interval 1 --opt sgd --momentum 0.9
          --lr-base 0.05 --lr-base-size 8)
}
