#!/usr/bin/env bash
# Install strided with its optional extras, and the Fashion-MNIST data package where apt is available.
# Usage: bash scripts/setup.sh [--test]   (--test adds pytest, hypothesis, the CPU build of PyTorch 2.13.0,
#                                    and mpi4py with the MPICH wheel for the distributed tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    echo "installing the Fashion-MNIST data package (apt-get install dataset-fashion-mnist)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

extras="all"
pkgs=()
if [ "${1:-}" = "--test" ]; then
    extras="all,test"
    # the CPU build; any other torch version would pull several GB of CUDA packages
    pkgs+=("torch==2.13.0")
    # mpi4py and an MPI library (MPICH's wheel brings mpiexec) for the distributed tests
    pkgs+=("mpi4py>=3.1" "mpich")
fi
$PY -m pip install -q --disable-pip-version-check -e ".[${extras}]" "${pkgs[@]}"
