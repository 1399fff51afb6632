"""Batch, group and layer normalisation (batch norm: write-up 002), as torch computes them.

All three standardise x over some axes (subtract the mean, divide by
sqrt(biased variance + eps)) and then scale and shift it per channel or per
element; they differ in the axes:

    batch norm   per channel, over the batch and every spatial axis (running statistics in eval)
    group norm   per example and group of C/G channels, over the group's channels and spatial axes
    layer norm   per example, over the trailing axes given by normalized_shape

and share the backward through the statistics (xhat the standardised values,
g = dy * gamma, means over the axes standardised over):

    dx = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)

Batch norm: x is (N, C) or (N, C, L) for 1-D, (N, C, H, W) for 2-D; statistics
per channel over every other axis (m values each). An empty x (N = 0) gives an empty y
and leaves the running statistics as they were, as torch does.

    training: mu, var = mean and biased variance of the batch
              y = gamma * (x - mu) / sqrt(var + eps) + beta
              running_mean <- (1 - momentum) * running_mean + momentum * mu
              running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)
    eval:     y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta

Backward in training mode: the formula above; in eval mode dx = g / sqrt(running_var + eps).

Synchronised batch norm (data-parallel training) gives ``sum_over_replicas``,
a function returning the elementwise sum of an array over the processes:
m, mu and var are then those of the global batch (two reductions: the count
and the sums, then the centred sum of squares, exactly the one-process
formula), and backward's two means are over the global batch (one reduction
of the sums of g and g * xhat). The parameter gradients stay local sums.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import _checks, _memory, _parallel
from .._checks import grad_output, same_dtype
from .._parallel import elementwise


def _mean(v: np.ndarray, axes: tuple, count: int) -> np.ndarray:
    """v's mean over axes (kept), ``count`` values each; 0 for an empty group (np.mean would warn and give NaN)."""
    return v.sum(axis=axes, keepdims=True) / max(count, 1)


def _standardize(x: np.ndarray, axes: tuple, eps: float, sum_over_replicas=None):
    """``(xhat, inv_std, mean, var, count)``: x standardised over ``axes``; the statistics keep their dims.

    xhat = (x - mean) / sqrt(var + eps) with the biased variance (divided by
    ``count``, the number of values per statistic, not count - 1). With
    ``sum_over_replicas`` (a float64 array -> its elementwise sum over the
    processes) the statistics are those of every process's x together: the
    count and the sums go in one reduction, then the centred sums of squares
    in another (the same two-pass formula, so no cancellation), both
    accumulated in float64; ``count`` is then the global one.
    """
    count = math.prod(x.shape[a] for a in axes)
    if sum_over_replicas is None:
        mean = _mean(x, axes, count)
    else:
        sums = sum_over_replicas(np.concatenate([[count], x.sum(axis=axes, dtype=np.float64).reshape(-1)]))
        count = int(sums[0])
        mean = (sums[1:] / max(count, 1)).astype(x.dtype).reshape(_kept(x, axes))
    centred = x - mean
    var = _replica_means(sum_over_replicas, axes, count, centred * centred)[0]
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    return centred * inv_std, inv_std, mean, var, count


def _kept(x: np.ndarray, axes: tuple) -> tuple:
    """x's shape with ``axes`` of size 1 (the shape of statistics over them)."""
    return tuple(1 if a in axes else s for a, s in enumerate(x.shape))


def _replica_means(sum_over_replicas, axes: tuple, count: int, *arrays) -> list:
    """The mean over ``axes`` (kept) of each array, ``count`` values each; over every process's arrays
    with ``sum_over_replicas`` (one reduction for all of them, in float64)."""
    if sum_over_replicas is None:
        return [_mean(v, axes, count) for v in arrays]
    sums = sum_over_replicas(np.stack([v.sum(axis=axes, dtype=np.float64) for v in arrays])) / max(count, 1)
    return [total.astype(v.dtype).reshape(_kept(v, axes)) for total, v in zip(sums, arrays)]


def _standardize_backward(g: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray, axes: tuple,
                          sum_over_replicas=None, count: int = 0) -> np.ndarray:
    """dL/dx through the statistics of :func:`_standardize`, given g = dL/dxhat: x's shape.

    With ``sum_over_replicas`` the two means are over every process's values
    (``count`` of them per statistic, as :func:`_standardize` returned), in one reduction.
    """
    if sum_over_replicas is None:
        count = math.prod(g.shape[a] for a in axes)
    mean_g, mean_gx = _replica_means(sum_over_replicas, axes, count, g, g * xhat)
    return (g - mean_g - xhat * mean_gx) * inv_std


