"""Inverted dropout (write-up 002): zero each element with probability p, scale the rest by 1/(1-p).

The scaling happens at training time so evaluation is the identity.
    y = x * mask / (1 - p),   mask ~ Bernoulli(1 - p)        dx = dy * mask / (1 - p)

Channel dropout (``dropout2d``) draws one mask value per example and channel,
mask: (N, C, 1, ..., 1), so whole feature maps are zeroed together.

The derivative needs the mask only, never x, so ``inplace=True`` (torch's
argument) can write y into x's own memory without changing the gradient.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _checks, _memory
from .._checks import grad_output


def _scaled_mask(out: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Fill ``out`` with the scaled keep-mask: 0 with probability p, else 1/(1-p); returns out.

    The uniforms are float32 whatever out's dtype (half the random bits, and the
    same seed gives the same mask in float32 and float64), drawn in out's shape
    whatever its memory order; p >= 1 draws nothing.
    """
    if p >= 1.0:
        out[...] = 0
    else:
        keep = rng.random(out.shape, dtype=np.float32) >= np.float32(p)
        np.multiply(keep, out.dtype.type(1.0 / (1.0 - p)), out=out)
    return out


def _probability_and_generator(p, rng) -> float:
    """p as a float in [0, 1], once rng is checked to be the generator the mask is drawn from."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}: {rng!r:.80}")
    return _checks.probability("p", p)


def dropout_forward(x, p: float, rng: np.random.Generator, inplace: bool = False):
    """Returns ``(y, scaled_mask)``; the mask (x's shape and dtype) is the cache.

    x: any shape. With ``inplace=True`` y is written into x, which must be a
    writeable float32/float64 array, and x is returned; the mask drawn is the
    same either way.
    """
    x = _checks.inplace_target(x) if _checks.boolean("inplace", inplace) else _checks.as_float_array("x", x)
    p = _probability_and_generator(p, rng)
    # the scaled mask in x's memory order (the same seed gives the same mask in any order): in another
    # order than x, x * mask and every later pass would stride across memory (after a flattened
    # batch-last activation the backward pass of the layer before took 4x as long)
    scale = _scaled_mask(_memory.empty_like(x), p, rng)
    if inplace:
        return np.multiply(x, scale, out=x), scale
    return x * scale, scale


def dropout_backward(dy, scale):
    dy = grad_output(dy, scale.shape, scale.dtype)
    return dy * scale


class Dropout2dCache(NamedTuple):
    scale: np.ndarray   # (N, C, 1, ..., 1): the scaled channel mask
    shape: tuple        # x's shape


def dropout2d_forward(x, p: float, rng: np.random.Generator, inplace: bool = False):
    """Channel dropout (torch's ``feature_dropout``); returns ``(y, Dropout2dCache)``.

    x: (N, C, *) (torch's ``Dropout2d`` reads a 3-D x as (N, C, L)); each
    x[n, c] is zeroed with probability p, the rest scaled by 1/(1-p). N may be
    0. With ``inplace=True`` y is written into x (a writeable float array) and
    x is returned; the mask is the same either way.
    """
    x = _checks.inplace_target(x) if _checks.boolean("inplace", inplace) else _checks.as_float_array("x", x)
    p = _probability_and_generator(p, rng)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (N, C, *) for channel dropout, got shape "
                         f"{tuple(x.shape)}")
    scale = _scaled_mask(np.empty(x.shape[:2] + (1,) * (x.ndim - 2), x.dtype), p, rng)
    y = np.multiply(x, scale, out=x) if inplace else x * scale
    return y, Dropout2dCache(scale, x.shape)


def dropout2d_backward(dy, cache: Dropout2dCache):
    """dy: x's shape; returns dx = dy * mask / (1 - p), x's shape."""
    _checks.cache(cache, Dropout2dCache, "dropout2d_forward")
    dy = grad_output(dy, cache.shape, cache.scale.dtype)
    return dy * cache.scale
