"""Gradients in buckets, each averaged over the processes by one non-blocking allreduce."""
from __future__ import annotations

import numpy as np

from ..nn import Module
from .process import _import_mpi


class GradientBuckets:
    """The trained parameters' gradients in buckets of at most ``bucket_cap_mb`` MiB, reduced to their mean.

    Parameters are ordered by when their gradient is final during a
    backward over ``steps`` (the last step's first), then in reverse order
    of registration, as torch does; a bucket holds one dtype. A parameter
    shared by several steps is final after the earliest of them.
    ``bucket_cap_mb=None`` puts each dtype in one bucket. A trained
    parameter left without a gradient counts as zeros.
    """

    def __init__(self, model: Module, comm, bucket_cap_mb: float | None, steps: list[Module] = ()):
        self._MPI = _import_mpi()
        self.comm, self.size = comm, comm.Get_size()
        trained = [p for p in model.parameters() if p.requires_grad]
        first_step: dict[int, int] = {}
        for index, step in enumerate(steps):
            for p in step.parameters():
                first_step.setdefault(id(p), index)
        final_after = [first_step.get(id(p), 0) for p in trained]
        order = sorted(range(len(trained)), key=lambda k: (-final_after[k], -k))
        cap = None if bucket_cap_mb is None else bucket_cap_mb * 2 ** 20
        # each bucket: (parameters, the step after whose backward they are all final)
        self.buckets: list[tuple[list, int]] = []
        params, nbytes = [], 0
        for k in order:
            p = trained[k]
            if params and (p.dtype != params[0].dtype or (cap is not None and nbytes + p.data.nbytes > cap)):
                self.buckets.append((params, min(first_step.get(id(q), 0) for q in params)))
                params, nbytes = [], 0
            params.append(p)
            nbytes += p.data.nbytes
        if params:
            self.buckets.append((params, min(first_step.get(id(q), 0) for q in params)))
        self._launched: list[tuple[np.ndarray, list]] = []
        self._requests: list = []

    def step_done(self, index: int) -> None:
        """Start the reduction of every bucket that is final once step ``index`` has run its backward.

        Buckets start in their fixed order (the same on every process, as
        MPI requires of collectives). Also lets MPI progress the ones in flight.
        """
        while len(self._launched) < len(self.buckets) and self.buckets[len(self._launched)][1] >= index:
            self._launch(self.buckets[len(self._launched)][0])
        if self._requests:
            self._MPI.Request.Testall(self._requests)

    def _launch(self, params: list) -> None:
        flat = np.empty(sum(p.size for p in params), params[0].dtype)
        offset = 0
        for p in params:
            if p.grad is None:
                flat[offset:offset + p.size] = 0
            else:
                flat[offset:offset + p.size] = p.grad.reshape(-1)
            offset += p.size
        self._requests.append(self.comm.Iallreduce(self._MPI.IN_PLACE, flat, op=self._MPI.SUM))
        self._launched.append((flat, params))

    def wait(self) -> None:
        """Start whatever is left, wait for every reduction, and write the means into each ``p.grad``."""
        self.step_done(-1)
        self._MPI.Request.Waitall(self._requests)
        for flat, params in self._launched:
            np.divide(flat, flat.dtype.type(self.size), out=flat)
            offset = 0
            for p in params:
                mean = flat[offset:offset + p.size].reshape(p.shape)
                if p.grad is None:
                    p.grad = mean
                else:
                    p.grad[...] = mean
                offset += p.size
        self._launched, self._requests = [], []
