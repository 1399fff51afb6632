"""Element-wise activations and softmax, each a forward and a backward (write-up 002's activations).

Each forward returns ``(y, cache)`` where the cache is the one array the
derivative needs, chosen so backward is a single pass:

    relu       y = max(x, 0)               dx = dy * (y > 0)
    leaky_relu y = x if x > 0 else s*x     dx = dy * (1 if x > 0 else s)
    sigmoid    y = 1 / (1 + exp(-x))       dx = dy * y * (1 - y)
    tanh       y = tanh(x)                 dx = dy * (1 - y^2)
    gaussian   y = exp(-x^2)               dx = dy * (-2 x y)
    softmax    y = exp(x - max) / sum      dx = y * (dy - sum(dy * y))

``relu_forward`` and ``leaky_relu_forward`` take ``inplace=True`` (torch's
argument): y is then written into x's own memory and x is returned, so x
must be a writeable float32/float64 array. The derivative above then reads
y instead of x, which decides ``x > 0`` the same way whenever the slope is
>= 0; with a negative slope it cannot, and the backward raises (as torch's).
As in torch, x's old values are gone: whatever kept x for its own backward
(Tanh keeps its output) sees the new values, which torch detects and
strided cannot, so use ``inplace`` after convolutions, linear layers and
batch norm, as usual.
"""
from __future__ import annotations

import numpy as np

from .. import _checks
from .._memory import empty_like
from .._parallel import elementwise
from .._checks import grad_output


def _arr(x):
    """x as a float array; any shape, empty ones included (the output is then empty too, as in torch)."""
    return _checks.as_float_array("x", x)


class _InplaceNegativeSlope:
    """The cache of an in-place LeakyReLU with a negative slope: its input cannot be recovered."""

    def __init__(self, negative_slope: float):
        self.negative_slope = negative_slope


def _map(fn, out, *arrays):
    """``fn(out, *arrays)`` chunk by chunk over the cores (see :func:`strided._parallel.elementwise`); returns out.

    ``out`` is allocated by the caller with :func:`strided._memory.empty_like`,
    which keeps the input's memory order (batch-last after a convolution).
    """
    elementwise(fn, out, *arrays)
    return out


def relu_forward(x, inplace=False):
    """y = max(x, 0), written into x with ``inplace=True``; the cache is y."""
    x = _checks.inplace_target(x) if inplace else _arr(x)
    y = _map(lambda o, a: np.maximum(a, 0, out=o), x if inplace else empty_like(x), x)
    return y, y


def relu_backward(dy, y):
    dy = grad_output(dy, y.shape, y.dtype)
    return _map(lambda o, d, a: np.multiply(d, a > 0, out=o), empty_like(y), dy, y)


def leaky_relu_forward(x, negative_slope=0.01, inplace=False):
    """y = x if x > 0 else s*x, written into x with ``inplace=True``; the cache is x (y when in place)."""
    x = _checks.inplace_target(x) if inplace else _arr(x)
    s = x.dtype.type(negative_slope)
    y = _map(lambda o, a: np.copyto(o, np.where(a > 0, a, a * s)), x if inplace else empty_like(x), x)
    if not inplace:
        return y, x
    # y > 0 exactly where x > 0 when s >= 0, so y serves as the cache
    return y, (y if negative_slope >= 0 else _InplaceNegativeSlope(negative_slope))


def leaky_relu_backward(dy, x, negative_slope=0.01):
    if isinstance(x, _InplaceNegativeSlope):
        raise ValueError(
            f"LeakyReLU with negative_slope={x.negative_slope} and inplace=True has no backward: the input "
            "was overwritten and a negative slope makes its sign unrecoverable from the output (torch refuses "
            "this too); use inplace=False")
    dy = grad_output(dy, x.shape, x.dtype)
    s = x.dtype.type(negative_slope)
    return _map(lambda o, d, a: np.copyto(o, np.where(a > 0, d, d * s)), empty_like(x), dy, x)


