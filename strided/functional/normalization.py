"""Batch normalisation (write-up 002), with torch's running statistics.

x: (N, C) or (N, C, L) for 1-D, (N, C, H, W) for 2-D; statistics per channel
over every other axis (m values each). An empty x (N = 0) gives an empty y
and leaves the running statistics as they were, as torch does.

    training: mu, var = mean and biased variance of the batch
              y = gamma * (x - mu) / sqrt(var + eps) + beta
              running_mean <- (1 - momentum) * running_mean + momentum * mu
              running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)
    eval:     y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta

Backward in training mode (xhat the normalised input, g = dy * gamma):

    dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import _checks
from .._checks import grad_output, same_dtype


@dataclass
class BatchNormCache:
    xhat: np.ndarray
    inv_std: np.ndarray  # broadcastable to x
    gamma: np.ndarray | None
    axes: tuple
    batch_stats: bool    # True when the batch's own statistics were used (gradient flows through them)


class BatchNormGrads(NamedTuple):
    x: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None


def _bshape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_forward(x, running_mean, running_var, weight=None, bias=None, training=True,
                       momentum=0.1, eps=1e-5, num_batches_tracked=None):
    """Normalise x per channel; returns ``(y, cache, new_running_mean, new_running_var)``.

    ``momentum=None`` uses a cumulative average (needs ``num_batches_tracked``,
    the count *after* this batch), as torch does. Running statistics may be
    None (``track_running_stats=False``): the batch statistics are then used
    in eval mode too.
    """
    x = _checks.as_float_array("x", x)
    _checks.ndim("x", x, (2, 3, 4, 5), "(N, C, *)")
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
    if x.size == 0:
        # nothing to normalise (an empty batch, or empty planes): an empty output and zero parameter
        # gradients, the running statistics untouched, as in torch
        xhat = np.empty_like(x)
        cache = BatchNormCache(xhat, np.ones(shape, x.dtype), weight, axes, False)
        return xhat.copy(), cache, running_mean, running_var
    use_batch = training or running_mean is None
    if use_batch:
        m = x.size // x.shape[1]
        # torch refuses this whenever it normalises with the batch's own
        # statistics, including eval mode without running statistics
        if m <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input of shape {tuple(x.shape)}"
            )
        mu = x.mean(axis=axes)
        centred = x - mu.reshape(shape)
        var = (centred * centred).mean(axis=axes)
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
    cache = BatchNormCache(xhat, inv_std.reshape(shape), weight, axes, use_batch)
    return y, cache, running_mean, running_var


def batch_norm_backward(dy, cache: BatchNormCache, need_weight=True, need_bias=True) -> BatchNormGrads:
    dy = grad_output(dy, cache.xhat.shape, cache.xhat.dtype)
    axes, shape = cache.axes, cache.inv_std.shape
    dgamma = (dy * cache.xhat).sum(axis=axes) if (need_weight and cache.gamma is not None) else None
    dbeta = dy.sum(axis=axes) if need_bias else None
    g = dy * cache.gamma.reshape(shape) if cache.gamma is not None else dy
    if cache.batch_stats:
        mean_g = g.mean(axis=axes, keepdims=True)
        mean_gx = (g * cache.xhat).mean(axis=axes, keepdims=True)
        dx = (g - mean_g - cache.xhat * mean_gx) * cache.inv_std
    else:
        dx = g * cache.inv_std
    return BatchNormGrads(dx, dgamma, dbeta)
