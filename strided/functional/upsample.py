"""Interpolation (upsampling and resizing), torch's ``F.interpolate`` for the modes 'nearest' and 'bilinear'.

Both modes are separable: every output position along an axis reads one
(nearest) or two (bilinear) input positions along that axis, with weights,
so an image is resized one axis at a time, the width first, then the height
(the order of torch's sums). Along one axis of size ``S`` resized to ``O``:

    nearest:   y[o] = x[src[o]]
    bilinear:  y[o] = x[i0[o]] * l0[o] + x[i1[o]] * l1[o]

with torch's index formulas:

    nearest, 2-D:    src = min(floor(o * s), S - 1), in float32, with s = 1/scale_factor, or S/O
                     when the size was given (or ``recompute_scale_factor``); O == S copies,
                     O == 2S takes o // 2
    nearest, 1-D:    the same product in the input's dtype, without the two special cases
                     (torch computes the 1-D forward that way)
    bilinear:        r = s * (o + 0.5) - 0.5 clamped at 0, or r = o * (S-1)/(O-1) with align_corners;
                     i0 = min(floor(r), S - 1), i1 = i0 + 1 (i0 at the border), l1 = r - i0, l0 = 1 - l1;
                     an axis whose size does not change is copied

A 3-D input is (N, C, L) and is resized along L, as torch does ('nearest'
only; 'bilinear' needs (N, C, H, W)). The gradient is the adjoint, axis by
axis: every source index is non-decreasing in o, so the gradient of a run
of outputs reading the same input is one ``np.add.reduceat`` segment.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .. import _checks
from .._checks import grad_output

MODES = ("nearest", "bilinear")


@dataclass(frozen=True)
class AxisTaps:
    """How one spatial axis is resized: ``index[t]`` (O,) int64 and ``weight[t]`` (O,) per tap t (None for nearest)."""
    axis: int
    size: int                          # the input's size along the axis
    index: tuple
    weight: tuple | None = None


@dataclass
class InterpolateCache:
    x_shape: tuple
    dtype: np.dtype
    taps: tuple       # AxisTaps of the resized axes, in the order they were applied


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def check_interpolate_args(size=None, scale_factor=None, mode="nearest", align_corners=None,
                           recompute_scale_factor=None) -> None:
    """Validate :func:`interpolate_forward`'s arguments on their own (as ``nn.Upsample``'s constructor does).

    Raises ValueError/TypeError naming the argument, what it got and what was
    expected; the checks that need the input (its number of spatial axes) are
    left to :func:`interpolate_sizes`.
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r} "
                         "(strided implements these two of torch's interpolation modes)")
    if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"align_corners must be True, False or None, got {align_corners!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear "
                         f"| bicubic | trilinear; got align_corners={align_corners!r} with mode='nearest' "
                         "(leave it None)")
    if recompute_scale_factor is not None and not isinstance(recompute_scale_factor, (bool, np.bool_)):
        raise TypeError(f"recompute_scale_factor must be True, False or None, got {recompute_scale_factor!r}")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined, got neither")
    if size is not None and scale_factor is not None:
        raise ValueError(f"only one of size or scale_factor should be defined, got size={size!r} and "
                         f"scale_factor={scale_factor!r}")
    if size is not None:
        values = size if isinstance(size, (tuple, list)) else (size,)
        if not values or not all(_is_int(v) for v in values):
            raise TypeError(f"size must be an int or a tuple of ints, got {size!r}")
        if min(values) < 1:
            raise ValueError(f"size must be positive (the output's size), got {size!r}")
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size; got size="
                             f"{size!r} with recompute_scale_factor=True")
    else:
        values = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,)
        if not values or not all(_is_number(v) for v in values):
            raise TypeError(f"scale_factor must be a number or a tuple of numbers, got {scale_factor!r}")
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"scale_factor must be finite and positive, got {scale_factor!r}")


def interpolate_sizes(in_sizes, size=None, scale_factor=None, recompute_scale_factor=None):
    """The output's spatial sizes and the scale each axis's source index uses, as torch computes them.

    in_sizes: the input's spatial sizes, (H, W) or (L,). Returns ``(out_sizes,
    scales)``: out = size, or floor(in * scale_factor); ``scales[d]`` is the
    scale_factor the index formulas divide by, or None when they use in/out
    (a given size, or ``recompute_scale_factor=True``).
    """
    check_interpolate_args(size, scale_factor, "nearest", None, recompute_scale_factor)
    dims = len(in_sizes)
    given = size if size is not None else scale_factor
    if isinstance(given, (tuple, list)):
        if len(given) != dims:
            what = "size" if size is not None else "scale_factor"
            raise ValueError(f"{what} must have one entry per spatial dimension of the input "
                             f"{list(in_sizes)}, got {what}={given!r}")
        values = tuple(given)
    else:
        values = (given,) * dims
    if size is not None:
        out, scales = tuple(int(v) for v in values), (None,) * dims
    else:
        real = tuple(s * float(f) for s, f in zip(in_sizes, values))
        if not all(math.isfinite(r) for r in real):
            raise ValueError(f"scale_factor={scale_factor!r} makes an infinite output size from input {tuple(in_sizes)}; "
                             "expected a finite output size")
        out = tuple(int(math.floor(r)) for r in real)
        scales = (None,) * dims if recompute_scale_factor else tuple(float(f) for f in values)
    if min(out) < 1:
        raise ValueError(f"Input and output sizes should be greater than 0, got input {tuple(in_sizes)} and output "
                         f"{out} from scale_factor={scale_factor!r}")
    return out, scales


