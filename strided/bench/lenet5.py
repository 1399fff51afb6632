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

    strided bench lenet5                          # everything (about a minute)
    strided bench lenet5 --batches 64,128 --no-epoch --no-memory
    strided bench lenet5 --profile                # where each millisecond of a step goes
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np

from .. import _parallel, data, models, nn, optim
from .conv import machine

BATCHES = (32, 64, 128, 256)
LR, MOMENTUM = 0.01, 0.9
# Seed 001, section III, for one MNIST epoch of LeNet-5.
SEED_001 = (("naive loops", "~4 h"), ("im2col", "~6 min"), ("PyTorch", "~1 min"))


# ---------------------------------------------------------------------------- the two networks
def torch_lenet5(torch, num_classes: int = 10, in_channels: int = 1):
    """PyTorch's LeNet-5, module for module :func:`strided.models.lenet5` (same state-dict names)."""
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(in_channels, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120), tnn.Tanh(),
        tnn.Linear(120, 84), tnn.Tanh(),
        tnn.Linear(84, num_classes),
    )


def build_pair(torch, dtype=np.float32, seed: int = 0):
    """``(model, tmodel)``: PyTorch's freshly initialised LeNet-5 and strided's with the same weights."""
    torch.manual_seed(seed)
    tmodel = torch_lenet5(torch)
    if np.dtype(dtype) == np.float64:
        tmodel = tmodel.double()
    model = models.lenet5(dtype=dtype)
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    return model, tmodel


def random_batch(batch: int, dtype=np.float32, seed: int = 0):
    """x: (batch, 1, 28, 28) standardised noise, y: (batch,) labels; a step's time does not depend on the values."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 1, 28, 28)).astype(dtype), rng.integers(0, 10, batch)


def check_agreement(model, tmodel, torch, batch: int = 64, dtype=np.float32) -> dict:
    """Logits, loss and every parameter gradient of one step in both libraries; returns the largest relative errors.

    Errors are ``max |a - b| / max |b|`` per array (b being PyTorch's).
    Raises ``AssertionError`` when any exceeds 1e-4 (float32) or 1e-10 (float64):
    the timings below would not compare the same computation.
    """
    x, y = random_batch(batch, dtype, seed=1)
    crit, tcrit = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    model.zero_grad()
    tmodel.zero_grad()
    logits = model(x)
    loss = crit(logits, y)
    model.backward(crit.backward(), need_input_grad=False)
    tlogits = tmodel(torch.from_numpy(x))
    tloss = tcrit(tlogits, torch.from_numpy(y))
    tloss.backward()

    def rel(a, b):
        b = np.asarray(b, dtype=np.float64)
        return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))

    errors = {"logits": rel(logits, tlogits.detach().numpy()), "loss": rel(loss, tloss.item())}
    tparams = dict(tmodel.named_parameters())
    grads = [rel(p.grad, tparams[name].grad.numpy()) for name, p in model.named_parameters()]
    errors["gradients"] = max(grads)
    model.zero_grad()
    tmodel.zero_grad()
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    bad = {k: v for k, v in errors.items() if not v <= tol}
    if bad:
        raise AssertionError(f"strided and PyTorch disagree beyond {tol:g} (relative): {bad}")
    return errors


def strided_step(model, x, y):
    """One training step of ``model`` on (x, y): forward, cross-entropy, backward, SGD with momentum."""
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad()
        crit(model(x), y)
        model.backward(crit.backward(), need_input_grad=False)
        opt.step()
    return step


def torch_step(torch, tmodel, x, y):
    """The same training step in PyTorch."""
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        crit(tmodel(tx), ty).backward()
        opt.step()
    return step


# ---------------------------------------------------------------------------- timing
def _round(step, steps: int) -> float:
    """Median seconds of ``steps`` timed calls, after one untimed call.

    The untimed call lets the other library's idle worker threads (OpenMP,
    OpenBLAS), which spin for a while after their last job, go to sleep
    before the clock starts.
    """
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


# ---------------------------------------------------------------------------- memory
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


def _memory_probe(library: str, batch: int, dtype: str) -> dict:
    """Run in a fresh process: growth of the peak resident memory over 10 training steps (bytes).

    The baseline is the resident size once the model, the batch and the
    library are loaded, so only what the steps allocate counts. For strided
    a second, separate run of 10 steps under ``tracemalloc`` (which NumPy
    reports its arrays to) gives the most array memory alive at once, the
    buffers kept between steps included.
    """
    x, y = random_batch(batch, dtype)
    if library == "torch":
        import torch
        torch.set_num_threads(2)
        step = torch_step(torch, build_pair(torch, dtype)[1], x, y)
    else:
        step = strided_step(models.lenet5(dtype=dtype), x, y)
    base = _rss_bytes()
    for _ in range(10):
        step()
    # VmHWM, not getrusage's ru_maxrss: after fork + exec the latter starts from the parent's size
    peak = _proc_status("VmHWM")
    out = {"rss_growth": None if base is None or peak is None else max(0, peak - base)}
    if library == "strided":
        from .. import _memory
        del step
        _memory.release()
        tracemalloc.start()
        step = strided_step(models.lenet5(dtype=dtype), x, y)
        for _ in range(10):
            step()
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def peak_memory(libraries, batch: int = 128, dtype=np.float32) -> dict:
    """``{library: {"rss_growth": bytes, "traced_peak": bytes (strided)}}``, each measured in its own process."""
    out = {}
    for lib in libraries:
        cmd = [sys.executable, "-m", "strided.bench.lenet5", "--memory-probe", lib, "--probe-batch", str(batch),
               "--dtype", np.dtype(dtype).name]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
            out[lib] = json.loads(res.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError, OSError) as exc:
            out[lib] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    return out


# ---------------------------------------------------------------------------- profile
def _layer_name(i, layer) -> str:
    return f"{i} {type(layer).__name__}"


def _time_steps(step, steps: int, clock) -> list:
    """Seconds of each of ``steps`` whole training steps, for the profile's total."""
    whole = []
    for _ in range(steps):
        t = clock()
        step()
        whole.append(clock() - t)
    return whole


