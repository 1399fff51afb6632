"""Max and average pooling over the shared window code.

Both walk the ``kh*kw`` kernel offsets of :func:`strided.windows.offsets`:
each offset is one strided slice (N, C, OH, OW) of the padded input, so a
pooling is ``kh*kw`` element-wise passes and never materialises the windows.

    max:  y[n, c, i, j] = max_{a, b} xp[n, c, i*sh + a*dh, j*sw + b*dw]      (xp padded with -inf)
    avg:  y[n, c, i, j] = sum_{a, b} xp[n, c, i*sh + a, j*sw + b] / divisor[i, j]

Geometry, ``ceil_mode`` and the divisor follow torch exactly (see
:func:`strided.geometry.pool_window` and :func:`avg_divisor`).

Adaptive pooling fixes the output size instead of the window: output row i
pools input rows ``[floor(i*H/OH), ceil((i+1)*H/OH))`` (torch's bins, see
:func:`strided.geometry.adaptive_bins`), and likewise for columns. Bins that
are ordinary windows (equal lengths at a constant step: always when OH
divides H) go through the pooling above; ``(1, 1)`` is a reduction over
H and W; other bins are pooled one axis at a time, each bin's members
gathered into a padded axis (index arrays with a mask), so no Python loop
runs over pixels or bins.

Outputs and input gradients keep the memory order of the input (batch-last
after a convolution, see :mod:`strided.conv.window_rows`): every pass is then a
ufunc over runs of N contiguous numbers, and the next layer gets the order
it works in. Average pooling is the ``kh*kw`` slice additions (4 for 2x2,
15x faster than ``reshape(...).mean`` on LeNet-5's conv1 output); when the windows do not
overlap, backward writes each input pixel exactly once, with no zeroing
and no windows materialised.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .. import _checks
from .._parallel import elementwise
from ..geometry import Window, adaptive_bins, adaptive_window, pool_window
from ..windows import empty, is_batch_last, offsets, pad, to_batch_last, unpad
from .._checks import floating, grad_output, image_batch


@dataclass
class MaxPool2dCache:
    x_shape: tuple
    window: Window
    argmax: np.ndarray  # (N, C, OH, OW): the winning kernel offset a*kw + b of every window
    dtype: np.dtype = np.dtype(np.float32)


@dataclass
class AvgPool2dCache:
    x_shape: tuple
    window: Window
    divisor: np.ndarray  # (OH, OW) or a scalar array
    batch_last: bool = False  # the input's memory order, which its gradient takes


def _window_of(x, kernel_size, stride, padding, dilation, ceil_mode):
    x = floating("x", x, 4, "(N, C, H, W)")
    _checks.boolean("ceil_mode", ceil_mode)
    try:
        return x, _cached_window(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    except TypeError:   # unhashable arguments (lists): validate without the cache
        return x, pool_window(x.shape, kernel_size, stride, padding, dilation, ceil_mode)


# A layer pools batches of the same shape with the same arguments at every step: validate them once.
_cached_window = functools.lru_cache(maxsize=256)(pool_window)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling of x: (N, C, H, W); returns ``(y, cache)`` with y: (N, C, OH, OW).

    Ties go to the first offset in row-major order and NaN wins (the last NaN), as in torch.
    y is a chain of ``np.maximum`` over the kernel offsets (NaN propagates);
    the winning offset of every window is then counted without masked
    copies: argmax = the number of leading offsets that are not the maximum,
    ``sum_k prod_{k' <= k} [tap_k' != y]`` (windows holding a NaN credit
    their last NaN, as torch's scan does). Against comparing and copying
    with ``where=`` masks offset by offset, 16x faster (2x2 pooling of
    (128, 16, 28, 28): 10.4 -> 0.70 ms on one thread).
    """
    x, win = _window_of(x, kernel_size, stride, padding, dilation, ceil_mode)
    xp = _padded(x, win, -np.inf)
    taps = [xp[:, :, rows, cols] for _, _, rows, cols in offsets(win)]     # row-major: k = a*kw + b
    y = empty(taps[0].shape, x.dtype, is_batch_last(x))
    n_taps = len(taps)
    argmax = empty(y.shape, np.int8 if n_taps <= 127 else np.int16 if n_taps < 2**15 else np.int32,
                   is_batch_last(x))

    def chunk(y, argmax, *taps):
        if len(taps) == 1:
            np.copyto(y, taps[0])
            argmax[...] = 0
            return
        np.maximum(taps[0], taps[1], out=y)
        for s in taps[2:]:
            np.maximum(y, s, out=y)
        # the number of leading offsets that are not the maximum
        behind = np.not_equal(taps[0], y)
        np.copyto(argmax, behind)
        for s in taps[1:-1]:
            behind &= np.not_equal(s, y)
            argmax += behind
        if np.isnan(y).any():
            # a NaN equals nothing; torch's scan replaces its maximum at every NaN, so the last NaN wins
            for k, s in enumerate(taps):
                np.copyto(argmax, k, where=np.isnan(s))

    elementwise(chunk, y, argmax, *taps)
    if any(win.padding):
        _route_neg_inf(y, argmax, win)
    return y, MaxPool2dCache(x.shape, win, argmax, x.dtype)


