"""The residual fashion_resnet8 on Fashion-MNIST: at least 0.94 test accuracy within 10 minutes on 2 cores.

    python examples/fashion_resnet.py [--quick] [options]     # the same as: strided reproduce fashion-resnet

Options: python examples/fashion_resnet.py --help
"""
import sys

from strided import reproduce

if __name__ == "__main__":
    sys.exit(reproduce.main(["fashion-resnet", *sys.argv[1:]]))
