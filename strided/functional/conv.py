"""2-D convolution: forward and backward over any algorithm of :mod:`strided.conv`.

    y[n, o] = b[o] + sum_c w[o, c] (*) xp[n, g(o)*Cg + c]      (cross-correlation, as torch)

x: (N, C_in, H, W), weight: (C_out, C_in/groups, kh, kw), bias: (C_out,) or None,
y: (N, C_out, OH, OW). ``conv2d_forward`` returns ``(y, cache)`` and
``conv2d_backward(dy, cache)`` returns the three gradients (seed 004's
``conv_forward``/``conv_backward``, with a named cache).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import conv
from ..conv.base import ConvAlgorithm
from ..geometry import ConvGeometry
from .._checks import floating, grad_output, same_dtype

# A layer sees the same shapes and arguments at every step: validate them once.
_geometry = functools.lru_cache(maxsize=256)(ConvGeometry.create)


@dataclass
class Conv2dCache:
    """What the backward pass needs: the input, the weights, the geometry and the algorithm's saved work."""

    x: np.ndarray
    weight: np.ndarray
    has_bias: bool
    geom: ConvGeometry
    algorithm: ConvAlgorithm
    saved: object = None


class Conv2dGrads(NamedTuple):
    x: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    """Convolve x: (N, C_in, H, W) with weight: (C_out, C_in/groups, kh, kw); returns ``(y, cache)``.

    ``padding`` is an int, a pair, ``'same'``, ``'valid'`` or ``(top, bottom, left, right)``;
    ``algorithm`` is ``'auto'`` or a name from ``strided.conv.names()``.
    """
    x = floating("x", x, 4, "(N, C, H, W)")
    weight = floating("weight", weight, 4, "(out_channels, in_channels/groups, kh, kw)")
    same_dtype(x, "weight", weight)
    try:
        geom = _geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    except TypeError:   # unhashable arguments (lists): validate without the cache
        geom = ConvGeometry.create(x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None:
        bias = np.asarray(bias)
        same_dtype(x, "bias", bias)
        if bias.shape != (geom.out_channels,):
            raise ValueError(f"bias must have shape ({geom.out_channels},), got {tuple(bias.shape)}")
    alg, _ = conv.choose(geom, x.dtype, algorithm)
    if bias is not None and getattr(alg, "fuses_bias", False):
        y, saved = alg.forward(x, weight, geom, bias=bias)     # added block by block while in cache
    else:
        y, saved = alg.forward(x, weight, geom)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
    return y, Conv2dCache(x, weight, bias is not None, geom, alg, saved)


def conv2d_backward(dy, cache: Conv2dCache, need_x: bool = True, need_weight: bool = True,
                    need_bias: bool = True) -> Conv2dGrads:
    """Gradients of the loss w.r.t. x, weight and bias, given dy: (N, C_out, OH, OW).

    dbias = sum of dy over (N, OH, OW); the other two come from the algorithm.
    Gradients not needed (frozen weights, the network's input) are not computed.
    """
    geom = cache.geom
    dy = grad_output(dy, geom.y_shape, cache.x.dtype)
    alg = cache.algorithm
    need_bias = need_bias and cache.has_bias
    if hasattr(alg, "backward"):       # all gradients in one pass (see Strided.backward)
        return Conv2dGrads(*alg.backward(dy, cache.x, cache.weight, geom, cache.saved,
                                         need_x, need_weight, need_bias))
    dx = alg.grad_input(dy, cache.weight, geom, cache.saved) if need_x else None
    if need_weight and need_bias and getattr(alg, "fuses_bias", False):
        dw, db = alg.grad_weight_and_bias(dy, cache.x, geom, cache.saved)
    else:
        dw = alg.grad_weight(dy, cache.x, geom, cache.saved) if need_weight else None
        db = dy.sum(axis=(0, 2, 3)) if need_bias else None
    return Conv2dGrads(dx, dw, db)
