"""Where each millisecond of a LeNet-5 training step goes: per layer, forward and backward, strided beside PyTorch.

    python benchmarks/profile_lenet5.py                    # batch 128, float32
    python benchmarks/profile_lenet5.py --batches 64,128 --functions 25    # + the top functions (cProfile)

Same as ``strided bench lenet5 --profile``. docs/performance.md reads this
table and lists the optimisations it led to.
"""
import sys

from strided.bench.step_profile import profile_main

if __name__ == "__main__":
    sys.exit(profile_main(sys.argv[1:]))
