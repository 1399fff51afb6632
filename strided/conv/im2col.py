"""``im2col``: index arrays for im2col, ``np.add.at`` for col2im; the teaching version.

As write-ups 001, 002 and 004 do it. Three integer arrays say, for every row of the
window matrix (one input channel and kernel tap ``(c, a, b)``) and every
column (one output pixel ``(i, j)``), which padded-input pixel goes there:

    chan[r]    = c                       r = (c*kh + a)*kw + b
    rows[r, l] = a*dh + i*sh             l = i*OW + j
    cols[r, l] = b*dw + j*sw

``xp[:, chan, rows, cols]`` is then the window matrix (N, Cg*kh*kw per
group, OH*OW) and the convolution is one matrix product per image. The
backward pass scatters the column gradients back with
``np.add.at(dxp, (:, chan, rows, cols), dcols)``, which adds correctly
where windows overlap (a plain ``dxp[...] += dcols`` would keep only one
of the colliding additions).

This is the clearest statement of im2col but not the fastest: fancy
indexing gathers one element at a time and ``np.add.at`` is unbuffered.
``strided`` computes the same products with a strided view and slice adds.
"""
from __future__ import annotations

import numpy as np

from ..windows import pad, unpad
from .base import ConvAlgorithm, grouped


def get_indices(geom):
    """Index arrays ``(chan, rows, cols)`` of shapes (C*kh*kw, 1), (C*kh*kw, L), (C*kh*kw, L)."""
    win = geom.window
    (kh, kw), (sh, sw), (dh, dw) = win.kernel, win.stride, win.dilation
    oh, ow, c = win.out_height, win.out_width, geom.in_channels
    # kernel tap of each row, repeated for every channel: np.repeat/np.tile as in write-up 001
    tap_row = np.tile(np.repeat(np.arange(kh), kw), c) * dh              # (C*kh*kw,)
    tap_col = np.tile(np.tile(np.arange(kw), kh), c) * dw
    # top-left corner of each window, one per output pixel
    out_row = np.repeat(np.arange(oh), ow) * sh                          # (L,)
    out_col = np.tile(np.arange(ow), oh) * sw
    rows = tap_row[:, None] + out_row[None, :]
    cols = tap_col[:, None] + out_col[None, :]
    chan = np.repeat(np.arange(c), kh * kw)[:, None]
    return chan, rows, cols


class Im2col(ConvAlgorithm):
    name = "im2col"

    def _cols(self, x, geom):
        chan, rows, cols = get_indices(geom)
        xcol = pad(x, geom.padding)[:, chan, rows, cols]                    # (N, C*kh*kw, L)
        return xcol.reshape(geom.batch, geom.groups, -1, xcol.shape[-1])     # (N, G, K, L)

    def _forward(self, x, w, geom):
        xcol = self._cols(x, geom)
        y = np.matmul(grouped(w, geom.groups), xcol)                        # (N, G, Og, L)
        return y.reshape(geom.y_shape), xcol

    def _grad_weight(self, dy, x, geom, saved):
        xcol = self._cols(x, geom) if saved is None else saved
        dy4 = dy.reshape(geom.batch, geom.groups, geom.out_channels // geom.groups, -1)
        dw = np.matmul(dy4, xcol.transpose(0, 1, 3, 2)).sum(axis=0)          # (G, Og, K)
        return dw.reshape(geom.weight_shape)

    def _grad_input(self, dy, w, geom, saved):
        n, g, win = geom.batch, geom.groups, geom.window
        dy4 = dy.reshape(n, g, geom.out_channels // g, -1)
        dcols = np.matmul(grouped(w, g).transpose(0, 2, 1), dy4)            # (N, G, K, L)
        dxp = np.zeros((n, geom.in_channels, win.padded_height, win.padded_width), dtype=dy.dtype)
        chan, rows, cols = get_indices(geom)
        np.add.at(dxp, (slice(None), chan, rows, cols), dcols.reshape(n, -1, dcols.shape[-1]))
        return np.ascontiguousarray(unpad(dxp, geom.padding))
