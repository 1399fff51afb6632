"""PyTorch interchange: ``from_torch(torch_module)`` and ``to_torch(model)``.

Both walk the containers (``Sequential``, ``Residual``, ``Concat``, nested
in any way) down to the layers: each torch
layer has a strided twin with the same constructor arguments and the same
state-dict names (``weight``, ``bias``, ``running_mean``...), so a layer is
converted by reading its arguments (``padding_mode`` and ``inplace``
included) and copying its tensors. Parameters
keep their dtype (float32 or float64), frozen parameters stay frozen and
every layer keeps its train/eval mode.

strided's ``Gaussian`` activation (exp(-x^2)) and its ``Residual`` and
``Concat`` containers have no torch class; ``to_torch`` turns them into
small torch modules (:func:`torch_gaussian`, :func:`torch_residual`,
:func:`torch_concat`) that ``from_torch`` recognises. Those containers
have the same attribute names as strided's (``body``/``shortcut``;
``0``, ``1``, ...), hence the same state-dict keys. PyTorch stays optional:
it is imported on first use.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn
from .._optional import require
from ..nn.module import Module, Sequential

__all__ = ["from_torch", "to_torch", "torch_gaussian", "torch_residual", "torch_concat", "register_torch_layer",
           "SUPPORTED"]

SUPPORTED = ("Sequential", "Residual", "Concat", "Conv2d", "ConvTranspose2d", "Linear", "Flatten", "MaxPool2d", "AvgPool2d",
             "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "ReLU",
             "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Identity", "GELU", "SiLU", "ELU", "Hardswish", "BatchNorm1d",
             "BatchNorm2d", "GroupNorm", "LayerNorm", "Dropout", "Dropout2d", "Gaussian")

_GAUSSIAN_CLASS = None
# layers defined above this package (strided.distributed.SyncBatchNorm): strided class -> (name in
# torch.nn, to_torch(torch, layer, dtype) -> torch module, from_torch(torch, module, dtype) -> strided layer)
_REGISTERED: dict[type, tuple] = {}
_CONTAINER_CLASSES = None  # (Residual, Concat) as torch modules, defined once torch is imported


def register_torch_layer(cls: type, torch_name: str, to_torch, from_torch) -> None:
    """Teach :func:`to_torch` and :func:`from_torch` a layer class defined outside :mod:`strided.nn`.

    cls: the strided Module subclass; torch_name: the name of its twin in
    ``torch.nn`` (the same constructor arguments and state-dict names);
    to_torch(torch, layer, dtype) builds the torch module and
    from_torch(torch, module, dtype) the strided one (dtype: the parameters'
    torch or NumPy dtype, None without floats). The tensors are copied
    afterwards, as for every layer. Matching is by exact class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"cls must be a strided.nn.Module subclass, got {cls!r}")
    if not isinstance(torch_name, str) or not torch_name.isidentifier():
        raise ValueError(f"torch_name must be the name of a class in torch.nn, got {torch_name!r}")
    _REGISTERED[cls] = (torch_name, to_torch, from_torch)


def _supported() -> str:
    return ", ".join(SUPPORTED + tuple(name for name, _, _ in _REGISTERED.values()))


def _torch():
    return require("torch", "PyTorch interchange")


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


def _torch_containers(torch):
    global _CONTAINER_CLASSES
    if _CONTAINER_CLASSES is None:
        class Residual(torch.nn.Module):
            """body(x) + shortcut(x), the identity shortcut when None (strided.nn.Residual)."""

            def __init__(self, body, shortcut=None):
                super().__init__()
                self.body = body
                self.shortcut = shortcut

            def forward(self, x):
                return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

        class Concat(torch.nn.Module):
            """The branches' outputs joined along dim (strided.nn.Concat); branches named 0, 1, ..."""

            def __init__(self, *branches, dim=1):
                super().__init__()
                for i, branch in enumerate(branches):
                    self.add_module(str(i), branch)
                self.dim = dim

            def __iter__(self):
                return iter(self._modules.values())

            def forward(self, x):
                return torch.cat([branch(x) for branch in self], self.dim)

        _CONTAINER_CLASSES = (Residual, Concat)
    return _CONTAINER_CLASSES


