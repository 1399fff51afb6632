"""``Dropout``: inverted dropout with its own seedable generator."""
from __future__ import annotations

import numpy as np

from .. import _checks
from .. import functional as F
from .. import random as _random
from .activation import _inplace
from .module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training (scaling the rest by 1/(1-p)); identity in eval.

    x: any shape. ``seed`` gives the layer its own generator (reproducible
    masks); otherwise it draws from the global generator of
    :func:`strided.manual_seed`. ``inplace=True`` writes the result into x
    (which must be a writeable float array, in eval mode too) and returns x,
    as torch's ``Dropout(inplace=True)``; the mask and the gradient are the
    same as without it.
    """

    def __init__(self, p=0.5, inplace=False, seed=None):
        self.p = _checks.probability("p", p)
        self.inplace = _inplace(inplace)
        self.seed = seed
        self.own_generator = None if seed is None else np.random.default_rng(seed)
        self._cache = None

    @property
    def generator(self) -> np.random.Generator:
        return self.own_generator if self.own_generator is not None else _random.default_generator()

    def forward(self, x):
        # in place, x itself must take the result: checked as it is, never converted to a new array
        x = _checks.inplace_target(x) if self.inplace else _checks.as_float_array("x", x)
        if not self.training or self.p == 0.0:
            self._cache = "identity"
            return x
        y, self._cache = F.dropout_forward(x, self.p, self.generator, inplace=self.inplace)
        return y

    def backward(self, dy, need_input_grad=True):
        cache = self._need_cache(self._cache)
        if isinstance(cache, str):
            return dy
        return F.dropout_backward(dy, cache)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"  # torch's repr
