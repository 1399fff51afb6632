"""Inverted dropout (write-up 002): zero each element with probability p, scale the rest by 1/(1-p).

The scaling happens at training time so evaluation is the identity.
    y = x * mask / (1 - p),   mask ~ Bernoulli(1 - p)        dx = dy * mask / (1 - p)

The derivative needs the mask only, never x, so ``inplace=True`` (torch's
argument) can write y into x's own memory without changing the gradient.
"""
from __future__ import annotations

import numpy as np

from .. import _checks, _memory
from .._checks import grad_output


def dropout_forward(x, p: float, rng: np.random.Generator, inplace: bool = False):
    """Returns ``(y, scaled_mask)``; the mask (x's shape and dtype) is the cache.

    x: any shape. With ``inplace=True`` y is written into x, which must be a
    writeable float32/float64 array, and x is returned; the mask drawn is the
    same either way.
    """
    x = _checks.inplace_target(x) if inplace else _checks.as_float_array("x", x)
    if p >= 1.0:
        scale = np.zeros_like(x)
    else:
        # float32 uniforms whatever x's dtype: half the random bits, and the
        # same seed gives the same mask in float32 and float64
        keep = rng.random(x.shape, dtype=np.float32) >= np.float32(p)
        # the scaled mask in x's memory order (the same seed gives the same mask in any order): in another
        # order than x, x * mask and every later pass would stride across memory (after a flattened
        # batch-last activation the backward pass of the layer before took 4x as long)
        scale = _memory.empty_like(x)
        np.multiply(keep, x.dtype.type(1.0 / (1.0 - p)), out=scale)
    if inplace:
        return np.multiply(x, scale, out=x), scale
    return x * scale, scale


def dropout_backward(dy, scale):
    dy = grad_output(dy, scale.shape, scale.dtype)
    return dy * scale
