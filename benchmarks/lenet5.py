"""LeNet-5 training against PyTorch on this CPU (same as ``strided bench lenet5``).

    python benchmarks/lenet5.py --help
"""
import sys

from strided.bench.lenet5 import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
