"""Element-wise activations and softmax, each a forward and a backward (write-up 002's activations).

Each forward returns ``(y, cache)`` where the cache is the one array the
derivative needs, chosen so backward is a single pass:

    relu       y = max(x, 0)               dx = dy where y > 0, else 0
    leaky_relu y = x if x > 0 else s*x     dx = dy * (1 if x > 0 else s)
    sigmoid    y = 1 / (1 + exp(-x))       dx = dy * y * (1 - y)
    tanh       y = tanh(x)                 dx = dy * (1 - y^2)
    gaussian   y = exp(-x^2)               dx = dy * (-2 x y)
    softmax    y = exp(x - max) / sum      dx = y * (dy - sum(dy * y))
    gelu       y = x * Phi(x)              dx = dy * (Phi(x) + x * phi(x))
               (Phi, phi: the standard normal's distribution and density; or the tanh form)
    silu       y = x * sigmoid(x)          dx = dy * s * (1 + x * (1 - s)),  s = sigmoid(x)
    elu        y = x if x > 0 else a*(exp(x) - 1)    dx = dy * (1 if x > 0 else a*exp(x))
    hardswish  y = x * min(max(x + 3, 0), 6) / 6     dx = dy * (0 if x <= -3, 1 if x >= 3, else x/3 + 1/2)

At the kinks the derivatives are torch's: ELU takes the x <= 0 branch at 0
(derivative a), Hardswish gives 0 at -3 and 1 at 3.

``relu_forward`` and ``leaky_relu_forward`` take ``inplace=True`` (torch's
argument): y is then written into x's own memory and x is returned, so x
must be a writeable float32/float64 array. The derivative above then reads
y instead of x, which decides ``x > 0`` the same way whenever the slope is
>= 0; with a negative slope it cannot, and the backward raises (as torch's).
As in torch, x's old values are gone: whatever kept x for its own backward
(Tanh keeps its output) sees the new values, which torch detects and
strided cannot, so use ``inplace`` after convolutions, linear layers and
batch norm, as usual.

``silu_forward``, ``elu_forward`` and ``hardswish_forward`` take ``inplace``
too. ELU's derivative is read from y in place (y + a where y <= 0, exactly
where x <= 0 when a >= 0; a negative a makes the backward raise, as torch's);
SiLU and Hardswish cannot recover x from y (neither is monotonic), so in place
they keep a copy of x for the backward, as torch's autograd does. These four
(and GELU) take empty arrays, as torch does.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _checks
from .._memory import empty_like
from .._parallel import elementwise
from .._checks import grad_output
from .special import erf


def _arr(x):
    """x as a float array; any shape, empty ones included (the output is then empty too, as in torch)."""
    return _checks.as_float_array("x", x)


def _any_input(x, inplace: bool) -> np.ndarray:
    """x for an element-wise op that takes any shape, empty included: x itself with ``inplace=True``."""
    return _checks.inplace_target(x) if _checks.boolean("inplace", inplace) else _checks.as_float_array("x", x)


class _InplaceNegativeSlope:
    """The cache of an in-place LeakyReLU (or ELU) with a negative slope: its input cannot be recovered."""

    def __init__(self, negative_slope: float, layer: str = "LeakyReLU", argument: str = "negative_slope"):
        self.negative_slope, self.layer, self.argument = negative_slope, layer, argument

    def error(self) -> ValueError:
        return ValueError(
            f"{self.layer} with {self.argument}={self.negative_slope} and inplace=True has no backward: the input "
            "was overwritten and a negative slope makes its sign unrecoverable from the output (torch refuses "
            "this too); use inplace=False")


def _map(fn, out, *arrays):
    """``fn(out, *arrays)`` chunk by chunk over the cores (see :func:`strided._parallel.elementwise`); returns out.

    ``out`` is allocated by the caller with :func:`strided._memory.empty_like`,
    which keeps the input's memory order (batch-last after a convolution).
    """
    elementwise(fn, out, *arrays)
    return out


# the integer type of each float's width: relu's gradient selects dy's bits rather than multiplying
_BITS = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def relu_forward(x, inplace=False):
    """y = max(x, 0), written into x with ``inplace=True``; the cache is y.

    y is the next layer's input, which that layer keeps anyway (a
    convolution does), so keeping it costs no memory.
    """
    x = _any_input(x, inplace)
    y = _map(lambda o, a: np.maximum(a, 0, out=o), x if inplace else empty_like(x), x)
    return y, y


def _relu_grad(out, d, y):
    # keep = 0 where y <= 0, all ones (-1) elsewhere (NaN compares False: it passes); dx = dy's bits and keep,
    # an exact select without branches (a masked copy is ten times slower on masks as irregular as an activation's)
    keep = np.empty(y.shape, np.int8)
    np.less_equal(y, 0, out=keep.view(np.bool_))
    np.subtract(keep, 1, out=keep)
    np.bitwise_and(d.view(_BITS[d.dtype]), keep, out=out.view(_BITS[out.dtype]))


def relu_backward(dy, y):
    """dx = dy where y > 0 or y is NaN, else 0 (torch's: a NaN input passes dy through, an infinite dy is cut).

    dx has y's memory order (the order the layer before works in).
    """
    dy = grad_output(dy, y.shape, y.dtype)
    return _map(_relu_grad, empty_like(y), dy, y)


def leaky_relu_forward(x, negative_slope=0.01, inplace=False):
    """y = x if x > 0 else s*x, written into x with ``inplace=True``; the cache is x (y when in place)."""
    x = _any_input(x, inplace)
    s = x.dtype.type(_checks.finite_float("negative_slope", negative_slope))
    y = _map(lambda o, a: np.copyto(o, np.where(a > 0, a, a * s)), x if inplace else empty_like(x), x)
    if not inplace:
        return y, x
    # y > 0 exactly where x > 0 when s >= 0, so y serves as the cache
    return y, (y if negative_slope >= 0 else _InplaceNegativeSlope(negative_slope))


def leaky_relu_backward(dy, x, negative_slope=0.01):
    if isinstance(x, _InplaceNegativeSlope):
        raise x.error()
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
    dim = implicit_softmax_dim(x.ndim) if dim is None else _checks.integer("dim", dim)
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


# -- GELU, SiLU, ELU, Hardswish: torch's formulas, in torch's order of operations ----------------------------

_GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT1_2 = math.sqrt(0.5)
_GELU_PDF = 0.5 * math.sqrt(2.0 / math.pi)   # 1/sqrt(2 pi): phi(x) = _GELU_PDF * exp(-x^2 / 2)
_GELU_TANH_BETA = math.sqrt(2.0 / math.pi)   # tanh form: Phi(x) ~ (1 + tanh(beta * (x + kappa * x^3))) / 2
_GELU_TANH_KAPPA = 0.044715


def _quiet(fn):
    """fn run without NumPy's overflow and invalid-value warnings (per thread, so inside each chunk).

    At the extremes torch's formulas overflow to inf and give NaN for
    inf * 0 (GELU, SiLU and Hardswish of -inf, for instance); the same formulas
    here give the same values, silently as in torch.
    """
    def run(*arrays):
        with np.errstate(over="ignore", invalid="ignore"):
            fn(*arrays)
    return run


def _gelu_inner(x, dt):
    """beta * (x + kappa * x^3) of the tanh form (x^3 overflows to inf for |x| > 5e102: tanh is then +-1)."""
    return dt(_GELU_TANH_BETA) * (x + dt(_GELU_TANH_KAPPA) * (x * x * x))


def gelu_forward(x, approximate="none"):
    """GELU, x * Phi(x); returns ``(y, (x, approximate))``.

    x: any shape (empty included). approximate: ``'none'`` for the exact form
    0.5 x (1 + erf(x / sqrt 2)), ``'tanh'`` for 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    """
    approximate = _checks.choice("approximate", approximate, _GELU_APPROXIMATIONS)
    x = _checks.as_float_array("x", x)
    dt = x.dtype.type

    def exact(o, a):
        o[...] = a * dt(0.5) * (1 + erf(a * dt(_SQRT1_2)))

    def tanh_form(o, a):
        o[...] = dt(0.5) * a * (1 + np.tanh(_gelu_inner(a, dt)))

    y = _map(_quiet(exact if approximate == "none" else tanh_form), empty_like(x), x)
    return y, (x, approximate)


def gelu_backward(dy, cache):
    """dy: x's shape; returns dx = dy * GELU'(x), x's shape (the derivative of the form the forward used)."""
    x, approximate = cache
    dy = grad_output(dy, x.shape, x.dtype)
    dt = x.dtype.type

    def exact(o, d, a):
        cdf = dt(0.5) * (1 + erf(a * dt(_SQRT1_2)))
        pdf = dt(_GELU_PDF) * np.exp(a * a * dt(-0.5))
        o[...] = d * (cdf + a * pdf)

    def tanh_form(o, d, a):
        t = np.tanh(_gelu_inner(a, dt))
        inner_derivative = dt(_GELU_TANH_BETA) * (1 + dt(3 * _GELU_TANH_KAPPA) * (a * a))
        o[...] = d * (dt(0.5) * (1 + t) + dt(0.5) * a * (1 - t * t) * inner_derivative)

    return _map(_quiet(exact if approximate == "none" else tanh_form), empty_like(x), dy, x)


def _input_for_backward(x, inplace: bool) -> np.ndarray:
    """What a backward reading x needs: x itself, or a copy of it when the forward is about to overwrite it."""
    return x.copy(order="K") if inplace else x


def silu_forward(x, inplace=False):
    """SiLU, x * sigmoid(x) (written into x with ``inplace=True``); the cache is x (a copy of it in place)."""
    x = _any_input(x, inplace)
    kept = _input_for_backward(x, inplace)

    def f(o, a):
        s = sigmoid(a)
        np.multiply(a, s, out=o)

    return _map(_quiet(f), x if inplace else empty_like(x), x), kept


def silu_backward(dy, x):
    """dy: x's shape, x the forward's cache; returns dx = dy * s * (1 + x (1 - s)), s = sigmoid(x)."""
    dy = grad_output(dy, x.shape, x.dtype)

    def f(o, d, a):
        s = sigmoid(a)
        o[...] = d * s * (1 + a * (1 - s))

    return _map(_quiet(f), empty_like(x), dy, x)


def elu_forward(x, alpha=1.0, inplace=False):
    """ELU, x if x > 0 else alpha * (exp(x) - 1), written into x with ``inplace=True``.

    The cache is x, or in place y (``ELU``'s derivative is y + alpha where
    y <= 0), or, in place with alpha < 0, a marker that makes the backward raise.
    """
    x = _any_input(x, inplace)
    a = x.dtype.type(_checks.finite_float("alpha", alpha))
    # expm1 of min(x, 0): the branch not taken never overflows
    y = _map(lambda o, v: np.copyto(o, np.where(v <= 0, np.expm1(np.minimum(v, 0)) * a, v)),
             x if inplace else empty_like(x), x)
    if not inplace:
        return y, (x, False)
    return y, ((y, True) if alpha >= 0 else _InplaceNegativeSlope(alpha, "ELU", "alpha"))


def elu_backward(dy, cache, alpha=1.0):
    """dy: x's shape; returns dx = dy where x > 0, dy * alpha * exp(x) (or dy * (y + alpha) in place) elsewhere."""
    if isinstance(cache, _InplaceNegativeSlope):
        raise cache.error()
    v, is_output = cache
    dy = grad_output(dy, v.shape, v.dtype)
    a = v.dtype.type(alpha)
    if is_output:
        f = lambda o, d, y: np.copyto(o, np.where(y <= 0, d * (y + a), d))  # noqa: E731
    else:
        f = lambda o, d, x: np.copyto(o, np.where(x <= 0, d * a * np.exp(np.minimum(x, 0)), d))  # noqa: E731
    return _map(f, empty_like(v), dy, v)


def hardswish_forward(x, inplace=False):
    """Hardswish, x * min(max(x + 3, 0), 6) / 6 (written into x with ``inplace=True``); the cache is x (or its copy)."""
    x = _any_input(x, inplace)
    kept = _input_for_backward(x, inplace)
    dt = x.dtype.type
    y = _map(_quiet(lambda o, v: np.copyto(o, v * np.clip(v + dt(3), dt(0), dt(6)) / dt(6))),
             x if inplace else empty_like(x), x)
    return y, kept


def hardswish_backward(dy, x):
    """dy: x's shape, x the forward's cache; returns dx: 0 where x <= -3, dy where x >= 3, dy (x/3 + 1/2) between."""
    dy = grad_output(dy, x.shape, x.dtype)
    dt = x.dtype.type
    return _map(lambda o, d, v: np.copyto(o, np.where(v <= -3, dt(0), np.where(v < 3, d * (v / dt(3) + dt(0.5)), d))),
                empty_like(x), dy, x)
