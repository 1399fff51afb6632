"""``fft``: convolution by the convolution theorem, channels summed in the frequency domain.

None of the write-ups does this (ARCHITECTURE.md lists them). A correlation of an image with a kernel is a
pointwise product of their Fourier transforms (one of them conjugated):

    y[t] = sum_p xp[p + t] k[p]      <=>      Y(f) = X(f) * conj(K(f))

computed with FFTs of size at least the padded image (Hp, Wp) -- large
enough that the circular correlation never wraps around for the lags we
keep. The sum over input channels is linear, so it happens *between* the
transforms, as one small complex matrix product per frequency:

    Y[f, n, o] = sum_c X[f, n, c] conj(K[f, o, c])      (F, G, N, Cg) @ (F, G, Cg, Og)

and only N*C forward and N*O inverse transforms are needed. The cost no
longer grows with the kernel area, which is why FFT wins for large kernels
(11x11 and up) and loses for 3x3. Dilation embeds the kernel taps ``d``
pixels apart; stride keeps every ``s``-th lag (all lags are computed, so
stride > 1 wastes work but stays exact).

Gradients are the same trick:

    dxp = irfft(sum_o Z * K)          z: dy spread by the stride (a full convolution)
    dw  = irfft(sum_n conj(Z) * X)    sampled at lags a*d

The sums over batch and channels are matrix products over frequencies, so
nothing loops over images or channels.
"""
from __future__ import annotations

import numpy as np

from .. import _parallel
from ..windows import pad, unpad
from .base import ConvAlgorithm, spread


def fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n (2^a 3^b 5^c): FFT sizes pocketfft handles fastest."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


def _size(geom):
    return fast_len(geom.window.padded_height), fast_len(geom.window.padded_width)


