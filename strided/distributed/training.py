"""What a training loop needs around the gradients: one writer, metrics over every process, sharded
evaluation, per-process state in rank 0's checkpoint.

- :func:`is_writer`: rank 0 writes the run directory and prints progress; the others stay quiet.
- :func:`evaluation_shard`: this process's contiguous part of a validation or test set, without
  padding (every sample counted once); :func:`reduce_evaluation` combines the per-process results
  of ``strided.evaluate`` on the shards into the result on the whole set.
- :func:`all_reduce_metrics`: a dict of sums (loss sums, counts, confusion matrices) summed over
  the processes in one reduction.
- :func:`broadcast_from_writer`: what rank 0 alone decides (the run directory's name), everywhere;
  :func:`run_on_writer`: what rank 0 alone reads (a run's configuration, its checkpoint), everywhere,
  its errors raised on every process.
- :func:`fail_together`: whether a failure happened on every process (then rank 0 reports it once)
  or on some only (then the job must be aborted: the others wait in a collective).
- :func:`gather_to_writer` / :func:`scatter_from_writer`: per-process state (the random
  generators of dropout and augmentation) into rank 0's checkpoint and back out on resume;
  :func:`check_resume_world_size` refuses a checkpoint written by another number of processes.
"""
from __future__ import annotations

import time

import numpy as np

from .collectives import all_reduce_sum, check_same
from . import process
from .process import _import_mpi, communicator


def is_writer(group=None) -> bool:
    """True on the one process that writes files and prints: rank 0 of ``group`` (the world when None).

    True in a single process. Every other process computes the same model
    (the replicas are identical), so one copy of each file is the whole truth.
    """
    return process.rank(group) == 0


