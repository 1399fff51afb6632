"""How fast and in how little memory crafted files fail to load (same as ``strided bench hostile-files``).

    python benchmarks/bench_hostile_files.py --help
"""
import sys

from strided.bench.hostile_files import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
