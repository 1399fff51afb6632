"""``BatchNorm1d`` and ``BatchNorm2d`` with torch's running statistics and state-dict names."""
from __future__ import annotations

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
            num_batches_tracked=int(count) if update else None)
        if update:
            self._sync_buffer("num_batches_tracked", count)
            self._sync_buffer("running_mean", rm)
            self._sync_buffer("running_var", rv)
        return y

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
    """Batch norm over x: (N, C, H, W), statistics per channel over (N, H, W).

    As torch's, it takes batches only (no unbatched (C, H, W)); an empty batch
    gives an empty output, leaves the running statistics as they were and
    counts in ``num_batches_tracked``.
    """
    _ndims, _layout = (4,), "(N, C, H, W)"
