"""The one interface every convolution algorithm implements.

An algorithm computes the three products of a 2-D convolution over a
validated :class:`~strided.geometry.ConvGeometry` (bias is added outside):

    forward:      y[n, o, i, j] = sum_{c, a, b} xp[n, g*Cg + c, i*sh + a*dh, j*sw + b*dw] * w[o, c, a, b]
    grad_input:   dx = dL/dx      given dy = dL/dy
    grad_weight:  dw = dL/dw      given dy and x

with ``g = o // (C_out / groups)`` and ``xp`` the zero-padded input.
``forward`` may return something to reuse in the gradients (the window
matrix, say); the gradients receive it back as ``saved`` (or ``None`` when
the caller did not keep it, or when the batch was processed in chunks).

This module also holds what several algorithms share: operand checks, the
workspace budget with batch chunking, and seed 000's rewriting of the input
gradient as an ordinary stride-1 convolution.
"""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from .. import _checks
from ..geometry import ConvGeometry

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20
_workspace_limit = DEFAULT_WORKSPACE_LIMIT


def set_workspace_limit(nbytes: int) -> None:
    """Bound the scratch memory (in bytes) an algorithm may use for one batch.

    When an algorithm's workspace for the whole batch (the window matrix, the
    spectra, the transformed tiles ...) would exceed it, the batch is
    processed in chunks of images instead. Default: 256 MiB.
    """
    global _workspace_limit
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, numbers.Integral):
        raise TypeError(f"workspace limit must be a positive int (bytes), got {nbytes!r}")
    if nbytes < 1:
        raise ValueError(f"workspace limit must be a positive number of bytes, got {nbytes!r}")
    _workspace_limit = int(nbytes)


def get_workspace_limit() -> int:
    """The current workspace budget in bytes (see :func:`set_workspace_limit`)."""
    return _workspace_limit


def batch_chunks(batch: int, bytes_per_image: int) -> list[slice]:
    """Split ``range(batch)`` into slices whose workspace fits the budget (at least one image each)."""
    per = max(1, _workspace_limit // max(1, int(bytes_per_image)))
    return [slice(i, min(i + per, batch)) for i in range(0, batch, per)]


def check_operands(geom: ConvGeometry, **arrays) -> np.dtype:
    """Check that x/w/dy have the shapes ``geom`` describes and one float dtype; return it.

    Keyword names are the argument names used in messages: ``x``, ``w``, ``dy``.
    """
    if not isinstance(geom, ConvGeometry):
        raise TypeError(f"geom must be a ConvGeometry (see ConvGeometry.create), got {type(geom).__name__}")
    expected = {"x": geom.x_shape, "w": geom.weight_shape, "dy": geom.y_shape}
    dtype = None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
        if a.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
        if a.shape != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]} for this geometry, got {a.shape}")
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            first = next(iter(arrays))
            raise TypeError(f"{name} has dtype {a.dtype} but {first} has {dtype}; convert one of them first")
    return dtype


class ConvAlgorithm:
    """Base class: subclasses set ``name``/``seed`` and implement ``_forward``/``_grad_input``/``_grad_weight``.

    Shapes: x: (N, C_in, H, W), w: (C_out, C_in/groups, kh, kw), y and dy: (N, C_out, OH, OW).

    The public methods check the operands, then either run the whole batch
    at once or, when :meth:`workspace_per_image` times the batch exceeds the
    workspace budget, run it in chunks of images (and then keep no ``saved``).
    The private methods see a geometry whose ``batch`` is the chunk's size.
    """

    name: str = ""
    seed: str = ""  # which write-up the idea comes from

    def supports(self, geom: ConvGeometry, dtype: np.dtype) -> str | None:
        """``None`` if this algorithm can run ``geom``; otherwise the reason it cannot."""
        return None

    def workspace_per_image(self, geom: ConvGeometry, dtype: np.dtype) -> int:
        """Bytes of scratch memory one image needs (0: never chunk)."""
        return 0

    def _chunks(self, geom, dtype):
        per_image = self.workspace_per_image(geom, np.dtype(dtype))
        return batch_chunks(geom.batch, per_image) if per_image else [slice(0, geom.batch)]

    # ---- public interface ------------------------------------------------
    def forward(self, x: np.ndarray, w: np.ndarray, geom: ConvGeometry):
        """Return ``(y, saved)``; y: (N, C_out, OH, OW) without bias."""
        dtype = check_operands(geom, x=x, w=w)
        chunks = self._chunks(geom, dtype)
        if len(chunks) == 1:
            return self._forward(x, w, geom)
        y = np.empty(geom.y_shape, dtype=dtype)
        for sl in chunks:
            y[sl] = self._forward(x[sl], w, _with_batch(geom, sl))[0]
        return y, None

    def grad_input(self, dy: np.ndarray, w: np.ndarray, geom: ConvGeometry, saved=None) -> np.ndarray:
        """Return dx: (N, C_in, H, W)."""
        dtype = check_operands(geom, dy=dy, w=w)
        chunks = self._chunks(geom, dtype)
        if len(chunks) == 1:
            return self._grad_input(dy, w, geom, saved)
        dx = np.empty(geom.x_shape, dtype=dtype)
        for sl in chunks:
            dx[sl] = self._grad_input(dy[sl], w, _with_batch(geom, sl), None)
        return dx

    def grad_weight(self, dy: np.ndarray, x: np.ndarray, geom: ConvGeometry, saved=None) -> np.ndarray:
        """Return dw: (C_out, C_in/groups, kh, kw)."""
        dtype = check_operands(geom, dy=dy, x=x)
        chunks = [slice(0, geom.batch)] if saved is not None else self._chunks(geom, dtype)
        if len(chunks) == 1:
            return self._grad_weight(dy, x, geom, saved)
        dw = np.zeros(geom.weight_shape, dtype=dtype)
        for sl in chunks:
            dw += self._grad_weight(dy[sl], x[sl], _with_batch(geom, sl), None)
        return dw

    # ---- implemented by each algorithm --------------------------------------
    def _forward(self, x, w, geom):
        raise NotImplementedError

    def _grad_input(self, dy, w, geom, saved):
        raise NotImplementedError

    def _grad_weight(self, dy, x, geom, saved):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<conv algorithm {self.name!r}>"