def per_frequency(a, b):
    """a @ b for every frequency: (F, G, M, K) @ (F, G, K, P) -> (F, G, M, P).

    Many small independent products: they are cut into a fixed number of
    blocks of frequencies spread over strided's threads, each with BLAS on
    one thread, instead of asking a multi-threaded BLAS to split every tiny
    product (each block writes its own rows, so results do not depend on the
    number of threads).
    """
    out = np.empty((*a.shape[:3], b.shape[3]), dtype=np.result_type(a, b))
    blocks = _parallel.split(a.shape[0], -(-a.shape[0] // 8))

    def block(i):
        np.matmul(a[blocks[i]], b[blocks[i]], out=out[blocks[i]])

    _parallel.map_chunks(block, len(blocks), blas=True)
    return out


# A float32 transform sums whole planes (and the products sum channels): values near 1e37 overflow it where
# a direct window sum does not. An operand that could reach this bound is transformed divided by a power
# of two (exact: the same relative rounding) and the result multiplied back.
_FLOAT32_TRANSFORM_BOUND = float(np.finfo(np.float32).max) / 1e6


def _scale(a, size, channels: int) -> float:
    """1.0, or the power of two a float32 operand is divided by before its transform so that it cannot overflow."""
    if a.dtype != np.float32 or not a.size:
        return 1.0
    peak = float(np.abs(a).max())
    if peak * size[0] * size[1] * channels < _FLOAT32_TRANSFORM_BOUND or not np.isfinite(peak):
        return 1.0
    return float(2.0 ** min(127, np.ceil(np.log2(peak))))     # 2^127: the largest power of two float32 holds


def _spectrum(a, size, groups, scale):
    """(F, G, N, C/G) spectrum of a / scale (a power of two, so the division is exact)."""
    if scale != 1.0:
        a = a * a.dtype.type(1.0 / scale)
    return _by_frequency(np.fft.rfft2(a, s=size), groups)


def _by_frequency(spec, groups):
    """(N, C, fh, fw') spectrum -> (F, G, N, C/G) contiguous, the operand of the per-frequency matmul."""
    n, c = spec.shape[:2]
    return np.ascontiguousarray(spec.reshape(n, groups, c // groups, -1).transpose(3, 1, 0, 2))


def _to_images(prod, shape):
    """(F, G, A, B) per-frequency product -> (A, G*B, fh, fw') spectrum."""
    _, g, a, b = prod.shape
    return np.ascontiguousarray(prod.transpose(2, 1, 3, 0)).reshape(a, g * b, *shape)


def _kernel_spectrum(w, geom, size):
    """K: (F, G, Cg, Og), the transform of the (dilated) kernel embedded in a size-``size`` image."""
    (kh, kw), (dh, dw) = geom.kernel, geom.dilation
    o, cg = w.shape[:2]
    k = np.zeros((o, cg, (kh - 1) * dh + 1, (kw - 1) * dw + 1), dtype=w.dtype)
    k[:, :, ::dh, ::dw] = w
    spec = np.fft.rfft2(k, s=size)                                   # (O, Cg, fh, fw')
    # the groups split the output channels, so regroup with O in the channel slot
    return _by_frequency(spec.transpose(1, 0, 2, 3), geom.groups)


class Spectra:
    """What the forward keeps for the gradients: the input's and the kernel's spectra.

    Both gradients also need the spectrum of the same dy. The first to run
    leaves it here (with the dy it came from) and the second takes it, so dy
    is transformed once per backward pass; it is dropped once both have used it.
    """

    __slots__ = ("dy", "ks", "users", "x_scale", "xs", "z_scale", "zs")

    def __init__(self, xs, ks, x_scale=1.0):
        self.xs, self.ks, self.x_scale = xs, ks, x_scale
        self.dy = self.zs = None
        self.z_scale = 1.0
        self.users = set()


def _dy_spectrum(dy, geom, size, saved, user):
    """``(Z, scale)``: Z (F, G, N, Og), the spectrum of dy spread by the stride and divided by ``scale`` (see
    :func:`_scale`); shared through ``saved`` when possible."""
    if saved is not None and saved.dy is dy and user not in saved.users:
        zs, scale = saved.zs, saved.z_scale
        saved.dy = saved.zs = None
        return zs, scale
    scale = _scale(dy, size, geom.out_channels)
    zs = _spectrum(spread(dy, geom.stride), size, geom.groups, scale)
    if saved is not None:
        saved.dy, saved.zs, saved.z_scale, saved.users = dy, zs, scale, {user}
    return zs, scale


class FFT(ConvAlgorithm):
    name = "fft"

    def workspace_per_image(self, geom, dtype):
        fh, fw = _size(geom)
        complex_bytes = 2 * dtype.itemsize
        # input and output spectra, each once as transformed and once regrouped by frequency
        return 2 * (geom.in_channels + geom.out_channels) * fh * (fw // 2 + 1) * complex_bytes

    def _forward(self, x, w, geom):
        size, win = _size(geom), geom.window
        scale = _scale(x, size, geom.in_channels)
        xs = _spectrum(pad(x, geom.padding), size, geom.groups, scale)                  # (F, G, N, Cg)
        ks = _kernel_spectrum(w, geom, size)                                            # (F, G, Cg, Og)
        ys = _to_images(per_frequency(xs, ks.conj()), (size[0], size[1] // 2 + 1))      # (N, O, fh, fw')
        lags = np.fft.irfft2(ys, s=size)
        (sh, sw), oh, ow = win.stride, win.out_height, win.out_width
        y = np.ascontiguousarray(lags[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw])
        if scale != 1.0:
            y *= y.dtype.type(scale)
        return y, Spectra(xs, ks, scale)

    def _grad_input(self, dy, w, geom, saved):
        size, win = _size(geom), geom.window
        ks = _kernel_spectrum(w, geom, size) if saved is None else saved.ks
        zs, z_scale = _dy_spectrum(dy, geom, size, saved, "input")                      # (F, G, N, Og)
        dxs = _to_images(per_frequency(zs, ks.transpose(0, 1, 3, 2)), (size[0], size[1] // 2 + 1))
        dxp = np.fft.irfft2(dxs, s=size)[:, :, :win.padded_height, :win.padded_width]
        dx = np.ascontiguousarray(unpad(dxp, geom.padding))
        if z_scale != 1.0:
            dx *= dx.dtype.type(z_scale)
        return dx

    def _grad_weight(self, dy, x, geom, saved):
        size, win = _size(geom), geom.window
        if saved is None:
            x_scale = _scale(x, size, geom.in_channels)
            xs = _spectrum(pad(x, geom.padding), size, geom.groups, x_scale)
        else:
            xs, x_scale = saved.xs, saved.x_scale
        zs, z_scale = _dy_spectrum(dy, geom, size, saved, "weight")                     # (F, G, N, Og)
        prod = per_frequency(zs.conj().transpose(0, 1, 3, 2), xs)                      # (F, G, Og, Cg)
        dws = np.ascontiguousarray(prod.transpose(1, 2, 3, 0)).reshape(*geom.weight_shape[:2], size[0], -1)
        lags = np.fft.irfft2(dws, s=size)                                               # (O, Cg, fh, fw)
        (kh, kw), (dh, dw) = win.kernel, win.dilation
        dw_ = np.ascontiguousarray(lags[:, :, :(kh - 1) * dh + 1:dh, :(kw - 1) * dw + 1:dw])
        for scale in (x_scale, z_scale):
            if scale != 1.0:
                dw_ *= dw_.dtype.type(scale)
        return dw_
