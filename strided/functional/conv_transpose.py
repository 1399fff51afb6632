"""2-D transposed convolution: the input gradient of a convolution, run forward.

    y = conv2d_input_grad(dy=x, w=weight, geometry of the conv that maps y's shape to x's shape)

x: (N, C_in, H, W), weight: (C_in, C_out/groups, kh, kw), bias: (C_out,) or None,
y: (N, C_out, OH, OW) with OH = (H-1)*sh - 2*ph + dh*(kh-1) + oph + 1 (likewise OW).
Every algorithm of :mod:`strided.conv` serves it through its input-gradient
path; its backward pass is that convolution's forward pass (dx) and weight
gradient (dweight, with the roles of input and output gradient swapped).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks, conv
from ..conv.base import ConvAlgorithm
from ..geometry import ConvGeometry
from .._checks import floating, grad_output, same_dtype
from .conv import Conv2dGrads, _conv_geometry


@dataclass
class ConvTranspose2dCache:
    """What the backward pass needs: the input, the weights and the geometry of the underlying convolution.

    ``geom`` is the convolution mapping y's shape to x's shape (its x is our y,
    its y our x, zero-padded at the end to ``geom.y_shape`` when an output
    padding of at least the stride makes the convolution's output larger).
    """

    x: np.ndarray
    weight: np.ndarray
    has_bias: bool
    geom: ConvGeometry
    algorithm: ConvAlgorithm


def check_output_padding(output_padding, stride, dilation) -> tuple[int, int]:
    """output_padding as a pair, each smaller than the stride or the dilation on its axis (torch's rule)."""
    op = _checks.pair("output_padding", output_padding, allow_zero=True)
    stride, dilation = _checks.pair("stride", stride), _checks.pair("dilation", dilation)
    for a in (0, 1):
        if op[a] >= stride[a] and op[a] >= dilation[a]:
            raise ValueError(f"output_padding must be smaller than either stride or dilation, got "
                             f"output_padding={op}, stride={stride}, dilation={dilation}")
    return op


def conv_transpose2d_output_size(hw, kernel, stride, padding, output_padding, dilation) -> tuple[int, int]:
    """(OH, OW) = (H-1)*s - 2*p + d*(k-1) + output_padding + 1 per axis, given (H, W) and pairs."""
    return tuple((hw[a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel[a] - 1) + output_padding[a] + 1
                 for a in (0, 1))


def conv_transpose2d_forward(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                             algorithm="auto"):
    """Transposed convolution of x: (N, C_in, H, W) by weight: (C_in, C_out/groups, kh, kw); returns ``(y, cache)``.

    ``stride``, ``padding``, ``output_padding``, ``dilation``: ints or pairs
    (``padding`` symmetric, as torch's); ``algorithm``: ``'auto'`` or a name
    from ``strided.conv.names()``. y: (N, C_out, OH, OW), see the module docstring.
    """
    x = floating("x", x, 4, "(N, C, H, W)")
    weight = floating("weight", weight, 4, "(in_channels, out_channels/groups, kh, kw)")
    same_dtype(x, "weight", weight)
    stride, dilation = _checks.pair("stride", stride), _checks.pair("dilation", dilation)
    padding = _checks.pair("padding", padding, allow_zero=True)
    groups = _checks.positive_int("groups", groups)
    op = check_output_padding(output_padding, stride, dilation)
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"x has {x.shape[1]} channels (shape {x.shape}) but weight {weight.shape} "
                         f"expects {weight.shape[0]}")
    if weight.shape[0] % groups:
        raise ValueError(f"groups={groups} must divide in_channels={weight.shape[0]} (weight shape {weight.shape})")
    out_hw = conv_transpose2d_output_size(x.shape[2:], weight.shape[2:], stride, padding, op, dilation)
    if min(out_hw) < 1:
        raise ValueError(f"output size {out_hw} is too small for x of shape {x.shape} with this "
                         f"kernel, stride={stride}, padding={padding} and dilation={dilation}")
    c_out = weight.shape[1] * groups
    geom = _conv_geometry((x.shape[0], c_out, *out_hw), weight.shape, stride, padding, dilation, groups)
    if bias is not None:
        bias = np.asarray(bias)
        same_dtype(x, "bias", bias)
        if bias.shape != (c_out,):
            raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")
    alg, _ = conv.choose(geom, x.dtype, algorithm)
    y = alg.grad_input(_fit(x, geom.y_shape), weight, geom)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    # the weight gradient reads x: keep it as it is now, whatever the caller does to x before backward
    return y, ConvTranspose2dCache(x.copy(order="K"), weight, bias is not None, geom, alg)


def _fit(x, shape):
    """x zero-padded at the bottom and right to ``shape`` (an output padding of at least the stride)."""
    if x.shape == shape:
        return x
    out = np.zeros(shape, dtype=x.dtype)
    out[:, :, :x.shape[2], :x.shape[3]] = x
    return out


def conv_transpose2d_backward(dy, cache: ConvTranspose2dCache, need_x: bool = True, need_weight: bool = True,
                              need_bias: bool = True) -> Conv2dGrads:
    """Gradients w.r.t. x, weight and bias given dy: (N, C_out, OH, OW); those not needed are None.

    dx is the convolution of dy with the weight, dweight that convolution's
    weight gradient with dy as its input and x as its output gradient, dbias dy summed over (N, OH, OW).
    """
    _checks.cache(cache, ConvTranspose2dCache, "conv_transpose2d_forward")
    geom, x = cache.geom, cache.x
    dy = grad_output(dy, geom.x_shape, x.dtype)
    dx = dw = None
    if need_x:
        dx, _ = cache.algorithm.forward(dy, cache.weight, geom, validated=True)
        dx = dx[:, :, :x.shape[2], :x.shape[3]]
    if need_weight:
        dw = cache.algorithm.grad_weight(_fit(x, geom.y_shape), dy, geom)
    db = dy.sum(axis=(0, 2, 3)) if need_bias and cache.has_bias else None
    return Conv2dGrads(dx, dw, db)