def _with_batch(geom: ConvGeometry, sl: slice) -> ConvGeometry:
    return dataclasses.replace(geom, batch=sl.stop - sl.start)


# ---- shared pieces --------------------------------------------------------

def grouped(w: np.ndarray, groups: int) -> np.ndarray:
    """w: (C_out, Cg, kh, kw) viewed as (G, Og, Cg*kh*kw), the matrix each group multiplies by."""
    return w.reshape(groups, w.shape[0] // groups, -1)


def spread(dy: np.ndarray, stride) -> np.ndarray:
    """Zero-insert between output pixels: z[..., i*sh, j*sw] = dy[..., i, j] (seed 000's embedding).

    dy: (N, C, OH, OW) -> z: (N, C, (OH-1)*sh + 1, (OW-1)*sw + 1); no copy for stride 1.
    """
    sh, sw = stride
    if sh == sw == 1:
        return dy
    n, c, oh, ow = dy.shape
    z = np.zeros((n, c, (oh - 1) * sh + 1, (ow - 1) * sw + 1), dtype=dy.dtype)
    z[:, :, ::sh, ::sw] = dy
    return z


def flip_transpose(w: np.ndarray, groups: int) -> np.ndarray:
    """The kernel of the input gradient: w (O, Cg, kh, kw) -> (C, Og, kh, kw), spatially flipped.

    Within each group, input and output channels swap roles.
    """
    o, cg, kh, kw = w.shape
    og = o // groups
    wt = w.reshape(groups, og, cg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(groups * cg, og, kh, kw)
    return wt[:, :, ::-1, ::-1]


def input_grad_problem(dy: np.ndarray, w: np.ndarray, geom: ConvGeometry):
    """Rewrite dx = dL/dx as a stride-1 convolution ``(z, wt, geom_t)`` (seed 000).

    From ``y[i] = sum_a xp[i*s + a*d] w[a]`` (one axis) follows

        dx[h] = sum_a z[h + P - (k-1-a)*d] w[a] = sum_a' zp[h + a'*d] wflip[a']

    with ``z`` the stride-spread dy and ``zp`` z shifted by ``(k-1)*d - P``
    and cut or zero-extended to length ``H + (k-1)*d``. The shift is negative
    when the padding exceeds the dilated kernel, and then z is cropped
    instead of padded: that is what makes every padding size work. Returns
    the (possibly cropped) z, the flipped channel-swapped kernel and the
    geometry whose padding embeds z; running any algorithm's forward on them
    gives dx: (N, C_in, H, W).
    """
    win = geom.window
    z = spread(dy, win.stride)
    pads, crops = [], []
    for size, k, d, before_pad, length in ((win.height, win.kernel[0], win.dilation[0], win.padding[0], z.shape[2]),
                                           (win.width, win.kernel[1], win.dilation[1], win.padding[2], z.shape[3])):
        before = (k - 1) * d - before_pad
        after = size + (k - 1) * d - before - length
        pads += [max(before, 0), max(after, 0)]
        crops.append(slice(max(-before, 0), length - max(-after, 0)))
    z = z[:, :, crops[0], crops[1]]
    wt = flip_transpose(w, geom.groups)
    geom_t = ConvGeometry.create(z.shape, wt.shape, stride=1, padding=tuple(pads), dilation=win.dilation,
                                 groups=geom.groups)
    return z, wt, geom_t