def torch_residual(body, shortcut=None):
    """A torch module computing ``body(x) + shortcut(x)`` (identity shortcut when None), as strided.nn.Residual.

    body, shortcut: torch modules, kept as the attributes ``body`` and
    ``shortcut`` (state-dict keys ``body.<...>``, ``shortcut.<...>``).
    """
    return _torch_containers(_torch())[0](body, shortcut)


def torch_concat(*branches, dim=1):
    """A torch module computing ``torch.cat([b(x) for b in branches], dim)``, as strided.nn.Concat.

    branches: torch modules, kept as children ``0``, ``1``, ...
    """
    return _torch_containers(_torch())[1](*branches, dim=dim)


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
    if isinstance(m, T.ConvTranspose2d):
        return nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                  m.output_padding, m.groups, bias=m.bias is not None, dilation=m.dilation, dtype=dt)
    if isinstance(m, T.Linear):
        return nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=dt)
    if isinstance(m, T.Flatten):
        return nn.Flatten(m.start_dim, m.end_dim)
    if isinstance(m, T.MaxPool2d):
        return nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode)
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
        return nn.Softmax(m.dim)
    if isinstance(m, (T.BatchNorm1d, T.BatchNorm2d)):
        cls = nn.BatchNorm1d if isinstance(m, T.BatchNorm1d) else nn.BatchNorm2d
        return cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats, dtype=dt)
    if isinstance(m, T.GroupNorm):
        return nn.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine, dtype=dt, bias=m.bias is not None)
    if isinstance(m, T.LayerNorm):
        return nn.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine, bias=m.bias is not None, dtype=dt)
    if isinstance(m, T.Dropout):
        return nn.Dropout(m.p, m.inplace)
    if isinstance(m, T.Dropout2d):
        return nn.Dropout2d(m.p, m.inplace)
    if type(m) is T.GELU:
        return nn.GELU(m.approximate)
    if type(m) is T.SiLU:
        return nn.SiLU(m.inplace)
    if type(m) is T.ELU:
        return nn.ELU(m.alpha, m.inplace)
    if type(m) is T.Hardswish:
        return nn.Hardswish(m.inplace)
    simple = {T.Sigmoid: nn.Sigmoid, T.Tanh: nn.Tanh, T.Identity: nn.Identity}
    for tcls, scls in simple.items():
        if type(m) is tcls:
            return scls()
    if _GAUSSIAN_CLASS is not None and type(m) is _GAUSSIAN_CLASS:
        return nn.Gaussian()
    for name, _, build in _REGISTERED.values():
        if type(m) is getattr(T, name, None):
            return build(torch, m, dt)
    kind = "a torch container" if len(list(m.children())) else "a layer"
    raise _unsupported(where, f"{type(m).__module__}.{type(m).__qualname__}",
                       f"{kind} strided has no equivalent for. Supported: {_supported()} "
                       "(containers: torch.nn.Sequential, whose forward is a plain chain, and the Residual and "
                       "Concat of strided.io.torch_residual and torch_concat)")


def _copy_from_torch(torch, tm, sm, where):
    state = {k: v.detach().cpu().numpy().copy() for k, v in tm.state_dict().items()}
    try:
        sm.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as exc:  # pragma: no cover - the constructors above agree with torch
        raise ValueError(f"from_torch: cannot copy the tensors of {where}: {exc}") from exc
    for name, p in tm.named_parameters(recurse=False):
        getattr(sm, name).requires_grad = bool(p.requires_grad)


def _convert_from_torch(torch, m, where, done):
    """m as a strided module; ``done`` maps id(torch module) -> its conversion, so shared modules stay shared."""
    if id(m) in done:
        return done[id(m)]

    def child(name, c):
        return _convert_from_torch(torch, c, f"{where}.{name}" if where else name, done)

    residual, concat = _torch_containers(torch)
    if type(m) is torch.nn.Sequential:
        sm = Sequential(*[child(i, c) for i, c in enumerate(m)])
    elif type(m) is residual:
        sm = nn.Residual(child("body", m.body), None if m.shortcut is None else child("shortcut", m.shortcut))
    elif type(m) is concat:
        sm = nn.Concat(*[child(i, c) for i, c in enumerate(m)], dim=m.dim)
    else:
        sm = _layer_from_torch(torch, m, where or "the module")
        _copy_from_torch(torch, m, sm, where or "the module")
    object.__setattr__(sm, "training", bool(m.training))
    done[id(m)] = sm
    return sm


