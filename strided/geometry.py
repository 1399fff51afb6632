"""Sliding-window geometry: output sizes, padding rules and shape validation.

One place computes how a ``kh x kw`` window with stride, padding and dilation
walks over an ``H x W`` image, for convolution and pooling alike, with
PyTorch's formulas:

    out = floor((H + pad_top + pad_bottom - dilation * (k - 1) - 1) / stride) + 1

Pooling with ``ceil_mode=True`` rounds up instead, but drops a last window
that would start entirely in the bottom/right padding (torch's rule). The
extra rows/columns that ceil mode reads are recorded as additional
bottom/right padding, so the window code never needs to know about it.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import _checks

Pair = tuple[int, int]
Pad4 = tuple[int, int, int, int]  # (top, bottom, left, right)


def resolve_padding(padding, kernel: Pair, dilation: Pair, stride: Pair, name: str = "padding") -> Pad4:
    """Turn a user's ``padding`` (int, pair, ``'same'`` or ``'valid'``) into ``(top, bottom, left, right)``.

    ``'same'`` follows torch: the total padding ``dilation * (k - 1)`` is split
    with the smaller half first, so even kernels pad one more at the bottom/right.
    """
    if isinstance(padding, str):
        _checks.choice(name, padding, ("same", "valid"))
        if padding == "valid":
            return (0, 0, 0, 0)
        if stride != (1, 1):
            raise ValueError(f"{name}='same' requires stride 1 (as in torch), got stride={stride}")
        total_h, total_w = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)
    ph, pw = _checks.pair(name, padding, allow_zero=True)
    return (ph, ph, pw, pw)


def padding4(padding, name: str = "padding") -> Pad4:
    """An int, a pair (rows, columns) or an explicit (top, bottom, left, right), as four non-negative ints."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        if not all(isinstance(p, numbers.Integral) and not isinstance(p, (bool, np.bool_)) for p in padding):
            raise TypeError(f"{name} must be an int, a pair or (top, bottom, left, right) of ints, got {padding!r}")
        if min(padding) < 0:
            raise ValueError(f"{name} must be non-negative, got {padding!r}")
        return tuple(int(p) for p in padding)
    ph, pw = _checks.pair(name, padding, allow_zero=True)
    return (ph, ph, pw, pw)


def _out_size(size: int, pad: int, kernel: int, stride: int, dilation: int) -> int:
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Window:
    """How a window walks over one image: everything but the channels.

    ``padding`` is ``(top, bottom, left, right)`` and already includes any
    extra bottom/right rows that pooling's ceil mode reads.
    """

    height: int
    width: int
    kernel: Pair
    stride: Pair
    padding: Pad4
    dilation: Pair
    out_height: int
    out_width: int

    @property
    def padded_height(self) -> int:
        return self.height + self.padding[0] + self.padding[1]

    @property
    def padded_width(self) -> int:
        return self.width + self.padding[2] + self.padding[3]

    @property
    def overlapping(self) -> bool:
        """True when windows share input pixels (then backward must add, not assign)."""
        return any(self.dilation[a] * (self.kernel[a] - 1) + 1 > self.stride[a] for a in (0, 1))


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one 2-D convolution, validated.

    x: (N, C_in, H, W), weight: (C_out, C_in / groups, kh, kw), y: (N, C_out, OH, OW).
    Hashable, so it serves as a cache key (with the dtype) for autotuning.
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    window: Window

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        w = self.window
        return (self.batch, self.in_channels, w.height, w.width)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.out_channels, self.in_channels // self.groups, *self.window.kernel)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        w = self.window
        return (self.batch, self.out_channels, w.out_height, w.out_width)

    @property
    def kernel(self) -> Pair:
        return self.window.kernel

    @property
    def stride(self) -> Pair:
        return self.window.stride

    @property
    def padding(self) -> Pad4:
        return self.window.padding

    @property
    def dilation(self) -> Pair:
        return self.window.dilation

    @classmethod
    def create(cls, x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1) -> "ConvGeometry":
        """Validate a convolution's arguments and compute its output size.

        ``padding`` may be an int, a pair, ``'same'``, ``'valid'`` or an explicit
        ``(top, bottom, left, right)`` 4-tuple.
        """
        x_shape, weight_shape = tuple(x_shape), tuple(weight_shape)
        if len(x_shape) != 4:
            raise ValueError(f"x must have 4 dimensions (N, C, H, W), got shape {x_shape}")
        if len(weight_shape) != 4:
            raise ValueError(
                f"weight must have 4 dimensions (out_channels, in_channels/groups, kh, kw), got shape {weight_shape}"
            )
        stride = _checks.pair("stride", stride)
        dilation = _checks.pair("dilation", dilation)
        groups = _checks.positive_int("groups", groups)
        n, c, h, w = x_shape
        o, cg, kh, kw = weight_shape
        if min(weight_shape) < 1:
            raise ValueError(f"weight must have no empty dimension, got shape {weight_shape}")
        if n < 1 or c < 1:
            raise ValueError(f"x must have a non-empty batch and channels, got shape {x_shape}")
        if o % groups:
            raise ValueError(f"groups={groups} must divide out_channels={o} (weight shape {weight_shape})")
        if c != cg * groups:
            raise ValueError(
                f"x has {c} channels (shape {x_shape}) but weight {weight_shape} with groups={groups} "
                f"expects {cg * groups}"
            )
        if isinstance(padding, tuple) and len(padding) == 4:
            pad = padding4(padding)
        else:
            pad = resolve_padding(padding, (kh, kw), dilation, stride)
        oh = _out_size(h, pad[0] + pad[1], kh, stride[0], dilation[0])
        ow = _out_size(w, pad[2] + pad[3], kw, stride[1], dilation[1])
        if oh < 1 or ow < 1:
            raise ValueError(
                f"kernel {(kh, kw)} with dilation {dilation} spans "
                f"{(dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)}, larger than the padded input "
                f"{(h + pad[0] + pad[1], w + pad[2] + pad[3])} (x shape {x_shape}, padding {pad})"
            )
        window = Window(h, w, (kh, kw), stride, pad, dilation, oh, ow)
        return cls(n, c, o, groups, window)


