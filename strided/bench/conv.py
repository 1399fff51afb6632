"""Time every convolution algorithm on a suite of layer shapes: ``strided bench conv``.

For each case and each algorithm of :mod:`strided.conv` that supports it,
one *step* is a forward pass and both gradients (input and weight), as in
training. The algorithms of a case are timed in interleaved rounds (one
step of each in turn), so a change in the machine's load affects them
alike. The table reports the median step time over the rounds (after a
warm-up), its ratio to ``torch.nn.functional.conv2d`` (forward +
autograd backward, timed in a phase of its own) when PyTorch is installed, and the peak
memory allocated on top of the inputs during one step, measured with
``tracemalloc`` (NumPy reports its array allocations to it).

    strided bench conv                      # the whole suite
    strided bench conv --cases lenet-conv1,lenet-conv2 --batch 128
    strided bench conv --algorithms window_rows,fft --dtype float64 --markdown
    strided bench conv --threads 1          # torch and BLAS on one thread each (needs threadpoolctl)
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import _parallel, conv
from .._optional import optional
from ..geometry import ConvGeometry
from .harness import call_times, gemm_rate, machine, traced_peak


@dataclass(frozen=True)
class Case:
    """One convolution layer: x: (batch, C, H, W), w: (O, C/groups, kh, kw)."""

    name: str
    x_shape: tuple
    w_shape: tuple
    stride: int | tuple = 1
    padding: int | tuple = 0
    groups: int = 1
    dilation: int | tuple = 1

    def with_batch(self, batch: int) -> Case:
        return Case(self.name, (batch, *self.x_shape[1:]), self.w_shape, self.stride, self.padding, self.groups,
                    self.dilation)

    def geometry(self) -> ConvGeometry:
        return ConvGeometry.create(self.x_shape, self.w_shape, self.stride, self.padding, self.dilation, self.groups)

    def describe(self) -> str:
        o, cg, kh, kw = self.w_shape
        n, c, h, w = self.x_shape
        extra = "".join(f" {k}={v}" for k, v, default in (("stride", self.stride, 1), ("padding", self.padding, 0),
                                                          ("dilation", self.dilation, 1), ("groups", self.groups, 1))
                        if v != default)
        return f"{n}x{c}x{h}x{w} * {o}x{cg}x{kh}x{kw}{extra}"


SUITE = (
    Case("lenet-conv1", (64, 1, 28, 28), (6, 1, 5, 5), padding=2),
    Case("lenet-conv2", (64, 6, 14, 14), (16, 6, 5, 5)),
    Case("vgg-3x3", (32, 64, 32, 32), (64, 64, 3, 3), padding=1),
    Case("pointwise-1x1", (32, 64, 32, 32), (128, 64, 1, 1)),
    Case("stem-7x7-s2", (8, 3, 112, 112), (64, 3, 7, 7), stride=2, padding=3),
    Case("depthwise-3x3", (32, 64, 32, 32), (64, 1, 3, 3), padding=1, groups=64),
    Case("large-11x11", (16, 8, 64, 64), (16, 8, 11, 11), padding=5),
    # the 3x3 layers of the residual networks (strided.models): resnet20's first stage, fashion_resnet's blocks
    Case("resnet20-3x3", (128, 16, 32, 32), (16, 16, 3, 3), padding=1),
    Case("fresnet-32", (128, 32, 14, 14), (32, 32, 3, 3), padding=1),
    Case("fresnet-64", (128, 64, 7, 7), (64, 64, 3, 3), padding=1),
    Case("fresnet-128", (128, 128, 4, 4), (128, 128, 3, 3), padding=1),
)


@dataclass
class Row:
    case: Case
    algorithm: str
    ms: float | None = None          # median step time
    peak_mib: float | None = None    # extra memory during one step
    note: str = ""


def _inputs(case: Case, dtype):
    rng = np.random.default_rng(0)
    geom = case.geometry()
    x = rng.standard_normal(geom.x_shape).astype(dtype)
    w = (rng.standard_normal(geom.weight_shape) / np.sqrt(np.prod(geom.weight_shape[1:]))).astype(dtype)
    dy = rng.standard_normal(geom.y_shape).astype(dtype)
    return geom, x, w, dy


def _median_ms(steps: dict, repeat: int, budget: float) -> dict:
    """Median ms per step of each callable in ``steps``, timed in interleaved rounds.

    Each step runs once to warm up, then up to ``repeat`` rounds time every
    step once, in turn, so a change in the machine's load touches all of
    them alike. A step stops being repeated once it has used ``budget`` seconds.
    """
    for step in steps.values():
        step()
    times = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            if sum(times[name]) <= budget:
                times[name] += call_times(step, 1)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def _peak_mib(step) -> float:
    return traced_peak(step) / 2**20


def _conv_step(alg, geom, x, w, dy):
    if hasattr(alg, "backward"):           # both gradients in one pass, as the layers call it
        def step():
            _, saved = alg.forward(x, w, geom)
            alg.backward(dy, x, w, geom, saved, True, True, False)
        return step

    def step():
        _, saved = alg.forward(x, w, geom)
        alg.grad_input(dy, w, geom, saved)
        alg.grad_weight(dy, x, geom, saved)
    return step


def time_algorithms(case: Case, names, dtype=np.float32, repeat: int = 7, budget: float = 5.0) -> list[Row]:
    """Time forward + grad_input + grad_weight of each algorithm in ``names`` on one case, interleaved."""
    geom, x, w, dy = _inputs(case, dtype)
    rows, steps = {}, {}
    for name in names:
        alg = conv.get(name)
        why = alg.supports(geom, np.dtype(dtype))
        if why is None:
            steps[name] = _conv_step(alg, geom, x, w, dy)
        else:
            rows[name] = Row(case, name, note=f"unsupported: {why}")
    for name, ms in _median_ms(steps, repeat, budget).items():
        rows[name] = Row(case, name, ms, _peak_mib(steps[name]))
    return [rows[name] for name in names]


def time_torch(case: Case, dtype=np.float32, repeat: int = 7, budget: float = 5.0, threads: int = 2) -> Row:
    """Time ``torch.nn.functional.conv2d`` forward + autograd backward for both inputs."""
    torch = optional("torch")
    if torch is None:
        return Row(case, "torch", note="not installed (pip install torch)")
    _, x, w, dy = _inputs(case, dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    dyt = torch.from_numpy(dy)

    def step():
        y = torch.nn.functional.conv2d(xt, wt, None, case.stride, case.padding, case.dilation, case.groups)
        torch.autograd.grad(y, (xt, wt), dyt)

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ms = _median_ms({"torch": step}, repeat, budget)["torch"]
    finally:
        torch.set_num_threads(before)
    return Row(case, "torch", ms, note="memory not visible to tracemalloc")


def run(cases=SUITE, algorithms=None, dtype=np.float32, repeat: int = 7, budget: float = 5.0,
        with_torch: bool = True, progress=None, threads: int = 2) -> list[Row]:
    """Benchmark ``algorithms`` (default: all) on ``cases``; returns one Row per (case, algorithm)."""
    algorithms = list(conv.ALGORITHMS) if algorithms is None else list(algorithms)
    rows = {}
    for case in cases:
        for row in time_algorithms(case, algorithms, dtype, repeat, budget):
            rows[case.name, row.algorithm] = row
            if progress:
                progress(row)
    if with_torch:
        # torch runs in its own phase, after a pause: a library's idle worker threads spin for a
        # while after their last job, and threads woken from sleep start slowly, so alternating
        # torch with NumPy step by step would measure each library's warm-up, not its speed
        time.sleep(1.0)
        for case in cases:
            rows[case.name, "torch"] = time_torch(case, dtype, repeat, budget, threads)
            if progress:
                progress(rows[case.name, "torch"])
    order = (["torch"] if with_torch else []) + algorithms
    return [rows[case.name, name] for case in cases for name in order]


def format_table(rows: list[Row], markdown: bool = False) -> str:
    """One line per (case, algorithm): median ms, ratio to torch, peak extra MiB; the fastest marked."""
    torch_ms = {r.case.name: r.ms for r in rows if r.algorithm == "torch" and r.ms}
    best = {}
    for r in rows:
        if r.ms is not None and r.algorithm != "torch":
            best[r.case.name] = min(best.get(r.case.name, np.inf), r.ms)
    header = ("case", "algorithm", "ms/step", "vs torch", "peak MiB", "note")
    lines = []
    for r in rows:
        ratio = f"{r.ms / torch_ms[r.case.name]:.2f}x" if r.ms and r.case.name in torch_ms else "-"
        if r.algorithm == "torch":
            ratio = "1.00x" if r.ms else "-"
        mark = " *" if r.ms is not None and r.algorithm != "torch" and r.ms == best.get(r.case.name) else ""
        lines.append((r.case.name, r.algorithm + mark, "-" if r.ms is None else f"{r.ms:.2f}", ratio,
                      "-" if r.peak_mib is None else f"{r.peak_mib:.1f}", r.note))
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 1, 5) else '>'}{wd}}}" for i, wd in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * wd for wd in widths))]
    previous = None
    for line in lines:
        if previous is not None and line[0] != previous:
            out.append("")
        previous = line[0]
        out.append(fmt.format(*line).rstrip())
    return "\n".join(out)


@contextlib.contextmanager
def threads_limited(threads: int):
    """Run the block with ``threads`` threads for strided's own pool and for NumPy's BLAS.

    Yields a description of what is in effect. BLAS threads need threadpoolctl.
    """
    before = _parallel.num_threads()
    _parallel.set_num_threads(threads)
    try:
        threadpoolctl = optional("threadpoolctl")
        if threadpoolctl is None:
            yield (f"strided threads: {threads}; BLAS threads: library default (pip install threadpoolctl, "
                   "or strided[speed], to set them; or set OPENBLAS_NUM_THREADS)")
            return
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            counts = sorted({info["num_threads"] for info in threadpoolctl.threadpool_info()
                             if info["user_api"] == "blas"})
            yield f"strided threads: {threads}; BLAS threads: {', '.join(map(str, counts)) or 'none found'}"
    finally:
        _parallel.set_num_threads(before)


def _csv(text: str, name: str, options) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    for item in items:
        if item not in options:
            raise ValueError(f"unknown {name} {item!r}; expected one of: {', '.join(options)}")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strided bench conv", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", help="comma-separated case names (default: all): " + ", ".join(c.name for c in SUITE))
    p.add_argument("--algorithms", help="comma-separated algorithm names (default: all): " + ", ".join(conv.ALGORITHMS))
    p.add_argument("--skip", default="", help="algorithms to leave out, e.g. naive,im2col")
    p.add_argument("--batch", type=int, help="override every case's batch size")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per algorithm after one warm-up (default 7)")
    p.add_argument("--budget", type=float, default=5.0,
                   help="stop repeating an algorithm after this many seconds (default 5)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for torch, strided's thread pool and NumPy's BLAS (BLAS needs threadpoolctl; "
                        "default 2)")
    p.add_argument("--no-torch", action="store_true", help="do not time torch even if it is installed")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    by_name = {c.name: c for c in SUITE}
    try:
        cases = [by_name[n] for n in _csv(args.cases, "case", list(by_name))] if args.cases else list(SUITE)
        accepted = list(conv.names()[1:])          # the algorithms and their aliases
        algorithms = _csv(args.algorithms, "algorithm", accepted) if args.algorithms else list(conv.ALGORITHMS)
        skip = set(_csv(args.skip, "algorithm", accepted))
        if args.batch is not None and args.batch < 1:
            raise ValueError(f"--batch must be a positive int, got {args.batch}")
        if args.repeat < 1:
            raise ValueError(f"--repeat must be a positive int, got {args.repeat}")
        if args.threads < 1:
            raise ValueError(f"--threads must be a positive int, got {args.threads}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.batch is not None:
        cases = [c.with_batch(args.batch) for c in cases]
    algorithms = [a for a in algorithms if a not in skip]

    def progress(row):
        shown = "-" if row.ms is None else f"{row.ms:.2f} ms"
        print(f"  {row.case.name:<14} {row.algorithm:<9} {shown}", file=sys.stderr, flush=True)

    with threads_limited(args.threads) as limits:
        print(f"# {machine()}", flush=True)
        print(f"# {args.dtype}; one step = forward + grad_input + grad_weight; median of up to {args.repeat} runs; "
              f"{limits}; torch threads: {args.threads}", flush=True)
        print(f"# float32 matrix product (1024 x 1024 x 1024, NumPy) on these threads: {gemm_rate():.0f} GFLOP/s",
              flush=True)
        for c in cases:
            print(f"# {c.name}: {c.describe()}", flush=True)
        rows = run(cases, algorithms, np.dtype(args.dtype), args.repeat, args.budget, not args.no_torch, progress,
                   threads=args.threads)
    print()
    print(format_table(rows, markdown=args.markdown))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