def max_pool2d_indices(cache: MaxPool2dCache) -> np.ndarray:
    """Where each maximum was taken, as torch's ``return_indices``: int64 (N, C, OH, OW).

    Each index is the flat position ``row * W + col`` of the winning pixel in
    its input plane (H, W), padding not counted: the winning kernel offset
    (a, b) of output (i, j) is the pixel (i*sh - top + a*dh, j*sw - left + b*dw).
    """
    win = cache.window
    kw = win.kernel[1]
    a, b = np.divmod(cache.argmax.astype(np.int64), kw)
    rows = (np.arange(win.out_height) * win.stride[0] - win.padding[0])[:, None] + a * win.dilation[0]
    cols = (np.arange(win.out_width) * win.stride[1] - win.padding[2])[None, :] + b * win.dilation[1]
    return np.ascontiguousarray(rows * win.width + cols)


def _padded(x, win: Window, value):
    """x padded for the window, in x's memory order (no copy without padding)."""
    if not any(win.padding):
        return x
    n, c = x.shape[:2]
    return pad(x, win.padding, value, out=empty((n, c, win.padded_height, win.padded_width), x.dtype,
                                                is_batch_last(x)))


def _like(dy, batch_last: bool):
    """dy in the memory order of the gradient it is spread into: one pass over the small array, not four strided."""
    if batch_last == is_batch_last(dy):
        return dy
    return to_batch_last(dy) if batch_last else np.ascontiguousarray(dy)


def _tiles(win: Window) -> bool:
    """Windows that tile the padded input exactly: every padded pixel in exactly one window."""
    return (win.stride == win.kernel and win.dilation == (1, 1)
            and win.out_height * win.stride[0] == win.padded_height
            and win.out_width * win.stride[1] == win.padded_width)


def _first_real_offset(size: int, pad: int, kernel: int, stride: int, dilation: int, out: int) -> np.ndarray:
    """For each output position along one axis, the first kernel tap that lands inside the input (-1 if none)."""
    start = np.arange(out) * stride - pad
    tap = np.maximum(-start + dilation - 1, 0) // dilation      # ceil(max(-start, 0) / dilation)
    inside = (tap < kernel) & (start + tap * dilation < size)
    return np.where(inside, tap, -1)


