#!/usr/bin/env bash
# The test suite on a fresh machine: set up (with PyTorch for the parity tests), then run pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# parity tests must run, not skip, when this script runs them
export STRIDED_REQUIRE_TORCH=1
# and so must the distributed tests (mpi4py and mpiexec are installed by setup.sh --test)
export STRIDED_REQUIRE_MPI=1
exec "${PYTHON:-python3}" -m pytest -q "$@"
