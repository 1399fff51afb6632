"""Reductions and broadcasts over the processes of a group, on NumPy arrays and on models.

Every function here is a collective: every process of the group must call
it, in the same order, with arrays of the same shape and dtype. In a single
process they reduce to the identity (a copy), without touching MPI.

Sums of floats depend on the order they are added in. MPI's allreduce adds
the processes' arrays in an order fixed by the library's algorithm for the
message size and the number of processes, so a run is repeatable with the
same world size and MPI library, and in the reduction algorithms MPI
libraries use (recursive doubling, reduce-scatter then allgather) every
process receives the same bits: replicas stay identical without ever being
compared. A different world size adds in a different order, so its results
differ in the last bits.
"""
from __future__ import annotations

import json

import numpy as np

from .buckets import GradientBuckets
from .process import _import_mpi, communicator, world_size


def _reduce_in_place(comm, buf: np.ndarray) -> None:
    """buf (contiguous, any shape) <- its elementwise sum over the processes of comm."""
    MPI = _import_mpi()
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)


def all_reduce_sum(array, group=None) -> np.ndarray:
    """The elementwise sum of ``array`` over the processes of ``group`` (the world when None).

    array: an ndarray or scalar of any shape, a real dtype (integers sum
    exactly: counts, confusion matrices). Returns a new array of the same
    shape and dtype, the same on every process; a copy in a single process.
    """
    out = np.array(array, copy=True, order="C")
    if out.dtype.kind not in "biuf":
        raise TypeError(f"array must hold real numbers, got dtype {out.dtype}")
    comm = communicator(group)
    if comm is not None and comm.Get_size() > 1:
        _reduce_in_place(comm, out.reshape(-1))
    return out


def all_reduce_mean(array, group=None) -> np.ndarray:
    """The elementwise mean of ``array`` over the processes of ``group``: the sum divided by their number.

    array: an ndarray or scalar of any shape, a real dtype. Returns float64
    for integer input, the input's float dtype otherwise; same shape. The
    mean of per-process means is the global mean only when every process
    saw as many samples: reduce sums and counts with ``all_reduce_sum`` when not.
    """
    total = all_reduce_sum(array, group)
    if total.dtype.kind != "f":
        total = total.astype(np.float64)
    return total / total.dtype.type(world_size(group))


def broadcast_parameters(model, root: int = 0, group=None):
    """Copy ``root``'s parameters and buffers (running statistics too) into the model on every process.

    model: a :class:`strided.nn.Module` with the same architecture on every
    process. Arrays go in ``state_dict`` order, one broadcast per dtype
    (all float32 arrays packed together). Parameters keep their identity (an
    optimizer built on them still holds them). Returns the model.
    """
    comm = communicator(group)
    if comm is None or comm.Get_size() == 1:
        return model
    if not 0 <= root < comm.Get_size():
        raise ValueError(f"root must be a rank in [0, {comm.Get_size() - 1}], got {root!r}")
    state = model.state_dict()
    by_dtype: dict[np.dtype, list[str]] = {}
    for name, value in state.items():
        by_dtype.setdefault(value.dtype, []).append(name)
    for dtype in sorted(by_dtype, key=str):
        names = by_dtype[dtype]
        flat = np.concatenate([state[n].reshape(-1) for n in names]) if names else np.empty(0, dtype)
        comm.Bcast(flat, root=root)
        offset = 0
        for n in names:
            size = state[n].size
            state[n] = flat[offset:offset + size].reshape(state[n].shape)
            offset += size
    model.load_state_dict(state)
    return model


def all_reduce_gradients(model, group=None):
    """Replace every gradient by its mean over the processes of ``group``: one blocking allreduce per dtype.

    model: a Module after its backward. Trained parameters without a
    gradient (unused in this step) count as zeros and receive the mean.
    For overlap with the backward use :class:`DistributedDataParallel`.
    Returns the model.
    """
    comm = communicator(group)
    if comm is None or comm.Get_size() == 1:
        return model
    GradientBuckets(model, comm, bucket_cap_mb=None).wait()
    return model


def model_signature(model) -> list:
    """What must agree between replicas: [name, shape, dtype, trained] of each parameter and
    [name, shape, dtype] of each buffer, in ``state_dict`` order."""
    sig = [[name, list(p.shape), str(p.dtype), bool(p.requires_grad)] for name, p in model.named_parameters()]
    sig += [[name, list(np.shape(b)), str(np.asarray(b).dtype)] for name, b in model.named_buffers()]
    return sig


def first_disagreement(value, group=None):
    """``None`` when every process of ``group`` passed an equal ``value``, else ``(rank 0's, r, rank r's)``
    for the first rank r whose value differs. value: anything JSON can hold (compared as JSON text).

    One allgather; a collective (every process must call it). ``None`` in a single process.
    """
    comm = communicator(group)
    if comm is None or comm.Get_size() == 1:
        return None
    gathered = comm.allgather(json.dumps(value))
    for r, text in enumerate(gathered[1:], start=1):
        if text != gathered[0]:
            return json.loads(gathered[0]), r, json.loads(text)
    return None


def check_same(what: str, value, group=None) -> None:
    """Raise ValueError on every process unless every process of ``group`` passed an equal ``value``.

    what: what the value is, for the message ("dataset size", "run configuration"); value:
    anything JSON can hold. The message names the first rank that differs and both values.
    Use it at the start of a run, for what must agree across processes (the dataset's size,
    the batch size, the seed) before the first collective would hang or mix them up.
    """
    found = first_disagreement(value, group)
    if found is not None:
        reference, r, theirs = found
        raise ValueError(f"the {what} on rank {r} differs from the one on rank 0: rank 0 has {reference!r}, "
                         f"rank {r} has {theirs!r}. Every process must be given the same {what}")


def check_same_model(model, group=None, what: str = "model") -> None:
    """Raise ValueError on every process unless every process holds a model of the same signature.

    Gathers each process's :func:`model_signature` (one allgather of a JSON
    string) and compares it with rank 0's; the message names the first rank
    that differs and the first entry where it differs.
    """
    found = first_disagreement(model_signature(model), group)
    if found is None:
        return
    reference, r, theirs = found
    where = next((i for i, (a, b) in enumerate(zip(reference, theirs)) if a != b),
                 min(len(reference), len(theirs)))
    entries = [f"rank {k} {sig[where] if where < len(sig) else 'nothing'}"
               for k, sig in ((0, reference), (r, theirs))]
    raise ValueError(
        f"the {what} on rank {r} differs from the one on rank 0: rank 0 has {_describe(reference)}, rank {r} "
        f"has {_describe(theirs)}; first difference at entry {where} (name, shape, dtype, trained): "
        f"{' against '.join(entries)}. Every process must build the same architecture with the same dtypes "
        "and frozen parameters"
    )


def _describe(signature: list) -> str:
    """'8 parameters (1,234 values)' of a model_signature."""
    params = [entry for entry in signature if len(entry) == 4]
    values = sum(int(np.prod(shape)) for _, shape, _, _ in params)
    return f"{len(params)} parameters ({values:,} values)"
