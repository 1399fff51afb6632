"""A model's layers in a table: output shapes, parameter counts and multiply-adds, as torchinfo shows them.

:func:`summary` runs one forward pass of zeros through the model in
evaluation mode (so batch-norm statistics and dropout stay untouched) with
forward pre-hooks and hooks on every module, containers (``Sequential``, ``Residual``,
``Concat``) included, and records one row per call in the order the calls
begin, so a container comes before what it contains:

    Layer (type)               Output shape        Param #     Mult-adds
    0 (Conv2d)                 (1, 16, 28, 28)         144       112,896
    ...

Multiply-adds count the products of a layer with its weights, per batch:

    Conv2d:           y.size * (in_channels / groups) * kh * kw     (y: (N, C_out, OH, OW))
    ConvTranspose2d:  x.size * (out_channels / groups) * kh * kw    (x: (N, C_in, H, W))
    Linear:           y.size * in_features

Other layers (activations, pooling, normalisation) count none: their work is
a few element-wise operations per value, small beside these. Biases are
additions, not multiply-adds. A container's row shows only the parameters it
holds itself (usually none: its children's rows have them); a module called
twice shows its parameters once.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from . import _checks
from . import nn
from .nn import Module


@dataclass(frozen=True)
class LayerSummary:
    """One module call: ``name`` (its dotted name in the model, ``''`` for the model), its type, its depth
    in the tree, its output shape, the parameters it holds itself (not its children's; 0 for a repeated call)
    and its multiply-adds (0 for a container: its children count theirs)."""
    name: str
    type: str
    depth: int
    output_shape: tuple
    num_params: int
    mult_adds: int
    container: bool


@dataclass
class ModelSummary:
    """What :func:`summary` returns; ``str()`` of it is the table it prints."""
    input_shape: tuple
    output_shape: tuple
    dtype: np.dtype
    layers: list = field(default_factory=list)      # LayerSummary, a container before its children
    total_params: int = 0
    trainable_params: int = 0
    total_mult_adds: int = 0

    def __str__(self) -> str:
        rows = [("Layer (type)", "Output shape", "Param #", "Mult-adds")]
        for layer in self.layers:
            if not layer.name:
                continue
            label = "  " * (layer.depth - 1) + f"{layer.name} ({layer.type})"
            params = "--" if layer.container and not layer.num_params else f"{layer.num_params:,}"
            counts = (params, "--" if layer.container else f"{layer.mult_adds:,}")
            rows.append((label, str(layer.output_shape), *counts))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        line = "=" * (sum(widths) + 6)

        def fmt(r):
            return f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}"

        size_mb = self.total_params * self.dtype.itemsize / 1e6
        return "\n".join([
            line, fmt(rows[0]), line, *(fmt(r) for r in rows[1:]), line,
            f"Input shape: {self.input_shape}, output shape: {self.output_shape}, dtype: {self.dtype}",
            f"Total params: {self.total_params:,} ({size_mb:.2f} MB)",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Total mult-adds: {self.total_mult_adds:,}",
            line,
        ])


def mult_adds(module: Module, x: np.ndarray, y: np.ndarray) -> int:
    """The multiply-adds of one call of ``module`` with input x and output y (see the module docstring)."""
    if isinstance(module, nn.Conv2d):
        return int(y.size * module.weight.size // module.out_channels)
    if isinstance(module, nn.ConvTranspose2d):
        return int(x.size * module.weight.size // module.in_channels)
    if isinstance(module, nn.Linear):
        return int(y.size * module.in_features)
    return 0


def summary(model: Module, input_shape, dtype=None, *, file=None, verbose: bool = True) -> ModelSummary:
    """Each layer's output shape, parameter count and multiply-adds for one input batch, and the totals.

    Args:
        model: any Module; containers are walked to their leaves.
        input_shape: the shape of one input batch, batch axis included, e.g. ``(1, 1, 28, 28)``.
        dtype: the input's dtype (default: the model's).
        file: where the table goes (default: standard output); ``verbose=False`` prints nothing.

    Returns:
        ModelSummary: ``layers`` (one LayerSummary per module call, a container
        before its children), the totals, and as ``str()`` the printed table.

    The model runs once on zeros in evaluation mode (its parameters and
    buffers unchanged) and is put back in the mode it was in.

    Examples::

        >>> s = strided.summary(strided.models.lenet5(), (1, 1, 28, 28), verbose=False)
        >>> s.total_params, s.output_shape
        (61706, (1, 10))
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a strided Module, got {type(model).__name__}")
    shape = _input_shape(input_shape)
    dt = model.dtype if dtype is None else _checks.dtype_of("dtype", dtype)
    names = {id(m): name for name, m in model.named_modules()}
    calls: list[list] = []      # [module, depth, input, output] in the order the calls begin
    open_calls: list[int] = []  # the calls under way, outermost first

    def begin(m, args):
        open_calls.append(len(calls))
        calls.append([m, len(open_calls) - 1, args[0] if args else None, None])

    def end(m, args, out):
        calls[open_calls.pop()][3] = out

    modules = list(model.modules())
    handles = [h for m in modules for h in (m.register_forward_pre_hook(begin), m.register_forward_hook(end))]
    modes = [m.training for m in modules]
    model.eval()
    try:
        model(np.zeros(shape, dt))
    finally:
        for h in handles:
            h.remove()
        for m, mode in zip(modules, modes):
            m.train(mode)
    seen: set[int] = set()
    layers = []
    for m, depth, x, y in calls:
        own = 0
        for pname, p in m.named_parameters():
            if "." not in pname and id(p) not in seen:       # its own parameters, not its children's
                seen.add(id(p))
                own += p.size
        container = next(m.children(), None) is not None
        y0 = y[0] if isinstance(y, tuple) else y
        macs = 0 if container else mult_adds(m, np.asarray(x), np.asarray(y0))
        layers.append(LayerSummary(names[id(m)], type(m).__name__, depth, tuple(np.shape(y0)), own, macs, container))
    result = ModelSummary(shape, layers[0].output_shape, np.dtype(dt), layers, model.num_parameters(),
                          model.num_parameters(trainable_only=True), sum(r.mult_adds for r in layers))
    if verbose:
        print(result, file=sys.stdout if file is None else file)
    return result


def _input_shape(input_shape) -> tuple:
    if not isinstance(input_shape, (tuple, list)) or not input_shape or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape must be a tuple of positive ints with the batch axis first, such as "
                         f"(1, 1, 28, 28), got {input_shape!r}")
    return tuple(int(s) for s in input_shape)
