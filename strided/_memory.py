"""Big arrays allocated from buffers kept between training steps.

A training step allocates the same big arrays every time (activations,
their gradients, padded copies). glibc hands freed memory of that size back
to the kernel, so the next step takes it again one page fault per 4 KiB:
about 500 faults per LeNet-5 step at batch 128, 1 ms of kernel time in a
10 ms step. :func:`empty` keeps those buffers instead and hands them out
again.

A buffer is reused only when no array uses it any more. Every NumPy array
made from a buffer, however derived (views, reshapes, transposes), holds a
reference to it as its ``.base``, so a buffer whose reference count is back
to this module's own references is free: nothing visible to the user can be
overwritten, and an array kept by the user keeps its buffer out of
circulation exactly as long as a freshly allocated one would live.
(Reference counts are CPython's; elsewhere, and in builds without the GIL,
:func:`empty` is plain ``np.empty``.)

At most ``MAX_BUFFERS_PER_SIZE`` buffers of each size and ``MAX_BYTES`` in
all are kept; :func:`release` drops them.

A fork waits until no thread is inside the cache, and the child starts
with a lock of its own: a process forked while another thread allocates
can allocate at once.
"""
from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

__all__ = ["empty", "empty_like", "is_batch_last", "kept_bytes", "release", "scratch"]

MIN_BYTES = 128 * 1024          # smaller arrays come from malloc's heap without page faults
MAX_BUFFERS_PER_SIZE = 8
MAX_BYTES = 512 * 2**20

_ENABLED = hasattr(sys, "getrefcount") and getattr(sys, "_is_gil_enabled", lambda: True)()
_lock = threading.Lock()
_buffers: dict[int, list[np.ndarray]] = {}
_kept = 0
# references to a free buffer while _take looks at it: the list entry, the loop variable, getrefcount's argument
_FREE = 3


def empty(shape, dtype, batch_last: bool = False) -> np.ndarray:
    """An uninitialised array of ``shape`` (like ``np.empty``), its memory reused from an earlier step if possible.

    ``batch_last`` (4-d (N, C, H, W) shapes only) lays the memory out as
    (C, H, W, N), see :func:`strided.windows.to_batch_last`.
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    layout = (shape[1], shape[2], shape[3], shape[0]) if batch_last else shape
    nbytes = math.prod(shape) * dtype.itemsize
    if not _ENABLED or nbytes < MIN_BYTES:
        a = np.empty(layout, dtype=dtype)
    else:
        a = _take(nbytes)[:nbytes].view(dtype).reshape(layout)
    return a.transpose(3, 0, 1, 2) if batch_last else a


def is_batch_last(x: np.ndarray) -> bool:
    """Whether x: (N, C, H, W) keeps its images innermost in memory (stride of N smaller than of W)."""
    if x.ndim != 4 or x.shape[0] < 2:
        return False
    return all(abs(x.strides[0]) < abs(s) for s, size in zip(x.strides[1:], x.shape[1:]) if size > 1)


def empty_like(x: np.ndarray, dtype=None) -> np.ndarray:
    """:func:`empty` with x's shape and memory order (batch-last, C order; other orders as ``np.empty_like``)."""
    dtype = x.dtype if dtype is None else dtype
    if is_batch_last(x):
        return empty(x.shape, dtype, batch_last=True)
    if x.flags.c_contiguous:
        return empty(x.shape, dtype)
    return np.empty_like(x, dtype=dtype)


def _take(nbytes: int) -> np.ndarray:
    global _kept
    with _lock:
        kept = _buffers.setdefault(nbytes, [])
        for buf in kept:
            if sys.getrefcount(buf) <= _FREE:
                return buf
        buf = np.empty(nbytes, dtype=np.uint8)
        if len(kept) < MAX_BUFFERS_PER_SIZE and _kept + nbytes <= MAX_BYTES:
            kept.append(buf)
            _kept += nbytes
        return buf


def _before_fork() -> None:
    # fork only while no thread is inside the cache, so the child inherits it whole
    _lock.acquire()


def _after_fork_in_parent() -> None:
    _lock.release()


def _after_fork_in_child() -> None:
    # the child has one thread, and the lock taken for it in _before_fork belongs to the parent's copy
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def release() -> None:
    """Forget every kept buffer (arrays still using one keep it alive until they go)."""
    global _kept
    with _lock:
        _buffers.clear()
        _kept = 0


def kept_bytes() -> int:
    """Bytes of buffers currently kept for reuse (in use or free)."""
    return _kept


# A thread keeps its scratch up to this size; larger requests (huge batches) get a temporary array.
KEEP_SCRATCH_BYTES = 32 * 2**20
_scratch = threading.local()


def scratch(nbytes: int, dtype) -> np.ndarray:
    """This thread's reusable workspace, at least ``nbytes`` long, as a flat array of ``dtype``.

    For temporaries that never leave a function (a block's products before
    they are added up, say): the next call in the same thread overwrites
    them. Each thread of :mod:`strided._parallel` has its own.
    """
    if nbytes > KEEP_SCRATCH_BYTES:
        return np.empty(nbytes, dtype=np.uint8).view(dtype)
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _scratch.buf = np.empty(max(nbytes, MIN_BYTES * 6), dtype=np.uint8)
    return buf[:nbytes].view(dtype)