def profile_strided(model, x, y, steps: int = 30, warmup: int = 5, clock=time.perf_counter) -> dict:
    """Where one training step of a strided ``Sequential`` spends its time.

    Times every layer's forward and backward, the loss (forward and
    backward) and the optimizer step separately in each of ``steps``
    instrumented steps; returns medians in seconds:
    ``{"layers": [(name, forward, backward)], "loss": s, "optimizer": s, "step": s}``
    where ``step`` is the median of as many *un*instrumented steps.
    ``clock`` may be ``time.thread_time`` (CPU time, insensitive to other
    processes) when everything runs on the calling thread.
    """
    layers = list(model)
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    fwd = [[] for _ in layers]
    bwd = [[] for _ in layers]
    loss_t, opt_t = [], []
    for it in range(warmup + steps):
        opt.zero_grad()
        h = x
        for i, layer in enumerate(layers):
            t = clock()
            h = layer(h)
            fwd[i].append(clock() - t)
        t = clock()
        crit(h, y)
        d = crit.backward()
        loss_t.append(clock() - t)
        for i in range(len(layers) - 1, -1, -1):
            t = clock()
            d = layers[i].backward(d, need_input_grad=i > 0)
            bwd[i].append(clock() - t)
        t = clock()
        opt.step()
        opt_t.append(clock() - t)
    med = lambda v: statistics.median(v[warmup:])
    whole = _time_steps(strided_step(model, x, y), steps, clock)
    return {"layers": [(_layer_name(i, layer), med(fwd[i]), med(bwd[i])) for i, layer in enumerate(layers)],
            "loss": med(loss_t), "optimizer": med(opt_t), "step": statistics.median(whole)}


