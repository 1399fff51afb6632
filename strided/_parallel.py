"""Work split across the CPU's cores in fixed chunks, with bit-identical results.

NumPy runs element-wise work on one core. OpenBLAS does use every core for a
matrix product, but it splits each product statically between its threads:
on the thin products of small convolutions it gains little, and as soon as
another process holds a core every product waits for the descheduled
thread.

The hot loops of the library therefore cut their work into chunks chosen
from the array shapes alone (rows of output pixels, blocks of channels) and
hand them to a small pool of threads; each thread takes the next chunk
when it becomes free, so a slow core delays one chunk, not the whole step.
NumPy releases the GIL inside copies, ufuncs and BLAS calls, so the chunks
really run side by side. When the cores are so busy that the calling
thread mostly waits for descheduled workers, the pool backs off and runs
the chunks itself for a while (see ``LONG_WAIT``).

Determinism: a chunk writes only its own part of the output, and a
reduction across chunks (a weight gradient summed over rows of pixels)
keeps one partial result per chunk and adds them in chunk order. The
results are therefore the same, bit for bit, from run to run and for any
number of threads, including one.

While chunks that call BLAS run, BLAS is limited to one thread so that
the two levels of threads do not compete, and so that a chunk's products
add up in the same order wherever it runs (OpenBLAS's threaded products
round differently from its single-threaded ones): also with the pool off.
This needs ``threadpoolctl`` (``pip install strided[speed]``). Without it
such chunks run one after the other in the calling thread, with BLAS's own
threads, for any number of strided threads: the bits are again the same
for any ``STRIDED_NUM_THREADS``, but may differ from those computed with
threadpoolctl installed (they depend on BLAS's thread count instead).

A forked child starts with a new pool and new locks (``os.register_at_fork``),
so it can train at once even when another thread of the parent was inside
the pool or switching BLAS's threads at the fork.

``set_num_threads(n)`` (or ``STRIDED_NUM_THREADS=n`` in the environment)
sets the number of threads; 1 switches the pool off. The default is the
number of cores this process may run on. The thresholds below were
measured; the figures are in docs/performance.md, "Measurements behind the code".
"""
from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time

import numpy as np

from . import _checks
from ._optional import optional

__all__ = ["can_limit_blas", "elementwise", "even_split", "map_chunks", "matmul", "num_threads", "runs_inline",
           "set_num_threads", "single_threaded_blas", "split"]