def from_torch(module) -> Module:
    """The strided equivalent of a torch model made of supported layers and containers, with its weights.

    module: a supported layer, a ``torch.nn.Sequential``, or the torch
    ``Residual``/``Concat`` of :func:`torch_residual`/:func:`torch_concat`,
    nested in any way. A module used at several places stays one shared module.

    Child names of a torch ``Sequential`` built from an ``OrderedDict`` become
    ``0, 1, ...`` (a strided ``Sequential`` numbers its children). Raises
    ``TypeError`` naming the first unsupported layer and its position.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return _convert_from_torch(torch, module, "", {})


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
    if isinstance(m, nn.ConvTranspose2d):
        return T.ConvTranspose2d(c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"], c["padding"],
                                 c["output_padding"], c["groups"], bias=m.bias is not None, dilation=c["dilation"],
                                 dtype=dt)
    if isinstance(m, nn.Linear):
        return T.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=dt)
    if isinstance(m, nn.Flatten):
        return T.Flatten(m.start_dim, m.end_dim)
    if isinstance(m, nn.MaxPool2d):
        return T.MaxPool2d(c["kernel_size"], c["stride"], c["padding"], c["dilation"], m.return_indices, m.ceil_mode)
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
    if isinstance(m, nn.GroupNorm):
        return T.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine, dtype=dt, bias=m.bias is not None)
    if isinstance(m, nn.LayerNorm):
        return T.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine, bias=m.bias is not None, dtype=dt)
    if isinstance(m, nn.Dropout):
        return T.Dropout(m.p, m.inplace)
    if isinstance(m, nn.Dropout2d):
        return T.Dropout2d(m.p, m.inplace)
    if isinstance(m, nn.GELU):
        return T.GELU(m.approximate)
    if isinstance(m, nn.SiLU):
        return T.SiLU(m.inplace)
    if isinstance(m, nn.ELU):
        return T.ELU(m.alpha, m.inplace)
    if isinstance(m, nn.Hardswish):
        return T.Hardswish(m.inplace)
    if isinstance(m, nn.Gaussian):
        return torch_gaussian()
    if type(m) in _REGISTERED:
        return _REGISTERED[type(m)][1](torch, m, dt)
    simple = {nn.Sigmoid: T.Sigmoid, nn.Tanh: T.Tanh, nn.Identity: T.Identity}
    for scls, tcls in simple.items():
        if type(m) is scls:
            return tcls()
    raise _unsupported(where, f"{type(m).__module__}.{type(m).__qualname__}",
                       f"to_torch supports {_supported()}")


def _convert_to_torch(torch, m, where, done):
    """m as a torch module; ``done`` maps id(strided module) -> its conversion, so shared modules stay shared."""
    if id(m) in done:
        return done[id(m)]

    def child(name, c):
        return _convert_to_torch(torch, c, f"{where}.{name}" if where else name, done)

    residual, concat = _torch_containers(torch)
    if type(m) is Sequential:
        tm = torch.nn.Sequential(*[child(i, c) for i, c in enumerate(m)])
    elif type(m) is nn.Residual:
        tm = residual(child("body", m.body), None if m.shortcut is None else child("shortcut", m.shortcut))
    elif type(m) is nn.Concat:
        tm = concat(*[child(i, c) for i, c in enumerate(m)], dim=m.dim)
    else:
        tm = _layer_to_torch(torch, m, where or "the model")
        state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in m.state_dict().items()}
        tm.load_state_dict(state)
        for name, p in m.named_parameters():
            getattr(tm, name).requires_grad_(p.requires_grad)
    tm.training = bool(m.training)  # this module only: children already carry their own mode
    done[id(m)] = tm
    return tm


def to_torch(model: Module):
    """The torch equivalent of a strided model made of supported layers and containers, with its weights.

    ``Sequential`` becomes ``torch.nn.Sequential``; ``Residual`` and ``Concat``
    become the torch modules of :func:`torch_residual` and :func:`torch_concat`.
    """
    torch = _torch()
    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided.nn.Module, got {type(model).__name__}")
    return _convert_to_torch(torch, model, "", {})
