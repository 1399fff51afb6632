"""``MaxPool2d`` and ``AvgPool2d`` with torch's arguments (overlapping, padded, ceil mode), and adaptive pooling.

All take x: (N, C, H, W) or an unbatched (C, H, W), and an empty batch, as torch does.
"""
from __future__ import annotations

import numpy as np

from .. import _checks
from .. import functional as F
from ._batching import IMAGES
from .module import Module


class _Pool2d(Module):
    def _common(self, kernel_size, stride, padding, dilation, ceil_mode):
        self.kernel_size = _checks.pair("kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _checks.pair("stride", stride)
        self.padding = _checks.pair("padding", padding, allow_zero=True)
        self.dilation = _checks.pair("dilation", dilation)
        for a in (0, 1):
            if self.padding[a] > self.kernel_size[a] // 2:
                raise ValueError(
                    f"padding must be at most half of kernel_size, got padding={padding} for kernel_size={kernel_size}"
                )
        self.ceil_mode = bool(ceil_mode)
        self._cache = None

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "return_indices", False):
            s += ", return_indices=True"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        if not getattr(self, "count_include_pad", True):
            s += ", count_include_pad=False"
        if getattr(self, "divisor_override", None) is not None:
            s += f", divisor_override={self.divisor_override}"
        return s


class MaxPool2d(_Pool2d):
    """Max over each window of x: (N, C, H, W) -> (N, C, OH, OW) (write-up 002's max pooling).

    Args (torch's, in torch's order): ``kernel_size``, ``stride`` (default:
    ``kernel_size``), ``padding``, ``dilation``, ``return_indices``, ``ceil_mode``.

    With ``return_indices=True`` the forward returns ``(y, indices)``:
    indices (int64, y's shape) is where each maximum was taken, as the flat
    position ``row * W + col`` in its input plane, exactly torch's; the
    backward still takes the gradient of y alone.

    Shape: (N, C, H, W) -> (N, C, OH, OW), or (C, H, W) -> (C, OH, OW).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        if not isinstance(return_indices, (bool, np.bool_)):
            raise TypeError(f"return_indices must be True or False, got {return_indices!r}")
        self._common(kernel_size, stride, padding, dilation, ceil_mode)
        self.return_indices = bool(return_indices)

    @IMAGES.forward
    def forward(self, x):
        y, self._cache = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                              self.ceil_mode)
        if self.return_indices:
            return y, F.max_pool2d_indices(self._cache)
        return y

    @IMAGES.backward
    def backward(self, dy, need_input_grad=True):
        return F.max_pool2d_backward(dy, self._need_cache(self._cache))


class AvgPool2d(_Pool2d):
    """Mean over each window of x: (N, C, H, W) -> (N, C, OH, OW) (write-up 001's average pooling).

    Args (torch's, in torch's order): ``kernel_size``, ``stride`` (default:
    ``kernel_size``), ``padding``, ``ceil_mode``, ``count_include_pad``
    (whether the zero padding counts in a window's divisor),
    ``divisor_override`` (a positive int that divides every window's sum instead).

    Shape: (N, C, H, W) -> (N, C, OH, OW), or (C, H, W) -> (C, OH, OW).
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        self._common(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    @IMAGES.forward
    def forward(self, x):
        y, self._cache = F.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                              self.count_include_pad, self.divisor_override)
        return y

    @IMAGES.backward
    def backward(self, dy, need_input_grad=True):
        return F.avg_pool2d_backward(dy, self._need_cache(self._cache))


class AdaptiveAvgPool2d(Module):
    """Mean over adaptive bins: x: (N, C, H, W) -> (N, C, OH, OW), whatever H and W (torch's bins).

    Args:
        output_size: ``OH`` for a square output or ``(OH, OW)``; None in the
            pair keeps that input size (``(None, 7)``). ``1`` is global average
            pooling, as at the end of a residual network.

    Shape:
        - Input: (N, C, H, W) or (C, H, W)
        - Output: (N, C, OH, OW) or (C, OH, OW); row bin i covers input rows
          ``[floor(i*H/OH), ceil((i+1)*H/OH))``, columns likewise

    Examples::

        >>> m = nn.AdaptiveAvgPool2d((5, 7))
        >>> m(np.random.randn(1, 64, 8, 9)).shape
        (1, 64, 5, 7)
        >>> nn.AdaptiveAvgPool2d(1)(np.random.randn(2, 512, 7, 7)).shape
        (2, 512, 1, 1)
    """

    def __init__(self, output_size):
        _checks.optional_pair("output_size", output_size)
        self.output_size = output_size
        self._cache = None

    @IMAGES.forward
    def forward(self, x):
        y, self._cache = F.adaptive_avg_pool2d_forward(x, self.output_size)
        return y

    @IMAGES.backward
    def backward(self, dy, need_input_grad=True):
        return F.adaptive_avg_pool2d_backward(dy, self._need_cache(self._cache))

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max over adaptive bins: x: (N, C, H, W) -> (N, C, OH, OW), whatever H and W (torch's bins).

    Args:
        output_size: ``OH`` for a square output or ``(OH, OW)``; None in the
            pair keeps that input size.
        return_indices: also return the position ``h*W + w`` of each maximum
            in its plane (int64, the output's shape), as torch does. Default: False

    Shape:
        - Input: (N, C, H, W) or (C, H, W)
        - Output: (N, C, OH, OW) or (C, OH, OW); ``(output, indices)`` with
          ``return_indices=True``. Ties go to the first pixel, NaN wins.

    Examples::

        >>> m = nn.AdaptiveMaxPool2d((None, 3), return_indices=True)
        >>> y, idx = m(np.random.randn(1, 4, 6, 10))
        >>> y.shape, idx.dtype
        ((1, 4, 6, 3), dtype('int64'))
    """

    def __init__(self, output_size, return_indices=False):
        _checks.optional_pair("output_size", output_size)
        if not isinstance(return_indices, (bool, np.bool_)):
            raise TypeError(f"return_indices must be True or False, got {return_indices!r}")
        self.output_size = output_size
        self.return_indices = bool(return_indices)
        self._cache = None

    @IMAGES.forward
    def forward(self, x):
        y, self._cache = F.adaptive_max_pool2d_forward(x, self.output_size)
        return (y, self._cache.indices) if self.return_indices else y

    @IMAGES.backward
    def backward(self, dy, need_input_grad=True):
        return F.adaptive_max_pool2d_backward(dy, self._need_cache(self._cache))

    def extra_repr(self):
        return f"output_size={self.output_size}"
