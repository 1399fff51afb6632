"""``strided``: the fast default. One strided view, one copy, one BLAS matmul.

The padded input is never indexed with index arrays: ``window_view`` exposes
every window as a view (N, C, OH, OW, kh, kw) at zero cost, one contiguous
copy lays it out as the window matrix

    cols: (N, G, Cg*kh*kw, OH*OW)

and the convolution becomes a (batched over N) matrix product with the
weights viewed as (G, Og, Cg*kh*kw), which lands directly in NCHW order:

    y = w @ cols                      # (N, G, Og, OH*OW)
    dw = sum_n dy[n] @ cols[n].T      # reuses the forward's window matrix
    dcols = w.T @ dy  ->  fold        # col2im by kh*kw strided-slice adds
"""
from __future__ import annotations

import numpy as np

from ..windows import fold, pad, unpad, window_view
from .base import ConvAlgorithm


def window_matrix(x, geom):
    """cols: (N, G, Cg*kh*kw, OH*OW), a contiguous copy of every window of the padded x."""
    win = geom.window
    v = window_view(pad(x, geom.padding), win)             # (N, C, OH, OW, kh, kw) view
    n, c = x.shape[:2]
    cols = np.empty((n, c, *win.kernel, win.out_height, win.out_width), dtype=x.dtype)
    np.copyto(cols, v.transpose(0, 1, 4, 5, 2, 3))
    k = (c // geom.groups) * win.kernel[0] * win.kernel[1]
    return cols.reshape(n, geom.groups, k, win.out_height * win.out_width)


class Strided(ConvAlgorithm):
    name = "strided"
    seed = "000 + 001 + 004 (windows as a strided view, im2col as one matmul)"

    def forward(self, x, w, geom):
        cols = window_matrix(x, geom)
        g = geom.groups
        wm = w.reshape(g, geom.out_channels // g, -1)
        y = np.matmul(wm, cols)                                  # (N, G, Og, L)
        return y.reshape(geom.y_shape), cols

    def grad_weight(self, dy, x, geom, saved=None):
        cols = window_matrix(x, geom) if saved is None else saved
        n, g = geom.batch, geom.groups
        dy4 = dy.reshape(n, g, geom.out_channels // g, -1)      # (N, G, Og, L)
        dw = np.matmul(dy4, cols.transpose(0, 1, 3, 2)).sum(axis=0)   # (G, Og, K)
        return dw.reshape(geom.weight_shape)

    def grad_input(self, dy, w, geom, saved=None):
        n, g, win = geom.batch, geom.groups, geom.window
        wm = w.reshape(g, geom.out_channels // g, -1)
        dy4 = dy.reshape(n, g, geom.out_channels // g, -1)
        dcols = np.matmul(wm.transpose(0, 2, 1), dy4)           # (N, G, K, L)
        dwin = dcols.reshape(n, geom.in_channels, *win.kernel, win.out_height, win.out_width)
        return np.ascontiguousarray(unpad(fold(dwin, win), geom.padding))
