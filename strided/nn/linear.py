"""``Linear`` (dense) and ``Flatten``."""
from __future__ import annotations

import numpy as np

from .. import _checks
from .. import functional as F
from .. import random as _random
from .._checks import grad_output
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x @ weight.T + bias; x: (N, in_features) -> (N, out_features). Weight (out_features, in_features).

    As torch: x may be (*, in_features), any number of leading dimensions,
    an unbatched (in_features,) among them, and empty (the parameter
    gradients of an empty input are zeros).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None, rng=None):
        self.in_features = _checks.positive_int("in_features", in_features)
        self.out_features = _checks.positive_int("out_features", out_features)
        dt = _checks.dtype_of("dtype", np.float32 if dtype is None else dtype)
        rng = _random.resolve(rng)  # one generator for weight and bias, even from an int seed
        self.weight = Parameter(init.uniform_fan_in((out_features, in_features), in_features, dt, rng))
        self.bias = Parameter(init.uniform_fan_in((out_features,), in_features, dt, rng)) if bias else None
        self._cache = None

    def forward(self, x):
        x = _checks.as_float_array("x", x, dtype=self.weight.dtype)
        if x.ndim >= 1 and x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear expects {self.in_features} input features, got x of shape {tuple(x.shape)}"
                + (" (did you forget a Flatten?)" if x.ndim > 2 else "")
            )
        y, self._cache = F.linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def backward(self, dy, need_input_grad=True):
        cache = self._need_cache(self._cache)
        return self._accumulate(F.linear_backward(dy, cache, need_x=need_input_grad,
                                                  need_weight=self._needs_grad("weight"),
                                                  need_bias=self._needs_grad("bias")))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W): a reshape (no copy for contiguous input); backward reshapes back.

    Flattens dimensions ``start_dim..end_dim`` (inclusive, negative counts from the end), as torch:
    an unbatched (C, H, W) with the default ``start_dim=1`` gives (C, H*W), an empty batch (0, C*H*W).
    """

    def __init__(self, start_dim=1, end_dim=-1):
        for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
                raise TypeError(f"Flatten {name} must be an int, got {d!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)
        self._cache = None

    def forward(self, x):
        x = _checks.as_float_array("x", x)
        nd = max(x.ndim, 1)  # a 0-d array flattens like a 1-d one, as in torch
        for name, d in (("start_dim", self.start_dim), ("end_dim", self.end_dim)):
            if not -nd <= d < nd:
                raise ValueError(
                    f"Flatten {name}={d} is out of range for x of shape {tuple(x.shape)}: expected in [{-nd}, {nd - 1}]"
                )
        s, e = self.start_dim % nd, self.end_dim % nd
        if s > e:
            raise ValueError(
                f"Flatten start_dim={self.start_dim} is after end_dim={self.end_dim} for x of shape {tuple(x.shape)}"
            )
        # the merged size spelled out (not -1), which an empty x cannot infer
        y = x.reshape(*x.shape[:s], int(np.prod(x.shape[s:e + 1])), *x.shape[e + 1:])
        self._cache = (x.shape, y.shape, x.dtype)
        return y

    def backward(self, dy, need_input_grad=True):
        x_shape, y_shape, dtype = self._need_cache(self._cache)
        return grad_output(dy, y_shape, dtype).reshape(x_shape)