def _default_threads() -> int:
    env = os.environ.get("STRIDED_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_threads = _default_threads()
_pool: _Pool | None = None
_pool_lock = threading.Lock()
_local = threading.local()        # .inside: this thread is running a chunk (nested calls run inline)


def num_threads() -> int:
    """The number of threads chunks are spread over (1: everything runs in the calling thread)."""
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for chunked work (1 turns the pool off)."""
    global _threads, _pool
    n = _checks.positive_int("n", n)
    with _pool_lock:
        _threads = n
        if _pool is not None:
            _pool.stop()
            _pool = None


def _before_fork() -> None:
    # fork only while no thread is switching BLAS's thread count, so the child inherits a whole state
    _blas_lock.acquire()


def _after_fork_in_parent() -> None:
    _blas_lock.release()


def _after_fork_in_child() -> None:
    """The child has only the forking thread: a new pool and new locks.

    The pool object came over without its threads, and a lock another thread held at the fork
    would stay held for ever. A parent thread inside ``single_threaded_blas`` does not exist
    here, so the nesting count starts again from 0; BLAS itself is not called from this hook
    (it keeps the thread count the fork found, one if such a thread had set it).
    """
    global _pool, _pool_lock, _blas_lock, _local, _blas_depth
    _pool = None
    _pool_lock = threading.Lock()
    _blas_lock = threading.Lock()
    _local = threading.local()
    _blas_depth = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


class _Worker:
    """A thread that runs one job at a time, handed over through two locks.

    A bare lock is the cheapest hand-over Python has; ``concurrent.futures``
    adds its queue, futures and condition variables on top of waking a
    thread, which already costs tens of microseconds on a virtual machine.
    """

    def __init__(self, name: str):
        self.go = threading.Lock()
        self.go.acquire()
        self.done = threading.Lock()
        self.done.acquire()
        self.job = None
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self):
        _local.inside = True
        while True:
            self.go.acquire()
            job = self.job
            if job is None:
                return
            try:
                job()
            finally:
                self.job = None
                self.done.release()

    def start(self, job):
        self.job = job
        self.go.release()

    def stop(self):
        self.job = None
        self.go.release()


class _Pool:
    """``threads - 1`` workers; the calling thread is the last one. One caller at a time (``busy``)."""

    def __init__(self, threads: int):
        self.busy = threading.Lock()
        self.workers = [_Worker(f"strided-{i}") for i in range(threads - 1)]

    def stop(self):
        for w in self.workers:
            w.stop()


def _get_pool() -> _Pool:
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = _Pool(_threads)
            pool = _pool
    return pool


# ---- BLAS threads --------------------------------------------------------------

_blas_lock = threading.Lock()
_blas = None            # [(get, set)] per BLAS library: the threadpoolctl controllers' thread-count functions
_blas_depth = 0
_blas_saved: list[int] = []


def _blas_controllers() -> list:
    global _blas
    if _blas is None:
        threadpoolctl = optional("threadpoolctl")
        _blas = [] if threadpoolctl is None else [
            _thread_functions(c) for c in threadpoolctl.ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _blas


def _thread_functions(controller):
    """``(get, set)`` for one BLAS library: OpenBLAS's own C functions when they can be found.

    threadpoolctl looks the C symbol up on every call; the pool switches BLAS to one thread and back around
    every call, a few dozen times per training step, so the functions are
    looked up once here. OpenBLAS built with OpenMP keeps a limit per
    thread, which only threadpoolctl handles: it is used for every other case.
    """
    if controller.internal_api == "openblas" and getattr(controller, "threading_layer", None) != "openmp":
        lib = controller.dynlib
        for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return (lambda: controller.num_threads), controller.set_num_threads


def can_limit_blas() -> bool:
    """Whether BLAS can be held to one thread while chunks run (threadpoolctl is installed)."""
    return bool(_blas_controllers())


def single_threaded_blas():
    """Context manager: BLAS on one thread inside (a no-op without threadpoolctl); re-entrant, thread-safe."""
    return _SingleThreadedBlas()


class _SingleThreadedBlas:
    """Context: BLAS on one thread; re-entrant and safe when several threads enter it."""

    def __enter__(self):
        global _blas_depth, _blas_saved
        with _blas_lock:
            if _blas_depth == 0:
                _blas_saved = [get() for get, _ in _blas_controllers()]
                for (_, put), n in zip(_blas_controllers(), _blas_saved):
                    if n != 1:
                        put(1)
            _blas_depth += 1

    def __exit__(self, *exc):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for (_, put), n in zip(_blas_controllers(), _blas_saved):
                    if n != 1:
                        put(n)


# ---- chunks ------------------------------------------------------------------------

def split(total: int, per_chunk: int) -> list[slice]:
    """``range(total)`` cut into consecutive slices of ``per_chunk`` (the last one shorter)."""
    per_chunk = max(1, int(per_chunk))
    return [slice(i, min(i + per_chunk, total)) for i in range(0, total, per_chunk)]


def even_split(total: int, pieces: int) -> list[slice]:
    """``range(total)`` cut into ``pieces`` consecutive slices whose lengths differ by one at most."""
    pieces = max(1, min(int(pieces), total))
    q, r = divmod(total, pieces)
    bounds = [i * q + min(i, r) for i in range(pieces + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


# Multiply-adds of a whole parallel call, at least, for the threads to be worth waking, and of each chunk:
# two threads running NumPy calls of a few microseconds each mostly wait for each other's GIL.
MIN_PARALLEL_MACS = 12_000_000
MIN_CHUNK_MACS = 1_000_000


def map_chunks(fn, n: int, *, blas: bool = False, macs: int | None = None) -> list:
    """``[fn(0), fn(1), ..., fn(n - 1)]``, the calls spread over the threads.

    ``fn(i)`` must only write memory no other chunk touches. ``blas=True``
    says ``fn`` calls BLAS: then BLAS is held to one thread meanwhile, and
    without threadpoolctl the chunks run one after the other (see the module
    docstring). ``macs``, the multiply-adds of all chunks together, lets a
    small call run in the calling thread (below ``MIN_PARALLEL_MACS`` in all
    or ``MIN_CHUNK_MACS`` per chunk), as do calls from inside a chunk and a
    pool of one thread. The first exception (in chunk order) is re-raised
    once every started chunk has ended.
    """
    # BLAS stays on one thread for every chunk that calls it, wherever the chunk runs: OpenBLAS's threaded
    # products add up in another order than its single-threaded ones (the bits would depend on the pool
    # being on), and its threads spin for a while after each product and slow the pool's threads down
    with _SingleThreadedBlas() if blas else contextlib.nullcontext():
        if _no_pool(blas) or _not_worth_it(n, macs):
            return [fn(i) for i in range(n)]
        return _run(fn, n, min(_threads, n))


def _no_pool(blas: bool) -> bool:
    """Inside a chunk, with one thread, or BLAS work that BLAS's own threads would fight: no pool."""
    return getattr(_local, "inside", False) or _threads <= 1 or (blas and not can_limit_blas())


def _not_worth_it(n: int, macs: int | None) -> bool:
    """Too little work for the threads to pay for waking them, or the pool is backing off."""
    return (n <= 1 or (macs is not None and (macs < MIN_PARALLEL_MACS or macs < MIN_CHUNK_MACS * n))
            or time.perf_counter() < _inline_until)


def runs_inline(n: int, *, blas: bool = False, macs: int | None = None) -> bool:
    """Whether ``map_chunks(fn, n, blas=blas, macs=macs)`` called now would run every chunk in this thread.

    For callers that can lay their work out better for one thread; results
    must not depend on the answer (it may change by the time the call runs).
    """
    return _no_pool(blas) or _not_worth_it(n, macs)


# ---- backing off when the cores are busy ----------------------------------------------------
# When other processes keep the cores busy, a worker thread is often descheduled in the middle of a
# chunk, and the calling thread, done with everything else, waits for it for a scheduler time slice
# (milliseconds), and OpenBLAS's own threads fare worse. So the pool
# notes the calls whose end waited for a worker longer than LONG_WAIT seconds and more than half of the
# call (a worker that merely woke up late costs tens of microseconds); when more than BACKOFF_SHARE of
# the recent calls did (a moving average), chunks run in the calling thread for the next
# BACKOFF_SECONDS, then the threads are tried again; a back-off soon after the previous one lasts
# twice as long (up to MAX_BACKOFF_SECONDS), so a machine that stays busy is probed less and less. The
# chunks are the same either way: results do not change, only where they are computed.
LONG_WAIT = 0.5e-3
BACKOFF_SHARE = 0.2
BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 32.0
_long_waits = 0.0           # moving average of "this call waited long for a worker"
_inline_until = 0.0         # perf_counter() before which chunks run inline
_backoff = BACKOFF_SECONDS  # length of the next back-off


def _record_wait(waited: float, total: float) -> None:
    global _long_waits, _inline_until, _backoff
    long = waited > LONG_WAIT and waited > 0.5 * total
    _long_waits = 0.9 * _long_waits + (0.1 if long else 0.0)
    now = time.perf_counter()
    if _long_waits > BACKOFF_SHARE:
        # backing off again soon after the last back-off ended: the cores are still busy, wait longer
        recent = now - _inline_until < _backoff
        _backoff = min(MAX_BACKOFF_SECONDS, 2 * _backoff) if recent else BACKOFF_SECONDS
        _inline_until = now + _backoff
        _long_waits = 0.0
    elif now - _inline_until > 4 * _backoff:
        _backoff = BACKOFF_SECONDS


def _run(fn, n: int, threads: int) -> list:
    pool = _get_pool()
    if not pool.busy.acquire(blocking=False):
        # another thread of the program is using the pool: this call's chunks run in its own thread
        return [fn(i) for i in range(n)]
    try:
        return _run_on(pool, fn, n, threads)
    finally:
        pool.busy.release()


def _run_on(pool: _Pool, fn, n: int, threads: int) -> list:
    results = [None] * n
    errors = []
    counter = itertools.count()    # next() on a count is atomic under the GIL: each chunk is taken once

    def work():
        for i in iter(counter.__next__, None):
            if i >= n or errors:
                return
            try:
                results[i] = fn(i)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
                errors.append((i, exc))
                return

    workers = pool.workers[:threads - 1]
    start = time.perf_counter()
    for w in workers:
        w.start(work)
    _local.inside = True
    try:
        work()
    finally:
        _local.inside = False
        done = time.perf_counter()
        for w in workers:
            w.done.acquire()
    end = time.perf_counter()
    _record_wait(end - done, end - start)
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results


# Multiply-adds per chunk of a split matrix product, at least: below, waking the worker and the GIL
# hand-overs cost more than the second thread saves.
MIN_SPLIT_MACS = 8_000_000


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D a: (M, K), b: (K, N), its rows split into fixed chunks over the threads when large.

    BLAS runs on one thread inside (as for every chunk that calls it). The
    rows are cut from the shapes alone, so the result does not depend on
    the number of threads.
    """
    m, k = a.shape
    n = b.shape[1]
    pieces = max(1, min(4, m, m * k * n // MIN_SPLIT_MACS))
    chunks = split(m, -(-m // pieces))
    if len(chunks) == 1:
        return map_chunks(lambda i: a @ b, 1, blas=True)[0]
    out = np.empty((m, n), dtype=np.result_type(a, b))

    def chunk(i):
        np.matmul(a[chunks[i]], b, out=out[chunks[i]])

    map_chunks(chunk, len(chunks), blas=True)
    return out


# Values read or written per chunk of element-wise work, at least: only passes over a million values and
# more gain from a second thread.
MIN_ELEMENTWISE = 1 << 20


def elementwise(fn, *arrays) -> None:
    """Call ``fn(*chunks)`` on matching chunks of same-shape arrays (inputs and outputs alike).

    The arrays are cut along the axis that is outermost in the first one's
    memory (the channels of a batch-last activation, the batch of a C-ordered
    one), so each chunk is a few long contiguous runs; small arrays are
    passed whole. ``fn`` works in place on its chunks (``out=`` arguments);
    nothing is reduced across chunks, so the result never depends on them.
    """
    first = arrays[0]
    pieces = min(16, first.size * len(arrays) // MIN_ELEMENTWISE)
    if pieces < 2 or _threads <= 1 or getattr(_local, "inside", False):
        fn(*arrays)
        return
    axis = max(range(first.ndim), key=lambda k: abs(first.strides[k]) if first.shape[k] > 1 else -1)
    cuts = split(first.shape[axis], -(-first.shape[axis] // pieces))
    lead = (slice(None),) * axis
    map_chunks(lambda i: fn(*(a[(*lead, cuts[i])] for a in arrays)), len(cuts))
