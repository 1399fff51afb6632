"""Peak resident memory of one ``strided`` command line, run in a fresh process.

    python benchmarks/cli_memory.py                                   # strided train --model fashion_cnn --epochs 1
    python benchmarks/cli_memory.py train --model lenet5 --no-plots   # any strided command

Prints one JSON line: ``peak_rss`` (bytes), ``peak_mib``, ``returncode``, ``seconds``, ``args``.
The run directory is written into a temporary directory and removed.
"""
import json
import sys

from strided.bench.memory import cli_peak_rss

DEFAULT = ["train", "--model", "fashion_cnn", "--epochs", "1"]


def main(argv) -> int:
    result = cli_peak_rss(argv or DEFAULT)
    result["peak_mib"] = None if result["peak_rss"] is None else round(result["peak_rss"] / 2**20, 1)
    print(json.dumps(result))
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
