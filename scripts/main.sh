#!/usr/bin/env bash
# The main job on a fresh machine: set up, then train LeNet-5 on Fashion-MNIST (about a minute on 2 cores).
# Extra arguments go to `strided train` (see `strided train --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m strided train "$@"
