"""``MaxPool2d`` and ``AvgPool2d`` with torch's arguments (overlapping, padded, ceil mode)."""
from __future__ import annotations

from .. import _checks
from .. import functional as F
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
        if self.ceil_mode:
            s += ", ceil_mode=True"
        if not getattr(self, "count_include_pad", True):
            s += ", count_include_pad=False"
        if getattr(self, "divisor_override", None) is not None:
            s += f", divisor_override={self.divisor_override}"
        return s


class MaxPool2d(_Pool2d):
    """Max over each window of x: (N, C, H, W) -> (N, C, OH, OW) (write-up 002's max pooling)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        self._common(kernel_size, stride, padding, dilation, ceil_mode)

    def forward(self, x):
        y, self._cache = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                              self.ceil_mode)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.max_pool2d_backward(dy, self._need_cache(self._cache))


class AvgPool2d(_Pool2d):
    """Mean over each window of x: (N, C, H, W) -> (N, C, OH, OW) (write-up 001's average pooling)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        self._common(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x):
        y, self._cache = F.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                              self.count_include_pad, self.divisor_override)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.avg_pool2d_backward(dy, self._need_cache(self._cache))
