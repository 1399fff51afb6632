"""Activation layers: each keeps the one array its derivative needs (see :mod:`strided.functional.activation`)."""
from __future__ import annotations

from .. import _checks
from .. import functional as F
from ..functional._common import grad_output
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


class ReLU(_Activation):
    """max(x, 0)."""
    _forward, _backward = F.relu_forward, F.relu_backward


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), computed without overflow."""
    _forward, _backward = F.sigmoid_forward, F.sigmoid_backward


class Tanh(_Activation):
    """tanh(x)."""
    _forward, _backward = F.tanh_forward, F.tanh_backward


class Gaussian(_Activation):
    """exp(-x^2) (seed 002's Gaussian activation)."""
    _forward, _backward = F.gaussian_forward, F.gaussian_backward


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01):
        self.negative_slope = float(negative_slope)
        self._cache = None

    def forward(self, x):
        y, self._cache = F.leaky_relu_forward(x, self.negative_slope)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.leaky_relu_backward(dy, self._need_cache(self._cache), self.negative_slope)


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``dim`` (1 by default: the class axis of (N, C))."""

    def __init__(self, dim=1):
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, got {dim!r}")
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
