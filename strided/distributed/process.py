"""The process group: detecting an MPI launch, this process's rank, and bounded-time failure.

``init()`` looks at the environment once. A process started by an MPI
launcher (``mpiexec``/``mpirun``, ``srun``) carries the launcher's variables
(``PMI_RANK``/``PMI_SIZE`` from MPICH's hydra and Intel MPI,
``OMPI_COMM_WORLD_SIZE`` from Open MPI, ``PMIX_RANK`` from PMIx launchers,
``SLURM_PROCID``/``SLURM_STEP_NUM_TASKS`` from ``srun``); only then is MPI
started (importing ``mpi4py.MPI`` initialises it) and the world communicator
taken. A process without those variables never touches MPI: it is rank 0 of
a world of one, and everything in :mod:`strided.distributed` reduces to the
identity, so the same script runs alone or under ``mpiexec``.

Failure is bounded in time: when the world has more than one process,
``init()`` installs a ``sys.excepthook`` that prints the traceback and then
calls ``MPI.COMM_WORLD.Abort(1)``, which ends every process of the job. A
rank that raises therefore cannot leave the others waiting forever in a
collective; a rank that dies (killed, out of memory) is noticed by the
launcher, which ends the job itself.
"""
from __future__ import annotations

import os
import sys

INSTALL_HINT = ("distributed training needs mpi4py and an MPI library: pip install strided[mpi] "
                "(or pip install mpi4py), and an MPI such as MPICH (apt-get install mpich, or pip install mpich)")

# variables set by a launcher in every process it starts (any one of them means "launched")
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK",
                  "SLURM_STEP_NUM_TASKS")
# variables that give the number of processes the launcher started
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")


class _World:
    """What ``init()`` found: the world communicator (None for a single process), rank and size, and a
    duplicate of the world kept for agreeing on failures (apart from the training's collectives)."""

    def __init__(self, comm, rank: int, size: int):
        self.comm, self.rank, self.size = comm, rank, size
        self.failures = None if comm is None else comm.Dup()


_world: _World | None = None


def launcher_world_size(environ=None) -> int | None:
    """The number of processes an MPI launcher says it started, from its variables; None when not launched.

    environ: a mapping of environment variables (``os.environ`` by default).
    Returns an int >= 1 when a launcher's variables are present (1 when they
    do not say the size), None when no launcher started this process.
    """
    env = os.environ if environ is None else environ
    if not any(v in env for v in _LAUNCHER_VARS):
        return None
    for var in _SIZE_VARS:
        value = env.get(var, "")
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


def _import_mpi():
    """mpi4py's ``MPI`` module (importing it initialises MPI); ImportError with the install hint when missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return MPI


def init() -> None:
    """Join the MPI job this process was launched in, if any. Idempotent; called by every query below.

    Under ``mpiexec -n N``/``srun`` with N > 1: takes ``MPI.COMM_WORLD`` and
    installs the abort-on-uncaught-exception hook. Started by a launcher with
    N > 1 but without mpi4py: ImportError saying how to install it (running N
    unaware copies would train N separate models). Otherwise (a single
    process, with or without mpi4py): rank 0 of a world of one, MPI untouched.
    """
    global _world
    if _world is not None:
        return
    launched = launcher_world_size()
    if launched is None:
        _world = _World(None, 0, 1)
        return
    try:
        MPI = _import_mpi()
    except ImportError:
        if launched > 1:
            raise
        _world = _World(None, 0, 1)
        return
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        _world = _World(None, 0, 1)
        return
    _world = _World(comm, comm.Get_rank(), comm.Get_size())
    _install_abort_hook(comm)


def _install_abort_hook(comm) -> None:
    """Chain a ``sys.excepthook`` that reports the failing rank, prints the traceback, then aborts the job."""
    previous = sys.excepthook

    def abort_on_exception(exc_type, exc, tb):
        try:
            sys.stderr.write(f"strided.distributed: uncaught exception on rank {comm.Get_rank()} of "
                             f"{comm.Get_size()}; aborting every process of the job\n")
            previous(exc_type, exc, tb)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            comm.Abort(1)

    sys.excepthook = abort_on_exception


def joined() -> bool:
    """True when :func:`init` has already joined a world of several processes (never starts MPI itself)."""
    return _world is not None and _world.comm is not None


def failures_communicator():
    """The duplicate of the world that :func:`strided.distributed.fail_together` uses; None for a single process."""
    return _world_state().failures


def abort(code: int) -> None:
    """End every process of the job now with exit status ``code`` (``MPI_Abort``); ``sys.exit`` when alone."""
    comm = _world_state().comm
    if comm is None:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    comm.Abort(code)


def _world_state() -> _World:
    init()
    return _world


def communicator(group=None):
    """The mpi4py communicator of ``group`` (the world when None); None for a single process."""
    return _world_state().comm if group is None else group


def is_distributed(group=None) -> bool:
    """True when ``group`` (the world when None) has more than one process."""
    return world_size(group) > 1


def rank(group=None) -> int:
    """This process's rank in ``group`` (the world when None): 0..world_size-1, 0 for a single process."""
    return _world_state().rank if group is None else group.Get_rank()


def world_size(group=None) -> int:
    """The number of processes in ``group`` (the world when None); 1 for a single process."""
    return _world_state().size if group is None else group.Get_size()


def barrier(group=None) -> None:
    """Wait until every process of ``group`` (the world when None) gets here; nothing for a single process."""
    comm = communicator(group)
    if comm is not None:
        comm.Barrier()
