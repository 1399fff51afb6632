"""The alpha-beta cost model of data-parallel training, and its projection to many machines.

A message of n bytes costs ``alpha + n beta`` (alpha the latency, beta the
seconds per byte, 8 / bandwidth in bit/s). A ring allreduce over p
processes sends 2(p-1) messages of n/p bytes from each process (a
reduce-scatter, then an allgather), so one bucket of n bytes costs

    T(n, p) = 2(p-1) alpha + 2(p-1)/p n beta

and a gradient of G bytes in buckets of at most ``bucket`` bytes costs the
sum over its buckets. A training step of compute time C (forward, backward,
optimizer step, per process at its batch B) then takes

    no overlap:   C + T                      (the allreduce after the backward)
    overlap:      C + max(0, T - b C)        (hidden behind the backward, b C of the step)

with b the backward's share of the step (2/3: a backward costs about twice
the forward). The per-process batch stays B (as torch DDP: the global batch
is p B), so the scaling efficiency is C / step and p processes train
p B / step images/s. :func:`project` computes these from the figures of
``strided bench distributed --json`` (C and G per model, measured on this
machine) for network parameters given as (alpha, bandwidth).

    python -m strided.bench.scaling benchmarks/distributed.json          # the Markdown tables
"""
from __future__ import annotations

import argparse
import json
import sys

BUCKET_BYTES = 25 * 2 ** 20          # DistributedDataParallel's default bucket_cap_mb
BACKWARD_SHARE = 2 / 3
WORLDS = (2, 4, 8, 16, 32, 64)
# name -> (alpha seconds, bandwidth bit/s): assumed, typical figures, not measured here
NETWORKS = {
    "10 Gbit/s Ethernet (TCP, alpha 25 us)": (25e-6, 10e9),
    "100 Gbit/s (RDMA, alpha 2 us)": (2e-6, 100e9),
}


def ring_allreduce_seconds(nbytes: float, world: int, alpha: float, beta: float,
                           bucket_bytes: float = BUCKET_BYTES) -> float:
    """Seconds to allreduce ``nbytes`` over ``world`` processes in buckets of at most ``bucket_bytes``:
    the sum over the buckets of 2(p-1) alpha + 2(p-1)/p n_b beta. 0 for one process."""
    if world <= 1 or nbytes <= 0:
        return 0.0
    full, rest = divmod(nbytes, bucket_bytes)
    buckets = [bucket_bytes] * int(full) + ([rest] if rest else [])
    return sum(2 * (world - 1) * alpha + 2 * (world - 1) / world * n * beta for n in buckets)


def project_step(compute_s: float, grad_bytes: float, world: int, alpha: float, beta: float,
                 overlap: bool = True, backward_share: float = BACKWARD_SHARE,
                 bucket_bytes: float = BUCKET_BYTES) -> dict:
    """One model's step on ``world`` processes: {"step_s", "allreduce_s", "efficiency"}.

    compute_s: the step's compute time per process (its batch); grad_bytes: the
    gradient's size. With ``overlap`` the allreduce hides behind the backward
    (``backward_share`` of the step) as far as it lasts.
    """
    comm = ring_allreduce_seconds(grad_bytes, world, alpha, beta, bucket_bytes)
    exposed = max(0.0, comm - backward_share * compute_s) if overlap else comm
    step = compute_s + exposed
    return {"step_s": step, "allreduce_s": comm, "efficiency": compute_s / step}


def project(report: dict, worlds=WORLDS, networks=None) -> dict:
    """The projection of every model of a ``strided bench distributed --json`` report.

    Returns {network: {model: {world: {"overlap": project_step(...), "sequential": project_step(...)}}}},
    from each model's measured compute time (1 thread, the per-process batch) and gradient size.
    """
    networks = NETWORKS if networks is None else networks
    out = {}
    for net, (alpha, bandwidth) in networks.items():
        beta = 8 / bandwidth
        out[net] = {
            name: {p: {mode: project_step(row["compute_1_thread_ms"] / 1e3, row["grad_bytes"], p, alpha, beta,
                                          overlap=mode == "overlap")
                       for mode in ("overlap", "sequential")} for p in worlds}
            for name, row in report["models"].items()
        }
    return out


def model_check(report: dict) -> list[list[str]]:
    """Rows comparing the fitted model with what was measured here (2 processes): the allreduce of
    each message size, then of each model's gradient in training."""
    alpha, beta = report["alpha"], report["beta"]
    rows = [[f"Allreduce {m['bytes']:,} B", f"{m['seconds'] * 1e6:.1f}",
             f"{ring_allreduce_seconds(m['bytes'], 2, alpha, beta) * 1e6:.1f}"] for m in report["allreduce"]]
    rows += [[f"{name} gradient ({row['grad_bytes']:,} B)", f"{row['allreduce_sequential_ms'] * 1e3:.1f}",
              f"{ring_allreduce_seconds(row['grad_bytes'], 2, alpha, beta) * 1e6:.1f}"]
             for name, row in report["models"].items()]
    return rows


def format_projection(report: dict, worlds=WORLDS, networks=None) -> str:
    """Markdown: the measured inputs, the model against the measurements, then one table per network
    (cells: efficiency with overlap / without, and the projected images/s with overlap)."""
    from .harness import table
    batch = report["batch_per_process"]
    lines = [f"Measured ({report['machine']}; batch {batch} per process, float32):", ""]
    lines.append(table(["model", "gradient MiB", "compute ms/step (1 thread)", "img/s 1x2", "img/s 2x1",
                        "hidden (2x1)"],
                       [[name, f"{r['grad_bytes'] / 2**20:.2f}", f"{r['compute_1_thread_ms']:.1f}",
                         f"{r['images_per_s_1x2']:.0f}", f"{r['images_per_s_2x1']:.0f}",
                         f"{100 * r['hidden']:.0f}%"] for name, r in report["models"].items()], markdown=True))
    lines += ["", f"Fitted to the Allreduce times between the 2 processes: alpha = {report['alpha'] * 1e6:.2f} us, "
              f"beta = {report['beta'] * 1e9:.3f} ns/byte. The model against the measurements (us):", ""]
    lines.append(table(["what", "measured", "model"], model_check(report), markdown=True))
    for net, models_ in project(report, worlds, networks).items():
        lines += ["", f"Projected, {net}: scaling efficiency with overlap / without, and images/s with "
                  f"overlap (batch {batch} per process):", ""]
        rows = []
        for name, by_world in models_.items():
            rows.append([name] + [f"{by_world[p]['overlap']['efficiency']:.2f} / "
                                  f"{by_world[p]['sequential']['efficiency']:.2f}, "
                                  f"{p * batch / by_world[p]['overlap']['step_s']:,.0f}" for p in worlds])
        lines.append(table(["model"] + [f"{p} nodes" for p in worlds], rows, markdown=True))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m strided.bench.scaling",
                                description="Project data-parallel step time and scaling efficiency to 2..64 "
                                            "machines from the figures of strided bench distributed --json.")
    p.add_argument("report", help="the JSON written by strided bench distributed --json")
    args = p.parse_args(argv)
    with open(args.report) as f:
        report = json.load(f)
    print(format_projection(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
