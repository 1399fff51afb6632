"""``BatchNorm1d`` and ``BatchNorm2d`` with torch's running statistics and state-dict names."""
from __future__ import annotations

import numpy as np

from .. import _checks
from .. import functional as F
from . import init
from .module import Module, Parameter


class _Normalization(Module):
    """The backward every normalisation layer shares: its functional backward, gradients added into weight and bias."""
    _backward = None

    def backward(self, dy, need_input_grad=True):
        cache = self._need_cache(self._cache)
        return self._accumulate(type(self)._backward(dy, cache, need_weight=self._needs_grad("weight"),
                                                     need_bias=self._needs_grad("bias")))


class BatchNormBase(_Normalization):
    """What BatchNorm1d, BatchNorm2d and ``strided.distributed.SyncBatchNorm`` share (torch's ``_BatchNorm``)."""

    _backward = F.batch_norm_backward
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
        self.weight = Parameter(init.full(num_features, 1, dt)) if affine else None
        self.bias = Parameter(init.full(num_features, 0, dt)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", init.full(num_features, 0, dt))
            self.register_buffer("running_var", init.full(num_features, 1, dt))
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
            num_batches_tracked=int(count) if update else None, sum_over_replicas=self._sum_over_replicas())
        if update:
            self._sync_buffer("num_batches_tracked", count)
            self._sync_buffer("running_mean", rm)
            self._sync_buffer("running_var", rv)
        return y

    def _sum_over_replicas(self):
        """The reduction that makes the batch statistics global (None: this process's batch alone)."""
        return None

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(BatchNormBase):
    """Batch norm over x: (N, C) or (N, C, L), statistics per feature C."""
    _ndims, _layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(BatchNormBase):
    """Batch norm over x: (N, C, H, W), statistics per channel over (N, H, W).

    As torch's, it takes batches only (no unbatched (C, H, W)); an empty batch
    gives an empty output, leaves the running statistics as they were and
    counts in ``num_batches_tracked``.
    """
    _ndims, _layout = (4,), "(N, C, H, W)"


class GroupNorm(_Normalization):
    """Group normalisation (torch's ``GroupNorm``): each example's channels standardised in groups.

    The C channels are split into ``num_groups`` groups of consecutive
    channels; each group of each example is standardised over its channels
    and spatial positions, then scaled and shifted per channel. No running
    statistics: training and evaluation compute the same thing.

    Args:
        num_groups: G, which must divide num_channels.
        num_channels: C.
        eps: added to the variance.
        affine: learn ``weight`` (ones) and ``bias`` (zeros), shape (C,).
        dtype: float32 (default) or float64 parameters.
        bias: (keyword only, torch 2.13's) with affine, whether to learn the bias.

    Shape: x (N, C, *) (N may be 0; torch has no unbatched form), y x's shape.

    Example::

        >>> m = nn.GroupNorm(2, 4)
        >>> m(np.random.randn(8, 4, 5, 5)).shape
        (8, 4, 5, 5)
    """

    _backward = F.group_norm_backward

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=None, *, bias=True):
        self.num_groups = _checks.positive_int("num_groups", num_groups)
        self.num_channels = _checks.positive_int("num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.eps = _checks.positive_float("eps", eps)
        self.affine = _checks.boolean("affine", affine)
        dt = _checks.dtype_of("dtype", np.float32 if dtype is None else dtype)
        self.weight = Parameter(init.full(num_channels, 1, dt)) if self.affine else None
        self.bias = Parameter(init.full(num_channels, 0, dt)) if self.affine and _checks.boolean("bias", bias) else None
        self._cache = None

    def forward(self, x):
        x = _checks.as_float_array("x", x, dtype=self.dtype if self.affine else None)
        if x.ndim >= 2 and x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm expects {self.num_channels} channels, got x of shape {tuple(x.shape)}")
        y, self._cache = F.group_norm_forward(x, self.num_groups, _data(self.weight), _data(self.bias), self.eps)
        return y

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LayerNorm(_Normalization):
    """Layer normalisation (torch's ``LayerNorm``): each example standardised over its trailing axes.

    Args:
        normalized_shape: an int or a tuple, the trailing axes of x to
            standardise over (``LayerNorm(C)`` on (N, L, C); ``LayerNorm((C, H, W))`` on (N, C, H, W)).
        eps: added to the variance.
        elementwise_affine: learn ``weight`` (ones) and ``bias`` (zeros), of shape normalized_shape.
        bias: with elementwise_affine, whether to learn the bias (torch 2.13's).
        dtype: float32 (default) or float64 parameters.

    No running statistics: training and evaluation compute the same thing.

    Shape: x (*, *normalized_shape) (the leading axes may be absent or of size 0), y x's shape.

    Example::

        >>> m = nn.LayerNorm(16)
        >>> m(np.random.randn(4, 10, 16)).shape
        (4, 10, 16)
    """

    _backward = F.layer_norm_backward

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=None):
        self.normalized_shape = _checks.shape("normalized_shape", normalized_shape)
        self.eps = _checks.positive_float("eps", eps)
        self.elementwise_affine = _checks.boolean("elementwise_affine", elementwise_affine)
        with_bias = _checks.boolean("bias", bias)
        dt = _checks.dtype_of("dtype", np.float32 if dtype is None else dtype)
        affine = self.elementwise_affine
        self.weight = Parameter(init.full(self.normalized_shape, 1, dt)) if affine else None
        self.bias = Parameter(init.full(self.normalized_shape, 0, dt)) if affine and with_bias else None
        self._cache = None

    def forward(self, x):
        x = _checks.as_float_array("x", x, dtype=self.dtype if self.elementwise_affine else None)
        y, self._cache = F.layer_norm_forward(x, self.normalized_shape, _data(self.weight), _data(self.bias),
                                              self.eps)
        return y

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


def _data(p: Parameter | None):
    return None if p is None else p.data