def profile_torch(torch, tmodel, x, y, steps: int = 30, warmup: int = 5, clock=time.perf_counter) -> dict:
    """The same table for PyTorch, timed with module hooks (which add a little overhead of their own)."""
    layers = list(tmodel)
    fwd = [[] for _ in layers]
    bwd = [[] for _ in layers]
    start = {}
    handles = []
    for i, layer in enumerate(layers):
        handles += [
            layer.register_forward_pre_hook(lambda m, inp, i=i: start.__setitem__(("f", i), clock())),
            layer.register_forward_hook(lambda m, inp, out, i=i: fwd[i].append(clock() - start[("f", i)])),
            layer.register_full_backward_pre_hook(lambda m, g, i=i: start.__setitem__(("b", i), clock())),
        ]
        if i > 0:
            # the first layer's input needs no gradient, so its hook would fire before the weight gradient
            # is computed; its backward is timed up to the end of loss.backward() instead
            handles.append(layer.register_full_backward_hook(
                lambda m, gi, go, i=i: bwd[i].append(clock() - start[("b", i)])))
    crit = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    loss_t, opt_t = [], []
    saved_filters = list(warnings.filters)
    try:
        warnings.filterwarnings("ignore", message="Full backward hook is firing")   # the first layer, see above
        for _ in range(warmup + steps):
            opt.zero_grad()
            out = tmodel(tx)
            t = clock()
            loss = crit(out, ty)
            loss_t.append(clock() - t)
            loss.backward()
            t = clock()
            bwd[0].append(t - start[("b", 0)])
            opt.step()
            opt_t.append(clock() - t)
    finally:
        for h in handles:
            h.remove()
        warnings.filters[:] = saved_filters
    med = lambda v: statistics.median(v[warmup:]) if len(v) > warmup else float("nan")
    whole = _time_steps(torch_step(torch, tmodel, x, y), steps, clock)
    return {"layers": [(_layer_name(i, layer), med(fwd[i]), med(bwd[i])) for i, layer in enumerate(layers)],
            "loss": med(loss_t), "optimizer": med(opt_t), "step": statistics.median(whole)}


def format_profile(prof: dict, other: dict | None = None, names=("strided", "PyTorch")) -> str:
    """A table of ms and share of the whole step per layer, forward and backward, beside ``other``'s."""
    def rows_of(p):
        rows = [(f, b) for _, f, b in p["layers"]] + [(p["loss"], None), (p["optimizer"], None)]
        timed = sum(f + (b or 0.0) for f, b in rows)
        return rows + [(p["step"] - timed, None), (p["step"], None)]

    def cells(p):
        out = []
        for f, b in rows_of(p):
            out.append([f"{f * 1e3:.3f}", "" if b is None else f"{b * 1e3:.3f}",
                        f"{(f + (b or 0.0)) / p['step']:.0%}"])
        out[-1][2] = ""                   # the whole step is 100% of itself
        return out

    labels = [n for n, _, _ in prof["layers"]] + ["loss (forward + backward)", "optimizer step",
                                                  "between the timed parts", "whole step (untimed run)"]
    header = ["", f"{names[0]} fwd ms", "bwd ms", "share"]
    parts = [cells(prof)]
    if other is not None:
        header += [f"{names[1]} fwd ms", "bwd ms", "share"]
        parts.append(cells(other))
    lines = [[label] + [c for part in parts for c in part[i]] for i, label in enumerate(labels)]
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    fmt = "  ".join(("{:<%d}" if k == 0 else "{:>%d}") % w for k, w in enumerate(widths))
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*line) for line in lines])


