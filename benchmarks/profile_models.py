"""Where the time of a training step of each zoo model goes: per layer (down to the leaves) and per kind.

    python benchmarks/profile_models.py                              # lenet5, fashion_cnn, cifar_cnn, resnet20, fashion_resnet
    python benchmarks/profile_models.py --models resnet20:128 --top 0
    python benchmarks/profile_models.py --one-thread                 # CPU time on one thread

Each product layer is set beside its arithmetic at the machine's measured
matrix-product rate (the floor of a layer built on products).
docs/performance.md ("Whole networks") reads these tables.
"""
import sys

from strided.bench.step_profile import profile_models_main

if __name__ == "__main__":
    sys.exit(profile_models_main(sys.argv[1:]))
