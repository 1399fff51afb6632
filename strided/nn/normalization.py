"""``BatchNorm1d``, ``BatchNorm2d`` and ``SyncBatchNorm`` with torch's running statistics and state-dict names."""
from __future__ import annotations

from functools import partial

import numpy as np

from .. import _checks
from .. import functional as F
from .module import Module, Parameter


class _BatchNorm(Module):
    _ndims: tuple = ()
    _layout = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=None):
        self.num_features = _checks.positive_int("num_features", num_features)
        self.eps = _checks.positive_float("eps", eps)
        if momentum is not None:
            momentum = _checks.probability("momentum", momentum)
        self.momentum = momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dt = _checks.dtype_of("dtype", np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.ones(num_features, dt)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dt)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dt))
            self.register_buffer("running_var", np.ones(num_features, dt))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self._cache = None

    def reset_running_stats(self):
        if self.track_running_stats:
            self._sync_buffer("running_mean", np.zeros_like(self.running_mean))
            self._sync_buffer("running_var", np.ones_like(self.running_var))
            self._sync_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x):
        dt = self.running_mean.dtype if self.track_running_stats else (
            self.weight.dtype if self.affine else None)
        x = _checks.as_float_array("x", x, dtype=dt)
        _checks.ndim("x", x, self._ndims, self._layout)
        _checks.nonempty("x", x)
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_features} channels, got x of shape {tuple(x.shape)}"
            )
        update = self.training and self.track_running_stats
        # the buffers change only once the batch has been accepted, so a
        # rejected batch (one value per channel, wrong dtype) leaves no trace
        count = np.asarray(self.num_batches_tracked + 1, dtype=np.int64) if update else None
        y, self._cache, rm, rv = F.batch_norm_forward(
            x, self.running_mean, self.running_var,
            None if self.weight is None else self.weight.data, None if self.bias is None else self.bias.data,
            training=self.training, momentum=self.momentum, eps=self.eps,
            num_batches_tracked=int(count) if update else None, sum_over_replicas=self._sum_over_replicas())
        if update:
            self._sync_buffer("num_batches_tracked", count)
            self._sync_buffer("running_mean", rm)
            self._sync_buffer("running_var", rv)
        return y

    def _sum_over_replicas(self):
        """The reduction that makes the batch statistics global (None: this process's batch alone)."""
        return None

    def backward(self, dy, need_input_grad=True):
        cache = self._need_cache(self._cache)
        return self._accumulate(F.batch_norm_backward(dy, cache, need_weight=self._needs_grad("weight"),
                                                      need_bias=self._needs_grad("bias")))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over x: (N, C) or (N, C, L), statistics per feature C."""
    _ndims, _layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over x: (N, C, H, W), statistics per channel over (N, H, W)."""
    _ndims, _layout = (4,), "(N, C, H, W)"


class SyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are those of the global batch of data-parallel training.

    In training mode the mean and variance of each channel are computed
    over every process's batch together (the processes of
    ``process_group``, an mpi4py communicator; the world of
    :mod:`strided.distributed` when None): the count and sums are summed
    over the processes, then the centred sums of squares (two allreduces of
    C + 1 and C float64 values per forward, one of 2C per backward), so the
    result equals :class:`BatchNorm2d` on the concatenated global batch up to
    the order of the additions. The running statistics follow torch (unbiased
    variance over the global count). In eval mode, and in a single process,
    it is exactly :class:`BatchNorm1d`/:class:`BatchNorm2d`. Every process
    must call forward and backward together (they communicate).

    Args:
        num_features (int): C, the number of channels.
        eps (float): added to the variance. Default 1e-5.
        momentum (float or None): running-statistics factor; None for a cumulative average. Default 0.1.
        affine (bool): learn a per-channel scale (``weight``) and shift (``bias``). Default True.
        track_running_stats (bool): keep ``running_mean``/``running_var`` for eval mode. Default True.
        process_group: an mpi4py communicator whose processes share the statistics; None for every process.
        dtype: float32 (default) or float64.

    Shape:
        x: (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W); y: the same.

    Examples::

        >>> model = nn.SyncBatchNorm.convert_sync_batchnorm(strided.models.fashion_cnn())
    """
    _ndims, _layout = (2, 3, 4, 5), "(N, C, *)"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.process_group = process_group

    def get_config(self) -> dict:
        """The constructor arguments without ``process_group`` (a live communicator, not part of the model)."""
        config = super().get_config()
        config.pop("process_group", None)
        return config

    def _sum_over_replicas(self):
        if not self.training:
            return None
        from .. import distributed  # above nn; imported when a forward needs it
        if not distributed.is_distributed(self.process_group):
            return None
        return partial(distributed.all_reduce_sum, group=self.process_group)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """Replace every BatchNorm1d/BatchNorm2d in ``module`` by a SyncBatchNorm; returns the result.

        The new layers keep the old ones' arguments, mode, parameters (the
        same Parameter objects, so an optimizer built on them still trains
        them) and running statistics, and take their place in the parent
        (same name, same position). A batch norm given as ``module`` itself is
        returned converted; other modules are changed in place and returned.
        """
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            dtype = (module.running_mean.dtype if module.track_running_stats else
                     module.weight.dtype if module.affine else None)
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats, process_group, dtype)
            if module.affine:
                sync.weight, sync.bias = module.weight, module.bias
            if module.track_running_stats:
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    sync.register_buffer(name, module._buffers[name])
            sync.train(module.training)
            return sync
        for name, child in list(module._modules.items()):
            converted = cls.convert_sync_batchnorm(child, process_group)
            if converted is not child:
                # in place, so the children keep their order (setattr would move it to the end)
                module._modules[name] = converted
                object.__setattr__(module, name, converted)
        return module
