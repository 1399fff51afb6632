"""``python -m strided.viz RUN_DIR``: draw a saved run's figures and report.md (as ``strided plot RUN_DIR``)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m strided.viz",
                                description="Draw the figures and report.md of a saved training run.")
    p.add_argument("run_dir", help="a run directory written by `strided train`")
    p.add_argument("--data-root", help="directory holding the dataset files (for the test images)")
    p.add_argument("--dpi", type=float, default=100, help="resolution of the PNG files (default 100)")
    args = p.parse_args(argv)
    from .run import plot_run

    try:
        files = plot_run(args.run_dir, data_root=args.data_root, dpi=args.dpi,
                         log=lambda msg: print(msg, file=sys.stderr))
    except (ImportError, FileNotFoundError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for f in files:
        print(f)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
