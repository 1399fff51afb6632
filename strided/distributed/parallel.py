"""``DistributedDataParallel``: one replica of the model per process, gradients averaged during backward.

Each process runs the model on its own part of the global batch. The
wrapper's ``backward`` walks the model's layers from the output to the
input itself (a ``Sequential`` is opened, nested ones too; any other module
is one step), and as soon as every parameter of a bucket of gradients has
received its gradient it starts a non-blocking allreduce (``Iallreduce``) of
that bucket, so the communication of the last layers overlaps the backward
of the first ones. At the end it waits for every bucket and divides by the
number of processes: every replica then holds the gradient of the mean loss
over the global batch and the optimizers take the same step everywhere.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from .. import _checks
from ..nn import Module, Sequential
from .buckets import GradientBuckets
from .collectives import broadcast_parameters, check_same_model
from .process import communicator


def backward_steps(model: Module) -> list[Module]:
    """The modules ``model.backward`` runs, in forward order: the leaves of nested ``Sequential``s, else the model.

    Only a plain ``Sequential`` is opened (a subclass may change its
    backward, so it stays one step). Running the returned modules' backward
    in reverse order, the first with ``need_input_grad`` as given and the
    others with True, is exactly ``model.backward``.
    """
    if type(model) is Sequential:
        return [step for child in model for step in backward_steps(child)]
    return [model]


class DistributedDataParallel(Module):
    """Data-parallel training of ``model`` over the processes of the MPI job (torch's ``DistributedDataParallel``).

    The constructor checks that every process built the same model (names,
    shapes, dtypes and frozen parameters of every parameter and buffer;
    ValueError naming the first rank that differs) and copies rank 0's
    parameters and buffers to every process. ``forward`` is the model's;
    ``backward`` runs the model's backward layer by layer and averages the
    gradients over the processes while it goes (see the module docstring).
    In a single process it is the model itself. After each synchronising
    backward, ``last_wait_seconds`` holds how long it waited at the end for
    reductions still in flight: the communication the overlap did not hide.

    Args:
        model (Module): the replica on this process; the same architecture on every process.
        bucket_cap_mb (float): the largest bucket of gradients reduced at once, in MiB (default 25,
            as torch). Smaller buckets start communicating earlier; larger ones send fewer messages.

    Shape:
        as ``model``.

    Examples::

        >>> distributed.init()
        >>> ddp = distributed.DistributedDataParallel(model)
        >>> logits = ddp(x)                      # x: this process's part of the global batch
        >>> loss = loss_fn(logits, y)
        >>> ddp.backward(loss_fn.backward())    # p.grad: the mean over every process
        >>> opt.step()
    """

    def __init__(self, model: Module, bucket_cap_mb: float = 25.0):
        if not isinstance(model, Module):
            raise TypeError(f"model must be a strided.nn.Module, got {type(model).__name__}")
        self.bucket_cap_mb = _checks.positive_float("bucket_cap_mb", bucket_cap_mb)
        self.module = model
        self._synchronise = True
        self.last_wait_seconds = 0.0
        check_same_model(model, what="model given to DistributedDataParallel")
        broadcast_parameters(model, root=0)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def backward(self, dy, need_input_grad=True):
        """dL/dx of the local batch; every trained ``p.grad`` ends as its mean over the processes."""
        comm = communicator()
        if comm is None or not self._synchronise:
            return self.module.backward(dy, need_input_grad=need_input_grad)
        steps = backward_steps(self.module)
        buckets = GradientBuckets(self.module, comm, self.bucket_cap_mb, steps)
        for i in range(len(steps) - 1, -1, -1):
            dy = steps[i].backward(dy, need_input_grad=need_input_grad or i > 0)
            buckets.step_done(i)
        start = time.perf_counter()
        buckets.wait()
        self.last_wait_seconds = time.perf_counter() - start
        return dy

    @contextmanager
    def no_sync(self):
        """Within this block backward only accumulates local gradients (gradient accumulation);
        the first backward after it averages everything accumulated."""
        previous, self._synchronise = self._synchronise, False
        try:
            yield self
        finally:
            self._synchronise = previous
