"""``naive``: direct loops over output positions, the reference for every other algorithm.

The slow version of write-up 001: for every output pixel (i, j), take the window of
the padded input under the kernel and contract it with the weights. Only the
batch and channel axes are vectorised (a contraction per window), which keeps
it readable and still fast enough to serve as ground truth in tests.
"""
from __future__ import annotations

import numpy as np

from ..windows import pad, unpad
from .base import ConvAlgorithm


def _window(geom, i, j):
    """Row and column slices of the padded input read by output pixel (i, j)."""
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
    return (slice(i * sh, i * sh + dh * (kh - 1) + 1, dh), slice(j * sw, j * sw + dw * (kw - 1) + 1, dw))


class Naive(ConvAlgorithm):
    name = "naive"

    def _forward(self, x, w, geom):
        xp = pad(x, geom.padding)
        o = geom.out_channels
        g, cg, og = geom.groups, geom.in_channels // geom.groups, o // geom.groups
        y = np.zeros(geom.y_shape, dtype=x.dtype)
        for i in range(geom.window.out_height):
            for j in range(geom.window.out_width):
                rows, cols = _window(geom, i, j)
                for k in range(g):
                    patch = xp[:, k * cg:(k + 1) * cg, rows, cols]          # (N, Cg, kh, kw)
                    wk = w[k * og:(k + 1) * og]                              # (Og, Cg, kh, kw)
                    y[:, k * og:(k + 1) * og, i, j] = np.tensordot(patch, wk, axes=([1, 2, 3], [1, 2, 3]))
        return y, None

    def _grad_input(self, dy, w, geom, saved):
        o, g = geom.out_channels, geom.groups
        cg, og = geom.in_channels // g, o // g
        win = geom.window
        dxp = np.zeros((geom.batch, geom.in_channels, win.padded_height, win.padded_width), dtype=dy.dtype)
        for i in range(win.out_height):
            for j in range(win.out_width):
                rows, cols = _window(geom, i, j)
                for k in range(g):
                    # (N, Og) x (Og, Cg, kh, kw) -> (N, Cg, kh, kw)
                    dxp[:, k * cg:(k + 1) * cg, rows, cols] += np.tensordot(
                        dy[:, k * og:(k + 1) * og, i, j], w[k * og:(k + 1) * og], axes=([1], [0]))
        return np.ascontiguousarray(unpad(dxp, geom.padding))

    def _grad_weight(self, dy, x, geom, saved):
        xp = pad(x, geom.padding)
        o, g = geom.out_channels, geom.groups
        cg, og = geom.in_channels // g, o // g
        dw = np.zeros(geom.weight_shape, dtype=dy.dtype)
        for i in range(geom.window.out_height):
            for j in range(geom.window.out_width):
                rows, cols = _window(geom, i, j)
                for k in range(g):
                    # (N, Og) x (N, Cg, kh, kw) -> (Og, Cg, kh, kw)
                    dw[k * og:(k + 1) * og] += np.tensordot(
                        dy[:, k * og:(k + 1) * og, i, j], xp[:, k * cg:(k + 1) * cg, rows, cols], axes=([0], [0]))
        return dw
