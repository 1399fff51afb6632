"""Inputs without a batch axis, and empty batches, for layers whose functional core takes batches.

torch's ``Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``, ``AvgPool2d`` and the
adaptive poolings accept an unbatched image ``(C, H, W)`` and return an
unbatched output, and they accept a batch of zero images and return an empty
output (the parameter gradients are then zeros). The functional core of these
layers takes batches ``(N, C, H, W)`` only (torch's ``F.*`` also take an
unbatched image; here the idea has this one implementation, for every layer
over images): :func:`batched` gives a layer both behaviours around it:

- unbatched: the batch axis is added before the layer's own forward and
  removed from its output; ``dy`` gets it back in backward and ``dx`` loses it;
- empty (N = 0): the layer runs on a batch of one zero image, and its output
  and input gradient are cut to zero rows. Backward feeds that image a zero
  ``dy``, so every parameter gradient is exactly zero, as in torch.

Decorate the layer's ``forward`` and ``backward`` with the same
``batched(...)`` object; the state of the last forward lives on the layer
(``_batching``), beside its cache.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import _checks
from .._checks import grad_output


class batched:
    """``@batched(4, "(C, H, W)", "(N, C, H, W)")``: the decorator pair of a layer's forward and backward.

    Args:
        ndim: the number of dimensions of a batch (4 for images).
        unbatched_layout, batched_layout: the two layouts, named in the error for any other number of dimensions.
    """

    def __init__(self, ndim: int, unbatched_layout: str, batched_layout: str):
        self.ndim = ndim
        self.layouts = (unbatched_layout, batched_layout)

    def forward(self, fn):
        """Wrap ``forward(self, x)``: x of ``ndim - 1`` dimensions or an empty batch runs as a batch of one."""

        @functools.wraps(fn)
        def forward(layer, x, *args, **kwargs):
            arr = x if isinstance(x, np.ndarray) else np.asarray(x)
            object.__setattr__(layer, "_batching", None)
            if arr.dtype.kind not in "biuf":
                return fn(layer, x, *args, **kwargs)       # the layer's own check names the dtype
            _checks.ndim("x", arr, (self.ndim - 1, self.ndim), " or ".join(self.layouts))
            if arr.ndim == self.ndim - 1:
                mode = "unbatched"
                x = arr[None]
            elif arr.shape[0] == 0 and all(arr.shape[1:]):
                mode = "empty"
                x = np.zeros((1, *arr.shape[1:]), dtype=arr.dtype)
            else:
                return fn(layer, x, *args, **kwargs)
            out = fn(layer, x, *args, **kwargs)
            cut = (lambda a: a[0]) if mode == "unbatched" else (lambda a: a[:0])
            out = tuple(cut(a) for a in out) if isinstance(out, tuple) else cut(out)
            y = out[0] if isinstance(out, tuple) else out
            object.__setattr__(layer, "_batching", (mode, y.shape, y.dtype))
            return out

        return forward

    def backward(self, fn):
        """Wrap ``backward(self, dy, need_input_grad)``: dy of the forward's output shape, dx of its input's."""

        @functools.wraps(fn)
        def backward(layer, dy, need_input_grad=True):
            state = layer.__dict__.get("_batching")
            if state is None:
                return fn(layer, dy, need_input_grad)
            mode, y_shape, dtype = state
            dy = grad_output(dy, y_shape, dtype)
            dy = dy[None] if mode == "unbatched" else np.zeros((1, *y_shape[1:]), dtype)
            dx = fn(layer, dy, need_input_grad)
            if dx is None:
                return None
            return dx[0] if mode == "unbatched" else dx[:0]

        return backward


# the layers over images: Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d
IMAGES = batched(4, "(C, H, W)", "(N, C, H, W)")
