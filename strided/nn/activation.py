"""Activation layers: each keeps the one array its derivative needs (see :mod:`strided.functional.activation`)."""
from __future__ import annotations

from .. import _checks
from .. import functional as F
from .._checks import grad_output
from .module import Module


class _Activation(Module):
    _forward = _backward = None

    def __init__(self):
        self._cache = None

    def forward(self, x):
        y, self._cache = type(self)._forward(x)
        return y

    def backward(self, dy, need_input_grad=True):
        return type(self)._backward(dy, self._need_cache(self._cache))


def _inplace(value) -> bool:
    return _checks.boolean("inplace", value)


class _InplaceActivation(_Activation):
    """An element-wise activation taking torch's ``inplace`` argument (passed on to its functional forward)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = _inplace(inplace)

    def forward(self, x):
        y, self._cache = type(self)._forward(x, inplace=self.inplace)
        return y

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_InplaceActivation):
    """max(x, 0). ``inplace=True`` writes the result into x (which must be a writeable float array) and
    returns x, as torch's ``ReLU(inplace=True)``; the gradient is the same.
    """
    _forward, _backward = F.relu_forward, F.relu_backward


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), computed without overflow."""
    _forward, _backward = F.sigmoid_forward, F.sigmoid_backward


class Tanh(_Activation):
    """tanh(x)."""
    _forward, _backward = F.tanh_forward, F.tanh_backward


class Gaussian(_Activation):
    """exp(-x^2) (write-up 002's Gaussian activation)."""
    _forward, _backward = F.gaussian_forward, F.gaussian_backward


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x.

    ``inplace=True`` writes the result into x and returns x, as torch's; with a
    negative slope the backward then raises (x's sign is lost, torch refuses it too).
    """

    def __init__(self, negative_slope=0.01, inplace=False):
        self.negative_slope = _checks.finite_float("negative_slope", negative_slope)
        self.inplace = _inplace(inplace)
        self._cache = None

    def forward(self, x):
        y, self._cache = F.leaky_relu_forward(x, self.negative_slope, inplace=self.inplace)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.leaky_relu_backward(dy, self._need_cache(self._cache), self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim``; x: any shape (a 0-d x gives 1), y: x's shape.

    ``dim=None`` (torch's default) follows torch's legacy rule: dim 0 for 0-,
    1- and 3-dimensional inputs, dim 1 otherwise (the class axis of (N, C)
    and the channels of (N, C, H, W)); give ``dim`` to say which.
    """

    def __init__(self, dim=None):
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise TypeError(f"dim must be an int or None, got {dim!r}")
        self.dim = dim
        self._cache = None

    def forward(self, x):
        y, self._cache = F.softmax_forward(x, self.dim)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.softmax_backward(dy, self._need_cache(self._cache))


class Identity(Module):
    """Passes x through unchanged."""

    def __init__(self):
        self._cache = None

    def forward(self, x):
        x = _checks.as_float_array("x", x)
        self._cache = (x.shape, x.dtype)
        return x

    def backward(self, dy, need_input_grad=True):
        shape, dtype = self._need_cache(self._cache)
        return grad_output(dy, shape, dtype)


class GELU(Module):
    """x * Phi(x), Phi the standard normal distribution function (torch's ``GELU``).

    Args:
        approximate: ``'none'`` (the exact form, with erf) or ``'tanh'``
            (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))).

    Shape: x any shape (empty included); y x's shape.

    Example::

        >>> nn.GELU()(np.array([-1.0, 0.0, 1.0]))
        array([-0.15865525,  0.        ,  0.84134475])
    """

    def __init__(self, approximate="none"):
        if not isinstance(approximate, str):
            raise TypeError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = _checks.choice("approximate", approximate, ("none", "tanh"))
        self._cache = None

    def forward(self, x):
        y, self._cache = F.gelu_forward(x, self.approximate)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.gelu_backward(dy, self._need_cache(self._cache))

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(_InplaceActivation):
    """x * sigmoid(x) (torch's ``SiLU``, also called swish).

    Args:
        inplace: write the result into x (a writeable float array) and return
            x, as torch's; x is kept (copied) for the backward, so the gradient
            is the same.

    Shape: x any shape (empty included); y x's shape.
    """
    _forward, _backward = F.silu_forward, F.silu_backward


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1) (torch's ``ELU``).

    Args:
        alpha: the value approached as x -> -inf is -alpha; any finite number.
        inplace: write the result into x and return x, as torch's; the
            derivative is then read from y, so alpha < 0 makes the backward
            raise (as torch's).

    Shape: x any shape (empty included); y x's shape.
    """

    def __init__(self, alpha=1.0, inplace=False):
        self.alpha = _checks.finite_float("alpha", alpha)
        self.inplace = _inplace(inplace)
        self._cache = None

    def forward(self, x):
        y, self._cache = F.elu_forward(x, self.alpha, inplace=self.inplace)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.elu_backward(dy, self._need_cache(self._cache), self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Hardswish(_InplaceActivation):
    """x * min(max(x + 3, 0), 6) / 6 (torch's ``Hardswish``, MobileNetV3's activation).

    Args:
        inplace: write the result into x and return x, as torch's; x is kept
            (copied) for the backward, so the gradient is the same.

    Shape: x any shape (empty included); y x's shape. The derivative is
    torch's at the kinks: 0 at x = -3, 1 at x = 3.
    """
    _forward, _backward = F.hardswish_forward, F.hardswish_backward

    def extra_repr(self):
        return ""  # torch's repr shows no inplace