def _route_neg_inf(y, argmax, win: Window) -> None:
    """A window whose maximum is -inf ties with its -inf padding; torch credits its first real pixel.

    Without this the gradient of such a window would go to a padded position
    and be lost. Only windows with y == -inf are touched (rare), so this costs
    one comparison in the common case.
    """
    hit = np.isneginf(y)
    if not hit.any():
        return
    rows = _first_real_offset(win.height, win.padding[0], win.kernel[0], win.stride[0], win.dilation[0],
                              win.out_height)
    cols = _first_real_offset(win.width, win.padding[2], win.kernel[1], win.stride[1], win.dilation[1],
                              win.out_width)
    first = rows[:, None] * win.kernel[1] + cols[None, :]                 # (OH, OW)
    valid = (rows[:, None] >= 0) & (cols[None, :] >= 0)                 # windows that see any input pixel
    hit &= valid
    argmax[hit] = np.broadcast_to(first, argmax.shape)[hit]


def max_pool2d_backward(dy, cache: MaxPool2dCache) -> np.ndarray:
    """dx: (N, C, H, W): each output gradient goes to the input pixel that won its window."""
    _checks.cache(cache, MaxPool2dCache, "max_pool2d_forward")
    win = cache.window
    n, c = cache.x_shape[:2]
    dy = _like(grad_output(dy, (n, c, win.out_height, win.out_width), cache.dtype), is_batch_last(cache.argmax))
    dxp = empty((n, c, win.padded_height, win.padded_width), dy.dtype, is_batch_last(cache.argmax))
    taps = [dxp[:, :, rows, cols] for _, _, rows, cols in offsets(win)]
    if win.overlapping:
        # several windows may credit one pixel: accumulate, one kernel offset at a time
        dxp[...] = 0
        for k, t in enumerate(taps):
            t += np.where(cache.argmax == k, dy, 0)
        return unpad(dxp, win.padding)
    tiles = _tiles(win)
    if not tiles:
        dxp[...] = 0          # pixels no window reads get no gradient

    # every pixel belongs to at most one window: one product per offset writes it (no masked copies),
    # unless dy holds inf or NaN, which a product by 0 would spread to the pixels that lost
    finite = bool(np.isfinite(dy).all())

    def chunk(dy, argmax, *taps):
        for k, t in enumerate(taps):
            if finite:
                np.multiply(dy, argmax == k, out=t)
            else:
                t[...] = 0
                np.copyto(t, dy, where=argmax == k)

    elementwise(chunk, dy, cache.argmax, *taps)
    return unpad(dxp, win.padding)


@functools.lru_cache(maxsize=256)
def _divisor(win: Window, count_include_pad: bool, divisor_override, dtype):
    """The divisor in ``dtype``: a 0-d array when every window divides by the same number, else (OH, OW)."""
    d = avg_divisor(win, (win.padding[0], win.padding[2]), count_include_pad, divisor_override)
    if d.ndim == 0 or np.all(d == d.flat[0]):
        d = d.reshape(-1)[:1].reshape(())
    d = d.astype(dtype)
    d.flags.writeable = False    # shared between calls
    return d


