"""Whole networks, strided against PyTorch on the same CPU: ``strided bench models``.

For each (model, batch size) of the zoo (:data:`strided.models.MODELS`) and
each thread count, this benchmark

1. builds the model in strided, converts it to PyTorch with
   :func:`strided.io.to_torch` (same weights) and checks that the logits,
   the loss and every gradient of one step agree, in float64 (to 1e-10),
   before timing anything;
2. times *training steps* (forward, ``CrossEntropyLoss``, backward,
   ``SGD(momentum=0.9)``) and *inference* (the forward pass in eval mode,
   PyTorch under ``torch.inference_mode``) of both libraries in alternating
   rounds (:func:`strided.bench.harness.interleaved`), so that both see the
   same background load, and reports the median over rounds, the median of
   the per-round ratios strided / PyTorch and their range;
3. measures the peak extra memory of a training step of each library, each
   in a fresh process (:mod:`strided.bench.memory`: growth of the peak
   resident size over 10 steps);
4. prints the machine's float32 matrix-product rate on the same threads
   (:func:`strided.bench.harness.gemm_rate`), the ceiling of every
   convolution built on products.

Both libraries run on the same number of threads: strided's pool and
NumPy's BLAS (BLAS needs threadpoolctl) and ``torch.set_num_threads``.

    strided bench models                                  # the whole suite on 1 and 2 threads (several minutes)
    strided bench models --models resnet20:128 --threads 2 --rounds 7
    strided bench models --models lenet5:64,cifar_cnn:64 --no-memory --markdown
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, field

import numpy as np

from .. import models
from .._optional import optional
from .conv import threads_limited
from .harness import gemm_rate, interleaved, machine, positive_int, positive_ints, settle_allocator, table
from .memory import peak_memory
from .torch_twin import check_agreement, model_pair, random_batch, strided_step, torch_step

#: (model name, batch size) pairs timed by default
SUITE = (("lenet5", 64), ("lenet5", 128), ("fashion_cnn", 128), ("cifar_cnn", 64), ("resnet20", 128),
         ("fashion_resnet", 128))


@dataclass
class Result:
    """The figures of one (model, batch, threads): seconds per round of each timed step, memory in bytes."""

    model: str
    batch: int
    threads: int
    rounds: dict = field(default_factory=dict)     # "train"/"infer" -> {"strided": [s], "torch": [s]}
    memory: dict = field(default_factory=dict)     # library -> rss growth in bytes (None when not measured)

    def median_ms(self, what: str, lib: str) -> float | None:
        times = self.rounds.get(what, {}).get(lib)
        return None if not times else statistics.median(times) * 1e3

    def ratios(self, what: str) -> list[float]:
        """Per-round strided / PyTorch ratios (each compares two rounds run back to back)."""
        r = self.rounds.get(what, {})
        if "torch" not in r:
            return []
        return [s / t for s, t in zip(r["strided"], r["torch"])]


def parse_models(text: str) -> list[tuple[str, int]]:
    """argparse type: ``"lenet5:64,resnet20:128"`` -> [("lenet5", 64), ("resnet20", 128)]."""
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, _, batch = item.partition(":")
        if name not in models.MODELS:
            raise argparse.ArgumentTypeError(f"unknown model {name!r}; expected one of: {', '.join(models.MODELS)}")
        try:
            out.append((name, positive_int(batch)))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected MODEL:BATCH with a positive batch, got {item!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated MODEL:BATCH pairs, got {text!r}")
    return out


def time_model(name: str, batch: int, threads: int, torch=None, rounds: int = 5, dtype=np.float32,
               check: bool = True) -> Result:
    """Training steps and inference of zoo model ``name`` at ``batch``, both libraries on ``threads`` threads."""
    shape = models.MODELS[name][1]
    x, y = random_batch(batch, dtype, shape=shape)
    res = Result(name, batch, threads)
    with threads_limited(threads):
        if torch is None:
            train = {"strided": strided_step(models.get_model(name, dtype=dtype), x, y)}
            emodel = models.get_model(name, dtype=dtype).eval()
            infer = {"strided": lambda: emodel(x)}
        else:
            torch.set_num_threads(threads)
            if check:
                # in float64: a float32 rounding difference can flip a ReLU's kink in a deep network and move
                # a gradient entry by far more than rounding, so the check that both compute the same thing
                # runs where rounding cannot hide a difference
                check_agreement(*model_pair(torch, name, np.float64), torch, batch=min(batch, 16), dtype=np.float64,
                                shape=shape)
            model, tmodel = model_pair(torch, name, dtype)
            train = {"strided": strided_step(model, x, y), "torch": torch_step(torch, tmodel, x, y)}
            emodel, etmodel = model_pair(torch, name, dtype)
            emodel.eval()
            etmodel.eval()
            tx = torch.from_numpy(x)

            def torch_infer():
                with torch.inference_mode():
                    etmodel(tx)
            infer = {"strided": lambda: emodel(x), "torch": torch_infer}
        res.rounds["train"] = interleaved(train, rounds)
        res.rounds["infer"] = interleaved(infer, rounds)
    return res


def _ms(v) -> str:
    return "-" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _ratio(values) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _mib(nbytes) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.0f}"


def format_results(results: list[Result], markdown: bool = False) -> str:
    """One line per (model, batch, threads): train and inference ms of both libraries, ratios, memory (MiB)."""
    header = ["model", "batch", "threads", "train strided ms", "torch ms", "ratio (range)",
              "infer strided ms", "torch ms", "ratio (range)", "mem strided MiB", "torch MiB"]
    lines = []
    for r in results:
        lines.append([r.model, str(r.batch), str(r.threads),
                      _ms(r.median_ms("train", "strided")), _ms(r.median_ms("train", "torch")), _ratio(r.ratios("train")),
                      _ms(r.median_ms("infer", "strided")), _ms(r.median_ms("infer", "torch")), _ratio(r.ratios("infer")),
                      _mib(r.memory.get("strided")), _mib(r.memory.get("torch"))])
    return table(header, lines, markdown)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strided bench models", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=parse_models, default=list(SUITE), metavar="MODEL:BATCH,...",
                   help="models and batch sizes (default: " + ",".join(f"{m}:{b}" for m, b in SUITE) + ")")
    p.add_argument("--threads", type=positive_ints, default=[1, 2],
                   help="comma-separated thread counts, each timed in turn (default 1,2)")
    p.add_argument("--rounds", type=positive_int, default=5, help="alternating timed rounds (default 5)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--no-torch", action="store_true", help="time strided alone even if PyTorch is installed")
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    torch = None if args.no_torch else optional("torch")
    before = None if torch is None else torch.get_num_threads()
    try:
        return _run(args, torch)
    finally:
        if torch is not None:
            torch.set_num_threads(before)       # the caller's setting, as it was


def _run(args, torch) -> int:
    dtype = np.dtype(args.dtype)
    libs = ["strided"] + (["torch"] if torch is not None else [])
    print(f"# {machine()}", flush=True)
    print(f"# training step: forward + CrossEntropyLoss + backward + SGD(momentum=0.9); inference: forward in eval "
          f"mode; {dtype.name}; both libraries on the same number of threads; "
          + ("PyTorch's twin built with strided.io.to_torch, checked to agree in float64 before timing" if torch else
             f"PyTorch {'not requested' if args.no_torch else 'not installed (pip install torch)'}: strided alone"),
          flush=True)
    for t in args.threads:
        with threads_limited(t) as limits:
            print(f"# float32 matrix product (1024 x 1024 x 1024, NumPy): {gemm_rate():.0f} GFLOP/s; {limits}",
                  flush=True)
    settle_allocator()
    results = []
    for name, batch in args.models:
        for t in args.threads:
            r = time_model(name, batch, t, torch, args.rounds, dtype)
            results.append(r)
            print(f"  {name} batch {batch}, {t} thread(s): train {_ms(r.median_ms('train', 'strided'))} ms"
                  + (f" vs {_ms(r.median_ms('train', 'torch'))} ms ({_ratio(r.ratios('train'))})" if torch else ""),
                  file=sys.stderr, flush=True)
        if not args.no_memory:
            mem = peak_memory(libs, batch, dtype, name)
            for r in results[-len(args.threads):]:
                r.memory = {lib: m.get("rss_growth") for lib, m in mem.items()}
    print(f"\nms: median over {args.rounds} alternating rounds; ratio: median (and range) of the per-round "
          "strided / PyTorch ratios, below 1: strided is faster"
          + ("" if args.no_memory else "; mem: peak extra resident memory of 10 training steps, each library in a "
             "fresh process (PyTorch's with 2 threads)") + ":")
    print(format_results(results, args.markdown))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
