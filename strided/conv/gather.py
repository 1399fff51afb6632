"""``gather``: write-up 000's channels-last convolution, windows gathered with ``np.take``.

The padded input is laid out channels-last, xp: (N, Hp, Wp, C), and
flattened. The flat index of pixel (n, r, s, c) is
``((n*Hp + r)*Wp + s)*C + c``, so one integer array built from three
broadcast ``np.arange``s -- window corners, offsets inside a window, image
starts -- names every element of every window, and a single ``np.take``
gathers the window matrix

    cols: (G, N*OH*OW, kh*kw*Cg)

Flattening the kernel the same way, w: (G, kh*kw*Cg, Og), turns the
convolution into a dense layer: ``y = cols @ w`` (the convolution as a dense layer),
and the weight gradient into ``cols.T @ dy``.

The input gradient is write-up 000's other observation: it is itself a
convolution, of the output gradient spread out by the stride
(``z[s*i] = dy[i]``) and shifted by ``(k-1)*d - P``, with the flipped
kernel whose input and output channels swap roles. The shift is negative
when the padding is larger than the kernel, and then the spread gradient is
cropped instead of padded, so every padding size works
(:func:`~strided.conv.base.input_grad_problem`). The same gather-and-multiply
forward then computes dx.
"""
from __future__ import annotations

import numpy as np

from ..windows import pad
from .base import ConvAlgorithm, input_grad_problem


def take_windows(x, geom):
    """cols: (G, N*OH*OW, kh*kw*Cg) gathered from the channels-last padded x: (N, C, H, W)."""
    win = geom.window
    (kh, kw), (sh, sw), (dh, dw) = win.kernel, win.stride, win.dilation
    n, c = x.shape[:2]
    g, cg = geom.groups, c // geom.groups
    hp, wp = win.padded_height, win.padded_width
    xp = np.ascontiguousarray(pad(x, geom.padding).transpose(0, 2, 3, 1))      # (N, Hp, Wp, C)
    corner = (np.arange(win.out_height)[:, None] * sh * wp + np.arange(win.out_width)[None, :] * sw) * c
    inside = ((np.arange(kh)[:, None, None] * dh * wp + np.arange(kw)[None, :, None] * dw) * c
              + np.arange(cg)[None, None, :])                                  # (kh, kw, Cg)
    image = np.arange(n) * hp * wp * c
    group = np.arange(g) * cg
    # (G, N, OH*OW, kh*kw*Cg): group, image, window corner, offset inside the window
    idx = (group[:, None, None, None] + image[None, :, None, None]
           + corner.reshape(1, 1, -1, 1) + inside.reshape(1, 1, 1, -1))
    return xp.take(idx).reshape(g, -1, kh * kw * cg)


def _weight_matrix(w, groups):
    """w: (O, Cg, kh, kw) -> (G, kh*kw*Cg, Og), rows in the (a, b, c) order of the gathered windows."""
    o, cg, kh, kw = w.shape
    return w.reshape(groups, o // groups, cg, kh, kw).transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * cg, -1)


def _channels_last(dy, groups):
    """dy: (N, O, OH, OW) -> (G, N*OH*OW, Og), the layout of ``cols @ w``."""
    n, o = dy.shape[:2]
    return np.ascontiguousarray(dy.reshape(n, groups, o // groups, -1).transpose(1, 0, 3, 2)).reshape(groups, -1, o // groups)


class Gather(ConvAlgorithm):
    name = "gather"

    def workspace_per_image(self, geom, dtype):
        win = geom.window
        taps = win.kernel[0] * win.kernel[1]
        per_element = dtype.itemsize + np.dtype(np.intp).itemsize     # the window matrix and its flat indices
        forward = win.out_height * win.out_width * taps * geom.in_channels
        backward = win.height * win.width * taps * geom.out_channels   # the input gradient's own window matrix
        return max(forward, backward) * per_element

    def _forward(self, x, w, geom):
        cols = take_windows(x, geom)
        yg = np.matmul(cols, _weight_matrix(w, geom.groups))                   # (G, N*L, Og)
        n, (oh, ow) = geom.batch, (geom.window.out_height, geom.window.out_width)
        y = yg.reshape(geom.groups, n, oh, ow, -1).transpose(1, 0, 4, 2, 3)     # (N, G, Og, OH, OW)
        return np.ascontiguousarray(y).reshape(geom.y_shape), cols

    def _grad_weight(self, dy, x, geom, saved):
        cols = take_windows(x, geom) if saved is None else saved
        dwm = np.matmul(cols.transpose(0, 2, 1), _channels_last(dy, geom.groups))   # (G, kh*kw*Cg, Og)
        g, og = geom.groups, geom.out_channels // geom.groups
        (kh, kw), cg = geom.kernel, geom.in_channels // g
        dw = dwm.reshape(g, kh, kw, cg, og).transpose(0, 4, 3, 1, 2)
        return np.ascontiguousarray(dw).reshape(geom.weight_shape)

    def _grad_input(self, dy, w, geom, saved):
        z, wt, geom_t = input_grad_problem(dy, w, geom)
        return self._forward(z, wt, geom_t)[0]
