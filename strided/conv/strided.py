"""``strided``: the fast default. One strided view, one copy, one BLAS matmul.

Seeds 000 (windows without Python loops), 001 and 004 (im2col turns the
convolution into one matrix product). The padded input is never indexed
with index arrays: ``window_view`` exposes every window as a view
(N, C, OH, OW, kh, kw) at zero cost, one contiguous copy lays it out as the
window matrix

    cols: (N, G, K, L)        K = Cg*kh*kw,  L = OH*OW

and the three products are matrix products with the weights viewed as
wm: (G, Og, K):

    y  = wm @ cols                    # (N, G, Og, L): already NCHW
    dw = sum_n dy[n] @ cols[n].T      # reuses the forward's window matrix
    dcols = wm.T @ dy  ->  fold       # col2im: kh*kw strided-slice adds

The input gradient lays its window matrix out batch-last, (G, K, L*N), so
that ``fold``'s kh*kw slice additions run over long contiguous rows of
OW*N numbers instead of rows of OW; on the LeNet-5 layers (OW = 10 or 28)
that makes col2im 2-3x faster. The forward keeps batch-first, where BLAS
is fastest on many small per-image products (measured on the LeNet-5 and
VGG-like layers of ``strided bench conv``).

Memory: the window matrix is kh*kw times the input. When it would exceed
the workspace budget the batch is processed in chunks (see
:func:`strided.conv.set_workspace_limit`).
"""
from __future__ import annotations

import numpy as np

from ..windows import fold, pad, unpad, window_view
from .base import ConvAlgorithm, grouped


def window_matrix(x, geom):
    """cols: (N, G, Cg*kh*kw, OH*OW), every window of the padded x: (N, C, H, W), contiguous."""
    win = geom.window
    v = window_view(pad(x, geom.padding), win)             # (N, C, OH, OW, kh, kw) view
    n, c = x.shape[:2]
    # no copy when the windows already tile the input contiguously (1x1 kernel, stride 1, no padding)
    cols = np.ascontiguousarray(v.transpose(0, 1, 4, 5, 2, 3))
    k = (c // geom.groups) * win.kernel[0] * win.kernel[1]
    return cols.reshape(n, geom.groups, k, win.out_height * win.out_width)


class Strided(ConvAlgorithm):
    name = "strided"
    seed = "000 + 001 + 004 (windows as a strided view, im2col as one matmul)"

    def workspace_per_image(self, geom, dtype):
        win = geom.window
        return geom.in_channels * win.kernel[0] * win.kernel[1] * win.out_height * win.out_width * dtype.itemsize

    def _forward(self, x, w, geom):
        cols = window_matrix(x, geom)
        y = np.matmul(grouped(w, geom.groups), cols)              # (N, G, Og, L)
        return y.reshape(geom.y_shape), cols

    def _grad_weight(self, dy, x, geom, saved):
        cols = window_matrix(x, geom) if saved is None else saved
        n, g = geom.batch, geom.groups
        dy4 = dy.reshape(n, g, geom.out_channels // g, -1)      # (N, G, Og, L)
        dw = np.matmul(dy4, cols.transpose(0, 1, 3, 2)).sum(axis=0)   # (G, Og, K)
        return dw.reshape(geom.weight_shape)

    def _grad_input(self, dy, w, geom, saved):
        n, g, win = geom.batch, geom.groups, geom.window
        # batch-last: dy as (G, Og, OH*OW*N), so every product below is one matmul per group
        dyt = np.ascontiguousarray(dy.transpose(1, 2, 3, 0)).reshape(g, geom.out_channels // g, -1)
        dcols = np.matmul(grouped(w, g).transpose(0, 2, 1), dyt)            # (G, K, L*N)
        dwin = dcols.reshape(geom.in_channels, *win.kernel, win.out_height, win.out_width, n)
        dxp = np.empty((geom.in_channels, win.padded_height, win.padded_width, n), dtype=dy.dtype)
        fold(dwin.transpose(5, 0, 1, 2, 3, 4), win, out=dxp.transpose(3, 0, 1, 2))
        return np.ascontiguousarray(unpad(dxp.transpose(3, 0, 1, 2), geom.padding))
