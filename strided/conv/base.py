"""The one interface every convolution algorithm implements.

An algorithm computes the three products of a 2-D convolution over a
validated :class:`~strided.geometry.ConvGeometry` (bias is added outside):

    forward:      y[n, o, i, j] = sum_{c, a, b} xp[n, g*Cg + c, i*sh + a*dh, j*sw + b*dw] * w[o, c, a, b]
    grad_input:   dx = dL/dx      given dy = dL/dy
    grad_weight:  dw = dL/dw      given dy and x

with ``g = o // (C_out / groups)`` and ``xp`` the zero-padded input.
``forward`` may return something to reuse in the gradients (the window
matrix, say); the gradients receive it back as ``saved`` (or ``None`` when
the caller did not keep it).
"""
from __future__ import annotations

import numpy as np

from ..geometry import ConvGeometry


class ConvAlgorithm:
    """Base class: subclasses set ``name``/``seed`` and implement the three products.

    Shapes: x: (N, C_in, H, W), w: (C_out, C_in/groups, kh, kw), y and dy: (N, C_out, OH, OW).
    """

    name: str = ""
    seed: str = ""  # which write-up the idea comes from

    def supports(self, geom: ConvGeometry, dtype: np.dtype) -> str | None:
        """``None`` if this algorithm can run ``geom``; otherwise the reason it cannot."""
        return None

    def forward(self, x: np.ndarray, w: np.ndarray, geom: ConvGeometry):
        """Return ``(y, saved)``; y: (N, C_out, OH, OW) without bias."""
        raise NotImplementedError

    def grad_input(self, dy: np.ndarray, w: np.ndarray, geom: ConvGeometry, saved=None) -> np.ndarray:
        """Return dx: (N, C_in, H, W)."""
        raise NotImplementedError

    def grad_weight(self, dy: np.ndarray, x: np.ndarray, geom: ConvGeometry, saved=None) -> np.ndarray:
        """Return dw: (C_out, C_in/groups, kh, kw)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<conv algorithm {self.name!r}>"
