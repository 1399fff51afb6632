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
workspace budget with batch chunking, and the input gradient as a stride-1
convolution of the spread output gradient with the flipped kernel (write-up 000).
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


def check_bias(bias, geom: ConvGeometry, dtype: np.dtype) -> np.ndarray:
    """bias as an array of shape (C_out,) and the operands' dtype, or a ValueError naming both."""
    bias = np.asarray(bias)
    if bias.shape != (geom.out_channels,) or bias.dtype != dtype:
        raise ValueError(f"bias must have shape ({geom.out_channels},) and dtype {dtype}, "
                         f"got shape {bias.shape} and dtype {bias.dtype}")
    return bias


class ConvAlgorithm:
    """The contract every convolution algorithm follows: a template of public methods over protected hooks.

    Shapes: x: (N, C_in, H, W), w: (C_out, C_in/groups, kh, kw), bias and
    db: (C_out,), y and dy: (N, C_out, OH, OW), all of one float dtype.

    **Public methods** (the template; subclasses do not override them)::

        forward(x, w, geom, bias=None)                      -> (y, saved)
        backward(dy, x, w, geom, saved=None,
                 need_x=True, need_weight=True, need_bias=True) -> (dx | None, dw | None, db | None)
        grad_input(dy, w, geom, saved=None)                 -> dx
        grad_weight(dy, x, geom, saved=None)                -> dw
        grad_weight_and_bias(dy, x, geom, saved=None)       -> (dw, db)

    ``saved`` is what ``forward`` returned for the gradients to reuse (or
    None); ``backward`` computes only the gradients asked for. Each method
    checks its operands against ``geom`` (:meth:`_check`), then runs the
    whole batch at once or, when :meth:`workspace_per_image` times the batch
    exceeds the workspace budget, in chunks of images (and then keeps no
    ``saved``). :mod:`strided.functional.conv` validates the operands itself
    and says so with ``validated=True`` (keyword only): then nothing is
    checked twice. Called directly, the methods check.

    **Hooks** (protected; each sees a geometry whose ``batch`` is the chunk's):

    * ``_forward(x, w, geom) -> (y, saved)``: y without bias. Required,
      unless the algorithm adds the bias itself in ``_forward_with_bias``.
    * ``_forward_with_bias(x, w, geom, bias) -> (y, saved)``, bias (C_out,) or
      None. Default: ``_forward``, then ``y += bias``. Algorithms that add
      the bias while the output is in the cache override it.
    * ``_grad_input(dy, w, geom, saved) -> dx`` and
      ``_grad_weight(dy, x, geom, saved) -> dw``: required, unless
      ``_backward`` is overridden.
    * ``_backward(dy, x, w, geom, saved, need_x, need_weight, need_bias) -> (dx, dw, db)``,
      None for what is not needed (x or w may then be None too). Default:
      ``_grad_input``, ``_grad_weight`` and dy summed over (N, OH, OW).
      Algorithms that compute the gradients better together override it.
    * ``_check(geom, **arrays) -> dtype``: the public methods' checks.
      Default: :func:`check_operands`; an algorithm with limits of its own
      extends it.

    Described by ``name``, :meth:`supports` and :meth:`workspace_per_image`.
    """

    name: str = ""

    def supports(self, geom: ConvGeometry, dtype: np.dtype) -> str | None:
        """``None`` if this algorithm can run ``geom``; otherwise the reason it cannot."""
        return None

    def workspace_per_image(self, geom: ConvGeometry, dtype: np.dtype) -> int:
        """Bytes of scratch memory one image needs (0: never chunk)."""
        return 0

    def _chunks(self, geom, dtype):
        per_image = self.workspace_per_image(geom, np.dtype(dtype))
        return batch_chunks(geom.batch, per_image) if per_image else [slice(0, geom.batch)]

    # ---- public interface: the template ----------------------------------------
    def forward(self, x: np.ndarray, w: np.ndarray, geom: ConvGeometry, bias: np.ndarray | None = None, *,
                validated: bool = False):
        """Return ``(y, saved)``; y: (N, C_out, OH, OW), plus ``bias`` (C_out,) when given."""
        if not validated:
            dtype = self._check(geom, x=x, w=w)
            if bias is not None:
                bias = check_bias(bias, geom, dtype)
        chunks = self._chunks(geom, x.dtype)
        if len(chunks) == 1:
            return self._forward_with_bias(x, w, geom, bias)
        y = np.empty(geom.y_shape, dtype=x.dtype)
        for sl in chunks:
            y[sl] = self._forward_with_bias(x[sl], w, _with_batch(geom, sl), bias)[0]
        return y, None

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, geom: ConvGeometry, saved=None,
                 need_x: bool = True, need_weight: bool = True, need_bias: bool = True, *, validated: bool = False):
        """``(dx, dw, db)``: dx (N, C_in, H, W), dw like w, db (C_out,); each None when not needed."""
        if not validated:
            self._check(geom, dy=dy, x=x, w=w)
        return self._backward_in_chunks(dy, x, w, geom, saved, need_x, need_weight, need_bias)

    def grad_input(self, dy: np.ndarray, w: np.ndarray, geom: ConvGeometry, saved=None) -> np.ndarray:
        """Return dx: (N, C_in, H, W)."""
        self._check(geom, dy=dy, w=w)
        return self._backward_in_chunks(dy, None, w, geom, saved, True, False, False)[0]

    def grad_weight(self, dy: np.ndarray, x: np.ndarray, geom: ConvGeometry, saved=None) -> np.ndarray:
        """Return dw: (C_out, C_in/groups, kh, kw)."""
        self._check(geom, dy=dy, x=x)
        return self._backward_in_chunks(dy, x, None, geom, saved, False, True, False)[1]

    def grad_weight_and_bias(self, dy: np.ndarray, x: np.ndarray, geom: ConvGeometry, saved=None):
        """``(dw, db)``: the weight gradient and the bias gradient (dy summed over N, OH, OW) in one pass."""
        self._check(geom, dy=dy, x=x)
        return self._backward_in_chunks(dy, x, None, geom, saved, False, True, True)[1:]

    def _backward_in_chunks(self, dy, x, w, geom, saved, need_x, need_weight, need_bias):
        """The whole batch at once (always when the forward pass saved its work), or chunks of images."""
        chunks = [slice(0, geom.batch)] if saved is not None else self._chunks(geom, dy.dtype)
        if len(chunks) == 1:
            return self._backward(dy, x, w, geom, saved, need_x, need_weight, need_bias)
        dx = np.empty(geom.x_shape, dtype=dy.dtype) if need_x else None
        dw = np.zeros(geom.weight_shape, dtype=dy.dtype) if need_weight else None
        for sl in chunks:
            dxs, dws, _ = self._backward(dy[sl], None if x is None else x[sl], w, _with_batch(geom, sl), None,
                                         need_x, need_weight, False)
            if need_x:
                dx[sl] = dxs
            if need_weight:
                dw += dws
        return dx, dw, (dy.sum(axis=(0, 2, 3)) if need_bias else None)

    # ---- hooks -------------------------------------------------------------------
    def _check(self, geom, **arrays) -> np.dtype:
        return check_operands(geom, **arrays)

    def _forward_with_bias(self, x, w, geom, bias):
        y, saved = self._forward(x, w, geom)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y, saved

    def _backward(self, dy, x, w, geom, saved, need_x, need_weight, need_bias):
        dx = self._grad_input(dy, w, geom, saved) if need_x else None
        dw = self._grad_weight(dy, x, geom, saved) if need_weight else None
        return dx, dw, (dy.sum(axis=(0, 2, 3)) if need_bias else None)

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
    """Zero-insert between output pixels: z[..., i*sh, j*sw] = dy[..., i, j] (the stride's embedding of dy).

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
    """Rewrite dx = dL/dx as a stride-1 convolution ``(z, wt, geom_t)`` with the flipped kernel (write-up 000).

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