def _affine(xhat, weight, bias, shape):
    """xhat * weight + bias, the parameters reshaped to ``shape`` (broadcastable to xhat); either may be None."""
    y = xhat * weight.reshape(shape) if weight is not None else xhat.copy()
    if bias is not None:
        y += bias.reshape(shape)
    return y


def _check_parameters(x, expected: tuple, **arrays):
    """Each array given (None: absent) has x's dtype and the shape ``expected``."""
    for name, v in arrays.items():
        if v is not None:
            same_dtype(x, name, v)
            if v.shape != expected:
                raise ValueError(f"{name} must have shape {expected} for x of shape {tuple(x.shape)}, got {v.shape}")


def _affine_backward(dy, xhat, weight, shape, sum_axes, need_weight, need_bias):
    """``(g, dweight, dbias)`` for y = xhat * weight + bias.

    g = dL/dxhat (x's shape), weight reshaped to ``shape`` (broadcastable to x);
    the parameters' gradients are sums over ``sum_axes`` (None when weight is
    absent or a gradient is not asked for).
    """
    dweight = (dy * xhat).sum(axis=sum_axes) if (need_weight and weight is not None) else None
    dbias = dy.sum(axis=sum_axes) if need_bias else None
    g = dy * weight.reshape(shape) if weight is not None else dy
    return g, dweight, dbias


@dataclass
class BatchNormCache:
    """What batch norm's backward needs: the standardised x (training), or x and the running mean (eval).

    In eval mode the forward pass writes y alone (inference needs nothing
    more), so the cache keeps x itself, the previous layer's output, which
    nothing else writes, and backward standardises it again.
    """
    xhat: np.ndarray | None   # None in eval mode
    inv_std: np.ndarray  # broadcastable to x
    gamma: np.ndarray | None
    axes: tuple
    batch_stats: bool    # True when the batch's own statistics were used (gradient flows through them)
    # synchronised batch norm: the sum over the processes and the global number of values per channel
    sum_over_replicas: Callable[[np.ndarray], np.ndarray] | None = None
    count: int = 0
    x: np.ndarray | None = None       # eval mode: the input
    mean: np.ndarray | None = None    # eval mode: the running mean used, broadcastable to x


class NormGrads(NamedTuple):
    """The gradients of a normalisation: x's shape, and the affine parameters' (None when absent or not asked for)."""
    x: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None


BatchNormGrads = NormGrads  # batch norm's name for it


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
    x = _checks.as_float_array("x", x)
    _checks.ndim("x", x, (2, 3, 4, 5), "(N, C, *)")
    _checks.boolean("training", training)
    eps = _checks.positive_float("eps", eps, allow_zero=True)
    if momentum is not None:
        momentum = _checks.finite_float("momentum", momentum)
    elif training and running_mean is not None and num_batches_tracked is None:
        raise ValueError("momentum=None (a cumulative average) needs num_batches_tracked, the count after this batch")
    if sum_over_replicas is not None and not callable(sum_over_replicas):
        raise TypeError(f"sum_over_replicas must be a function (array -> its sum over the processes) or None, "
                        f"got {type(sum_over_replicas).__name__}")
    c = x.shape[1]
    _check_parameters(x, (c,), running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None)")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = _bshape(x)
    use_batch = training or running_mean is None
    if x.size == 0 and (sum_over_replicas is None or not use_batch):
        # nothing to normalise (an empty batch, or empty planes): an empty output and zero parameter
        # gradients, the running statistics untouched, as in torch. A process whose batch is empty in
        # synchronised batch norm goes on below instead: it takes part in the reductions with a count of 0
        xhat = np.empty_like(x)
        cache = BatchNormCache(xhat, np.ones(shape, x.dtype), weight, axes, False)
        return xhat.copy(), cache, running_mean, running_var
    count = 0
    rows = None
    if use_batch:
        rows = _channel_rows(x) if sum_over_replicas is None and x.size > c else None
        if rows is not None:   # batch-last planes: a row-wise pass computes y with the statistics
            y, xhat, inv_std, mu, var = _batch_norm_rows(x, rows, weight, bias, eps)
            count = x.size // c
        else:
            xhat, inv_std, mu, var, count = _standardize(x, axes, eps, sum_over_replicas)
        # torch refuses this whenever it normalises with the batch's own
        # statistics, including eval mode without running statistics
        if count <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input of shape {tuple(x.shape)}"
            )
        if training and running_mean is not None:
            f = (1.0 / num_batches_tracked) if momentum is None else momentum
            f = x.dtype.type(f)
            running_mean = (1 - f) * running_mean + f * mu.reshape(c)
            running_var = (1 - f) * running_var + f * var.reshape(c) * x.dtype.type(count / (count - 1))
    else:
        inv_std = 1 / np.sqrt(running_var + x.dtype.type(eps))
        y = _batch_norm_running(x, running_mean, inv_std, weight, bias)
        cache = BatchNormCache(None, inv_std.reshape(shape), weight, axes, False,
                               x=x, mean=running_mean.reshape(shape).copy())
        return y, cache, running_mean, running_var
    if rows is None:
        y = _affine(xhat, weight, bias, shape)
    cache = BatchNormCache(xhat, inv_std.reshape(shape), weight, axes, True, sum_over_replicas, count)
    return y, cache, running_mean, running_var


