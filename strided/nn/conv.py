"""``Conv2d``: torch's signature and initialisation over :func:`strided.functional.conv2d_forward`."""
from __future__ import annotations

import numpy as np

from .. import _checks, conv
from .. import functional as F
from .. import random as _random
from ..geometry import resolve_padding
from . import init
from ._batching import IMAGES
from .module import Module, Parameter

PADDING_MODES = F.PADDING_MODES


def _repr_tail(m) -> str:
    """The arguments Conv2d and ConvTranspose2d show alike when not at their defaults."""
    s = f", dilation={m.dilation}" if m.dilation != (1, 1) else ""
    s += f", groups={m.groups}" if m.groups != 1 else ""
    s += ", bias=False" if m.bias is None else ""
    return s + (f", algorithm={m.algorithm!r}" if m.algorithm != "auto" else "")


class Conv2d(Module):
    """2-D convolution (cross-correlation) over x: (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    An unbatched x: (in_channels, H, W) gives y: (out_channels, OH, OW), and an
    empty batch an empty output (and zero parameter gradients), as in torch.

    weight: (out_channels, in_channels/groups, kh, kw), bias: (out_channels,).
    ``padding``: int, pair, ``'same'`` or ``'valid'`` (any size, even larger than
    the kernel). ``padding_mode``: what the padding holds, as in torch:
    ``'zeros'``, or copies of the border pixels: ``'reflect'`` (mirrored
    without repeating the edge; padding smaller than the input),
    ``'replicate'`` (the edge pixel) or ``'circular'`` (wrapped around from
    the opposite side; padding at most the input's size). Those three pad
    explicitly and convolve without padding, as torch does
    (:func:`strided.functional.conv2d_forward`'s ``padding_mode``). ``algorithm``: ``'auto'``
    or a name from ``strided.conv.names()``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", dtype=None, algorithm="auto", rng=None):
        self.in_channels = _checks.positive_int("in_channels", in_channels)
        self.out_channels = _checks.positive_int("out_channels", out_channels)
        self.kernel_size = _checks.pair("kernel_size", kernel_size)
        self.stride = _checks.pair("stride", stride)
        self.dilation = _checks.pair("dilation", dilation)
        self.groups = _checks.positive_int("groups", groups)
        if in_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels}")
        if out_channels % groups:
            raise ValueError(f"groups={groups} must divide out_channels={out_channels}")
        self.padding_mode = _checks.choice("padding_mode", padding_mode, PADDING_MODES)
        self.padding = padding if isinstance(padding, str) else _checks.pair("padding", padding, allow_zero=True)
        self._pad4 = resolve_padding(padding, self.kernel_size, self.dilation, self.stride)
        self.algorithm = algorithm
        dt = _checks.dtype_of("dtype", np.float32 if dtype is None else dtype)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        wshape = (out_channels, in_channels // groups, *self.kernel_size)
        rng = _random.resolve(rng)  # one generator for weight and bias, even from an int seed
        self.weight = Parameter(init.uniform_fan_in(wshape, fan_in, dt, rng))
        self.bias = Parameter(init.uniform_fan_in((out_channels,), fan_in, dt, rng)) if bias else None
        self._cache = None

    @property
    def algorithm(self) -> str:
        """``'auto'`` or a name from ``strided.conv.names()``; assigning it also updates :meth:`get_config`.

        So a model whose algorithm is set after construction (``strided train
        --algorithm``) is saved with that algorithm.
        """
        return self._algorithm

    @algorithm.setter
    def algorithm(self, name) -> None:
        object.__setattr__(self, "_algorithm", _checks.choice("algorithm", name, conv.names()))
        if self._config is not None:
            self._config["algorithm"] = name

    @IMAGES.forward
    def forward(self, x):
        x = _checks.as_float_array("x", x, dtype=self.weight.dtype)
        if x.ndim == 4 and x.shape[1] != self.in_channels:     # what only the layer knows; the rest is checked there
            raise ValueError(
                f"Conv2d expects {self.in_channels} input channels, got x of shape {tuple(x.shape)} "
                f"({x.shape[1]} channels)"
            )
        bias = None if self.bias is None else self.bias.data
        y, self._cache = F.conv2d_forward(x, self.weight.data, bias, self.stride, self._pad4, self.dilation,
                                          self.groups, self.algorithm, self.padding_mode)
        return y

    @IMAGES.backward
    def backward(self, dy, need_input_grad=True):
        grads = F.conv2d_backward(dy, self._need_cache(self._cache), need_x=need_input_grad,
                                  need_weight=self._needs_grad("weight"), need_bias=self._needs_grad("bias"))
        return self._accumulate(grads)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding!r}"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s + _repr_tail(self)


class ConvTranspose2d(Module):
    """2-D transposed convolution over x: (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    OH = (H-1)*stride[0] - 2*padding[0] + dilation[0]*(kh-1) + output_padding[0] + 1
    (likewise OW): the input gradient of the Conv2d that maps (OH, OW) to (H, W),
    run forward (:func:`strided.functional.conv_transpose2d_forward`), so it
    runs on every algorithm of ``strided.conv``. An unbatched x: (in_channels, H, W)
    gives y: (out_channels, OH, OW), as in torch.

    weight: (in_channels, out_channels/groups, kh, kw), bias: (out_channels,),
    both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with torch's fan_in =
    out_channels/groups*kh*kw (the weight's second dimension times the kernel).
    ``output_padding``: rows and columns added at the bottom and right, each
    smaller than the stride or the dilation. ``padding_mode``: only ``'zeros'``,
    as in torch. ``algorithm``: ``'auto'`` or a name from ``strided.conv.names()``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", dtype=None, algorithm="auto", rng=None):
        self.in_channels = _checks.positive_int("in_channels", in_channels)
        self.out_channels = _checks.positive_int("out_channels", out_channels)
        self.kernel_size = _checks.pair("kernel_size", kernel_size)
        self.stride = _checks.pair("stride", stride)
        self.padding = _checks.pair("padding", padding, allow_zero=True)
        self.dilation = _checks.pair("dilation", dilation)
        self.output_padding = F.check_output_padding(output_padding, self.stride, self.dilation)
        self.groups = _checks.positive_int("groups", groups)
        if in_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels}")
        if out_channels % groups:
            raise ValueError(f"groups={groups} must divide out_channels={out_channels}")
        self.padding_mode = _checks.choice("padding_mode", padding_mode, ("zeros",))
        self.algorithm = _checks.choice("algorithm", algorithm, conv.names())
        dt = _checks.dtype_of("dtype", np.float32 if dtype is None else dtype)
        fan_in = out_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        wshape = (in_channels, out_channels // groups, *self.kernel_size)
        rng = _random.resolve(rng)
        self.weight = Parameter(init.uniform_fan_in(wshape, fan_in, dt, rng))
        self.bias = Parameter(init.uniform_fan_in((out_channels,), fan_in, dt, rng)) if bias else None
        self._cache = None

    @IMAGES.forward
    def forward(self, x):
        x = _checks.as_float_array("x", x, dtype=self.weight.dtype)
        if x.ndim == 4 and x.shape[1] != self.in_channels:
            raise ValueError(
                f"ConvTranspose2d expects {self.in_channels} input channels, got x of shape {tuple(x.shape)} "
                f"({x.shape[1]} channels)"
            )
        bias = None if self.bias is None else self.bias.data
        y, self._cache = F.conv_transpose2d_forward(x, self.weight.data, bias, self.stride, self.padding,
                                                    self.output_padding, self.groups, self.dilation, self.algorithm)
        return y

    @IMAGES.backward
    def backward(self, dy, need_input_grad=True):
        grads = F.conv_transpose2d_backward(dy, self._need_cache(self._cache), need_x=need_input_grad,
                                            need_weight=self._needs_grad("weight"),
                                            need_bias=self._needs_grad("bias"))
        return self._accumulate(grads)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        return s + _repr_tail(self)
