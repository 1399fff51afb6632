"""Where each millisecond of a training step goes: per layer, forward and backward, strided beside PyTorch.

:func:`profile_strided` and :func:`profile_torch` time every layer of a
``Sequential`` separately; :func:`format_profile` sets the two side by
side; :func:`profile_main` is ``benchmarks/profile_lenet5.py`` (and
``strided bench lenet5 --profile``), the profile of a LeNet-5 step.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings

import numpy as np

from .. import _parallel, models, nn, optim
from .harness import call_times, machine, positive_int, positive_ints, settle_allocator
from .torch_twin import LR, MOMENTUM, build_pair, import_torch, random_batch, strided_step, torch_step


def _layer_name(i, layer) -> str:
    return f"{i} {type(layer).__name__}"

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
    whole = call_times(strided_step(model, x, y), steps, clock)
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
    whole = call_times(torch_step(torch, tmodel, x, y), steps, clock)
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


def _one_thread(stack: contextlib.ExitStack):
    """Put strided's pool and BLAS on one thread until ``stack`` closes; returns the clock to use (CPU time)."""
    old = _parallel.num_threads()
    _parallel.set_num_threads(1)
    stack.callback(_parallel.set_num_threads, old)
    if _parallel.can_limit_blas():
        stack.enter_context(_parallel.single_threaded_blas())
    else:
        print("# threadpoolctl is not installed (pip install strided[speed]): BLAS keeps its threads, "
              "and their work is not in the CPU time of this thread")
    return time.thread_time


def profile_main(argv=None) -> int:
    """``benchmarks/profile_lenet5.py`` / ``strided bench lenet5 --profile``: the per-layer profile of a step."""
    p = argparse.ArgumentParser(prog="benchmarks/profile_lenet5.py",
                                description="Where each millisecond of a LeNet-5 training step goes, per layer.")
    p.add_argument("--batches", type=positive_ints, default=[128], help="comma-separated batch sizes (default 128)")
    p.add_argument("--steps", type=positive_int, default=40, help="instrumented steps (default 40)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--no-torch", action="store_true", help="profile strided alone")
    p.add_argument("--one-thread", action="store_true",
                   help="run both libraries on one thread (strided's pool off, BLAS and torch on one thread) and "
                        "time CPU time: the work per layer, unaffected by other processes on the machine")
    p.add_argument("--functions", type=int, default=0, metavar="N",
                   help="also print the N functions with the most own time (cProfile)")
    args = p.parse_args(argv)
    dtype = np.dtype(args.dtype)
    torch = None if args.no_torch else import_torch(1 if args.one_thread else 2)
    with contextlib.ExitStack() as stack:
        clock = _one_thread(stack) if args.one_thread else time.perf_counter
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



# ---------------------------------------------------------------------------- any model, leaf by leaf
#: what each kind of layer spends its time on, for the per-kind summary of :func:`profile_leaves`
KINDS = (
    ("products (Conv2d, Linear: matrix products and their window copies)", (nn.Conv2d, nn.Linear)),
    ("normalisation (BatchNorm2d: statistics and element-wise passes)", (nn.BatchNorm2d,)),
    ("activations and dropout (element-wise passes)", (nn.ReLU, nn.Tanh, nn.Dropout)),
    ("pooling (MaxPool2d, AvgPool2d, AdaptiveAvgPool2d)", (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)),
    ("copies (Flatten)", (nn.Flatten,)),
)


def _leaves(model):
    """``[(qualified name, module)]`` of the modules without children, in forward order."""
    return [(name or type(m).__name__, m) for name, m in model.named_modules() if next(m.children(), None) is None]


def _flops(layer, x_shape, y_shape) -> float:
    """Floating-point operations of the forward pass of a Conv2d or Linear layer (2 per multiply-add), else 0."""
    if isinstance(layer, nn.Conv2d):
        o, cg, kh, kw = layer.weight.shape
        return 2.0 * np.prod(y_shape) * cg * kh * kw
    if isinstance(layer, nn.Linear):
        return 2.0 * np.prod(y_shape) * layer.in_features
    return 0.0