def evaluation_shard(n: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """The part ``[start, stop)`` of ``n`` evaluation samples that process ``rank`` of ``world_size`` evaluates.

    Contiguous blocks in order, the first ``n % world_size`` one sample
    longer (as ``np.array_split``): disjoint, covering 0..n-1 exactly once,
    without the padding of :func:`shard_indices` (which would count some
    samples twice). The blocks may differ in size by one, which is fine for
    evaluation: a model in eval mode communicates nothing (``SyncBatchNorm``
    included) until the results are reduced. Defaults: this process's rank and world.
    Returns a slice of the samples.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise TypeError(f"n must be a non-negative int, got {n!r}")
    size = process.world_size() if world_size is None else world_size
    r = process.rank() if rank is None else rank
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"world_size must be a positive int, got {size!r}")
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < size:
        raise ValueError(f"rank must be in [0, {size - 1}] for world_size {size}, got {r!r}")
    per, extra = divmod(int(n), int(size))
    start = r * per + min(r, extra)
    return slice(start, start + per + (1 if r < extra else 0))


def all_reduce_metrics(sums: dict, group=None) -> dict:
    """Every entry of ``sums`` summed over the processes of ``group``, in one reduction.

    sums: name -> a number or array (loss summed over samples, sample and
    correct counts, confusion matrices); the same names, shapes and kinds
    on every process (checked first: ValueError naming the first rank that
    differs, instead of a reduction that hangs or mixes entries up).
    Returns a new dict with the same names: Python int/float for numbers,
    arrays of the same shape and dtype otherwise; integers are summed exactly
    (int64). A copy in a single process.
    """
    if not isinstance(sums, dict):
        raise TypeError(f"sums must be a dict of numbers or arrays, got {type(sums).__name__}")
    arrays = {}
    for name, value in sums.items():
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"sums[{name!r}] must be a number or an array of real numbers, got dtype {a.dtype}")
        arrays[name] = a
    layout = [[str(name), list(a.shape), "f" if a.dtype.kind == "f" else "i"] for name, a in arrays.items()]
    check_same("metrics (names, shapes, integer or float)", layout, group)
    packed = {}
    for kind, dtype in (("i", np.int64), ("f", np.float64)):
        names = [name for name, _, k in layout if k == kind]
        flat = np.concatenate([arrays[n].astype(dtype).reshape(-1) for n in names]) if names else np.empty(0, dtype)
        packed[kind] = (names, all_reduce_sum(flat, group))
    out = {}
    for kind, (names, total) in packed.items():
        offset = 0
        for name in names:
            a = arrays[name]
            part = total[offset:offset + a.size].reshape(a.shape)
            offset += a.size
            out[name] = part.item() if a.ndim == 0 and not isinstance(sums[name], np.ndarray) else \
                part.astype(a.dtype)
    return {name: out[name] for name in sums}


def reduce_evaluation(metrics: dict, count: int, group=None) -> dict:
    """The result of ``strided.evaluate`` on the whole set, from each process's result on its shard.

    metrics: this process's ``evaluate`` dict (``loss``, ``accuracy``,
    ``per_class_accuracy``, ``confusion`` k x k); count: the number of
    samples it evaluated (0 allowed: give ``{"loss": 0.0, "confusion": []}``
    or any dict with an empty confusion). Confusion matrices of different
    sizes (a shard without the highest classes) are padded to the largest.
    Returns the same keys: loss the mean over every sample, confusion the
    sum, accuracy and per-class accuracy recomputed from it.
    """
    confusion = np.asarray(metrics.get("confusion", []), dtype=np.int64).reshape(-1)
    k = int(round(np.sqrt(confusion.size)))
    if k * k != confusion.size:
        raise ValueError(f"metrics['confusion'] must be a k x k matrix, got {confusion.size} values")
    comm = communicator(group)
    if comm is not None and comm.Get_size() > 1:
        k = int(comm.allreduce(k, op=_import_mpi().MAX))
    padded = np.zeros((k, k), np.int64)
    if confusion.size:
        small = confusion.reshape(int(np.sqrt(confusion.size)), -1)
        padded[:small.shape[0], :small.shape[1]] = small
    total = all_reduce_metrics({"loss_sum": float(metrics.get("loss", 0.0)) * count, "count": int(count),
                                "confusion": padded}, group)
    conf, seen = total["confusion"], max(total["count"], 1)
    return {
        "accuracy": float(np.trace(conf) / seen),
        "loss": total["loss_sum"] / seen,
        "per_class_accuracy": (conf.diagonal() / np.maximum(conf.sum(axis=1), 1)).tolist(),
        "confusion": conf.tolist(),
    }


def gather_to_writer(state, group=None) -> list | None:
    """Every process's ``state`` (any picklable value, e.g. its random generators' states), on rank 0.

    Returns the list indexed by rank on rank 0 and None elsewhere; ``[state]``
    in a single process. For a checkpoint that rank 0 writes alone but that
    must restore every process exactly.
    """
    comm = communicator(group)
    if comm is None or comm.Get_size() == 1:
        return [state]
    return comm.gather(state, root=0)


def broadcast_from_writer(value, group=None):
    """Rank 0's ``value`` on every process (any picklable value; what the others pass is ignored).

    For what rank 0 alone decides and every process must agree on: the run
    directory's name (it contains the time), a configuration read from a file.
    ``value`` itself in a single process.
    """
    comm = communicator(group)
    if comm is None or comm.Get_size() == 1:
        return value
    return comm.bcast(value, root=0)


def scatter_from_writer(states: list | None, group=None):
    """The inverse of :func:`gather_to_writer`: rank r receives ``states[r]`` (given on rank 0, ignored
    elsewhere). ``states[0]`` in a single process."""
    comm = communicator(group)
    if comm is None or comm.Get_size() == 1:
        return states[0]
    if comm.Get_rank() == 0 and (states is None or len(states) != comm.Get_size()):
        raise ValueError(f"states must hold one entry per process ({comm.Get_size()}), got "
                         f"{None if states is None else len(states)}")
    return comm.scatter(states, root=0)


def check_resume_world_size(saved: int | None, group=None, *, now: int | None = None) -> None:
    """Refuse to resume a checkpoint written by another number of processes (ValueError).

    saved: the world size recorded in the checkpoint (None: a checkpoint
    from before world sizes were recorded, treated as 1). With the same
    number of processes a resume is exact (the shards, the global batches
    and every process's generators are those of the interrupted run);
    with another number the epoch's shards and per-process generators
    cannot be reproduced, so it is refused rather than silently different.
    now: the number of processes of this run (default: the size of ``group``, the world when None;
    1 for a process that trains alone under a launcher).
    """
    saved = 1 if saved is None else saved
    now = process.world_size(group) if now is None else now
    if saved != now:
        raise ValueError(f"the checkpoint was written by a run of {saved} process{'es' if saved != 1 else ''} "
                         f"and this run has {now}: resume it with the same number "
                         f"({'mpiexec -n ' + str(saved) if saved > 1 else 'a single process'}), or start a new "
                         "run from its model file")


def run_on_writer(function, *args, group=None, **kwargs):
    """``function(*args, **kwargs)`` called on rank 0 alone, its result (picklable) returned on every process.

    For what only rank 0 may be able to read (the run directory, on machines without a shared file
    system). A user error or OSError raised there is raised on every process: the same exception on
    rank 0, a ValueError with its message elsewhere. The plain call in a single process.
    """
    comm = communicator(group)
    if comm is None or comm.Get_size() == 1:
        return function(*args, **kwargs)
    found = None
    if comm.Get_rank() == 0:
        from .. import _checks
        try:
            found = ("ok", function(*args, **kwargs))
        except (*_checks.USER_ERRORS, OSError) as exc:
            error = exc
            found = ("error", str(exc))
    found = comm.bcast(found, root=0)
    if found[0] == "error":
        if comm.Get_rank() == 0:
            raise error
        raise ValueError(f"rank 0 failed: {found[1]}")
    return found[1]


def fail_together(timeout: float = 10.0) -> bool:
    """Called by a process that failed: True when every process of the job failed too within ``timeout``
    seconds (an error they all raise, such as a bad option: report it once, from rank 0, and exit), False
    when some did not (they are waiting in a collective: the job must be ended with ``abort``).

    A non-blocking barrier on a duplicate of the world, apart from the training's collectives. True in a
    single process.
    """
    comm = process.failures_communicator()
    if comm is None:
        return True
    request = comm.Ibarrier()
    deadline = time.monotonic() + timeout
    while not request.Test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
