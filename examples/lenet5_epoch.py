"""Write-up 001's table: one epoch of LeNet-5 per convolution algorithm, and PyTorch.

    python examples/lenet5_epoch.py [--quick] [options]     # the same as: strided reproduce lenet5-epoch

Options: python examples/lenet5_epoch.py --help
"""
import sys

from strided import reproduce

if __name__ == "__main__":
    sys.exit(reproduce.main(["lenet5-epoch", *sys.argv[1:]]))
