"""``scipy``: let SciPy's signal processing do the 2-D correlations (write-up 003).

Write-up 003's observation: ``scipy.signal`` convolves in the signal-processing
sense, ``(f * g)[t] = sum_p f[t - p] g[p]``, so a CNN's correlation is a
convolution with the *reversed* kernel:

    y = convolve(xp, w[::-1, ::-1], 'valid')

SciPy applies this to every (image, output channel, input channel) triple
at once: ``scipy.signal.fftconvolve`` broadcasts over every axis it does not
convolve, so x: (N, G, 1, Cg, Hp, Wp) against w: (1, G, Og, Cg, kh, kw)
gives all N*O*Cg plane correlations, and a sum over Cg finishes the layer.
Stride and dilation are not SciPy's business: the kernel is dilated by
embedding its taps ``d`` pixels apart, and the stride-1 result is
subsampled (``[::s]``).

The gradients follow the same pattern:

    dxp = convolve(z, w, 'full')            z: dy spread by the stride, summed over Og
    dw  = convolve(xp, z[::-1, ::-1], 'valid'), sampled at lags a*d, summed over N

Unlike ``fft`` (which sums channels between the transforms), every plane
pair gets its own inverse transform, and the broadcast intermediate has
N*O*Cg planes; the batch is chunked to keep it within the workspace budget.
SciPy is optional: ``pip install scipy`` (or ``pip install strided[scipy]``).
"""
from __future__ import annotations

import numpy as np

from .._optional import install_hint, require
from ..windows import pad, unpad
from .base import ConvAlgorithm, spread

FEATURE = "the 'scipy' convolution algorithm"
INSTALL_HINT = install_hint("scipy.signal", FEATURE, extra="scipy")


def _signal():
    return require("scipy.signal", FEATURE, extra="scipy")


# A float32 transform sums a whole plane: 64 values of 1e37 already overflow it, where a direct sum of
# a window's products (every other algorithm) does not. Operands whose planes could reach this bound
# are transformed in float64 and the result rounded back to float32.
_FLOAT32_TRANSFORM_BOUND = float(np.finfo(np.float32).max) / 1e6


def _convolve(a, b, mode):
    """Convolve the last two axes of a and b, broadcasting every other axis (scipy.signal.fftconvolve).

    float32 operands large enough for a plane's transform to overflow float32
    are convolved in float64; the result keeps the operands' dtype.
    """
    dtype = np.result_type(a, b)
    if dtype == np.float32 and a.size and b.size:
        bound = (float(np.abs(a).max()) * float(np.abs(b).max())
                 * a.shape[-2] * a.shape[-1] * b.shape[-2] * b.shape[-1])
        if not bound < _FLOAT32_TRANSFORM_BOUND:
            wide = _signal().fftconvolve(a.astype(np.float64), b.astype(np.float64), mode=mode, axes=(-2, -1))
            return wide.astype(np.float32)
    return _signal().fftconvolve(a, b, mode=mode, axes=(-2, -1))


def _dilated(w, dilation):
    """Kernel taps placed ``dilation`` pixels apart: (..., (kh-1)*dh+1, (kw-1)*dw+1)."""
    dh, dw = dilation
    if dh == dw == 1:
        return w
    kh, kw = w.shape[-2:]
    out = np.zeros((*w.shape[:-2], (kh - 1) * dh + 1, (kw - 1) * dw + 1), dtype=w.dtype)
    out[..., ::dh, ::dw] = w
    return out


def _as_inputs(a, groups):
    """(N, C, H, W) -> (N, G, 1, C/G, H, W): channels as the last broadcast axis, against (1, G, Og, Cg, ...)."""
    n, c, h, w = a.shape
    return a.reshape(n, groups, 1, c // groups, h, w)


def _as_outputs(a, groups):
    """(N, O, H, W) -> (N, G, O/G, 1, H, W): output channels in the Og slot of (., G, Og, Cg, ...)."""
    n, o, h, w = a.shape
    return a.reshape(n, groups, o // groups, 1, h, w)


class ScipyCorrelate(ConvAlgorithm):
    name = "scipy"

    def supports(self, geom, dtype):
        try:
            _signal()
        except ImportError:
            return INSTALL_HINT
        return None

    def workspace_per_image(self, geom, dtype):
        win = geom.window
        cg, o = geom.in_channels // geom.groups, geom.out_channels
        # the largest broadcast result: O*Cg planes of the padded image (dx needs the full size)
        return 2 * o * cg * (win.padded_height + win.kernel[0] * win.dilation[0]) * \
            (win.padded_width + win.kernel[1] * win.dilation[1]) * dtype.itemsize

    def _forward(self, x, w, geom):
        g, win = geom.groups, geom.window
        xp = _as_inputs(pad(x, geom.padding), g)                          # (N, G, 1, Cg, Hp, Wp)
        k = _dilated(w, win.dilation)[..., ::-1, ::-1]
        k = k.reshape(1, g, geom.out_channels // g, *k.shape[1:])               # (1, G, Og, Cg, kh', kw')
        planes = _convolve(xp, k, "valid")                                      # (N, G, Og, Cg, ., .)
        (sh, sw), oh, ow = win.stride, win.out_height, win.out_width
        y = planes.sum(axis=3)[..., :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]
        return np.ascontiguousarray(y).reshape(geom.y_shape), None

    def _grad_input(self, dy, w, geom, saved):
        g, win = geom.groups, geom.window
        z = _as_outputs(spread(dy, win.stride), g)                        # (N, G, Og, 1, zh, zw)
        k = _dilated(w, win.dilation)
        k = k.reshape(1, g, geom.out_channels // g, *k.shape[1:])               # (1, G, Og, Cg, kh', kw')
        full = _convolve(z, k, "full").sum(axis=2)                              # (N, G, Cg, ., .)
        full = full.reshape(geom.batch, geom.in_channels, *full.shape[-2:])
        # the full convolution covers the padded image up to its last used row/column
        dxp = np.zeros((geom.batch, geom.in_channels, win.padded_height, win.padded_width), dtype=dy.dtype)
        dxp[:, :, :full.shape[2], :full.shape[3]] = full
        return np.ascontiguousarray(unpad(dxp, geom.padding))

    def _grad_weight(self, dy, x, geom, saved):
        g, win = geom.groups, geom.window
        xp = _as_inputs(pad(x, geom.padding), g)                          # (N, G, 1, Cg, Hp, Wp)
        z = _as_outputs(spread(dy, win.stride), g)[..., ::-1, ::-1]       # (N, G, Og, 1, zh, zw)
        lags = _convolve(xp, z, "valid").sum(axis=0)                            # (G, Og, Cg, ., .)
        (kh, kw), (dh, dw) = win.kernel, win.dilation
        dw_ = lags[..., :(kh - 1) * dh + 1:dh, :(kw - 1) * dw + 1:dw]
        return np.ascontiguousarray(dw_).reshape(geom.weight_shape)
