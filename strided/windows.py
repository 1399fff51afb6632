"""Window extraction, written once for convolution and pooling.

The idea (gathered windows, im2col: write-ups 000 and 001) is that every
output pixel of a convolution or a pooling reads one ``kh x kw`` window of
the padded input. NumPy can expose all those windows *without copying*:
a strided view whose extra axes step by ``stride`` pixels between windows
and by ``dilation`` pixels inside a window.

    xp = pad(x, window.padding)              # (N, C, Hp, Wp)
    v  = window_view(xp, window)             # (N, C, OH, OW, kh, kw), a view
    v[n, c, i, j, a, b] == xp[n, c, i*sh + a*dh, j*sw + b*dw]

The reverse (col2im) adds window gradients back into the image. Instead of
``np.add.at`` over index arrays (write-up 001's col2im, 10-16x slower) it loops over the
``kh*kw`` kernel offsets and adds one strided slice per offset.
"""
from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _memory
from ._memory import is_batch_last  # noqa: F401 - memory order belongs with the memory; exported here
from .geometry import Window


def pad(x: np.ndarray, padding, value: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """Embed x: (N, C, H, W) in a padded array (N, C, H+t+b, W+l+r); no copy when padding is zero.

    Any padding size works, including more than the kernel.
    ``out`` (that shape, any memory order, e.g. a batch-last view) receives
    the result instead of a new C-ordered array.
    """
    top, bottom, left, right = padding
    if out is None and top == bottom == left == right == 0:
        return x
    n, c, h, w = x.shape
    if out is None:
        out = np.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
    # fill only the border: the interior is overwritten right after
    if top:
        out[:, :, :top] = value
    if bottom:
        out[:, :, top + h:] = value
    if left:
        out[:, :, top:top + h, :left] = value
    if right:
        out[:, :, top:top + h, left + w:] = value
    out[:, :, top:top + h, left:left + w] = x
    return out


def empty(shape, dtype, batch_last: bool = False) -> np.ndarray:
    """An uninitialised (N, C, H, W) array, its memory C-ordered or batch-last (laid out (C, H, W, N)).

    Pooling allocates its outputs and gradients in its input's order, so a
    batch-last activation stays batch-last from one layer to the next. The
    memory comes from :mod:`strided._memory` (reused between steps).
    """
    return _memory.empty(shape, dtype, batch_last)


def to_batch_last(x: np.ndarray) -> np.ndarray:
    """x: (N, C, H, W) with its memory laid out (C, H, W, N), the batch innermost; x itself when it already is.

    The shape stays (N, C, H, W): only the memory order changes (as torch's
    ``channels_last`` keeps the shape of a tensor). Batch-last arrays give
    the convolution long contiguous runs of W*N numbers (see
    :mod:`strided.conv.window_rows`). The copy, when needed, is
    :func:`copy_to_batch_last`.
    """
    if x.transpose(1, 2, 3, 0).flags.c_contiguous:
        return x
    out = _memory.empty(x.shape, x.dtype, batch_last=True)
    copy_to_batch_last(out.transpose(1, 2, 3, 0), x)
    return out


# Transposes to batch-last memory move runs of about this many numbers (see ``_transpose_runs``).
TRANSPOSE_RUN = 64


@functools.lru_cache(maxsize=256)
def _transpose_runs(h: int, w: int, rows_contiguous: bool) -> tuple[int, int] | None:
    """``(r, wb)``: move runs of r rows of wb pixels (wb divides w; r > 1 only with wb == w), about TRANSPOSE_RUN long.

    None when every run would be shorter than 8 numbers: then one copy is as fast.
    """
    options = [(1, d) for d in range(1, w + 1) if w % d == 0]
    if rows_contiguous:
        options += [(r, w) for r in range(2, h + 1) if h % r == 0]
    r, wb = min(options, key=lambda o: abs(np.log(o[0] * o[1] / TRANSPOSE_RUN)))
    return None if r * wb < 8 else (r, wb)


def copy_to_batch_last(dst: np.ndarray, src: np.ndarray, tmp: np.ndarray | None = None) -> None:
    """Copy src: (N, c, h, w), any memory order, into dst: (c, h, w, N) (any strides); tmp: flat, src.size or more.

    ``tmp`` (scratch of x's dtype, at least ``src.size`` long) is drawn from
    :mod:`strided._memory` when not given.

    A C-ordered src is transposed in two passes: runs of ``r*wb`` consecutive
    pixels of each image are gathered next to each other, (c, h/r, w/wb, N, r*wb),
    then each small (N, r*wb) tile is transposed while in the cache. NumPy's
    one-pass transposing copy reads one number from each of N images in
    turn, N different pages apart, about 3x slower (docs/performance.md,
    "Measurements behind the code").
    """
    n, c, h, w = src.shape
    if n < 8 or is_batch_last(src) or src.strides[3] != src.itemsize:
        np.copyto(dst, src.transpose(1, 2, 3, 0))
        return
    runs = _transpose_runs(h, w, src.strides[2] == w * src.itemsize)
    if runs is None:
        np.copyto(dst, src.transpose(1, 2, 3, 0))
        return
    r, wb = runs
    if tmp is None:
        tmp = _memory.empty((src.size,), src.dtype)
    tmp = tmp[:src.size].reshape(c, h // r, w // wb, n, r, wb)
    np.copyto(tmp, src.reshape(n, c, h // r, r, w // wb, wb).transpose(1, 2, 4, 0, 3, 5))
    np.copyto(dst.reshape(c, h // r, r, w // wb, wb, n), tmp.transpose(0, 1, 4, 2, 5, 3))


def unpad(xp: np.ndarray, padding) -> np.ndarray:
    """Inverse of :func:`pad`: the interior view of xp: (N, C, Hp, Wp)."""
    top, bottom, left, right = padding
    return xp[:, :, top:xp.shape[2] - bottom, left:xp.shape[3] - right]


def window_view(xp: np.ndarray, window: Window) -> np.ndarray:
    """All windows of a padded xp: (N, C, Hp, Wp) as a read-only view (N, C, OH, OW, kh, kw)."""
    sn, sc, sh, sw = xp.strides
    (kh, kw), (th, tw), (dh, dw) = window.kernel, window.stride, window.dilation
    shape = (xp.shape[0], xp.shape[1], window.out_height, window.out_width, kh, kw)
    strides = (sn, sc, sh * th, sw * tw, sh * dh, sw * dw)
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def offset_slices(window: Window, a: int, b: int) -> tuple[slice, slice]:
    """Rows and columns of the padded input that kernel offset ``(a, b)`` reads, one per output pixel.

    ``xp[:, :, rows, cols]`` has shape (N, C, OH, OW): the input pixel under
    kernel tap (a, b) for every output position. Pooling and col2im loop over
    these kh*kw slices instead of materialising the windows.
    """
    (th, tw), (dh, dw) = window.stride, window.dilation
    r0, c0 = a * dh, b * dw
    rows = slice(r0, r0 + th * (window.out_height - 1) + 1, th)
    cols = slice(c0, c0 + tw * (window.out_width - 1) + 1, tw)
    return rows, cols


@functools.lru_cache(maxsize=256)
def offsets(window: Window) -> tuple:
    """The kernel offsets ``(a, b, rows, cols)`` of a window, row-major (torch's scan order).

    Computed once per window geometry (a training step asks for the same ones every time).
    """
    kh, kw = window.kernel
    return tuple((a, b, *offset_slices(window, a, b)) for a in range(kh) for b in range(kw))


def fold(dwin: np.ndarray, window: Window, out: np.ndarray | None = None) -> np.ndarray:
    """col2im: add window gradients back into the padded image.

    dwin: (N, C, kh, kw, OH, OW), any strides (any number of leading axes
    in place of N, C). Returns dxp: (N, C, Hp, Wp) with
    ``dxp[..., i*sh + a*dh, j*sw + b*dw] += dwin[..., a, b, i, j]`` summed over
    overlapping windows, into ``out`` (zeroed first) when given.
    """
    lead = dwin.shape[:-4]
    if out is None:
        out = np.zeros((*lead, window.padded_height, window.padded_width), dtype=dwin.dtype)
    else:
        out[...] = 0
    for a, b, rows, cols in offsets(window):
        out[..., rows, cols] += dwin[..., a, b, :, :]
    return out
