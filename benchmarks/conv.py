"""Time every convolution algorithm on the benchmark suite (same as ``strided bench conv``).

    python benchmarks/conv.py --help
"""
import sys

from strided.bench.conv import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