def batch_norm_backward(dy, cache: BatchNormCache, need_weight=True, need_bias=True) -> BatchNormGrads:
    _checks.cache(cache, BatchNormCache, "batch_norm_forward")
    xhat = cache.xhat if cache.xhat is not None else (cache.x - cache.mean) * cache.inv_std
    dy = grad_output(dy, xhat.shape, xhat.dtype)
    axes, shape = cache.axes, cache.inv_std.shape
    if (cache.batch_stats and cache.sum_over_replicas is None and _channel_rows(xhat) is not None
            and _channel_rows(dy) is not None):
        return _batch_norm_rows_backward(dy, cache, need_weight, need_bias)
    g, dgamma, dbeta = _affine_backward(dy, xhat, cache.gamma, shape, axes, need_weight, need_bias)
    if cache.batch_stats:
        dx = _standardize_backward(g, xhat, cache.inv_std, axes, cache.sum_over_replicas, cache.count)
    else:
        dx = g * cache.inv_std
    return BatchNormGrads(dx, dgamma, dbeta)


def _channel_rows(a: np.ndarray) -> np.ndarray | None:
    """a: (N, C, H, W) with batch-last memory as its (C, H*W*N) matrix, a view; None for any other array.

    Each channel's values are then one contiguous row: the statistics are
    one pass along each row and every element-wise pass is a pass over
    contiguous memory.
    """
    if a.ndim != 4 or a.shape[0] < 2 or not _memory.is_batch_last(a):
        return None
    return a.transpose(1, 2, 3, 0).reshape(a.shape[1], -1)


def _row_dots(a: np.ndarray, b: np.ndarray, h: int) -> np.ndarray:
    """sum(a * b) per row of two (C, M) channel-row matrices (M = H*W*N): (C,), without a temporary.

    One dot product per image row (W*N values, contiguous), then a pairwise
    sum over the ``h`` rows: a single running sum over a whole channel would lose
    float32 digits (relative error 7e-5 over a million values, against 3e-7).
    """
    c = a.shape[0]
    return np.einsum("chk,chk->ch", a.reshape(c, h, -1), b.reshape(c, h, -1)).sum(axis=1)


