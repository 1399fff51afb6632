"""Activation layers: each keeps the one array its derivative needs (see :mod:`strided.functional.activation`)."""
from __future__ import annotations

import numpy as np

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
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"inplace must be True or False, got {value!r}")
    return bool(value)


class ReLU(_Activation):
    """max(x, 0). ``inplace=True`` writes the result into x (which must be a writeable float array) and
    returns x, as torch's ``ReLU(inplace=True)``; the gradient is the same.
    """
    _backward = F.relu_backward

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = _inplace(inplace)

    def forward(self, x):
        y, self._cache = F.relu_forward(x, inplace=self.inplace)
        return y

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


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
        self.negative_slope = float(negative_slope)
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
