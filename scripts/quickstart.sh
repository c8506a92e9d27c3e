#!/usr/bin/env bash
# The README's main job. Until `mixtape train` lands this builds and runs the
# op tests; it is replaced by the Fashion-MNIST run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build >/dev/null && cmake --build build -j2
./build/test_op_linear
