"""``Upsample`` (torch's arguments, modes 'nearest' and 'bilinear') and its two fixed-mode forms."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class Upsample(Module):
    """Resize x: (N, C, H, W) -> (N, C, OH, OW) by nearest or bilinear interpolation, as torch's ``nn.Upsample``.

    Args:
        size: the output size, an int or ``(OH, OW)``. Give this or ``scale_factor``.
        scale_factor: the multiplier of the size, a number or one per axis:
            OH = floor(H * scale_factor). The sampling positions use the factor
            itself unless ``recompute_scale_factor=True`` (then H/OH).
        mode: ``'nearest'`` (default) or ``'bilinear'``.
        align_corners: bilinear only (None means False): whether the corner
            pixels' centres of input and output coincide. Must stay None with 'nearest'.
        recompute_scale_factor: sample with the sizes' ratio rather than the
            given scale_factor (not meaningful with ``size``).

    Shape:
        - Input: (N, C, H, W), or (N, C, L) with mode 'nearest' (as torch, a 3-D input
          is resized along its last axis only)
        - Output: (N, C, OH, OW) or (N, C, OL)

    Examples::

        >>> m = nn.Upsample(scale_factor=2, mode="bilinear")
        >>> m(np.random.randn(1, 3, 4, 4)).shape
        (1, 3, 8, 8)
        >>> nn.Upsample(size=(5, 7))(np.random.randn(2, 3, 4, 4)).shape
        (2, 3, 5, 7)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        F.check_interpolate_args(size, scale_factor, mode, align_corners, recompute_scale_factor)
        self.name = type(self).__name__
        self.size = size
        # torch keeps the factor as a float (or a tuple of floats)
        self.scale_factor = (None if scale_factor is None else tuple(float(f) for f in scale_factor)
                             if isinstance(scale_factor, (tuple, list)) else float(scale_factor))
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        self._cache = None

    def forward(self, x):
        y, self._cache = F.interpolate_forward(x, self.size, self.scale_factor, self.mode, self.align_corners,
                                               self.recompute_scale_factor)
        return y

    def backward(self, dy, need_input_grad=True):
        return F.interpolate_backward(dy, self._need_cache(self._cache))

    def extra_repr(self):
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample(size, scale_factor, mode='nearest')``, torch's ``nn.UpsamplingNearest2d``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(size, scale_factor, mode='bilinear', align_corners=True)``, torch's ``nn.UpsamplingBilinear2d``."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