def _sigmoid_into(out, x):
    # exp is only ever taken of a non-positive number: no overflow
    np.abs(x, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)                            # e = exp(-|x|)
    np.divide(np.where(x >= 0, 1, out), out + 1, out=out)   # 1 / (1 + e) or e / (1 + e)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function: exp is only ever taken of a non-positive number."""
    return _map(_sigmoid_into, empty_like(x), x)


def sigmoid_forward(x):
    y = sigmoid(_arr(x))
    return y, y


def _sigmoid_grad(out, d, y):
    np.subtract(1, y, out=out)
    out *= y
    out *= d


def sigmoid_backward(dy, y):
    dy = grad_output(dy, y.shape, y.dtype)
    return _map(_sigmoid_grad, empty_like(y), dy, y)


def tanh_forward(x):
    x = _arr(x)
    y = _map(lambda o, a: np.tanh(a, out=o), empty_like(x), x)
    return y, y


def _tanh_grad(out, d, y):
    np.multiply(y, y, out=out)
    np.subtract(1, out, out=out)
    out *= d


def tanh_backward(dy, y):
    dy = grad_output(dy, y.shape, y.dtype)
    return _map(_tanh_grad, empty_like(y), dy, y)


# exp(-x^2) is exactly 0 in float32 and float64 once |x| > 30; clipping there
# keeps x*x from overflowing (no warning) and makes the derivative at +-inf its
# limit 0 rather than inf * 0 = NaN. NaN passes through np.clip unchanged.
_GAUSSIAN_CLIP = 1e4


def gaussian_forward(x):
    x = np.clip(_arr(x), -_GAUSSIAN_CLIP, _GAUSSIAN_CLIP)

    def f(o, a):
        np.multiply(a, a, out=o)
        np.negative(o, out=o)
        np.exp(o, out=o)

    y = _map(f, empty_like(x), x)
    return y, (x, y)


def _gaussian_grad(out, d, x, y):
    np.multiply(x, y, out=out)
    out *= out.dtype.type(-2)
    out *= d


def gaussian_backward(dy, cache):
    x, y = cache
    dy = grad_output(dy, y.shape, y.dtype)
    return _map(_gaussian_grad, empty_like(y), dy, x, y)


def _shift(x: np.ndarray, axis: int) -> np.ndarray:
    """x - max(x) along axis: every exponent becomes <= 0, so exp never overflows.

    x - max can itself overflow to -inf when x spans more than the float range
    (-3e38 next to +3e38); -inf is then the exact limit (exp gives 0, the log
    probability is -inf, as in torch), so that overflow is not worth a warning.
    """
    with np.errstate(over="ignore"):
        return x - x.max(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) computed stably as x - max - log(sum(exp(x - max)))."""
    shifted = _shift(x, axis)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(_shift(x, axis))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def implicit_softmax_dim(ndim: int) -> int:
    """The axis torch's ``Softmax(dim=None)`` takes for an input of ``ndim`` dimensions (its legacy rule).

    0 for 0-, 1- and 3-dimensional inputs (a vector, an unbatched (C, H, W)), 1 otherwise.
    """
    return 0 if ndim in (0, 1, 3) else 1


def softmax_forward(x, dim=1):
    """y = softmax(x) along ``dim``; x: any shape, y: x's shape. Returns ``(y, cache)``.

    A 0-d x is a vector of one (dim 0 or -1), as in torch: y = 1, dx = 0.
    ``dim=None`` takes :func:`implicit_softmax_dim`.
    """
    x = _checks.as_float_array("x", x)
    nd = max(x.ndim, 1)
    if dim is None:
        dim = implicit_softmax_dim(x.ndim)
    if not -nd <= dim < nd:
        raise ValueError(f"dim must be in [{-nd}, {nd - 1}] for x of shape {tuple(x.shape)}, got {dim}")
    if x.size == 0:
        y = x.copy()
    else:
        y = softmax(x.reshape(x.shape or (1,)), dim).reshape(x.shape)
    return y, (y, dim)


def softmax_backward(dy, cache):
    y, dim = cache
    dy = grad_output(dy, y.shape, y.dtype)
    if y.ndim == 0:        # a vector of one: softmax is the constant 1
        return np.zeros_like(y)
    return y * (dy - (dy * y).sum(axis=dim, keepdims=True))