def _channel_chunks(c: int, size: int, arrays: int) -> list[slice]:
    """The channels cut into groups for the thread pool, as :func:`strided._parallel.elementwise` cuts.

    Everything per channel is computed inside one group, so the results do
    not depend on the cut (nor on the number of threads).
    """
    return _parallel.even_split(c, min(16, size * arrays // _parallel.MIN_ELEMENTWISE))


def _batch_norm_rows(x, rows, weight, bias, eps):
    """Batch norm of a batch-last x with its batch statistics: ``(y, xhat, inv_std, mean, var)``, y and xhat batch-last.

    rows: x as (C, M), see :func:`_channel_rows`. The same formula as
    :func:`_standardize` and :func:`_affine`, each group of channels in one
    pass of the thread pool while it is in the core's cache: the sum along
    each row, the centred values and their sum of squares, standardised in
    place, scaled and shifted into y.
    """
    c, m = rows.shape
    h = x.shape[2]
    xhat = _memory.empty(x.shape, x.dtype, batch_last=True)
    y = _memory.empty(x.shape, x.dtype, batch_last=True)
    xr, yr = _channel_rows(xhat), _channel_rows(y)
    mean, var, inv_std = (np.empty(c, x.dtype) for _ in range(3))
    cuts = _channel_chunks(c, x.size, 3)
    e = x.dtype.type(eps)

    def chunk(i):
        s = cuts[i]
        xh, out = xr[s], yr[s]
        mu = rows[s].sum(axis=1) / m
        np.subtract(rows[s], mu[:, None], out=xh)
        v = _row_dots(xh, xh, h) / m                    # the centred sum of squares, no temporary
        k = 1 / np.sqrt(v + e)
        np.multiply(xh, k[:, None], out=xh)
        if weight is not None:
            np.multiply(xh, weight[s, None], out=out)
        else:
            np.copyto(out, xh)
        if bias is not None:
            out += bias[s, None]
        mean[s], var[s], inv_std[s] = mu, v, k

    _parallel.map_chunks(chunk, len(cuts))
    shape = (1, c, 1, 1)
    return y, xhat, inv_std.reshape(shape), mean.reshape(shape), var.reshape(shape)


def _batch_norm_running(x, mean, inv_std, weight, bias):
    """Batch norm with given statistics (eval mode): y, in x's memory order.

    mean, inv_std, weight, bias: (C,) (the last two may be None). The
    formula of the training path, (x - mean) * inv_std * weight + bias, in
    one pass of the thread pool, in place in y while each chunk is in cache.
    """
    shape = _bshape(x)
    y = _memory.empty_like(x)
    per_channel = [np.broadcast_to(v.reshape(shape), x.shape) for v in (mean, inv_std, weight, bias) if v is not None]

    def chunk(out, xc, mu, k, *affine):
        np.subtract(xc, mu, out=out)
        out *= k
        if weight is not None:
            out *= affine[0]
        if bias is not None:
            out += affine[-1]

    elementwise(chunk, y, x, *per_channel)
    return y


def _batch_norm_rows_backward(dy, cache: BatchNormCache, need_weight, need_bias) -> BatchNormGrads:
    """The training-mode backward of :func:`_batch_norm_rows`, xhat and dy batch-last.

    With g = dy * gamma, the formula of :func:`_standardize_backward` is
    dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)): per
    group of channels, two sums along contiguous rows (which are also the
    bias and weight gradients), then one pass, while the group is in cache.
    """
    xr, dr = _channel_rows(cache.xhat), _channel_rows(dy)
    c, m = xr.shape
    h = dy.shape[2]
    k = cache.inv_std.reshape(c)
    if cache.gamma is not None:
        k = k * cache.gamma
    dx = _memory.empty(dy.shape, dy.dtype, batch_last=True)
    dxr = _channel_rows(dx)
    dbeta, dgx = np.empty(c, dy.dtype), np.empty(c, dy.dtype)
    cuts = _channel_chunks(c, dy.size, 3)

    def chunk(i):
        s = cuts[i]
        out, d, xh = dxr[s], dr[s], xr[s]
        db = d.sum(axis=1)
        dg = _row_dots(d, xh, h)                        # sum of dy * xhat per channel
        ks = k[s]
        np.multiply(xh, (-ks * dg / m)[:, None], out=out)
        out += (-ks * db / m)[:, None]
        out += d * ks[:, None]
        dbeta[s], dgx[s] = db, dg

    _parallel.map_chunks(chunk, len(cuts))
    return BatchNormGrads(dx, dgx if (need_weight and cache.gamma is not None) else None,
                          dbeta if need_bias else None)


def _groups(x: np.ndarray, num_groups: int) -> tuple:
    """The (N, G, C/G * spatial) shape group norm standardises x in (explicit, so N = 0 works too)."""
    return (x.shape[0], num_groups, x.shape[1] // num_groups * math.prod(x.shape[2:]))


@dataclass
class GroupNormCache:
    xhat: np.ndarray      # x's shape
    inv_std: np.ndarray   # (N, G, 1)
    weight: np.ndarray | None
    num_groups: int


def group_norm_forward(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Group normalisation (torch's ``group_norm``); returns ``(y, cache)``.

    x: (N, C, *) with C divisible by num_groups; each example's channels are
    split into num_groups groups of C / num_groups consecutive channels, and
    each group is standardised over its channels and every spatial position.
    weight, bias: (C,) or None. y: x's shape. The same in training and
    evaluation (no running statistics). N may be 0.
    """
    x = _checks.as_float_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (N, C, *), got shape {tuple(x.shape)} "
                         f"({x.ndim} dimension{'s' if x.ndim != 1 else ''})")
    n, c = x.shape[:2]
    num_groups = _checks.positive_int("num_groups", num_groups)
    eps = _checks.positive_float("eps", eps, allow_zero=True)
    if c % num_groups:
        raise ValueError(f"x must have a number of channels divisible by num_groups={num_groups}, "
                         f"got shape {tuple(x.shape)} ({c} channels)")
    _check_parameters(x, (c,), weight=weight, bias=bias)
    xhat, inv_std, _, _, _ = _standardize(x.reshape(_groups(x, num_groups)), (2,), eps)
    xhat = xhat.reshape(x.shape)
    y = _affine(xhat, weight, bias, (c,) + (1,) * (x.ndim - 2))
    return y, GroupNormCache(xhat, inv_std, weight, num_groups)


def group_norm_backward(dy, cache: GroupNormCache, need_weight=True, need_bias=True) -> NormGrads:
    """dy: x's shape; returns NormGrads(x: x's shape, weight: (C,) or None, bias: (C,) or None)."""
    _checks.cache(cache, GroupNormCache, "group_norm_forward")
    xhat = cache.xhat
    dy = grad_output(dy, xhat.shape, xhat.dtype)
    g, dweight, dbias = _affine_backward(dy, xhat, cache.weight, (-1,) + (1,) * (xhat.ndim - 2),
                                         (0,) + tuple(range(2, xhat.ndim)), need_weight, need_bias)
    grouped = _groups(xhat, cache.num_groups)
    dx = _standardize_backward(g.reshape(grouped), xhat.reshape(grouped), cache.inv_std, (2,))
    return NormGrads(dx.reshape(xhat.shape), dweight, dbias)


@dataclass
class LayerNormCache:
    xhat: np.ndarray      # x's shape
    inv_std: np.ndarray   # x's shape with the normalised axes of size 1
    weight: np.ndarray | None
    axes: tuple           # the normalised (trailing) axes


def layer_norm_forward(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Layer normalisation (torch's ``layer_norm``); returns ``(y, cache)``.

    x: (*, *normalized_shape): every example (everything before the trailing
    ``normalized_shape`` axes) is standardised over those axes. weight, bias:
    normalized_shape or None (element-wise affine). y: x's shape. The same in
    training and evaluation; the leading axes may be absent or of size 0.
    """
    x = _checks.as_float_array("x", x)
    shape = _checks.shape("normalized_shape", normalized_shape)
    eps = _checks.positive_float("eps", eps, allow_zero=True)
    k = len(shape)
    if x.ndim < k or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"x must end with normalized_shape {shape}, i.e. have shape (*, "
                         f"{', '.join(map(str, shape))}), got shape {tuple(x.shape)}")
    _check_parameters(x, shape, weight=weight, bias=bias)
    axes = tuple(range(x.ndim - k, x.ndim))
    xhat, inv_std, _, _, _ = _standardize(x, axes, eps)
    return _affine(xhat, weight, bias, shape), LayerNormCache(xhat, inv_std, weight, axes)


def layer_norm_backward(dy, cache: LayerNormCache, need_weight=True, need_bias=True) -> NormGrads:
    """dy: x's shape; returns NormGrads(x: x's shape, weight and bias: normalized_shape or None)."""
    _checks.cache(cache, LayerNormCache, "layer_norm_forward")
    xhat = cache.xhat
    dy = grad_output(dy, xhat.shape, xhat.dtype)
    weight = cache.weight
    g, dweight, dbias = _affine_backward(dy, xhat, weight, None if weight is None else weight.shape,
                                         tuple(range(xhat.ndim - len(cache.axes))), need_weight, need_bias)
    return NormGrads(_standardize_backward(g, xhat, cache.inv_std, cache.axes), dweight, dbias)
