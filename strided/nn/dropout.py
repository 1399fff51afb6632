"""``Dropout`` and ``Dropout2d``: inverted dropout, element-wise or per channel, with a seedable generator."""
from __future__ import annotations

import warnings

import numpy as np

from .. import _checks
from .. import functional as F
from .. import random as _random
from .activation import _inplace
from .module import Module


class _DropoutBase(Module):
    """What both dropouts share: p, inplace, the generator, and the identity in eval mode (or with p = 0).

    Subclasses name their functional pair (``_forward``, ``_backward``) and may check x first (``_check``).
    """
    _forward = _backward = None

    def __init__(self, p=0.5, inplace=False, seed=None):
        self.p = _checks.probability("p", p)
        self.inplace = _inplace(inplace)
        self.seed = seed
        self.own_generator = None if seed is None else _random.resolve(seed, "seed")
        self._cache = None

    @property
    def generator(self) -> np.random.Generator:
        return self.own_generator if self.own_generator is not None else _random.default_generator()

    def _check(self, x: np.ndarray) -> None:
        """Refuse (or warn about) an input the layer does not take; x is already a float array."""

    def forward(self, x):
        # in place, x itself must take the result: checked as it is, never converted to a new array
        x = _checks.inplace_target(x) if self.inplace else _checks.as_float_array("x", x)
        self._check(x)
        if not self.training or self.p == 0.0:
            self._cache = "identity"
            return x
        y, self._cache = type(self)._forward(x, self.p, self.generator, inplace=self.inplace)
        return y

    def backward(self, dy, need_input_grad=True):
        cache = self._need_cache(self._cache)
        if isinstance(cache, str):
            return dy
        return type(self)._backward(dy, cache)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"  # torch's repr


class Dropout(_DropoutBase):
    """Zero each element with probability ``p`` in training (scaling the rest by 1/(1-p)); identity in eval.

    x: any shape. ``seed`` gives the layer its own generator (reproducible
    masks); otherwise it draws from the global generator of
    :func:`strided.manual_seed`. ``inplace=True`` writes the result into x
    (which must be a writeable float array, in eval mode too) and returns x,
    as torch's ``Dropout(inplace=True)``; the mask and the gradient are the
    same as without it.
    """
    _forward, _backward = F.dropout_forward, F.dropout_backward


class Dropout2d(_DropoutBase):
    """Zero whole channels x[n, c] with probability ``p`` in training (scaling the rest by 1/(1-p)); identity in eval.

    torch's ``Dropout2d``, for convolutional feature maps, whose neighbouring
    pixels are too correlated for element-wise dropout to regularise.

    Args:
        p: the probability of zeroing a channel.
        inplace: write the result into x (a writeable float array, in eval mode
            too) and return x, as torch's; the mask and gradient are the same.
        seed: the layer's own generator (reproducible masks); otherwise the
            global generator of :func:`strided.manual_seed`.

    Shape: x (N, C, H, W), N may be 0; y x's shape. As torch 2.13 does, a 3-D
    x is read as (N, C, L), not as an unbatched (C, H, W) (a UserWarning says
    so: add the batch axis, ``x[None]``, for one image), and 2-D or 5-D and
    larger inputs are taken with a warning (channels are x[n, c] still); a 1-D
    x is refused.

    Example::

        >>> m = nn.Dropout2d(0.5, seed=0)
        >>> y = m(np.ones((2, 3, 4, 4)))   # each y[n, c] is all 0 or all 2
    """
    _forward, _backward = F.dropout2d_forward, F.dropout2d_backward

    def _check(self, x):
        if x.ndim < 2:
            raise ValueError(f"Dropout2d needs x of shape (N, C, H, W), got shape {tuple(x.shape)} "
                             f"({x.ndim} dimension{'s' if x.ndim != 1 else ''})")
        if x.ndim == 3:
            warnings.warn(f"Dropout2d received a 3-D x of shape {tuple(x.shape)} and, as torch 2.13 does, reads "
                          "it as (N, C, L), zeroing whole rows x[n, c]; for an unbatched image (C, H, W) add the "
                          "batch axis (x[None])", UserWarning, stacklevel=4)
        elif x.ndim != 4:
            warnings.warn(f"Dropout2d received a {x.ndim}-D x of shape {tuple(x.shape)}; it expects (N, C, H, W) "
                          "and zeroes whole x[n, c] (torch 2.13 takes this with a deprecation warning; use "
                          "Dropout for element-wise dropout)", UserWarning, stacklevel=4)