def avg_divisor(win: Window, padding: tuple[int, int], count_include_pad: bool, divisor_override=None):
    """The number each window's sum is divided by, (OH, OW), following torch's avg_pool2d.

    With ``count_include_pad`` a window counts the symmetric zero padding but
    not the extra rows ceil mode reads; without it, only real pixels count.
    """
    if divisor_override is not None:
        return np.array(float(divisor_override))
    counts = []
    for size, k, s, p, o in zip((win.height, win.width), win.kernel, win.stride, padding,
                                (win.out_height, win.out_width)):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        counts.append(end - start)
    return np.outer(counts[0], counts[1]).astype(np.float64)


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                       divisor_override=None):
    """Average pooling of x: (N, C, H, W) (write-up 001); returns ``(y, cache)`` with y: (N, C, OH, OW)."""
    _checks.boolean("count_include_pad", count_include_pad)
    x, win = _window_of(x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (isinstance(divisor_override, bool) or
                                         not isinstance(divisor_override, (int, np.integer)) or
                                         divisor_override < 1):
        raise ValueError(f"divisor_override must be a positive int or None, got {divisor_override!r}")
    xp = _padded(x, win, 0.0)
    taps = [xp[:, :, rows, cols] for _, _, rows, cols in offsets(win)]
    divisor = _divisor(win, count_include_pad, divisor_override, x.dtype)
    uniform = divisor.ndim == 0
    scale = x.dtype.type(1.0 / float(divisor.flat[0]))
    y = empty(taps[0].shape, x.dtype, is_batch_last(x))

    def chunk(y, *taps):
        if len(taps) > 1:
            np.add(taps[0], taps[1], out=y)
        else:
            np.copyto(y, taps[0])
        for s in taps[2:]:
            y += s
        if uniform:
            y *= scale

    elementwise(chunk, y, *taps)
    if not uniform:
        y /= divisor
    return y, AvgPool2dCache(x.shape, win, divisor, is_batch_last(x))


def avg_pool2d_backward(dy, cache: AvgPool2dCache) -> np.ndarray:
    """dx: (N, C, H, W): each window spreads its gradient evenly over its pixels."""
    _checks.cache(cache, AvgPool2dCache, "avg_pool2d_forward")
    win = cache.window
    n, c = cache.x_shape[:2]
    dy = _like(grad_output(dy, (n, c, win.out_height, win.out_width), cache.divisor.dtype), cache.batch_last)
    dxp = empty((n, c, win.padded_height, win.padded_width), dy.dtype, cache.batch_last)
    taps = [dxp[:, :, rows, cols] for _, _, rows, cols in offsets(win)]
    if cache.divisor.ndim:
        g = (dy / cache.divisor).astype(dy.dtype, copy=False)
        scale = dy.dtype.type(1)
    else:
        g, scale = dy, dy.dtype.type(1 / cache.divisor)
    if win.overlapping:
        dxp[...] = 0
        g = g * scale
        for t in taps:
            t += g
        return unpad(dxp, win.padding)
    if not _tiles(win):
        # windows that tile the padded input write every pixel once: only otherwise is zeroing needed
        dxp[...] = 0

    def chunk(g, *taps):
        for t in taps:
            np.multiply(g, scale, out=t)

    elementwise(chunk, g, *taps)
    return unpad(dxp, win.padding)


# ----------------------------------------------------------------------------- adaptive pooling
@dataclass
class AdaptiveAvgPool2dCache:
    x_shape: tuple       # the input's shape (N, C, H, W)
    out_size: tuple      # (OH, OW)
    dtype: np.dtype
    pool: AvgPool2dCache | None = None   # bins that are pooling windows: avg_pool2d's cache


@dataclass
class AdaptiveMaxPool2dCache:
    x_shape: tuple          # the input's shape (N, C, H, W)
    indices: np.ndarray     # (N, C, OH, OW) int64: the flat position h*W + w of each maximum in its plane
    dtype: np.dtype


def adaptive_output_size(output_size, hw) -> tuple[int, int]:
    """``output_size`` (an int or a pair of ints/None, None keeping that input size) as (OH, OW) for input (H, W)."""
    oh, ow = _checks.optional_pair("output_size", output_size)
    return (hw[0] if oh is None else oh), (hw[1] if ow is None else ow)


@functools.lru_cache(maxsize=256)
def _bin_members(size: int, out: int, by_input: bool):
    """The adaptive bins along one axis as padded index arrays: ``(index, valid)``, each (P, K).

    By bin (P = out): index[i, :] lists the input positions of bin i, the first
    ones in increasing order, then padding (valid False). By input position
    (``by_input``, P = size): the bins each position belongs to, which is
    what a gradient gathers.
    """
    starts, ends = adaptive_bins(size, out)
    pos = np.arange(size)
    member = (starts[:, None] <= pos) & (pos < ends[:, None])       # (out, size)
    if by_input:
        member = member.T
    k = int(member.sum(1).max())
    index = np.argsort(~member, axis=1, kind="stable")[:, :k]         # members first, in order
    valid = np.take_along_axis(member, index, 1)
    index.flags.writeable = valid.flags.writeable = False            # shared between calls
    return index, valid


def _gather_members(a, members, axis: int, fill):
    """a's entries along ``axis`` regrouped by ``members``: a.shape with (P, K) in place of that axis, padding = fill."""
    index, valid = members
    g = np.take(a, index, axis=axis)
    np.copyto(g, fill, where=~valid.reshape(valid.shape + (1,) * (a.ndim - axis - 1)))
    return g


def _sum_members(a, members, axis: int):
    """sum over each group of ``members`` along ``axis``: a.shape with P in place of that axis."""
    return _gather_members(a, members, axis, 0).sum(axis=axis + 1)


def _first_max(a, axis: int) -> np.ndarray:
    """The index of the maximum along ``axis`` as torch's scan picks it: the first maximum, or the last NaN."""
    i = a.argmax(axis)                          # NumPy: the first maximum, or the first NaN
    nan = np.isnan(a)
    if nan.any():
        last_nan = a.shape[axis] - 1 - np.flip(nan, axis).argmax(axis)
        i = np.where(nan.any(axis), last_nan, i)
    return i


def _bin_counts(size: int, out: int, dtype) -> np.ndarray:
    starts, ends = adaptive_bins(size, out)
    return (ends - starts).astype(dtype)


def adaptive_avg_pool2d_forward(x, output_size):
    """Adaptive average pooling of x: (N, C, H, W); returns ``(y, cache)`` with y: (N, C, OH, OW).

    output_size: an int or a pair, None in the pair keeping that input size.
    y[n, c, i, j] is the mean of x[n, c] over rows ``[floor(i*H/OH), ceil((i+1)*H/OH))``
    and the columns likewise (torch's bins). ``(1, 1)`` is global average
    pooling, a mean over H and W.
    """
    x = image_batch("x", x)
    n, c, h, w = x.shape
    oh, ow = adaptive_output_size(output_size, (h, w))
    cache = AdaptiveAvgPool2dCache(tuple(x.shape), (oh, ow), x.dtype)
    windows = adaptive_window(h, oh), adaptive_window(w, ow)
    if 0 in (n, c, oh, ow):
        y = np.zeros((n, c, oh, ow), x.dtype)
    elif (oh, ow) == (1, 1):
        y = x.mean(axis=(2, 3), keepdims=True)
    elif None not in windows:
        (kh, sh), (kw, sw) = windows
        y, cache.pool = avg_pool2d_forward(x, (kh, kw), (sh, sw))
    else:
        # one axis at a time: the sums over the bins' rows, then over their columns; then the means
        y = _sum_members(_sum_members(x, _bin_members(h, oh, False), 2), _bin_members(w, ow, False), 3)
        y /= _bin_counts(h, oh, x.dtype)[:, None]
        y /= _bin_counts(w, ow, x.dtype)
    return y, cache


def adaptive_avg_pool2d_backward(dy, cache: AdaptiveAvgPool2dCache) -> np.ndarray:
    """dx: the input's shape; each bin spreads its gradient evenly over its pixels (pixels in two bins get both)."""
    _checks.cache(cache, AdaptiveAvgPool2dCache, "adaptive_avg_pool2d_forward")
    n, c, h, w = cache.x_shape
    oh, ow = cache.out_size
    dy = grad_output(dy, (n, c, oh, ow), cache.dtype)
    if 0 in (n, c, oh, ow):
        dx = np.zeros((n, c, h, w), cache.dtype)
    elif cache.pool is not None:
        dx = avg_pool2d_backward(dy, cache.pool)
    elif (oh, ow) == (1, 1):
        dx = np.broadcast_to(dy / cache.dtype.type(h * w), (n, c, h, w)).copy()
    else:
        g = dy / _bin_counts(h, oh, cache.dtype)[:, None]
        g /= _bin_counts(w, ow, cache.dtype)
        dx = _sum_members(_sum_members(g, _bin_members(h, oh, True), 2), _bin_members(w, ow, True), 3)
    return dx


def adaptive_max_pool2d_forward(x, output_size):
    """Adaptive max pooling of x: (N, C, H, W); returns ``(y, cache)`` with y: (N, C, OH, OW).

    The bins are those of :func:`adaptive_avg_pool2d_forward`. Ties go to the
    first pixel in row-major order and NaN wins (the last NaN), as in torch.
    ``cache.indices`` holds the position ``h*W + w`` of every maximum (torch's
    ``return_indices``), y's shape. Bins done one axis
    at a time keep torch's choice: the maximum of each row's part of a bin,
    then the first row holding the bin's maximum (the last holding a NaN).
    """
    x = image_batch("x", x)
    n, c, h, w = x.shape
    oh, ow = adaptive_output_size(output_size, (h, w))
    windows = adaptive_window(h, oh), adaptive_window(w, ow)
    if 0 in (n, c, oh, ow):
        y, indices = np.zeros((n, c, oh, ow), x.dtype), np.zeros((n, c, oh, ow), np.int64)
    elif (oh, ow) == (1, 1):
        planes = x.reshape(n, c, h * w)
        indices = _first_max(planes, 2)[..., None, None]
        y = np.take_along_axis(planes, indices[..., 0], 2)[..., None]
    elif None not in windows:
        (kh, sh), (kw, sw) = windows
        y, pool = max_pool2d_forward(x, (kh, kw), (sh, sw))
        # the winning kernel offset a*kw + b of each window, as the flat position of its pixel
        offset = (np.arange(kh)[:, None] * w + np.arange(kw)).ravel()
        corner = (np.arange(oh) * sh)[:, None] * w + np.arange(ow) * sw
        indices = offset[pool.argmax] + corner
    else:
        members_h, members_w = _bin_members(h, oh, False), _bin_members(w, ow, False)
        parts = _gather_members(x, members_w, 3, -np.inf)                  # (N, C, H, OW, Kw)
        k = _first_max(parts, 4)
        row_max = np.take_along_axis(parts, k[..., None], 4)[..., 0]       # (N, C, H, OW)
        col = members_w[0][np.arange(ow), k]                                # its column in the input
        parts = _gather_members(row_max, members_h, 2, -np.inf)            # (N, C, OH, Kh, OW)
        k = _first_max(parts, 3)
        y = np.take_along_axis(parts, k[:, :, :, None], 3)[:, :, :, 0]    # (N, C, OH, OW)
        row = members_h[0][np.arange(oh)[:, None], k]
        indices = row * w + np.take_along_axis(col, row, 2)
    cache = AdaptiveMaxPool2dCache(tuple(x.shape), indices, x.dtype)
    return y, cache


def adaptive_max_pool2d_backward(dy, cache: AdaptiveMaxPool2dCache) -> np.ndarray:
    """dx: the input's shape; each output gradient goes to its maximum (added up where bins share one)."""
    _checks.cache(cache, AdaptiveMaxPool2dCache, "adaptive_max_pool2d_forward")
    n, c, h, w = cache.x_shape
    out_shape = cache.indices.shape
    per_plane = out_shape[2] * out_shape[3]
    dy = grad_output(dy, out_shape, cache.dtype).reshape(n * c, per_plane)
    # one scatter-add over all planes: plane p's pixel q is entry p*H*W + q
    flat = cache.indices.reshape(n * c, per_plane) + (np.arange(n * c) * (h * w))[:, None]
    dx = np.bincount(flat.ravel(), weights=dy.ravel(), minlength=n * c * h * w).astype(cache.dtype, copy=False)
    return dx.reshape(cache.x_shape)
