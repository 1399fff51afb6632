"""PyTorch interchange: ``from_torch(torch_module)`` and ``to_torch(model)``.

Both walk a ``Sequential`` (nested ones too) layer by layer: each torch
layer has a strided twin with the same constructor arguments and the same
state-dict names (``weight``, ``bias``, ``running_mean``...), so a layer is
converted by reading its arguments (``padding_mode`` and ``inplace``
included) and copying its tensors. Parameters
keep their dtype (float32 or float64), frozen parameters stay frozen and
every layer keeps its train/eval mode.

strided's ``Gaussian`` activation (exp(-x^2)) has no torch class; ``to_torch``
turns it into a small torch module (:func:`torch_gaussian`) that
``from_torch`` recognises. PyTorch stays optional: it is imported on first use.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn
from ..nn.module import Module, Sequential

__all__ = ["from_torch", "to_torch", "torch_gaussian", "SUPPORTED"]

SUPPORTED = ("Sequential", "Conv2d", "Linear", "Flatten", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
             "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "ReLU", "LeakyReLU",
             "Sigmoid", "Tanh", "Softmax", "Identity", "BatchNorm1d", "BatchNorm2d", "Dropout", "Gaussian")

_GAUSSIAN_CLASS = None


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("PyTorch interchange needs torch: pip install torch") from exc
    return torch


def torch_gaussian():
    """A torch module computing exp(-x^2), the counterpart of :class:`strided.nn.Gaussian`."""
    global _GAUSSIAN_CLASS
    torch = _torch()
    if _GAUSSIAN_CLASS is None:
        class Gaussian(torch.nn.Module):
            """exp(-x^2) (strided.nn.Gaussian)."""

            def forward(self, x):
                return torch.exp(-x * x)

        _GAUSSIAN_CLASS = Gaussian
    return _GAUSSIAN_CLASS()


def _np_dtype(torch, tdtype, where):
    table = {torch.float32: np.float32, torch.float64: np.float64}
    if tdtype not in table:
        raise TypeError(f"from_torch: {where} has parameters of dtype {tdtype}; strided supports torch.float32 "
                        "and torch.float64 (convert with module.float() or module.double())")
    return np.dtype(table[tdtype])


def _param_dtype(torch, m, where):
    for p in m.parameters(recurse=False):
        return _np_dtype(torch, p.dtype, where)
    for b in m.buffers(recurse=False):
        if b.is_floating_point():
            return _np_dtype(torch, b.dtype, where)
    return None


def _unsupported(where, what, why):
    return TypeError(f"{where} is {what}: {why}")


# ----------------------------------------------------------------------------- torch -> strided
def _layer_from_torch(torch, m, where):
    T = torch.nn
    dt = _param_dtype(torch, m, where)
    if isinstance(m, T.Conv2d):
        return nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                         bias=m.bias is not None, padding_mode=m.padding_mode, dtype=dt)
    if isinstance(m, T.Linear):
        return nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=dt)
    if isinstance(m, T.Flatten):
        return nn.Flatten(m.start_dim, m.end_dim)
    if isinstance(m, T.MaxPool2d):
        if m.return_indices:
            raise _unsupported(where, "a MaxPool2d with return_indices=True", "strided's pooling returns values only")
        return nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
    if isinstance(m, T.AvgPool2d):
        return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                            m.divisor_override)
    if isinstance(m, T.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool2d(m.output_size)
    if isinstance(m, T.AdaptiveMaxPool2d):
        return nn.AdaptiveMaxPool2d(m.output_size, m.return_indices)
    if type(m) is T.UpsamplingNearest2d:
        return nn.UpsamplingNearest2d(m.size, m.scale_factor)
    if type(m) is T.UpsamplingBilinear2d:
        return nn.UpsamplingBilinear2d(m.size, m.scale_factor)
    if type(m) is T.Upsample:
        if m.mode not in F.INTERPOLATE_MODES:
            raise _unsupported(where, f"an Upsample with mode={m.mode!r}",
                               f"strided interpolates with the modes {', '.join(map(repr, F.INTERPOLATE_MODES))}")
        return nn.Upsample(m.size, m.scale_factor, m.mode, m.align_corners, m.recompute_scale_factor)
    if isinstance(m, T.LeakyReLU):
        return nn.LeakyReLU(m.negative_slope, inplace=m.inplace)
    if type(m) is T.ReLU:
        return nn.ReLU(inplace=m.inplace)
    if isinstance(m, T.Softmax):
        if m.dim is None:
            raise _unsupported(where, "a Softmax with dim=None",
                               "pass the dimension explicitly (torch.nn.Softmax(dim=1))")
        return nn.Softmax(m.dim)
    if isinstance(m, (T.BatchNorm1d, T.BatchNorm2d)):
        cls = nn.BatchNorm1d if isinstance(m, T.BatchNorm1d) else nn.BatchNorm2d
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, dtype=dt)
    if isinstance(m, T.Dropout):
        return nn.Dropout(m.p, m.inplace)
    simple = {T.Sigmoid: nn.Sigmoid, T.Tanh: nn.Tanh, T.Identity: nn.Identity}
    for tcls, scls in simple.items():
        if type(m) is tcls:
            return scls()
    if _GAUSSIAN_CLASS is not None and type(m) is _GAUSSIAN_CLASS:
        return nn.Gaussian()
    kind = "a torch container" if len(list(m.children())) else "a layer"
    raise _unsupported(where, f"{type(m).__module__}.{type(m).__qualname__}",
                       f"{kind} strided has no equivalent for. Supported: {', '.join(SUPPORTED)} "
                       "(containers: torch.nn.Sequential only, whose forward is a plain chain)")


def _copy_from_torch(torch, tm, sm, where):
    state = {k: v.detach().cpu().numpy().copy() for k, v in tm.state_dict().items()}
    try:
        sm.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as exc:  # pragma: no cover - the constructors above agree with torch
        raise ValueError(f"from_torch: cannot copy the tensors of {where}: {exc}") from exc
    for name, p in tm.named_parameters(recurse=False):
        getattr(sm, name).requires_grad = bool(p.requires_grad)


def _convert_from_torch(torch, m, where):
    if type(m) is torch.nn.Sequential:
        seq = Sequential(*[_convert_from_torch(torch, child, f"{where}.{name}" if where else name)
                           for name, child in m.named_children()])
        object.__setattr__(seq, "training", bool(m.training))
        return seq
    sm = _layer_from_torch(torch, m, where or "the module")
    _copy_from_torch(torch, m, sm, where or "the module")
    object.__setattr__(sm, "training", bool(m.training))
    return sm


def from_torch(module) -> Module:
    """The strided equivalent of a ``torch.nn.Sequential`` of supported layers (or of one layer), with its weights.

    Child names of a torch ``Sequential`` built from an ``OrderedDict`` become
    ``0, 1, ...`` (a strided ``Sequential`` numbers its children). Raises
    ``TypeError`` naming the first unsupported layer and its position.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return _convert_from_torch(torch, module, "")


