"""``python -m strided.data [list | download NAME [--root DIR] [--force]]``."""
from __future__ import annotations

import argparse
import sys

from .catalogue import DATASETS
from .datasets import download_dataset
from .locate import format_dataset_table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m strided.data", description="List or download datasets.")
    sub = parser.add_subparsers(dest="command")
    listing = sub.add_parser("list", help="list the datasets, where they are found or how to get them")
    listing.add_argument("--root", help="data directory searched first (as load_dataset's root)")
    get = sub.add_parser("download", help="download a dataset from its official sources, verifying checksums")
    get.add_argument("name", choices=sorted(DATASETS))
    get.add_argument("--root", help="data directory to download into (default: $STRIDED_DATA or the cache)")
    get.add_argument("--force", action="store_true", help="download again even if verified files exist")
    args = parser.parse_args(argv)
    if args.command == "download":
        try:
            where = download_dataset(args.name, args.root, force=args.force)
        except OSError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"{args.name} is in {where}")
        return 0
    print(format_dataset_table(getattr(args, "root", None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
