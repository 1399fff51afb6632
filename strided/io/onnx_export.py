"""ONNX export: ``export_onnx(model, path, input_shape)`` writes an opset-17, float32 graph.

The model is walked recursively: each module turns the name of its input
value into the name of its output value. Containers wire their children
together and each layer becomes one or a few standard ONNX operators
(its converter, one function per layer type in ``_CONVERTERS``):

=================  ==============================================================
strided            ONNX
=================  ==============================================================
Sequential         its children chained, output to input
Residual           Add(body(x), shortcut(x)) (x itself for the identity)
Concat             Concat(branch0(x), branch1(x), ..., axis=dim)
ConvTranspose2d    ConvTranspose (strides, pads with the output padding taken off
                   the end padding where it fits, output_padding, dilations, group)
Conv2d             Conv (strides, explicit pads (top, left, bottom, right) so
                   ``'same'`` with an even kernel is exact, dilations, group);
                   padding_mode 'reflect' and 'replicate': Pad (mode reflect,
                   edge) then Conv without pads; 'circular': each padded
                   border is a Slice of the opposite side, joined by Concat
                   (opset 17's Pad has no wrap mode)
Linear             Gemm(transB=1) on (N, F); MatMul + Add on more dimensions
Flatten            Flatten(axis=1), or Reshape for other start/end dims
MaxPool2d          MaxPool (dilations, explicit pads); return_indices=True is refused
AvgPool2d          AveragePool with count_include_pad set explicitly
                   (+ Pad and Mul for the cases listed below)
AdaptiveAvgPool2d  GlobalAveragePool for output size 1; AveragePool when the bins
                   are windows (equal lengths at a constant step: kernel and stride
                   computed from the input size); other bins have no ONNX form
AdaptiveMaxPool2d  GlobalMaxPool or MaxPool likewise (not with return_indices)
Upsample           'bilinear': Resize, mode 'linear' with coordinate_transformation_mode
                   'align_corners' or 'half_pixel' (torch's sampling, output
                   size 1 included); a given scale_factor is passed as scales
                   (1 on an axis torch copies), a given size as sizes.
                   'nearest': Resize (coordinate_transformation_mode
                   'asymmetric', nearest_mode 'floor') for integer factors;
                   torch's float32 indices of other sizes as Gather per axis
BatchNorm1d/2d,    BatchNormalization with the running statistics
SyncBatchNorm      (without running statistics: ReduceMean, Sub, Div...)
GroupNorm          Reshape to (N, G, C/G * spatial), InstanceNormalization
                   (which standardises each (n, g) row), Reshape back, then
                   Mul and Add for the per-channel affine (opset 17 has no
                   GroupNormalization; opset 18's scales per group, not per channel)
LayerNorm          LayerNormalization(axis=-len(normalized_shape), epsilon)
ReLU, LeakyReLU,   Relu, LeakyRelu(alpha), Sigmoid, Tanh, Softmax(axis; dim=None
                   resolved from the input's rank, as torch)
Sigmoid, Tanh,
Softmax
GELU               x * 0.5 * (1 + Erf(x / sqrt 2)), or the tanh form with Tanh
SiLU               Mul(x, Sigmoid(x))
ELU, Hardswish     Elu(alpha), HardSwish
Gaussian           Exp(Neg(Mul(x, x)))  (exp(-x^2))
Dropout,           Identity (the exported graph is the model in eval mode)
Dropout2d,
Identity
=================  ==============================================================

Pooling with ``ceil_mode`` is written with the extra bottom/right padding
rows spelled out as pads, never with ONNX's ``ceil_mode`` attribute:
runtimes disagree on that attribute for a last window hanging over the
edge (onnxruntime follows torch, ``onnx.reference`` does not), whereas
explicit pads mean the same thing everywhere. The padding values never
enter a max (MaxPool ignores pads) and are never counted by
``count_include_pad=0``. torch's ``count_include_pad=True`` counts the
symmetric padding but not ceil mode's extra rows, so that case becomes an
explicit zero ``Pad`` followed by ``AveragePool(count_include_pad=0)``;
``divisor_override=d`` becomes a window sum (``AveragePool`` over an
explicitly padded input, times kh*kw) divided by d.

The batch dimension is dynamic (named ``batch``); every other size is fixed
by ``input_shape``. Weights are stored as float32 whatever the model's dtype.
Initializers are named like the state dict (``0.weight``), nodes after the
layer they come from. The result passes ``onnx.checker`` (full check).
``metadata`` (class names, preprocessing) is written as the model's ``metadata_props``.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np

from .. import functional as F
from .. import nn
from .._optional import require
from .._version import __version__
from ..geometry import adaptive_window, pool_window, resolve_padding
from ..nn.module import Module, Sequential
from ..nn.normalization import BatchNormBase
from .atomic import atomic_write

__all__ = ["export_onnx", "OPSET"]

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17 (readable by every runtime that supports the opset)


def _import_onnx():
    onnx = require("onnx", "ONNX export", extra="onnx", packages="onnx onnxruntime")
    return onnx, require("onnx.helper", "ONNX export"), require("onnx.numpy_helper", "ONNX export")


class _Graph:
    """Collects nodes and initializers; every name it hands out is unique."""

    def __init__(self, helper, numpy_helper, onnx):
        self.helper, self.numpy_helper, self.onnx = helper, numpy_helper, onnx
        self.nodes, self.initializers = [], []
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        out, n = name, 1
        while out in self._names:
            out, n = f"{name}_{n}", n + 1
        self._names.add(out)
        return out

    def const(self, name: str, value, dtype=np.float32) -> str:
        name = self._unique(name)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list, where: str, **attrs) -> str:
        out = self._unique(f"{where}/{op_type}" if where else op_type)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _join(where: str, name) -> str:
    return f"{where}.{name}" if where else str(name)


def _container(model: Module):
    """The container class whose forward ``model`` runs (Sequential, Residual, Concat or a subclass keeping
    that forward), or None for a layer."""
    for cls in _CONTAINERS:
        if isinstance(model, cls) and type(model).forward is cls.forward:
            return cls
    return None


def _check_exportable(model: Module, where: str = "") -> None:
    """Raise TypeError naming the first layer that has no converter, before anything is built."""
    if _container(model) is None:
        _converter(model, where)
        return
    for name, child in model.named_children(remove_duplicate=False):
        _check_exportable(child, _join(where, name))


def _pads(top, bottom, left, right):
    return [int(top), int(left), int(bottom), int(right)]  # ONNX order: all begins, then all ends


# ----------------------------------------------------------------------------- one converter per layer type
def _wrap(g, x, axis, size, before, after, where):
    """Circular padding along one axis: Concat(x[size-before:], x, x[:after])."""
    def part(start, end):
        bounds = [g.const(f"{where}.{name}", [v], np.int64) for name, v in (("starts", start), ("ends", end),
                                                                              ("axes", axis))]
        return g.op("Slice", [x, *bounds], where)
    parts = ([part(size - before, size)] if before else []) + [x] + ([part(0, after)] if after else [])
    return g.op("Concat", parts, where, axis=axis)


def _conv(g, m: nn.Conv2d, x, shape, where, prefix):
    pads = resolve_padding(m.padding, m.kernel_size, m.dilation, m.stride)  # (top, bottom, left, right)
    if m.padding_mode != "zeros" and any(pads):
        # torch pads explicitly and convolves without padding: so does the graph
        top, bottom, left, right = pads
        if m.padding_mode == "circular":
            x = _wrap(g, _wrap(g, x, 3, shape[3], left, right, where), 2, shape[2], top, bottom, where)
        else:
            widths = g.const(f"{where}.pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)
            x = g.op("Pad", [x, widths], where, mode={"reflect": "reflect", "replicate": "edge"}[m.padding_mode])
        pads = (0, 0, 0, 0)
    inputs = [x, g.const(f"{prefix}weight", m.weight.data)]
    if m.bias is not None:
        inputs.append(g.const(f"{prefix}bias", m.bias.data))
    return g.op("Conv", inputs, where, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                pads=_pads(*pads), dilations=list(m.dilation), group=m.groups)


def _conv_transpose(g, m: nn.ConvTranspose2d, x, shape, where, prefix):
    inputs = [x, g.const(f"{prefix}weight", m.weight.data)]
    if m.bias is not None:
        inputs.append(g.const(f"{prefix}bias", m.bias.data))
    # output padding as less padding at the end where it fits (onnxruntime rejects output_padding >= stride)
    (ph, pw), (oph, opw) = m.padding, m.output_padding
    return g.op("ConvTranspose", inputs, where, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                pads=_pads(ph, max(ph - oph, 0), pw, max(pw - opw, 0)),
                output_padding=[max(oph - ph, 0), max(opw - pw, 0)], dilations=list(m.dilation), group=m.groups)


def _linear(g, m: nn.Linear, x, shape, where, prefix):
    if len(shape) == 2:
        inputs = [x, g.const(f"{prefix}weight", m.weight.data)]
        if m.bias is not None:
            inputs.append(g.const(f"{prefix}bias", m.bias.data))
        return g.op("Gemm", inputs, where, transB=1)
    y = g.op("MatMul", [x, g.const(f"{prefix}weight", m.weight.data.T)], where)
    if m.bias is not None:
        y = g.op("Add", [y, g.const(f"{prefix}bias", m.bias.data)], where)
    return y


def _flatten(g, m: nn.Flatten, x, shape, where, prefix):
    nd = len(shape)
    s, e = m.start_dim % nd, m.end_dim % nd
    if s == 1 and e == nd - 1:
        return g.op("Flatten", [x], where, axis=1)
    # 0 copies the input's size (keeps the dynamic batch), -1 is the merged dimension
    target = [0] * s + [-1] + [int(d) for d in shape[e + 1:]]
    return g.op("Reshape", [x, g.const(f"{where}.shape", target, np.int64)], where)


def _pool_geometry(m, shape, dilation):
    """The window, whose padding (top, bottom, left, right) includes the extra rows ceil mode reads."""
    return pool_window((1, 1, *shape[2:]), m.kernel_size, m.stride, m.padding, dilation, m.ceil_mode)


def _maxpool(g, m: nn.MaxPool2d, x, shape, where, prefix):
    win = _pool_geometry(m, shape, m.dilation)
    return g.op("MaxPool", [x], where, kernel_shape=list(win.kernel), strides=list(win.stride),
                pads=_pads(*win.padding), dilations=list(win.dilation), ceil_mode=0)


def _avgpool(g, m: nn.AvgPool2d, x, shape, where, prefix):
    win = _pool_geometry(m, shape, (1, 1))
    ph, pw = m.padding
    extra_h, extra_w = win.padding[1] - ph, win.padding[3] - pw
    common = dict(kernel_shape=list(win.kernel), strides=list(win.stride), ceil_mode=0)

    def zero_pad(top, bottom, left, right):
        if not any((top, bottom, left, right)):
            return x
        pads = g.const(f"{where}.pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)
        return g.op("Pad", [x, pads], where, mode="constant")

    if m.divisor_override is not None:
        # window sum / d: average over a zero-padded input (every window is kh*kw values) times kh*kw / d
        mean = g.op("AveragePool", [zero_pad(*win.padding)], where, count_include_pad=1, **common)
        kk = win.kernel[0] * win.kernel[1]
        return g.op("Mul", [mean, g.const(f"{where}.scale", kk / m.divisor_override)], where)
    if not m.count_include_pad:
        return g.op("AveragePool", [x], where, pads=_pads(*win.padding), count_include_pad=0, **common)
    if extra_h == 0 and extra_w == 0:
        return g.op("AveragePool", [x], where, pads=_pads(*win.padding), count_include_pad=1, **common)
    # torch counts the symmetric padding but not ceil mode's extra rows: make the former real zeros
    padded = zero_pad(ph, ph, pw, pw)
    return g.op("AveragePool", [padded], where, pads=_pads(0, extra_h, 0, extra_w), count_include_pad=0, **common)


def _adaptive_pool(op_type, global_op_type, **attrs):
    def convert(g, m, x, shape, where, prefix):
        h, w = shape[2:]
        oh, ow = F.adaptive_output_size(m.output_size, (h, w))
        if isinstance(m, nn.AdaptiveMaxPool2d) and m.return_indices:
            raise TypeError(f"export_onnx: layer {where} is an {type(m).__name__} with return_indices=True, whose "
                            "(output, indices) pair a chain of layers cannot carry; export it with return_indices=False")
        if (oh, ow) == (1, 1):
            return g.op(global_op_type, [x], where)
        windows = adaptive_window(h, oh), adaptive_window(w, ow)
        if None in windows:
            raise ValueError(f"export_onnx: layer {where} ({type(m).__name__}) pools an input of {h}x{w} into "
                             f"{oh}x{ow} bins of unequal sizes, which no ONNX pooling expresses; output sizes that "
                             f"divide the input's (or 1) export as pooling windows")
        (kh, sh), (kw, sw) = windows
        return g.op(op_type, [x], where, kernel_shape=[kh, kw], strides=[sh, sw], pads=[0, 0, 0, 0], ceil_mode=0,
                    **attrs)
    return convert


def _float32_at_least(value: float) -> np.float32:
    """The float32 nearest to ``value`` that is not below it."""
    f = np.float32(value)
    return f if float(f) >= value else np.nextafter(f, np.float32(np.inf))


def _upsample(g, m: nn.Upsample, x, shape, where, prefix):
    if len(shape) != 4:
        raise ValueError(f"export_onnx: layer {where} ({type(m).__name__}) gets an input of shape (batch, "
                         f"{', '.join(map(str, shape[1:]))}); export handles images (N, C, H, W)")
    in_sizes = shape[2:]
    if m.mode == "nearest":
        return _upsample_nearest(g, m, x, in_sizes, where)
    out, scales = F.interpolate_sizes(in_sizes, m.size, m.scale_factor, m.recompute_scale_factor)
    attrs = dict(mode="linear", coordinate_transformation_mode="align_corners" if m.align_corners else "half_pixel")
    if scales[0] is None:
        # sampled with in/out: the output size itself, after the input's (dynamic) batch and channels
        batch_channels = g.op("Slice", [g.op("Shape", [x], where), g.const(f"{where}.starts", [0], np.int64),
                                        g.const(f"{where}.ends", [2], np.int64)], where)
        sizes = g.op("Concat", [batch_channels, g.const(f"{where}.size", list(out), np.int64)], where, axis=0)
        return g.op("Resize", [x, "", "", sizes], where, **attrs)
    # sampled with the given factor (1 where torch copies an axis whose size stays); ONNX sizes the output
    # floor(in * scale) with the float32 scale, in float32 or in double: both must give torch's size
    factors = [_float32_at_least(1.0 if o == n else f) for n, o, f in zip(in_sizes, out, scales)]
    for n, o, f in zip(in_sizes, out, factors):
        if not int(np.floor(n * float(f))) == int(np.floor(np.float32(n) * f)) == o:
            raise ValueError(f"export_onnx: layer {where} ({type(m).__name__}) resizes {tuple(in_sizes)} to "
                             f"{tuple(out)} with scale_factor={m.scale_factor!r}, whose float32 value (ONNX's scales) "
                             f"does not give size {o} from {n}; give the layer a size, or recompute_scale_factor=True")
    return g.op("Resize", [x, "", g.const(f"{where}.scales", [1.0, 1.0, *factors], np.float32)], where, **attrs)


def _upsample_nearest(g, m, x, in_sizes, where):
    """Resize when every axis takes o // k (an integer factor k: exact in any arithmetic), else one Gather per axis.

    torch's nearest indices come from float32 products and runtimes compute
    ONNX's ``o / scale`` in their own precision, so a fractional factor is
    written as the indices themselves, which every runtime reads the same.
    """
    _, cache = F.interpolate_forward(np.zeros((1, 1, *in_sizes), np.float32), m.size, m.scale_factor, m.mode, None,
                                     m.recompute_scale_factor)
    index = {tap.axis: tap.index[0] for tap in cache.taps}
    factors = []
    for axis, n in zip((2, 3), in_sizes):
        src = index.get(axis, np.arange(n))
        k = len(src) // n
        factors.append(k if len(src) == k * n and np.array_equal(src, np.arange(len(src)) // k) else None)
    if None not in factors:
        return g.op("Resize", [x, "", g.const(f"{where}.scales", [1.0, 1.0, *factors], np.float32)], where,
                    mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    for tap in cache.taps:
        x = g.op("Gather", [x, g.const(f"{where}.index{tap.axis}", tap.index[0], np.int64)], where, axis=tap.axis)
    return x


def _batchnorm(g, m, x, shape, where, prefix):
    c = m.num_features
    w = m.weight.data if m.affine else np.ones(c)
    bias = m.bias.data if m.affine else np.zeros(c)
    if m.track_running_stats:
        return g.op("BatchNormalization",
                    [x, g.const(f"{prefix}weight" if m.affine else f"{where}.scale", w),
                     g.const(f"{prefix}bias" if m.affine else f"{where}.shift", bias),
                     g.const(f"{prefix}running_mean", m.running_mean),
                     g.const(f"{prefix}running_var", m.running_var)],
                    where, epsilon=float(m.eps))
    # no running statistics: eval mode normalises with the batch's own (biased) statistics
    axes = [0] + list(range(2, len(shape)))
    bshape = [1, c] + [1] * (len(shape) - 2)
    mean = g.op("ReduceMean", [x], where, axes=axes, keepdims=1)
    centred = g.op("Sub", [x, mean], where)
    var = g.op("ReduceMean", [g.op("Mul", [centred, centred], where)], where, axes=axes, keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, g.const(f"{where}.eps", m.eps)], where)], where)
    y = g.op("Div", [centred, std], where)
    if m.affine:
        y = g.op("Mul", [y, g.const(f"{prefix}weight", w.reshape(bshape))], where)
        y = g.op("Add", [y, g.const(f"{prefix}bias", bias.reshape(bshape))], where)
    return y


def _groupnorm(g, m: nn.GroupNorm, x, shape, where, prefix):
    groups = m.num_groups
    grouped = g.op("Reshape", [x, g.const(f"{where}.grouped", [0, groups, -1], np.int64)], where)
    y = g.op("InstanceNormalization", [grouped, g.const(f"{where}.scale", np.ones(groups)),
                                       g.const(f"{where}.shift", np.zeros(groups))], where, epsilon=float(m.eps))
    y = g.op("Reshape", [y, g.const(f"{where}.shape", [0, *shape[1:]], np.int64)], where)
    channel = (m.num_channels,) + (1,) * (len(shape) - 2)
    if m.weight is not None:
        y = g.op("Mul", [y, g.const(f"{prefix}weight", m.weight.data.reshape(channel))], where)
    if m.bias is not None:
        y = g.op("Add", [y, g.const(f"{prefix}bias", m.bias.data.reshape(channel))], where)
    return y


def _layernorm(g, m: nn.LayerNorm, x, shape, where, prefix):
    scale = (g.const(f"{prefix}weight", m.weight.data) if m.weight is not None
             else g.const(f"{where}.scale", np.ones(m.normalized_shape)))
    inputs = [x, scale] + ([g.const(f"{prefix}bias", m.bias.data)] if m.bias is not None else [])
    return g.op("LayerNormalization", inputs, where, axis=-len(m.normalized_shape), epsilon=float(m.eps))


def _gelu(g, m: nn.GELU, x, shape, where, prefix):
    if m.approximate == "none":
        phi = g.op("Erf", [g.op("Mul", [x, g.const(f"{where}.sqrt1_2", np.sqrt(0.5))], where)], where)
    else:  # tanh(sqrt(2/pi) * (x + 0.044715 x^3))
        cube = g.op("Mul", [g.op("Mul", [x, x], where), x], where)
        inner = g.op("Add", [x, g.op("Mul", [cube, g.const(f"{where}.kappa", 0.044715)], where)], where)
        phi = g.op("Tanh", [g.op("Mul", [inner, g.const(f"{where}.beta", np.sqrt(2 / np.pi))], where)], where)
    y = g.op("Mul", [x, g.op("Add", [phi, g.const(f"{where}.one", 1.0)], where)], where)
    return g.op("Mul", [y, g.const(f"{where}.half", 0.5)], where)


def _silu(g, m, x, shape, where, prefix):
    return g.op("Mul", [x, g.op("Sigmoid", [x], where)], where)


def _gaussian(g, m, x, shape, where, prefix):
    return g.op("Exp", [g.op("Neg", [g.op("Mul", [x, x], where)], where)], where)


def _softmax(g, m: nn.Softmax, x, shape, where, prefix):
    axis = F.implicit_softmax_dim(len(shape)) if m.dim is None else int(m.dim)
    return g.op("Softmax", [x], where, axis=axis)


def _simple(op_type, **attrs):
    def convert(g, m, x, shape, where, prefix):
        return g.op(op_type, [x], where, **{k: f(m) for k, f in attrs.items()})
    return convert


# ----------------------------------------------------------------------------- containers
class _Export:
    """One export under way: the graph, and whether the batch is still the first dimension of the value."""

    def __init__(self, g, input_shape):
        self.g, self.input_shape, self.batch_first = g, input_shape, True

    def emit(self, m: Module, x: str, probe: np.ndarray, where: str):
        """Add ``m`` applied to value ``x`` to the graph -> (output value name, m's output on probe).

        probe: a small batch shaped like x, run through the layers to follow the shapes.
        """
        kind = _container(m)
        if kind is not None:
            return _CONTAINERS[kind](self, m, x, probe, where)
        # a shallow copy in eval mode runs, so the model and its caches are untouched; the library's own shape
        # rules and errors apply
        twin = copy.copy(m)
        object.__setattr__(twin, "training", False)
        try:
            out = twin(probe)
        except (ValueError, TypeError) as exc:
            raise self.shape_error(m, where, probe, exc) from exc
        y = _converter(m, where)(self.g, m, x, probe.shape, where or type(m).__name__, f"{where}." if where else "")
        if isinstance(m, nn.Flatten) and m.start_dim % probe.ndim == 0:
            self.batch_first = False
        return y, out

    def shape_error(self, m, where, probe, exc):
        return ValueError(f"export_onnx: layer {where or '(the model)'} ({type(m).__name__}) cannot take an input "
                          f"of shape (batch, {', '.join(map(str, probe.shape[1:]))}) from "
                          f"input_shape={self.input_shape}: {exc}")




def _sequential(ex: _Export, m, x, probe, where):
    for name, child in m.named_children(remove_duplicate=False):
        x, probe = ex.emit(child, x, probe, _join(where, name))
    return x, probe


def _residual(ex: _Export, m, x, probe, where):
    y_body, p_body = ex.emit(m.body, x, probe, _join(where, "body"))
    y_short, p_short = (x, probe) if m.shortcut is None else ex.emit(m.shortcut, x, probe, _join(where, "shortcut"))
    try:
        out = m.combine(p_body, p_short)
    except ValueError as exc:
        raise ex.shape_error(m, where, probe, exc) from exc
    return ex.g.op("Add", [y_body, y_short], where or "Residual"), out


def _concat(ex: _Export, m, x, probe, where):
    parts = [ex.emit(child, x, probe, _join(where, name)) for name, child in m.named_children(remove_duplicate=False)]
    try:
        out = m.combine([p for _, p in parts])
    except (ValueError, TypeError) as exc:
        raise ex.shape_error(m, where, probe, exc) from exc
    axis = m.dim % out.ndim
    if axis == 0:
        ex.batch_first = False
    return ex.g.op("Concat", [y for y, _ in parts], where or "Concat", axis=axis), out


_CONTAINERS = {Sequential: _sequential, nn.Residual: _residual, nn.Concat: _concat}


# ----------------------------------------------------------------------------- layers
_CONVERTERS = {
    nn.Conv2d: _conv,
    nn.ConvTranspose2d: _conv_transpose,
    nn.Linear: _linear,
    nn.Flatten: _flatten,
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: _adaptive_pool("AveragePool", "GlobalAveragePool", count_include_pad=0),
    nn.AdaptiveMaxPool2d: _adaptive_pool("MaxPool", "GlobalMaxPool"),
    nn.Upsample: _upsample,
    nn.UpsamplingNearest2d: _upsample,
    nn.UpsamplingBilinear2d: _upsample,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: _simple("Relu"),
    nn.LeakyReLU: _simple("LeakyRelu", alpha=lambda m: float(m.negative_slope)),
    nn.Sigmoid: _simple("Sigmoid"),
    nn.Tanh: _simple("Tanh"),
    nn.Softmax: _softmax,
    nn.GroupNorm: _groupnorm,
    nn.LayerNorm: _layernorm,
    nn.GELU: _gelu,
    nn.SiLU: _silu,
    nn.ELU: _simple("Elu", alpha=lambda m: float(m.alpha)),
    nn.Hardswish: _simple("HardSwish"),
    nn.Gaussian: _gaussian,
    nn.Dropout: _simple("Identity"),
    nn.Dropout2d: _simple("Identity"),
    nn.Identity: _simple("Identity"),
}


def _converter(layer, where):
    conv = _CONVERTERS.get(type(layer))
    if conv is None and isinstance(layer, BatchNormBase):
        conv = _batchnorm  # distributed.SyncBatchNorm: in eval mode the batch norm of its running statistics
    if conv is None:
        names = ", ".join(sorted([c.__name__ for c in _CONVERTERS] + ["SyncBatchNorm"]))
        raise TypeError(f"export_onnx: layer {where or '(the model)'} is a {type(layer).__name__}, which has no "
                        f"ONNX conversion; supported layers: {names}, inside Sequential, Residual and Concat "
                        "containers")
    if isinstance(layer, nn.MaxPool2d) and layer.return_indices:
        raise TypeError(f"export_onnx: layer {where or '(the model)'} is a MaxPool2d with return_indices=True, "
                        "whose (values, indices) pair cannot feed the next layer of the graph; export a "
                        "MaxPool2d with return_indices=False (the default)")
    return conv


def _check_shape(input_shape) -> tuple[int, ...]:
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise TypeError(f"input_shape must be the shape of one example, e.g. (1, 28, 28), got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise ValueError(f"input_shape must be positive ints (the shape of one example without the batch, "
                         f"e.g. (1, 28, 28)), got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _metadata_props(metadata) -> dict:
    """metadata as ONNX ``metadata_props``: str -> str, non-string values as JSON."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(f"metadata must be a dict with str keys, got {metadata!r}")
    try:
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    except TypeError as exc:
        raise TypeError(f"metadata values must be strings or JSON-friendly, got {metadata!r} ({exc})") from exc


def export_onnx(model: Module, path, input_shape, *, input_name: str = "input", output_name: str = "output",
                batch_size: int | None = None, metadata: dict | None = None) -> Path:
    """Write ``model`` as an ONNX graph (opset 17, float32) to ``path``, atomically; returns the path.

    input_shape: the shape of ONE example, without the batch, e.g. ``(1, 28, 28)``
    for x: (N, 1, 28, 28). The batch dimension is dynamic (``batch``) unless
    ``batch_size`` fixes it. The graph computes the model in eval mode
    (Dropout is the identity, BatchNorm uses its running statistics).
    ``metadata`` (str keys) goes into the model's ``metadata_props``, strings
    as they are and other values as JSON (``strided export`` writes the
    class names and the standardisation ``mean``, ``std``, ``eps`` of a trained
    model there: ``json.loads(props['class_names'])``).
    Raises TypeError naming the first layer that cannot be exported.
    """
    onnx, helper, numpy_helper = _import_onnx()
    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided.nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None (dynamic), got {batch_size!r}")
    props = _metadata_props(metadata)
    _check_exportable(model)  # fail before any work

    g = _Graph(helper, numpy_helper, onnx)
    g._names.update((input_name, output_name))
    ex = _Export(g, shape)
    probe = np.random.default_rng(0).standard_normal((2, *shape)).astype(model.dtype)
    x_name, probe = ex.emit(model, input_name, probe, "")
    if x_name == input_name or g.nodes[-1].output[0] != x_name:  # the output must be a node's own output
        x_name = g.op("Identity", [x_name], "identity")
    g.nodes[-1].output[0] = output_name

    batch = batch_size if batch_size is not None else "batch"
    in_info = helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, [batch, *shape])
    out_dims = [batch, *probe.shape[1:]] if ex.batch_first else [None] * probe.ndim
    out_info = helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, out_dims)
    graph = helper.make_graph(g.nodes, type(model).__name__, [in_info], [out_info], initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="strided", producer_version=__version__)
    if props:
        helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
    return Path(os.fspath(path))