# ----------------------------------------------------------------------------- strided -> torch
def _torch_dtype(torch, m):
    floats = [a.dtype for a in m.state_dict().values() if a.dtype.kind == "f"]
    if not floats:
        return None
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[floats[0]]


def _layer_to_torch(torch, m, where):
    T = torch.nn
    dt = _torch_dtype(torch, m)
    c = m.get_config()  # the arguments as the user wrote them (3 stays 3, not (3, 3))
    if isinstance(m, nn.Conv2d):
        return T.Conv2d(c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"], c["padding"],
                        c["dilation"], c["groups"], bias=m.bias is not None, padding_mode=m.padding_mode, dtype=dt)
    if isinstance(m, nn.Linear):
        return T.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=dt)
    if isinstance(m, nn.Flatten):
        return T.Flatten(m.start_dim, m.end_dim)
    if isinstance(m, nn.MaxPool2d):
        return T.MaxPool2d(c["kernel_size"], c["stride"], c["padding"], c["dilation"], ceil_mode=m.ceil_mode)
    if isinstance(m, nn.AvgPool2d):
        return T.AvgPool2d(c["kernel_size"], c["stride"], c["padding"], m.ceil_mode, m.count_include_pad,
                           m.divisor_override)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return T.AdaptiveAvgPool2d(m.output_size)
    if isinstance(m, nn.AdaptiveMaxPool2d):
        return T.AdaptiveMaxPool2d(m.output_size, m.return_indices)
    if type(m) is nn.UpsamplingNearest2d:
        return T.UpsamplingNearest2d(c["size"], c["scale_factor"])
    if type(m) is nn.UpsamplingBilinear2d:
        return T.UpsamplingBilinear2d(c["size"], c["scale_factor"])
    if type(m) is nn.Upsample:
        return T.Upsample(c["size"], c["scale_factor"], m.mode, m.align_corners, m.recompute_scale_factor)
    if isinstance(m, nn.LeakyReLU):
        return T.LeakyReLU(m.negative_slope, inplace=m.inplace)
    if type(m) is nn.ReLU:
        return T.ReLU(inplace=m.inplace)
    if isinstance(m, nn.Softmax):
        return T.Softmax(m.dim)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        cls = T.BatchNorm1d if isinstance(m, nn.BatchNorm1d) else T.BatchNorm2d
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, dtype=dt)
    if isinstance(m, nn.Dropout):
        return T.Dropout(m.p, m.inplace)
    if isinstance(m, nn.Gaussian):
        return torch_gaussian()
    simple = {nn.Sigmoid: T.Sigmoid, nn.Tanh: T.Tanh, nn.Identity: T.Identity}
    for scls, tcls in simple.items():
        if type(m) is scls:
            return tcls()
    raise _unsupported(where, f"{type(m).__module__}.{type(m).__qualname__}",
                       f"to_torch supports {', '.join(SUPPORTED)}")


def _convert_to_torch(torch, m, where):
    if type(m) is Sequential:
        tm = torch.nn.Sequential(*[_convert_to_torch(torch, child, f"{where}.{name}" if where else name)
                                   for name, child in m._modules.items()])
    else:
        tm = _layer_to_torch(torch, m, where or "the model")
        state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in m.state_dict().items()}
        tm.load_state_dict(state)
        for name, p in m.named_parameters():
            getattr(tm, name).requires_grad_(p.requires_grad)
    tm.training = bool(m.training)  # this module only: children already carry their own mode
    return tm


def to_torch(model: Module):
    """The ``torch.nn`` equivalent of a strided ``Sequential`` of supported layers (or one layer), with its weights."""
    torch = _torch()
    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided.nn.Module, got {type(model).__name__}")
    return _convert_to_torch(torch, model, "")
