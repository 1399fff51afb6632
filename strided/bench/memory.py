"""Peak memory of training steps of a zoo model (LeNet-5 by default), each library in a fresh process, and of a CLI run.

    python -m strided.bench.memory strided --batch 128 --dtype float32    # prints one JSON line
    python -m strided.bench.memory torch --model resnet20 --batch 128

:func:`peak_memory` runs that command once per library and collects the
results; :func:`probe` is what the fresh process runs. :func:`cli_peak_rss`
measures the peak resident memory of one ``python -m strided ...`` command
(``benchmarks/cli_memory.py``), e.g. ``strided train --model fashion_cnn``,
whose dataset stays uint8 until each batch is drawn.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from .. import models
from .harness import positive_int, traced_peak
from .torch_twin import import_torch, model_pair, random_batch, strided_step, torch_step


def _proc_status(field: str) -> int | None:
    """A size in bytes from /proc/self/status (Linux), e.g. VmRSS (resident now) or VmHWM (its peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rss_bytes() -> int | None:
    return _proc_status("VmRSS")



def probe(library: str, batch: int, dtype, model: str = "lenet5") -> dict:
    """Run in a fresh process: growth of the peak resident memory over 10 training steps of ``model`` (bytes).

    The baseline is the resident size once the model, the batch and the
    library are loaded, so only what the steps allocate counts. For strided
    a second, separate run of 10 steps under ``tracemalloc`` (which NumPy
    reports its arrays to) gives the most array memory alive at once, the
    buffers kept between steps included.
    """
    x, y = random_batch(batch, dtype, shape=models.MODELS[model][1])
    if library == "torch":
        torch = import_torch(2)
        step = torch_step(torch, model_pair(torch, model, dtype)[1], x, y)
    else:
        step = strided_step(models.get_model(model, dtype=dtype), x, y)
    base = _rss_bytes()
    for _ in range(10):
        step()
    # VmHWM, not getrusage's ru_maxrss: after fork + exec the latter starts from the parent's size
    peak = _proc_status("VmHWM")
    out = {"rss_growth": None if base is None or peak is None else max(0, peak - base)}
    if library == "strided":
        del step

        def ten_steps():
            step = strided_step(models.get_model(model, dtype=dtype), x, y)
            for _ in range(10):
                step()
        out["traced_peak"] = traced_peak(ten_steps)
    return out


def peak_memory(libraries, batch: int = 128, dtype=np.float32, model: str = "lenet5") -> dict:
    """``{library: {"rss_growth": bytes, "traced_peak": bytes (strided)}}``, each measured in its own process."""
    out = {}
    for lib in libraries:
        cmd = [sys.executable, "-m", "strided.bench.memory", lib, "--batch", str(batch), "--dtype", np.dtype(dtype).name,
               "--model", model]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
            out[lib] = json.loads(res.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError, OSError) as exc:
            out[lib] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    return out


# run in the measured process: the command line's main, then its peak resident size (VmHWM) into a file at exit
_CLI_WRAPPER = """
import atexit, sys
def _report(path=sys.argv[1]):
    with open('/proc/self/status') as f:
        hwm = [int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM:')]
    with open(path, 'w') as out:
        out.write(str(hwm[0] if hwm else -1))
atexit.register(_report)
from strided.cli import main
sys.exit(main(sys.argv[2:]))
"""


def cli_peak_rss(args, cwd=None, timeout: float = 3600) -> dict:
    """Peak resident memory of ``python -m strided *args`` run in a fresh process (Linux: /proc VmHWM).

    args: the command line after ``strided``, e.g. ``["train", "--model", "fashion_cnn", "--epochs", "1"]``.
    cwd: where it runs (default a temporary directory, so its run directory is thrown away).
    Returns ``{"peak_rss": bytes or None, "returncode": int, "seconds": float, "args": list}``.
    """
    import time
    args = [str(a) for a in args]
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "peak")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CLI_WRAPPER, report, *args], cwd=cwd or tmp,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
        seconds = time.perf_counter() - start
        try:
            with open(report) as f:
                peak = int(f.read())
        except (OSError, ValueError):
            peak = -1
    out = {"peak_rss": peak if peak >= 0 else None, "returncode": proc.returncode, "seconds": seconds, "args": args}
    if proc.returncode != 0:
        out["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m strided.bench.memory",
                                description="Peak memory of 10 training steps of a zoo model, as one JSON line.")
    p.add_argument("library", choices=("strided", "torch"))
    p.add_argument("--model", choices=tuple(models.MODELS), default="lenet5")
    p.add_argument("--batch", type=positive_int, default=128)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = p.parse_args(argv)
    print(json.dumps(probe(args.library, args.batch, np.dtype(args.dtype), args.model)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