def profile_leaves(model, x, y, steps: int = 20, warmup: int = 3, clock=time.perf_counter) -> dict:
    """Where a training step of any model spends its time, layer by layer down to the leaves.

    Every module without children (convolutions, batch norms, activations...
    inside containers such as ``Residual`` too) has its ``forward`` and
    ``backward`` wrapped with a clock for ``warmup + steps`` training steps,
    then unwrapped. Returns medians in seconds::

        {"layers": [(name, module, forward, backward, forward flops)],
         "loss": s, "optimizer": s, "step": s (uninstrumented), "batch1": s (a step at batch 1)}

    What the leaves do not cover (containers adding branches, Python
    between the layers) is ``step`` minus the timed parts; ``batch1`` is
    the fixed cost of a step, mostly Python, paid at any batch size.
    """
    leaves = _leaves(model)
    fwd = {id(m): [] for _, m in leaves}
    bwd = {id(m): [] for _, m in leaves}
    flops = {}

    def wrap(m):
        forward, backward = m.forward, m.backward

        def timed_forward(*args, **kwargs):
            t = clock()
            out = forward(*args, **kwargs)
            fwd[id(m)].append(clock() - t)
            if id(m) not in flops:
                flops[id(m)] = _flops(m, np.shape(args[0]), np.shape(out))
            return out

        def timed_backward(*args, **kwargs):
            t = clock()
            out = backward(*args, **kwargs)
            bwd[id(m)].append(clock() - t)
            return out
        object.__setattr__(m, "forward", timed_forward)
        object.__setattr__(m, "backward", timed_backward)

    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_t, opt_t = [], []
    for _, m in leaves:
        wrap(m)
    try:
        for _ in range(warmup + steps):
            opt.zero_grad()
            out = model(x)
            t = clock()
            crit(out, y)
            d = crit.backward()
            loss_t.append(clock() - t)
            model.backward(d, need_input_grad=False)
            t = clock()
            opt.step()
            opt_t.append(clock() - t)
    finally:
        for _, m in leaves:
            del m.__dict__["forward"], m.__dict__["backward"]
    # a leaf called k times per step has k entries per step: sum them per step, then take the median
    def per_step(times):
        k = max(1, len(times) // (warmup + steps))
        sums = [sum(times[i:i + k]) for i in range(0, len(times), k)]
        return statistics.median(sums[warmup:]) if len(sums) > warmup else 0.0
    whole = statistics.median(call_times(strided_step(model, x, y), steps, clock))
    one = strided_step(model, x[:1], y[:1])
    one()
    batch1 = statistics.median(call_times(one, steps, clock))
    return {"layers": [(name, m, per_step(fwd[id(m)]), per_step(bwd[id(m)]), flops.get(id(m), 0.0))
                       for name, m in leaves],
            "loss": statistics.median(loss_t[warmup:]), "optimizer": statistics.median(opt_t[warmup:]),
            "step": whole, "batch1": batch1}


def format_leaves(prof: dict, gflops: float, top: int | None = None) -> str:
    """The per-layer table (the ``top`` costliest layers, or all) and the per-kind summary of :func:`profile_leaves`.

    ``gflops``: the machine's matrix-product rate; a product layer's floor
    is its arithmetic at that rate (forward, plus twice it backward: the
    input and the weight gradients).
    """
    step = prof["step"]
    rows = []
    for name, m, f, b, fl in prof["layers"]:
        floor = 3 * fl / (gflops * 1e9) if fl else None
        rows.append((f + b, [f"{name} {type(m).__name__}", f"{f * 1e3:.3f}", f"{b * 1e3:.3f}", f"{(f + b) / step:.1%}",
                             "" if floor is None else f"{floor * 1e3:.3f}",
                             "" if floor is None else f"{floor / (f + b):.0%}"]))
    shown = sorted(rows, key=lambda r: -r[0])[:top] if top else rows
    lines = [r[1] for r in shown]
    header = ["layer", "fwd ms", "bwd ms", "share", "at GEMM rate ms", "of GEMM rate"]
    out = [f"{'all' if not top else f'the {len(shown)} costliest'} layers ({len(rows)} in all), "
           f"median per step:", table_text(header, lines)]
    kinds = []
    timed = 0.0
    for label, classes in KINDS:
        t = sum(f + b for _, m, f, b, _ in prof["layers"] if isinstance(m, classes))
        fl = sum(3 * fl for _, m, _, _, fl in prof["layers"] if isinstance(m, classes))
        timed += t
        kinds.append([label, f"{t * 1e3:.2f}", f"{t / step:.0%}",
                      f"{fl / (gflops * 1e9) * 1e3:.2f}" if fl else ""])
    other = sum(f + b for _, m, f, b, _ in prof["layers"] if not isinstance(m, tuple(c for _, cs in KINDS for c in cs)))
    timed += other + prof["loss"] + prof["optimizer"]
    kinds += [["other layers", f"{other * 1e3:.2f}", f"{other / step:.0%}", ""],
              ["loss (forward + backward)", f"{prof['loss'] * 1e3:.2f}", f"{prof['loss'] / step:.0%}", ""],
              ["optimizer step (element-wise over the parameters)", f"{prof['optimizer'] * 1e3:.2f}",
               f"{prof['optimizer'] / step:.0%}", ""],
              ["between the layers (containers' sums, Python)", f"{(step - timed) * 1e3:.2f}",
               f"{(step - timed) / step:.0%}", ""],
              ["whole step (uninstrumented)", f"{step * 1e3:.2f}", "", ""],
              ["  of which fixed cost (a step at batch 1: mostly Python)", f"{prof['batch1'] * 1e3:.2f}",
               f"{prof['batch1'] / step:.0%}", ""]]
    out += ["", "by kind:", table_text(["kind", "ms", "share", "at GEMM rate ms"], kinds)]
    return "\n".join(out)


def table_text(header, lines) -> str:
    """``lines`` under ``header``: the first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    fmt = "  ".join(("{:<%d}" if k == 0 else "{:>%d}") % w for k, w in enumerate(widths))
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*line).rstrip() for line in lines])


def profile_models_main(argv=None) -> int:
    """``benchmarks/profile_models.py``: where the time of a training step of each zoo model goes."""
    from .harness import gemm_rate
    p = argparse.ArgumentParser(prog="benchmarks/profile_models.py",
                                description="Where each millisecond of a training step goes, per layer and per kind.")
    p.add_argument("--models", default="lenet5:128,fashion_cnn:128,cifar_cnn:64,resnet20:128,fashion_resnet:128",
                   help="comma-separated MODEL:BATCH pairs (default: the models of strided bench models)")
    p.add_argument("--steps", type=positive_int, default=10, help="instrumented steps (default 10)")
    p.add_argument("--top", type=int, default=12, help="layers to list, costliest first (0: all, in order)")
    p.add_argument("--one-thread", action="store_true",
                   help="strided's pool and BLAS on one thread, CPU time of the thread (insensitive to other jobs)")
    args = p.parse_args(argv)
    from .models import parse_models
    try:
        pairs = parse_models(args.models)
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    with contextlib.ExitStack() as stack:
        clock = _one_thread(stack) if args.one_thread else time.perf_counter
        rate = gemm_rate(clock=clock)
        print(f"# {machine()}")
        print(f"# float32 matrix product rate on these threads: {rate:.0f} GFLOP/s; "
              + ("one thread, CPU time" if args.one_thread else f"wall-clock time, {_parallel.num_threads()} threads"))
        settle_allocator()
        for name, batch in pairs:
            x, y = random_batch(batch, np.float32, shape=models.MODELS[name][1])
            model = models.get_model(name)
            prof = profile_leaves(model, x, y, args.steps, clock=clock)
            print(f"\n== {name}, batch {batch}, float32")
            print(format_leaves(prof, rate, args.top or None))
    return 0
