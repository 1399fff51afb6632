"""LeNet-5 training, strided against PyTorch on the same CPU: ``strided bench lenet5``.

Seed 001 timed one MNIST epoch of LeNet-5 at about 4 h with naive loops,
6 min with im2col and 1 min with PyTorch, and concluded that NumPy must be
slower. This benchmark measures the claim on the machine it runs on:

1. it builds LeNet-5 (``strided.models.lenet5``) in both libraries, copies
   PyTorch's initial weights into strided and checks that the logits, the
   loss and every gradient agree (float32 rounding only) before timing;
2. for each batch size (32, 64, 128, 256) it times *training steps*
   (forward, ``CrossEntropyLoss``, backward, ``SGD(momentum=0.9)``) in
   alternating rounds, strided then PyTorch then strided ..., so that both
   see the same background load; after half a second of warm-up each,
   5 rounds, each round's median step time, the median over rounds, and
   their ratio (the process's allocator is first put in the state a
   training script reaches once it has loaded its data: ``settle_allocator``);
3. it trains one full Fashion-MNIST epoch (60,000 images) with each
   library, when the dataset is installed, or extrapolates one from the
   step time otherwise (and says so);
4. inference throughput in eval mode (images/s) and the peak memory of a
   training step.

PyTorch runs with ``torch.set_num_threads(2)``; strided with NumPy's
default BLAS threads. Without PyTorch, strided's figures are printed alone.

This module holds what is particular to the LeNet-5 report; the pieces it
is made of live beside it: :mod:`strided.bench.torch_twin` (the network in
both libraries, the training step, the agreement check),
:mod:`strided.bench.harness` (the alternating rounds, the allocator),
:mod:`strided.bench.memory` (the memory probe, run in a fresh process) and
:mod:`strided.bench.step_profile` (``--profile``).

    strided bench lenet5                          # everything (about a minute)
    strided bench lenet5 --batches 64,128 --no-epoch --no-memory
    strided bench lenet5 --profile                # where each millisecond of a step goes
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np

from .. import data, models, nn, optim
from .harness import interleaved, machine, positive_int, positive_ints, settle_allocator, table
from .memory import peak_memory
from .step_profile import profile_main
from .torch_twin import (
    LR,
    MOMENTUM,
    build_pair,
    check_agreement,
    import_torch,
    random_batch,
    strided_step,
    torch_step,
)

BATCHES = (32, 64, 128, 256)
# Seed 001, section III, for one MNIST epoch of LeNet-5.
SEED_001 = (("naive loops", "~4 h"), ("im2col", "~6 min"), ("PyTorch", "~1 min"))

def step_times(batches=BATCHES, rounds: int = 5, torch=None, dtype=np.float32, progress: bool = True) -> list[dict]:
    """Median ms/step of strided (and PyTorch) for each batch size; one dict per batch size."""
    rows = []
    for b in batches:
        x, y = random_batch(b, dtype)
        if torch is not None:
            model, tmodel = build_pair(torch, dtype)
            steps = {"strided": strided_step(model, x, y), "torch": torch_step(torch, tmodel, x, y)}
        else:
            steps = {"strided": strided_step(models.lenet5(dtype=dtype), x, y)}
        rounds_s = interleaved(steps, rounds)
        row = {"batch": b, **{f"{k}_ms": statistics.median(v) * 1e3 for k, v in rounds_s.items()},
               "rounds_ms": {k: [t * 1e3 for t in v] for k, v in rounds_s.items()}}
        if torch is not None:
            # the median of the per-round ratios: each compares two rounds run back to back
            row["ratio"] = statistics.median(s / t for s, t in zip(rounds_s["strided"], rounds_s["torch"]))
        rows.append(row)
        if progress:
            print(_step_line(row), file=sys.stderr, flush=True)
    return rows


def _step_line(row) -> str:
    s = f"  batch {row['batch']:>4}: strided {row['strided_ms']:7.2f} ms/step"
    if "torch_ms" in row:
        s += f", torch {row['torch_ms']:7.2f} ms/step, ratio {row['ratio']:.2f}"
    return s


# ---------------------------------------------------------------------------- a real epoch
def epoch_times(torch=None, batch: int = 64, dtype=np.float32, data_root=None, seed: int = 0) -> dict:
    """Seconds to train one full Fashion-MNIST epoch (60,000 images) with each library, or None without the data.

    Both loops draw the same shuffled, standardised batches with
    :func:`strided.data.batches` (PyTorch's wraps them with ``torch.from_numpy``),
    so the data pipeline costs them the same.
    """
    try:
        ds = data.load_dataset("fashion-mnist", root=data_root)
    except (FileNotFoundError, ValueError):
        return None
    std = data.Standardize().fit(ds.train.images)
    images, labels = ds.train.images, ds.train.labels
    out = {"images": len(images), "batch": batch}
    model, tmodel = build_pair(torch, dtype, seed) if torch is not None else (models.lenet5(dtype=dtype), None)

    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    start = time.perf_counter()
    for x, y in data.batches(images, labels, batch, rng=seed, standardize=std, dtype=dtype):
        opt.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward(), need_input_grad=False)
        opt.step()
    out["strided_s"] = time.perf_counter() - start
    if torch is not None:
        time.sleep(0.5)   # let strided's BLAS threads go idle
        tcrit = torch.nn.CrossEntropyLoss()
        topt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
        start = time.perf_counter()
        for x, y in data.batches(images, labels, batch, rng=seed, standardize=std, dtype=dtype):
            topt.zero_grad()
            tcrit(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            topt.step()
        out["torch_s"] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------------------- inference
def inference_throughput(torch=None, batch: int = 1000, images: int = 10000, rounds: int = 5,
                         dtype=np.float32) -> dict:
    """Images per second of the forward pass in eval mode over ``images`` images in batches of ``batch``."""
    x, _ = random_batch(images, dtype, seed=2)
    chunks = [x[i:i + batch] for i in range(0, images, batch)]
    if torch is not None:
        model, tmodel = build_pair(torch, dtype)
        tmodel.eval()
        tchunks = [torch.from_numpy(c) for c in chunks]

        def run_torch():
            with torch.inference_mode():
                for c in tchunks:
                    tmodel(c)
    else:
        model = models.lenet5(dtype=dtype)
    model.eval()

    def run_strided():
        for c in chunks:
            model(c)

    fns = {"strided": run_strided}
    if torch is not None:
        fns["torch"] = run_torch
    secs = interleaved(fns, rounds, warmup=0.0, round_seconds=0.0)
    return {"batch": batch, **{f"{k}_images_per_s": images / statistics.median(v) for k, v in secs.items()}}


# ---------------------------------------------------------------------------- output
def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_steps(rows, markdown: bool = False) -> str:
    has_torch = any("torch_ms" in r for r in rows)
    header = ["batch", "strided ms/step"] + (["PyTorch ms/step", "strided / PyTorch"] if has_torch else []) + \
             ["strided img/s"]
    lines = []
    for r in rows:
        line = [str(r["batch"]), f"{r['strided_ms']:.2f}"]
        if has_torch:
            line += [f"{r['torch_ms']:.2f}", f"{r['ratio']:.2f}"]
        line.append(f"{r['batch'] / r['strided_ms'] * 1e3:,.0f}")
        lines.append(line)
    return table(header, lines, markdown)


def _mib(nbytes) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strided bench lenet5", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=positive_ints, default=list(BATCHES),
                   help="comma-separated batch sizes (default 32,64,128,256)")
    p.add_argument("--rounds", type=positive_int, default=5, help="alternating timed rounds per batch size (default 5)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--torch-threads", type=positive_int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--no-torch", action="store_true", help="time strided alone even if PyTorch is installed")
    p.add_argument("--no-epoch", action="store_true", help="skip the full Fashion-MNIST epoch")
    p.add_argument("--epoch-batch", type=positive_int, default=64, help="batch size of the epoch (default 64)")
    p.add_argument("--data-root", help="where to look for fashion-mnist first (see strided datasets)")
    p.add_argument("--no-inference", action="store_true", help="skip the inference throughput")
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    p.add_argument("--markdown", action="store_true", help="print the step table as Markdown")
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    p.add_argument("--profile", action="store_true",
                   help="print where the time of one training step goes, per layer (see benchmarks/profile_lenet5.py)")
    return p

def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    dtype = np.dtype(args.dtype)
    if args.profile:
        return profile_main(["--batches", ",".join(map(str, args.batches)), "--dtype", args.dtype])
    torch = None if args.no_torch else import_torch(args.torch_threads)
    report = {"machine": machine(), "dtype": dtype.name}
    print(f"# {report['machine']}", flush=True)
    print(f"# LeNet-5 training step: forward + CrossEntropyLoss + backward + SGD(lr={LR}, momentum={MOMENTUM}), "
          f"{dtype.name}; PyTorch on {args.torch_threads} threads" if torch else
          f"# LeNet-5 training step, {dtype.name}; PyTorch not "
          f"{'requested' if args.no_torch else 'installed (pip install torch)'}: strided alone", flush=True)
    if torch is not None:
        model, tmodel = build_pair(torch, dtype)
        errors = check_agreement(model, tmodel, torch, dtype=dtype)
        report["agreement"] = errors
        print("# same weights, same batch: largest relative difference to PyTorch: "
              + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()), flush=True)

    settle_allocator()
    rows = step_times(args.batches, args.rounds, torch, dtype)
    report["steps"] = rows
    print(f"\nTraining step (median of {args.rounds} alternating rounds; ratio = median per-round "
          "strided/PyTorch; below 1: strided is faster):")
    print(format_steps(rows, args.markdown))

    if not args.no_epoch:
        ep = epoch_times(torch, args.epoch_batch, dtype, args.data_root)
        report["epoch"] = ep
        print(f"\nOne epoch of LeNet-5 (60,000 images; seed 001: {', '.join(f'{a} {b}' for a, b in SEED_001)}):")
        if ep is None:
            r = min(rows, key=lambda r: abs(r["batch"] - args.epoch_batch))
            steps = math.ceil(60000 / r["batch"])
            line = f"  fashion-mnist is not installed; extrapolated from batch {r['batch']}: " \
                   f"strided {_duration(steps * r['strided_ms'] / 1e3)}"
            if "torch_ms" in r:
                line += f", PyTorch {_duration(steps * r['torch_ms'] / 1e3)}"
            print(line + "  (strided datasets: how to install it)")
        else:
            line = f"  Fashion-MNIST, batch {ep['batch']}, measured: strided {_duration(ep['strided_s'])}"
            if "torch_s" in ep:
                line += f", PyTorch {_duration(ep['torch_s'])} (ratio {ep['strided_s'] / ep['torch_s']:.2f})"
            print(line)

    if not args.no_inference:
        inf = inference_throughput(torch, dtype=dtype)
        report["inference"] = inf
        line = f"\nInference (eval mode, batches of {inf['batch']}): strided {inf['strided_images_per_s']:,.0f} img/s"
        if "torch_images_per_s" in inf:
            line += f", PyTorch {inf['torch_images_per_s']:,.0f} img/s"
        print(line)

    if not args.no_memory:
        libs = ["strided"] + (["torch"] if torch is not None else [])
        mem = peak_memory(libs, batch=128, dtype=dtype)
        report["memory"] = mem
        print("\nPeak memory of 10 training steps at batch 128 (growth of the peak resident size, each library in a "
              "fresh process):")
        for lib, m in mem.items():
            if "error" in m:
                print(f"  {lib}: not measured ({m['error']})")
                continue
            extra = (f"; NumPy arrays at most {_mib(m['traced_peak'])} at once (tracemalloc)"
                     if "traced_peak" in m else "")
            print(f"  {lib}: {_mib(m['rss_growth'])}{extra}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
