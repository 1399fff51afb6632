"""Write-up 003's two-class experiment: trouser vs dress with one 3x3 filter, then frozen layers.

    python examples/two_class.py [--quick] [options]     # the same as: strided reproduce two-class

Options: python examples/two_class.py --help
"""
import sys

from strided import reproduce

if __name__ == "__main__":
    sys.exit(reproduce.main(["two-class", *sys.argv[1:]]))
