"""Data-parallel training on one machine: ``strided bench distributed``.

For each model (LeNet-5, fashion_cnn and cifar_cnn by default) it trains
on random batches, always with the same global batch of 2 x B images:

1. **1 process x 2 threads**: one process, batch 2B, ``STRIDED_NUM_THREADS=2``;
2. **2 processes x 1 thread**: ``mpiexec -n 2``, batch B each, one thread each,
   gradients averaged by :class:`strided.distributed.DistributedDataParallel`
   (bucketed ``Iallreduce`` overlapping the backward pass), and, in
   alternating rounds, the same steps with the overlap off (the whole
   backward first, then one blocking allreduce: ``all_reduce_gradients``).

It reports images/s of each, the time per step spent waiting for
communication (overlapped: ``DistributedDataParallel.last_wait_seconds``;
sequential: a barrier, the wait for the other process's backward, then the
blocking allreduce), and the share of that wait the overlap hides,
``1 - wait(overlapped) / (barrier + allreduce)(sequential)``. It also
times ``Allreduce`` of 8 B to 8 MiB between the two processes and fits the
cost model ``t(n) = 2(p-1) alpha + 2(p-1)/p n beta`` (docs/distributed.md),
whose projection to more machines is :mod:`strided.bench.scaling`.

Every run starts fresh processes (the single-process run too), so the two
configurations start alike; each is launched with the other's threads
pinned to one (``OMP``/``OPENBLAS``/``MKL_NUM_THREADS``) where it says one.

    strided bench distributed                         # about two minutes
    strided bench distributed --models lenet5 --batch 32 --steps 5 --rounds 1
    strided bench distributed --json out.json         # the figures for scaling.py
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import models, nn, optim
from ..io import write_json_atomic
from .harness import machine, positive_int, settle_allocator, table

MODELS = ("lenet5", "fashion_cnn", "cifar_cnn")
SIZES = tuple(8 * 4 ** k for k in range(11))  # allreduce message sizes: 8 B .. 8 MiB
LR, MOMENTUM = 0.01, 0.9


# ----------------------------------------------------------------------------- inside the processes
def _batch(name: str, batch: int, classes: int, seed: int):
    """Random images of the model's input shape and labels in 0..classes-1; a step's time does not
    depend on the values."""
    rng = np.random.default_rng(seed)
    shape = models.MODELS[name][1]
    return rng.standard_normal((batch, *shape)).astype(np.float32), rng.integers(0, classes, batch)


def _steps(name: str, batch: int, steps: int, warmup: int, modes: tuple, rounds: int) -> dict:
    """Median step times of ``name`` for each mode, timed in alternating rounds of ``steps`` steps.

    modes: ``single`` (no communication), ``overlap`` (DistributedDataParallel)
    and/or ``sequential`` (backward, then all_reduce_gradients). Returns
    {mode: {"step", "skew", "reduce": seconds, "grad_bytes": int}}, medians over every timed step:
    ``skew`` the wait for the other process (overlap: everything waited for after
    the backward), ``reduce`` the blocking allreduce itself (sequential only).
    """
    from .. import distributed
    model = models.get_model(name)
    ddp = distributed.DistributedDataParallel(model) if "overlap" in modes else None
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    classes = model.eval()(np.zeros((1, *models.MODELS[name][1]), np.float32)).shape[1]  # two_class_net: 1
    model.train()
    x, y = _batch(name, batch, classes, seed=distributed.rank())

    def step(mode):
        """One training step; returns (seconds waiting for the other process, seconds reducing)."""
        opt.zero_grad()
        skew = reduce = 0.0
        if mode == "overlap":
            loss_fn(ddp(x), y)
            ddp.backward(loss_fn.backward(), need_input_grad=False)
            skew = ddp.last_wait_seconds
        else:
            loss_fn(model(x), y)
            model.backward(loss_fn.backward(), need_input_grad=False)
            if mode == "sequential":
                start = time.perf_counter()
                distributed.barrier()  # the other process finishing its backward
                middle = time.perf_counter()
                distributed.all_reduce_gradients(model)
                skew, reduce = middle - start, time.perf_counter() - middle
        opt.step()
        return skew, reduce

    times = {m: {"step": [], "skew": [], "reduce": []} for m in modes}
    for mode in modes:
        for _ in range(warmup):
            step(mode)
    for r in range(rounds):
        for mode in (modes if r % 2 == 0 else modes[::-1]):
            distributed.barrier()
            for _ in range(steps):
                start = time.perf_counter()
                skew, reduce = step(mode)
                times[mode]["step"].append(time.perf_counter() - start)
                times[mode]["skew"].append(skew)
                times[mode]["reduce"].append(reduce)
    grad_bytes = sum(p.data.nbytes for p in model.parameters() if p.requires_grad)
    return {m: {**{k: statistics.median(v) for k, v in t.items()}, "grad_bytes": grad_bytes}
            for m, t in times.items()}


def _allreduce_times(sizes=SIZES, repeats: int = 20) -> list[dict]:
    """Median seconds of one blocking Allreduce (sum, float32) of each size in bytes, over the world."""
    from mpi4py import MPI  # present: the launcher checked it (mpiexec_command)

    from .. import distributed
    comm = distributed.communicator()
    out = []
    for nbytes in sizes:
        buf = np.ones(max(nbytes // 4, 1), np.float32)
        for _ in range(3):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times = []
        for _ in range(repeats):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        out.append({"bytes": int(buf.nbytes), "seconds": statistics.median(times)})
    return out


def fit_alpha_beta(measured: list[dict], world: int) -> tuple[float, float]:
    """Least-squares (alpha seconds, beta seconds/byte) of ``t = 2(p-1) alpha + 2(p-1)/p n beta`` to
    ``measured`` ({"bytes", "seconds"} per size) for p = ``world``; both clipped at 0.

    The fit weights every point by 1/t (relative errors), so the small
    messages, which fix alpha, count as much as the large ones, which fix beta.
    """
    n = np.array([m["bytes"] for m in measured], float)
    t = np.array([m["seconds"] for m in measured], float)
    a = np.stack([np.full_like(n, 2.0 * (world - 1)), 2.0 * (world - 1) / world * n], axis=1) / t[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    return max(float(alpha), 0.0), max(float(beta), 0.0)


def worker_main(argv) -> int:
    """One process of the benchmark (started by :func:`main`); writes its figures as JSON (rank 0)."""
    p = argparse.ArgumentParser(prog="strided.bench.distributed --worker")
    p.add_argument("--worker", choices=("single", "mpi"), required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from .. import distributed
    distributed.init()
    settle_allocator()
    modes = ("single",) if args.worker == "single" else ("overlap", "sequential")
    result = {"world": distributed.world_size(), "models": {}}
    for name in args.models.split(","):
        result["models"][name] = _steps(name, args.batch, args.steps, args.warmup, modes, args.rounds)
    if args.worker == "mpi":
        sizes = [int(s) for s in args.sizes.split(",")]
        result["allreduce"] = _allreduce_times(sizes)
        result["alpha"], result["beta"] = fit_alpha_beta(result["allreduce"], distributed.world_size())
    if distributed.is_writer():
        write_json_atomic(args.out, result)
    return 0


# ----------------------------------------------------------------------------- the launcher
def mpiexec_command() -> list[str]:
    """mpiexec (the one beside this Python first), with Open MPI's flags for more processes than cores and root.

    Raises RuntimeError saying how to install MPI when mpi4py or mpiexec is missing.
    """
    from .._optional import available
    if not available("mpi4py"):
        raise RuntimeError("strided bench distributed needs mpi4py and an MPI library: pip install strided[mpi] "
                           "mpich (or apt-get install mpich)")
    beside = Path(sys.executable).parent / "mpiexec"
    exe = str(beside) if beside.exists() else shutil.which("mpiexec")
    if exe is None:
        raise RuntimeError("strided bench distributed needs mpiexec on the PATH: pip install mpich "
                           "(or apt-get install mpich)")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    return [exe] + (["--oversubscribe", "--allow-run-as-root"] if "Open MPI" in version else [])


def _launch(prefix: list[str], threads: int, worker_args: list[str], timeout: float) -> dict:
    """Run one worker configuration (``prefix``: [] or mpiexec -n 2) and return rank 0's JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ, STRIDED_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if not prefix:  # a single process: no launcher variables, so it does not try to join a job
            env = {k: v for k, v in env.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_", "SLURM_"))}
        cmd = prefix + [sys.executable, "-m", "strided.bench.distributed", *worker_args, "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return json.loads(out.read_text())


def run(models_: list[str], batch: int, steps: int, warmup: int, rounds: int, sizes=SIZES,
        timeout: float = 1800) -> dict:
    """Both configurations for every model; returns the report (see :func:`format_report`)."""
    for name in models_:
        if name not in models.MODELS:
            raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(models.MODELS)}")
    common = ["--models", ",".join(models_), "--steps", str(steps), "--warmup", str(warmup),
              "--rounds", str(rounds)]
    mpi = mpiexec_command()
    single = _launch([], 2, ["--worker", "single", "--batch", str(2 * batch), *common], timeout)
    double = _launch(mpi + ["-n", "2"], 1, ["--worker", "mpi", "--batch", str(batch), *common,
                                            "--sizes", ",".join(map(str, sizes))], timeout)
    rows = {}
    for name in models_:
        one, two = single["models"][name]["single"], double["models"][name]
        ovl, seq = two["overlap"], two["sequential"]
        rows[name] = {
            "grad_bytes": ovl["grad_bytes"],
            "images_per_s_1x2": 2 * batch / one["step"],
            "images_per_s_2x1": 2 * batch / ovl["step"],
            "images_per_s_2x1_sequential": 2 * batch / seq["step"],
            "step_1x2_ms": one["step"] * 1e3, "step_2x1_ms": ovl["step"] * 1e3,
            "step_2x1_sequential_ms": seq["step"] * 1e3,
            "wait_overlapped_ms": ovl["skew"] * 1e3, "skew_sequential_ms": seq["skew"] * 1e3,
            "allreduce_sequential_ms": seq["reduce"] * 1e3,
            "compute_1_thread_ms": (seq["step"] - seq["skew"] - seq["reduce"]) * 1e3,
            "hidden": 1 - ovl["skew"] / (seq["skew"] + seq["reduce"]) if seq["skew"] + seq["reduce"] > 0 else 0.0,
        }
    return {"machine": machine(), "batch_per_process": batch, "global_batch": 2 * batch, "models": rows,
            "allreduce": double["allreduce"], "alpha": double["alpha"], "beta": double["beta"]}


def format_report(report: dict, markdown: bool = False) -> str:
    """The report as text: the training table, then the allreduce times and the fitted alpha, beta."""
    lines = []
    for name, r in report["models"].items():
        lines.append([name, f"{r['grad_bytes'] / 2**20:.2f}", f"{r['images_per_s_1x2']:.0f}",
                      f"{r['images_per_s_2x1']:.0f}", f"{r['images_per_s_2x1_sequential']:.0f}",
                      f"{r['compute_1_thread_ms']:.1f}", f"{r['skew_sequential_ms']:.2f}",
                      f"{r['allreduce_sequential_ms']:.2f}", f"{r['wait_overlapped_ms']:.2f}",
                      f"{100 * r['hidden']:.0f}%"])
    out = [table(["model", "grad MiB", "img/s 1x2", "img/s 2x1", "img/s 2x1 seq", "compute ms", "skew ms",
                  "allreduce ms", "wait ms", "hidden"], lines, markdown)]
    out.append("")
    out.append(table(["bytes", "allreduce us"], [[f"{m['bytes']:,}", f"{m['seconds'] * 1e6:.1f}"]
                                                   for m in report["allreduce"]], markdown))
    out.append(f"\nfitted for 2 processes: alpha = {report['alpha'] * 1e6:.2f} us, "
               f"beta = {report['beta'] * 1e9:.3f} ns/byte ({8 / max(report['beta'], 1e-30) / 1e9:.1f} Gbit/s)")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strided bench distributed",
                                description="Data-parallel training on this machine: 1 process x 2 threads "
                                            "against 2 processes x 1 thread (mpiexec), and the allreduce's cost.")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated zoo models (default {','.join(MODELS)})")
    p.add_argument("--batch", type=positive_int, default=64, help="images per process (default 64; the "
                   "single process runs twice as many)")
    p.add_argument("--steps", type=positive_int, default=10, help="timed steps per round (default 10)")
    p.add_argument("--warmup", type=positive_int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--rounds", type=positive_int, default=3, help="alternating rounds, overlap/sequential "
                   "(default 3)")
    p.add_argument("--markdown", action="store_true", help="Markdown tables")
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--worker" in argv:
        return worker_main(argv)
    args = build_parser().parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    print(f"# {machine()}", flush=True)
    print(f"# training steps (forward, CrossEntropyLoss, backward, SGD), float32, global batch {2 * args.batch}: "
          f"1 process x 2 threads (batch {2 * args.batch}) against mpiexec -n 2 x 1 thread (batch {args.batch} "
          "each)", flush=True)
    report = run(names, args.batch, args.steps, args.warmup, args.rounds)
    print(format_report(report, args.markdown))
    print("\nimg/s 2x1: overlapped (DistributedDataParallel); seq: backward, then one blocking allreduce. "
          "Per step (2 processes, medians): compute ms: forward + backward + SGD at 1 thread; skew ms: the "
          "sequential step waiting for the other process's backward; allreduce ms: its blocking allreduce; "
          "wait ms: what the overlapped backward still waited for at its end; hidden: 1 - wait / (skew + "
          "allreduce)")
    if args.json:
        write_json_atomic(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
