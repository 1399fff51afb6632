"""Fully connected (dense) layer: y = x @ W.T + b (write-up 002's dense layer, torch's weight layout).

x: (N, in_features) or (*, in_features), weight: (out_features, in_features), bias: (out_features,).
The products go through :func:`strided._parallel.matmul`: BLAS on one
thread, rows split across the cores when the product is large.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import _checks
from .._parallel import matmul
from .._checks import floating, grad_output, same_dtype


@dataclass
class LinearCache:
    x: np.ndarray       # (M, in_features), leading dimensions flattened
    x_shape: tuple
    weight: np.ndarray
    has_bias: bool


class LinearGrads(NamedTuple):
    x: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None


def linear_forward(x, weight, bias=None):
    """y: (*, out_features) = x @ weight.T + bias; returns ``(y, cache)``."""
    x = _checks_x(x)
    weight = floating("weight", weight, 2, "(out_features, in_features)")
    same_dtype(x, "weight", weight)
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"x has {x.shape[-1]} features (shape {tuple(x.shape)}) but weight {tuple(weight.shape)} "
            f"expects in_features={weight.shape[1]}"
        )
    if bias is not None:
        bias = np.asarray(bias)
        same_dtype(x, "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    x2 = x.reshape(-1, x.shape[-1])
    y = matmul(x2, weight.T)
    if bias is not None:
        y += bias
    if np.may_share_memory(x2, x):
        # the weight gradient reads x: keep it as it is now, whatever the caller does to x before backward
        x2 = x2.copy(order="K")
    return y.reshape(*x.shape[:-1], weight.shape[0]), LinearCache(x2, x.shape, weight, bias is not None)


def _checks_x(x):
    """x as a float array of 1 to 8 dimensions (*, in_features); empty is allowed (an empty output, as in torch)."""
    x = _checks.as_float_array("x", x)
    _checks.ndim("x", x, tuple(range(1, 9)), "(*, in_features)")
    return x


def linear_backward(dy, cache: LinearCache, need_x=True, need_weight=True, need_bias=True) -> LinearGrads:
    """dx = dy @ W, dW = dy.T @ x, db = sum of dy over rows."""
    _checks.cache(cache, LinearCache, "linear_forward")
    dy = grad_output(dy, (*cache.x_shape[:-1], cache.weight.shape[0]), cache.x.dtype)
    dy2 = dy.reshape(-1, cache.weight.shape[0])
    dx = None
    if need_x:
        if cache.x.flags.f_contiguous and not cache.x.flags.c_contiguous:
            # x was a flattened batch-last activation: give dx the same memory order, so the layers
            # below keep working batch-last (the reshape back to (N, C, H, W) is then a view)
            dx = matmul(cache.weight.T, dy2.T).T
        else:
            dx = matmul(dy2, cache.weight)
        dx = dx.reshape(cache.x_shape)
    dw = matmul(dy2.T, cache.x) if need_weight else None
    db = None
    if need_bias and cache.has_bias:
        # a matrix-vector product is several times faster than dy2.sum(0) on (N, features)
        db = matmul(np.ones((1, dy2.shape[0]), dtype=dy2.dtype), dy2).reshape(-1)
    return LinearGrads(dx, dw, db)