def _nearest_index(size: int, out: int, scale, dims: int, dtype) -> np.ndarray:
    """The source index of every output position along one axis, (out,) int64 (torch's formulas, see above)."""
    if dims == 2:
        if out == size:
            return np.arange(out)
        if out == 2 * size:
            return np.arange(out) >> 1
        s = np.float32(1.0 / scale) if scale is not None else np.float32(size) / np.float32(out)
        real = np.arange(out, dtype=np.float32) * s
    else:
        t = np.dtype(dtype).type
        s = t(1.0 / scale) if scale is not None else t(size) / t(out)
        real = (np.arange(out, dtype=dtype) * s).astype(np.float32)
    return np.minimum(np.floor(real).astype(np.int64), size - 1)


def _linear_taps(size: int, out: int, scale, align_corners: bool, dtype):
    """``(i0, l0, i1, l1)``, each (out,), for one axis of bilinear interpolation (torch's formulas, see above)."""
    t = np.dtype(dtype).type
    o = np.arange(out, dtype=dtype)
    if align_corners:
        ratio = t(size - 1) / t(out - 1) if out > 1 else t(0)
        real = ratio * o
    else:
        ratio = t(1.0 / scale) if scale is not None else t(size) / t(out)
        real = np.maximum(ratio * (o + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(real.astype(np.float32)).astype(np.int64), size - 1)
    l1 = np.clip(real - i0.astype(dtype), t(0), t(1))
    i1 = i0 + (i0 < size - 1)
    return i0, t(1) - l1, i1, l1


def _along(w: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """Weights (O,) shaped to broadcast along ``axis`` of an ndim array."""
    return w.reshape(w.shape + (1,) * (ndim - axis - 1))


def interpolate_forward(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                        recompute_scale_factor=None):
    """Resize x: (N, C, H, W) (or (N, C, L), 'nearest' only); returns ``(y, cache)`` with y: (N, C, OH, OW).

    Arguments as torch's ``F.interpolate``: exactly one of ``size`` (an int or
    one per spatial axis) and ``scale_factor`` (a number or one per axis);
    ``mode`` 'nearest' or 'bilinear'; ``align_corners`` (bilinear only,
    default False) maps the corner pixels' centres onto each other;
    ``recompute_scale_factor=True`` samples with in/out instead of the given
    factor. N and C may be 0.
    """
    check_interpolate_args(size, scale_factor, mode, align_corners, recompute_scale_factor)
    x = _checks.as_float_array("x", x)
    _checks.ndim("x", x, (3, 4), "(N, C, H, W), or (N, C, L) for 'nearest'")
    if mode == "bilinear" and x.ndim != 4:
        raise ValueError(f"mode='bilinear' needs x of 4 dimensions (N, C, H, W), got shape {tuple(x.shape)} "
                         "(torch reads a 3-D input as (N, C, L), which only 'nearest' resizes here)")
    if 0 in x.shape[2:]:
        raise ValueError(f"x must have non-zero spatial sizes, got shape {tuple(x.shape)}")
    dims = x.ndim - 2
    out_sizes, scales = interpolate_sizes(x.shape[2:], size, scale_factor, recompute_scale_factor)
    taps = []
    for axis in reversed(range(2, x.ndim)):          # the width first, as torch sums
        s, o, scale = x.shape[axis], out_sizes[axis - 2], scales[axis - 2]
        if mode == "nearest":
            index = _nearest_index(s, o, scale, dims, x.dtype)
            if not np.array_equal(index, np.arange(s)):
                taps.append(AxisTaps(axis, s, (index,)))
        elif o != s:
            i0, l0, i1, l1 = _linear_taps(s, o, scale, bool(align_corners), x.dtype)
            taps.append(AxisTaps(axis, s, (i0, i1), (l0, l1)))
    y = x
    for tap in taps:
        if tap.weight is None:
            y = np.take(y, tap.index[0], axis=tap.axis)
        else:
            (i0, i1), (l0, l1) = tap.index, tap.weight
            a = np.take(y, i0, axis=tap.axis)
            a *= _along(l0, tap.axis, y.ndim)
            b = np.take(y, i1, axis=tap.axis)
            b *= _along(l1, tap.axis, y.ndim)
            a += b
            y = a
    if y is x:
        y = x.copy()
    return y, InterpolateCache(tuple(x.shape), x.dtype, tuple(taps))


def _sum_runs(a: np.ndarray, index: np.ndarray, size: int, axis: int) -> np.ndarray:
    """out[..., s, ...] = sum of a[..., o, ...] over the o with index[o] == s; index (O,) non-decreasing."""
    starts = np.flatnonzero(np.diff(index, prepend=-1))       # where each run of equal indices begins
    sums = np.add.reduceat(a, starts, axis=axis)
    targets = index[starts]
    if targets.size == size:                                   # every input position is read: targets = 0..size-1
        return sums
    shape = list(a.shape)
    shape[axis] = size
    out = np.zeros(shape, a.dtype)
    out[(slice(None),) * axis + (targets,)] = sums
    return out


def interpolate_backward(dy, cache: InterpolateCache) -> np.ndarray:
    """dx: the input's shape: each output's gradient goes back to the pixels it was read from, times their weights."""
    _checks.cache(cache, InterpolateCache, "interpolate_forward")
    shape = list(cache.x_shape)
    for tap in cache.taps:
        shape[tap.axis] = len(tap.index[0])
    g = grad_output(dy, tuple(shape), cache.dtype)
    for tap in reversed(cache.taps):
        if tap.weight is None:
            g = _sum_runs(g, tap.index[0], tap.size, tap.axis)
        else:
            (i0, i1), (l0, l1) = tap.index, tap.weight
            d = _sum_runs(g * _along(l0, tap.axis, g.ndim), i0, tap.size, tap.axis)
            d += _sum_runs(g * _along(l1, tap.axis, g.ndim), i1, tap.size, tap.axis)
            g = d
    return g.copy() if g is dy else g
