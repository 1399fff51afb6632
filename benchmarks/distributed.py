"""Data-parallel training on this machine: 1 process x 2 threads against mpiexec -n 2 x 1 thread
(same as ``strided bench distributed``); with --json, the figures docs/distributed.md's projection reads.

    python benchmarks/distributed.py --help
    python benchmarks/distributed.py --json benchmarks/distributed.json
    python -m strided.bench.scaling benchmarks/distributed.json    # the projection to 2..64 machines
"""
import sys

from strided.bench.distributed import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
