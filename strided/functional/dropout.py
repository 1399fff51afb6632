"""Inverted dropout (seed 002): zero each element with probability p, scale the rest by 1/(1-p).

The scaling happens at training time so evaluation is the identity.
    y = x * mask / (1 - p),   mask ~ Bernoulli(1 - p)        dx = dy * mask / (1 - p)
"""
from __future__ import annotations

import numpy as np

from .. import _checks
from ._common import grad_output


def dropout_forward(x, p: float, rng: np.random.Generator):
    """Returns ``(y, scaled_mask)``; the mask (x's shape and dtype) is the cache."""
    x = _checks.as_float_array("x", x)
    if p >= 1.0:
        scale = np.zeros_like(x)
    else:
        # float32 uniforms whatever x's dtype: half the random bits, and the
        # same seed gives the same mask in float32 and float64
        keep = rng.random(x.shape, dtype=np.float32) >= np.float32(p)
        scale = keep * x.dtype.type(1.0 / (1.0 - p))
    return x * scale, scale


def dropout_backward(dy, scale):
    dy = grad_output(dy, scale.shape, scale.dtype)
    return dy * scale
