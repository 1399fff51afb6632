"""What every benchmark needs: fair timing of several step functions, memory peaks, the machine, tables.

A benchmark compares *steps* (callables doing one unit of work: a training
step, a convolution's forward and backward). :func:`interleaved` times
them in alternating rounds so that a change in the machine's load touches
them alike, and reports each round's median; :func:`settle_allocator`
puts the process's allocator in the state a training script reaches once
it has loaded its data; :func:`traced_peak` measures the NumPy memory a
step allocates. :func:`machine` is the line every report starts with, and
:func:`table` lays out the results as aligned text or Markdown.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np

from .. import _memory
from .._optional import available, optional


# ---------------------------------------------------------------------------- timing
def call_times(step, calls: int, clock=time.perf_counter) -> list[float]:
    """Seconds of each of ``calls`` calls of ``step``, measured with ``clock``."""
    times = []
    for _ in range(calls):
        start = clock()
        step()
        times.append(clock() - start)
    return times


def _round(step, steps: int) -> float:
    """Median seconds of ``steps`` timed calls, after one untimed call.

    The untimed call lets the other library's idle worker threads (OpenMP,
    OpenBLAS), which spin for a while after their last job, go to sleep
    before the clock starts.
    """
    step()
    return statistics.median(call_times(step, steps))


def settle_allocator(nbytes: int = 24 * 2**20) -> None:
    """Allocate and free one block of ``nbytes``, as loading a dataset does, before timing anything.

    glibc serves each allocation above its mmap threshold (128 KiB at
    first) with a fresh mapping and unmaps it when it is freed, so until
    the process has freed one large block, every big tensor costs page
    faults: PyTorch's step at batch 128 took 11 ms in a fresh process and
    6.8 ms after this (the threshold rises to the size of the largest block
    freed, up to 32 MiB). A training script reaches that state when it loads
    its data; the benchmark gets there explicitly, for both libraries.
    """
    block = np.ones(nbytes // 8)
    del block


def interleaved(steps: dict, rounds: int = 5, warmup: float = 0.5, round_seconds: float = 0.3) -> dict:
    """Time several step functions in alternating rounds; returns ``{name: [median seconds per round]}``.

    Each function first runs untimed for ``warmup`` seconds (at least 3
    calls); the number of calls per round is chosen from the slowest
    function so that a round lasts about ``round_seconds``. The order of the
    functions alternates from one round to the next, so none always runs
    right after the other.
    """
    estimate = 0.0
    for step in steps.values():
        start, calls = time.perf_counter(), 0
        while calls < 3 or time.perf_counter() - start < warmup:
            step()
            calls += 1
        start = time.perf_counter()
        step()
        estimate = max(estimate, time.perf_counter() - start)
    per_round = max(3, min(200, int(round_seconds / max(estimate, 1e-6))))
    names = list(steps)
    out = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            out[name].append(_round(steps[name], per_round))
    return out



def traced_peak(run) -> int:
    """Most bytes of NumPy arrays (and other traced allocations) alive at once while ``run()`` runs.

    strided's kept buffers (:mod:`strided._memory`) are released first, so
    they count afresh, as a first step sees them. NumPy reports its array
    allocations to ``tracemalloc``; PyTorch does not.
    """
    _memory.release()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


def gemm_rate(n: int = 1024, dtype=np.float32, seconds: float = 0.5, clock=time.perf_counter) -> float:
    """The machine's measured matrix-product rate in GFLOP/s: (n x n) @ (n x n) in NumPy, best of ``seconds`` of calls.

    It is the ceiling any convolution built on matrix products can reach
    with the BLAS and thread count in effect (set them first): the
    benchmarks print it beside their timings. 2 n^3 floating-point
    operations per product. ``clock``: ``time.thread_time`` to count the
    CPU time of a single-threaded BLAS instead of the wall-clock time.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    np.matmul(a, b, out=out)
    best, start = np.inf, time.perf_counter()
    while time.perf_counter() - start < seconds:
        best = min(best, call_times(lambda: np.matmul(a, b, out=out), 1, clock)[0])
    return 2 * n**3 / best / 1e9


# ---------------------------------------------------------------------------- reporting
def machine() -> str:
    """One line describing the machine and library versions the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f" (load average {os.getloadavg()[0]:.1f} at start)"
    parts = [f"{cpu}, {os.cpu_count()} cores{load}", f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for name, module in (("SciPy", "scipy"), ("torch", "torch")):
        if available(module):
            parts.append(f"{name} {optional(module).__version__}")
    return "; ".join(parts)


def table(header, lines, markdown: bool = False) -> str:
    """``lines`` (lists of strings, one per row) under ``header``: right-aligned columns, or a Markdown table."""
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * len(header)) + "|"]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*line) for line in lines])



# ---------------------------------------------------------------------------- command-line types
def positive_ints(text: str) -> list[int]:
    """argparse type: comma-separated positive ints (``"32,64"``)."""
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return out


def positive_int(text: str) -> int:
    """argparse type: one positive int."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return v
