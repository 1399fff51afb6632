"""Ten Fashion-MNIST classes with fashion_cnn: at least 0.92 test accuracy within 10 minutes on 2 cores.

    python examples/fashion_10.py [--quick] [options]     # the same as: strided reproduce fashion-10

Options: python examples/fashion_10.py --help
"""
import sys

from strided import reproduce

if __name__ == "__main__":
    sys.exit(reproduce.main(["fashion-10", *sys.argv[1:]]))
