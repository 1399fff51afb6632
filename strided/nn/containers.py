"""``Residual`` and ``Concat``: containers whose children see the same input (``Sequential`` is in module.py).

Each backward is written out by hand, like every layer's: the output
gradient goes to every branch and the branches' input gradients are added,
because the input fanned out to all of them. Branches run backward in the
reverse order of their forward calls, which keeps a module used in several
branches correct (see :mod:`strided.nn.module`).
"""
from __future__ import annotations

import numpy as np

from .. import _checks
from .._checks import grad_output
from .._memory import empty_like
from .._parallel import elementwise
from .module import Module


def _sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b for two arrays of one shape: in a's memory order, over the thread pool, in a buffer kept between steps.

    (Arrays of different dtypes are added by NumPy, with its promotion.)
    """
    if a.dtype != b.dtype:
        return a + b
    out = empty_like(a)
    elementwise(lambda o, x, y: np.add(x, y, out=o), out, a, b)
    return out


def _module(name: str, value) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{name} must be a strided.nn.Module, got {type(value).__name__}")
    return value


class Residual(Module):
    r"""y = body(x) + shortcut(x); the shortcut is the identity when None (a ResNet block).

    Args:
        body: the module computing the residual (e.g. conv-BN-ReLU-conv-BN).
        shortcut: a module mapping x to body's output shape (e.g. a strided
            1x1 conv and batch norm when the block changes resolution or
            channels), or None for the identity.

    The children are named ``body`` and ``shortcut``, so the state-dict keys
    are ``body.<...>`` and ``shortcut.<...>``: a torch module with the same
    attribute names and forward (:func:`strided.io.torch_residual`) loads
    with ``load_state_dict``. Backward sends dy through both branches and
    adds the two input gradients.

    Shape:
        - Input: whatever ``body`` (and ``shortcut``) take.
        - Output: ``body``'s output shape, which ``shortcut``'s must equal
          (no broadcasting: a mismatch raises ValueError naming both shapes).

    Examples::

        >>> block = nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        ...                                   nn.Conv2d(8, 8, 3, padding=1)))
        >>> block(np.zeros((2, 8, 5, 5), np.float32)).shape
        (2, 8, 5, 5)
    """

    def __init__(self, body, shortcut=None):
        self.body = _module("body", body)
        self.shortcut = None if shortcut is None else _module("shortcut", shortcut)
        self._cache = None

    def forward(self, x):
        """x: any shape ``body`` takes -> body(x) + shortcut(x), of body's output shape."""
        if self.shortcut is None:
            x = _checks.as_float_array("x", x)
        y_body = self.body(x)
        y = self.combine(y_body, x if self.shortcut is None else self.shortcut(x))
        self._cache = (y.shape, y.dtype)
        return y

    def combine(self, y_body, y_shortcut):
        """The two branches' outputs -> their sum (the same shape: ValueError naming both shapes otherwise)."""
        y_body, y_shortcut = np.asarray(y_body), np.asarray(y_shortcut)
        if y_body.shape != y_shortcut.shape:
            where = "the input (identity shortcut)" if self.shortcut is None else "shortcut"
            raise ValueError(
                f"Residual: body's output has shape {tuple(y_body.shape)} but {where} has shape "
                f"{tuple(y_shortcut.shape)}; they must be equal (give a shortcut that maps x to body's shape, "
                "e.g. a 1x1 Conv2d with the body's stride and output channels)"
            )
        return _sum(y_body, y_shortcut)

    def backward(self, dy, need_input_grad=True):
        """dy: (body's output shape) -> dL/dx = body.backward(dy) + shortcut.backward(dy) (or + dy for the identity).

        None when ``need_input_grad`` is False (the branches still add their parameter gradients).
        """
        dy = grad_output(dy, *self._need_cache(self._cache))
        # the shortcut ran after the body: it goes back first
        dx_short = dy if self.shortcut is None else self.shortcut.backward(dy, need_input_grad=need_input_grad)
        dx_body = self.body.backward(dy, need_input_grad=need_input_grad)
        if not need_input_grad:
            return None
        return _sum(dx_body, dx_short)

    def extra_repr(self) -> str:
        return "shortcut=identity" if self.shortcut is None else ""


class Concat(Module):
    r"""The branches' outputs joined along ``dim`` (channels by default): an Inception-style split-and-join.

    Args:
        *branches: modules that each take the same input x; their outputs
            must agree in every dimension except ``dim``.
        dim: the dimension to concatenate along (negative counts from the end), as ``torch.cat``.

    Children are named ``0``, ``1``, ... (state-dict keys ``0.weight``...).
    Backward splits dy along ``dim`` into the branches' pieces, runs each
    branch backward on its piece and adds their input gradients.

    Shape:
        - Input: whatever every branch takes.
        - Output: the branches' common shape, with the sizes along ``dim`` summed.

    Examples::

        >>> m = nn.Concat(nn.Conv2d(3, 4, 1), nn.Conv2d(3, 2, 3, padding=1))
        >>> m(np.zeros((2, 3, 8, 8), np.float32)).shape
        (2, 6, 8, 8)
    """

    def __init__(self, *branches, dim=1):
        if not branches:
            raise ValueError("Concat needs at least one branch, got none")
        for i, branch in enumerate(branches):
            _module(f"Concat branch {i}", branch)
            setattr(self, str(i), branch)
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Concat dim must be an int, got {dim!r}")
        self.dim = int(dim)
        self._cache = None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def forward(self, x):
        """x: any shape the branches take -> (their outputs joined along dim)."""
        outs = [branch(x) for branch in self._modules.values()]
        y = self.combine(outs)
        self._cache = ([o.shape[self._axis(y.ndim)] for o in outs], y.shape, y.dtype)
        return y

    def _axis(self, ndim: int) -> int:
        if not -ndim <= self.dim < ndim:
            raise ValueError(f"Concat dim={self.dim} is out of range for outputs with {ndim} dimensions: "
                             f"expected in [{-ndim}, {ndim - 1}]")
        return self.dim % ndim

    def combine(self, outs):
        """[branch outputs] -> one array joined along dim (ValueError listing the shapes if they do not fit)."""
        outs = [np.asarray(o) for o in outs]
        shapes = [tuple(o.shape) for o in outs]
        ndims = {len(s) for s in shapes}
        if len(ndims) != 1:
            raise ValueError(f"Concat: the branches' outputs have different numbers of dimensions: {shapes}")
        axis = self._axis(ndims.pop())
        if len({s[:axis] + s[axis + 1:] for s in shapes}) != 1:
            raise ValueError(f"Concat: the branches' outputs must agree in every dimension except dim={self.dim}, "
                             f"got shapes {shapes}")
        if len({o.dtype for o in outs}) != 1:
            raise TypeError(f"Concat: the branches' outputs have different dtypes {[str(o.dtype) for o in outs]}")
        return np.concatenate(outs, axis=axis)

    def backward(self, dy, need_input_grad=True):
        """dy: (the output's shape) -> the sum of each branch's input gradient for its slice of dy."""
        sizes, shape, dtype = self._need_cache(self._cache)
        dy = grad_output(dy, shape, dtype)
        pieces = np.split(dy, np.cumsum(sizes)[:-1], axis=self._axis(len(shape)))
        branches = list(self._modules.values())
        dx = None
        for branch, piece in zip(reversed(branches), reversed(pieces)):  # reverse order of the forward calls
            g = branch.backward(piece, need_input_grad=need_input_grad)
            if need_input_grad:
                dx = g if dx is None else dx + g
        return dx

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
