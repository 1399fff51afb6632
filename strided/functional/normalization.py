"""Batch normalisation (seed 002), with torch's running statistics.

x: (N, C) or (N, C, L) for 1-D, (N, C, H, W) for 2-D; statistics per channel
over every other axis (m values each).

    training: mu, var = mean and biased variance of the batch
              y = gamma * (x - mu) / sqrt(var + eps) + beta
              running_mean <- (1 - momentum) * running_mean + momentum * mu
              running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)
    eval:     y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta

Backward in training mode (xhat the normalised input, g = dy * gamma):

    dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)

Synchronised batch norm (data-parallel training) gives ``sum_over_replicas``,
a function returning the elementwise sum of an array over the processes:
m, mu and var are then those of the global batch (two reductions: the count
and the sums, then the centred sum of squares, exactly the one-process
formula), and backward's two means are over the global batch (one reduction
of the sums of g and g * xhat). The parameter gradients stay local sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ._common import floating, grad_output, same_dtype


@dataclass
class BatchNormCache:
    xhat: np.ndarray
    inv_std: np.ndarray  # broadcastable to x
    gamma: np.ndarray | None
    axes: tuple
    batch_stats: bool    # True when the batch's own statistics were used (gradient flows through them)
    # synchronised batch norm: the sum over the processes and the global number of values per channel
    sum_over_replicas: Callable[[np.ndarray], np.ndarray] | None = None
    count: int = 0


class BatchNormGrads(NamedTuple):
    x: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None


def _bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_forward(x, running_mean, running_var, weight=None, bias=None, training=True,
                       momentum=0.1, eps=1e-5, num_batches_tracked=None, sum_over_replicas=None):
    """Normalise x per channel; returns ``(y, cache, new_running_mean, new_running_var)``.

    ``momentum=None`` uses a cumulative average (needs ``num_batches_tracked``,
    the count *after* this batch), as torch does. Running statistics may be
    None (``track_running_stats=False``): the batch statistics are then used
    in eval mode too. ``sum_over_replicas`` (a float64 array -> its elementwise sum over
    the processes, same shape) makes the batch statistics those of
    every process's batch together; the cache keeps it for backward.
    """
    x = floating("x", x, (2, 3, 4, 5), "(N, C, *)")
    c = x.shape[1]
    for name, v in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if v is not None:
            same_dtype(x, name, v)
            if v.shape != (c,):
                raise ValueError(f"{name} must have shape ({c},) for x of shape {tuple(x.shape)}, got {v.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None)")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = _bshape(x)
    use_batch = training or running_mean is None
    count = 0
    if use_batch:
        m = x.size // x.shape[1]
        if sum_over_replicas is not None:
            # the count and the sums in float64 (exact counts), then the centred squares
            sums = sum_over_replicas(np.concatenate([[m], x.sum(axis=axes, dtype=np.float64)]))
            m = count = int(sums[0])
        # torch refuses this whenever it normalises with the batch's own
        # statistics, including eval mode without running statistics
        if m <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input of shape {tuple(x.shape)}"
            )
        if sum_over_replicas is None:
            mu = x.mean(axis=axes)
            centred = x - mu.reshape(shape)
            var = (centred * centred).mean(axis=axes)
        else:
            mu = (sums[1:] / m).astype(x.dtype)
            centred = x - mu.reshape(shape)
            var = (sum_over_replicas((centred * centred).sum(axis=axes, dtype=np.float64)) / m).astype(x.dtype)
        if training and running_mean is not None:
            f = (1.0 / num_batches_tracked) if momentum is None else momentum
            f = x.dtype.type(f)
            running_mean = (1 - f) * running_mean + f * mu
            running_var = (1 - f) * running_var + f * var * x.dtype.type(m / (m - 1))
        inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
        xhat = centred * inv_std.reshape(shape)
    else:
        inv_std = 1 / np.sqrt(running_var + x.dtype.type(eps))
        xhat = (x - running_mean.reshape(shape)) * inv_std.reshape(shape)
    y = xhat * weight.reshape(shape) if weight is not None else xhat.copy()
    if bias is not None:
        y += bias.reshape(shape)
    cache = BatchNormCache(xhat, inv_std.reshape(shape), weight, axes, use_batch,
                           sum_over_replicas if use_batch else None, count)
    return y, cache, running_mean, running_var


def batch_norm_backward(dy, cache: BatchNormCache, need_weight=True, need_bias=True) -> BatchNormGrads:
    dy = grad_output(dy, cache.xhat.shape, cache.xhat.dtype)
    axes, shape = cache.axes, cache.inv_std.shape
    dgamma = (dy * cache.xhat).sum(axis=axes) if (need_weight and cache.gamma is not None) else None
    dbeta = dy.sum(axis=axes) if need_bias else None
    g = dy * cache.gamma.reshape(shape) if cache.gamma is not None else dy
    if cache.batch_stats and cache.sum_over_replicas is not None:
        sums = np.stack([g.sum(axis=axes, dtype=np.float64), (g * cache.xhat).sum(axis=axes, dtype=np.float64)])
        mean_g, mean_gx = (cache.sum_over_replicas(sums) / cache.count).astype(dy.dtype)
        dx = (g - mean_g.reshape(shape) - cache.xhat * mean_gx.reshape(shape)) * cache.inv_std
    elif cache.batch_stats:
        mean_g = g.mean(axis=axes, keepdims=True)
        mean_gx = (g * cache.xhat).mean(axis=axes, keepdims=True)
        dx = (g - mean_g - cache.xhat * mean_gx) * cache.inv_std
    else:
        dx = g * cache.inv_std
    return BatchNormGrads(dx, dgamma, dbeta)