def pool_window(x_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Window:
    """Validate a pooling's arguments (torch's rules) and compute its window geometry.

    x: (N, C, H, W). ``stride`` defaults to ``kernel_size``. Padding must be at
    most half the kernel, as torch requires.
    """
    x_shape = tuple(x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"x must have 4 dimensions (N, C, H, W), got shape {x_shape}")
    kernel = _checks.pair("kernel_size", kernel_size)
    stride = kernel if stride is None else _checks.pair("stride", stride)
    pad = _checks.pair("padding", padding, allow_zero=True)
    dilation = _checks.pair("dilation", dilation)
    for a in (0, 1):
        if pad[a] > kernel[a] // 2:
            raise ValueError(
                f"padding must be at most half of kernel_size, got padding={padding} for kernel_size={kernel_size}"
            )
    h, w = x_shape[2:]
    out = []
    for size, k, s, p, d in zip((h, w), kernel, stride, pad, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= size + p:
            o -= 1  # a window may not start in the bottom/right padding
        out.append(o)
    if out[0] < 1 or out[1] < 1:
        raise ValueError(
            f"input {x_shape} is too small for kernel_size={kernel} with padding={pad}, dilation={dilation}: "
            f"output would be {tuple(out)}"
        )
    # rows/columns beyond the symmetric padding that the last (ceil-mode) window reads
    extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - (size + 2 * p)) for o, s, d, k, size, p in
             zip(out, stride, dilation, kernel, (h, w), pad)]
    padding4 = (pad[0], pad[0] + extra[0], pad[1], pad[1] + extra[1])
    return Window(h, w, kernel, stride, padding4, dilation, out[0], out[1])


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The bins of adaptive pooling along one axis, torch's formulas: ``(starts, ends)``, each (out,).

    Bin i covers ``[floor(i*size/out), ceil((i+1)*size/out))``: never empty, and
    neighbouring bins overlap by a pixel when ``out`` does not divide ``size``.
    """
    i = np.arange(out, dtype=np.int64)
    return (i * size) // out, -((-(i + 1) * size) // out)


def adaptive_window(size: int, out: int) -> tuple[int, int] | None:
    """``(kernel, stride)`` when the adaptive bins along one axis are ordinary pooling windows, else None.

    The bins are windows when they all have the same length and start at a
    constant step: always when ``out`` divides ``size`` (kernel = stride =
    size/out), sometimes otherwise (5 -> 3 is not, 3 -> 2 is kernel 2, stride 1).
    """
    starts, ends = adaptive_bins(size, out)
    lengths, steps = ends - starts, np.diff(starts)
    if out < 1 or np.any(lengths != lengths[0]) or (out > 1 and (steps[0] < 1 or np.any(steps != steps[0]))):
        return None   # (bins repeating one pixel, as 1 -> 3, have step 0: no pooling window)
    kernel = int(lengths[0])
    return kernel, int(steps[0]) if out > 1 else kernel
