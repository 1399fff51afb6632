"""Whole networks (LeNet-5, fashion_cnn, cifar_cnn, resnet20, fashion_resnet): training and inference against PyTorch.

Same as ``strided bench models``:

    python benchmarks/models.py --help
    python benchmarks/models.py --models resnet20:128 --threads 2
"""
import sys

from strided.bench.models import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
