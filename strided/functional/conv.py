"""2-D convolution: forward and backward over any algorithm of :mod:`strided.conv`.

    y[n, o] = b[o] + sum_c w[o, c] (*) xp[n, g(o)*Cg + c]      (cross-correlation, as torch)

x: (N, C_in, H, W), weight: (C_out, C_in/groups, kh, kw), bias: (C_out,) or None,
y: (N, C_out, OH, OW). ``conv2d_forward`` returns ``(y, cache)`` and
``conv2d_backward(dy, cache)`` returns the three gradients (write-up 004's
``conv_forward``/``conv_backward``, with a named cache).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import _checks, conv
from ..conv.base import ConvAlgorithm
from ..geometry import ConvGeometry
from .._checks import floating, grad_output, same_dtype
from .padding import PAD_MODES, PadCache, pad_backward, pad_forward

# What the padding holds, as torch's Conv2d(padding_mode=...): zeros, or copies of the border pixels.
PADDING_MODES = ("zeros", *PAD_MODES)

# A layer sees the same shapes and arguments at every step: validate them once.
_geometry = functools.lru_cache(maxsize=256)(ConvGeometry.create)


@dataclass
class Conv2dCache:
    """What the backward pass needs: the input, the weights, the geometry and the algorithm's saved work.

    With a padding mode other than ``'zeros'``, x is the explicitly padded
    input, ``geom`` has no padding and ``pad`` is :func:`pad_forward`'s cache.
    """

    x: np.ndarray
    weight: np.ndarray
    has_bias: bool
    geom: ConvGeometry
    algorithm: ConvAlgorithm
    saved: object = None
    pad: PadCache | None = None


class Conv2dGrads(NamedTuple):
    x: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algorithm="auto",
                   padding_mode="zeros"):
    """Convolve x: (N, C_in, H, W) with weight: (C_out, C_in/groups, kh, kw); returns ``(y, cache)``.

    ``padding`` is an int, a pair, ``'same'``, ``'valid'`` or ``(top, bottom, left, right)``;
    ``algorithm`` is ``'auto'`` or a name from ``strided.conv.names()``.
    ``padding_mode``: what the padding holds, ``'zeros'`` or (as torch's
    ``Conv2d``) ``'reflect'``, ``'replicate'``, ``'circular'``: those pad x
    explicitly (:func:`pad_forward`) and convolve without padding.

    This is where a convolution's operands are checked: the algorithm trusts them.
    """
    x = floating("x", x, 4, "(N, C, H, W)")
    weight = floating("weight", weight, 4, "(out_channels, in_channels/groups, kh, kw)")
    same_dtype(x, "weight", weight)
    _checks.choice("padding_mode", padding_mode, PADDING_MODES)
    geom = _conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None:
        bias = np.asarray(bias)
        same_dtype(x, "bias", bias)
        if bias.shape != (geom.out_channels,):
            raise ValueError(f"bias must have shape ({geom.out_channels},), got {tuple(bias.shape)}")
    alg, _ = conv.choose(geom, x.dtype, algorithm)
    pad_cache = None
    if padding_mode != "zeros":
        # padded batch-last, the order the algorithms work in (one pass instead of a copy after)
        x, pad_cache = pad_forward(x, geom.padding, padding_mode, batch_last=True)
        geom = _conv_geometry(x.shape, weight.shape, stride, 0, dilation, groups)
    y, saved = alg.forward(x, weight, geom, bias, validated=True)
    if saved is None and pad_cache is None:
        # the gradients will read x itself: keep it as it is now, whatever the caller does to x before backward
        # (an algorithm that saved its work, the padded copy of a padding_mode, are already the layer's own)
        x = x.copy(order="K")
    return y, Conv2dCache(x, weight, bias is not None, geom, alg, saved, pad_cache)


def _conv_geometry(x_shape, weight_shape, stride, padding, dilation, groups) -> ConvGeometry:
    """The validated geometry, from the cache when the arguments are hashable (a layer's are)."""
    try:
        return _geometry(x_shape, weight_shape, stride, padding, dilation, groups)
    except TypeError:   # unhashable arguments (lists): validate without the cache
        return ConvGeometry.create(x_shape, weight_shape, stride, padding, dilation, groups)


def conv2d_backward(dy, cache: Conv2dCache, need_x: bool = True, need_weight: bool = True,
                    need_bias: bool = True) -> Conv2dGrads:
    """Gradients of the loss w.r.t. x, weight and bias, given dy: (N, C_out, OH, OW).

    dbias = sum of dy over (N, OH, OW); the other two come from the algorithm.
    Gradients not needed (frozen weights, the network's input) are not computed.
    """
    _checks.cache(cache, Conv2dCache, "conv2d_forward")
    geom = cache.geom
    dy = grad_output(dy, geom.y_shape, cache.x.dtype)
    dx, dw, db = cache.algorithm.backward(dy, cache.x, cache.weight, geom, cache.saved, need_x, need_weight,
                                          need_bias and cache.has_bias, validated=True)
    if cache.pad is not None and dx is not None:
        dx = pad_backward(dx, cache.pad)      # the padded input's gradient folded back onto x
    return Conv2dGrads(dx, dw, db)