def profile_main(argv=None) -> int:
    """``benchmarks/profile_lenet5.py`` / ``strided bench lenet5 --profile``: the per-layer profile of a step."""
    p = argparse.ArgumentParser(prog="benchmarks/profile_lenet5.py",
                                description="Where each millisecond of a LeNet-5 training step goes, per layer.")
    p.add_argument("--batches", type=_batches, default=[128], help="comma-separated batch sizes (default 128)")
    p.add_argument("--steps", type=_positive, default=40, help="instrumented steps (default 40)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--no-torch", action="store_true", help="profile strided alone")
    p.add_argument("--one-thread", action="store_true",
                   help="run both libraries on one thread (strided's pool off, BLAS and torch on one thread) and "
                        "time CPU time: the work per layer, unaffected by other processes on the machine")
    p.add_argument("--functions", type=int, default=0, metavar="N",
                   help="also print the N functions with the most own time (cProfile)")
    args = p.parse_args(argv)
    dtype = np.dtype(args.dtype)
    torch = None if args.no_torch else _import_torch(1 if args.one_thread else 2)
    clock = time.perf_counter
    with contextlib.ExitStack() as stack:
        if args.one_thread:
            clock = time.thread_time
            old = _parallel.num_threads()
            _parallel.set_num_threads(1)
            stack.callback(_parallel.set_num_threads, old)
            if _parallel.can_limit_blas():
                stack.enter_context(_parallel.single_threaded_blas())
            else:
                print("# threadpoolctl is not installed (pip install strided[speed]): BLAS keeps its threads, "
                      "and their work is not in the CPU time of this thread")
        print(f"# {machine()}")
        settle_allocator()
        how = ("one thread, CPU time of the thread" if args.one_thread else
               f"wall-clock time; strided on {_parallel.num_threads()} threads, PyTorch on 2")
        for b in args.batches:
            x, y = random_batch(b, dtype)
            if torch is not None:
                model, tmodel = build_pair(torch, dtype)
                theirs = profile_torch(torch, tmodel, x, y, args.steps, clock=clock)
            else:
                model, theirs = models.lenet5(dtype=dtype), None
            ours = profile_strided(model, x, y, args.steps, clock=clock)
            print(f"\nbatch {b}, {dtype.name}, {how}: median per step over {args.steps} steps "
                  f"(forward, backward: the layer's own time; share: of the whole step)")
            print(format_profile(ours, theirs))
            if args.functions:
                import cProfile
                import pstats
                step = strided_step(model, x, y)
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(args.steps):
                    step()
                prof.disable()
                print(f"\nstrided, {args.functions} functions with the most own time over {args.steps} steps:")
                pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(args.functions)
    return 0


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
    return _table(header, lines, markdown)


def _table(header, lines, markdown) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * len(header)) + "|"]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*line) for line in lines])


def _mib(nbytes) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------- command line
def _batches(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    return out


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strided bench lenet5", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=_batches, default=list(BATCHES),
                   help="comma-separated batch sizes (default 32,64,128,256)")
    p.add_argument("--rounds", type=_positive, default=5, help="alternating timed rounds per batch size (default 5)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--torch-threads", type=_positive, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--no-torch", action="store_true", help="time strided alone even if PyTorch is installed")
    p.add_argument("--no-epoch", action="store_true", help="skip the full Fashion-MNIST epoch")
    p.add_argument("--epoch-batch", type=_positive, default=64, help="batch size of the epoch (default 64)")
    p.add_argument("--data-root", help="where to look for fashion-mnist first (see strided datasets)")
    p.add_argument("--no-inference", action="store_true", help="skip the inference throughput")
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    p.add_argument("--markdown", action="store_true", help="print the step table as Markdown")
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    p.add_argument("--profile", action="store_true",
                   help="print where the time of one training step goes, per layer (see benchmarks/profile_lenet5.py)")
    p.add_argument("--memory-probe", choices=("strided", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--probe-batch", type=_positive, default=128, help=argparse.SUPPRESS)
    return p


def _import_torch(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    dtype = np.dtype(args.dtype)
    if args.memory_probe:
        print(json.dumps(_memory_probe(args.memory_probe, args.probe_batch, dtype)))
        return 0
    if args.profile:
        return profile_main(["--batches", ",".join(map(str, args.batches)), "--dtype", args.dtype])
    torch = None if args.no_torch else _import_torch(args.torch_threads)
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
