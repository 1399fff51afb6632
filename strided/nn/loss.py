"""Loss modules: ``value = crit(pred, target)`` then ``dpred = crit.backward()``.

The constructors follow torch's: the first positional argument of
``CrossEntropyLoss``, ``NLLLoss``, ``BCELoss`` and ``BCEWithLogitsLoss`` is
``weight``, the others are passed by name (``MSELoss``'s too: torch's first
positional argument there is the deprecated ``size_average``, so a
reduction given by position would mean something else in torch). Weights are buffers, so they
appear in ``state_dict()`` under torch's names (``weight``, ``pos_weight``)
and follow ``.to(dtype)``; each forward uses them in the input's dtype.
"""
from __future__ import annotations

import numpy as np

from .. import _checks
from .. import functional as F
from .module import Module


def _weight(name: str, value, what: str, per_class: bool = False) -> np.ndarray | None:
    """A weight argument as a float array (None stays None); the input's shape is checked at each forward."""
    if value is None:
        return None
    if isinstance(value, str):
        hint = (f"; the reduction is passed by name, reduction={value!r} (the first argument is {name}, as in "
                "torch)") if value in F.loss.REDUCTIONS else ""
        raise TypeError(f"{name} must be None or an array of {what}, got the string {value!r}{hint}")
    w = _checks.as_float_array(name, value)
    if per_class and (w.ndim != 1 or w.size == 0):
        raise ValueError(f"{name} must be a 1-D array of {what}, got shape {tuple(w.shape)}")
    return w


def _short(a: np.ndarray) -> str:
    return np.array2string(a, precision=4, threshold=6, separator=", ")


class _Loss(Module):
    _fn = None

    def __init__(self, *args, reduction="mean"):
        if args:
            raise TypeError(f"{type(self).__name__} takes its arguments by name, e.g. reduction={args[0]!r}; got "
                            f"{len(args)} positional (in torch the first one would be the deprecated size_average)")
        self.reduction = _checks.choice("reduction", reduction, F.loss.REDUCTIONS)
        self._cache = None

    def _kwargs(self):
        return {}

    def forward(self, pred, target):
        value, self._cache = type(self)._fn(pred, target, self.reduction, **self._kwargs())
        return value

    def backward(self, dloss=1.0):
        """dL/dpred for the last forward; ``dloss`` scales it (per element for reduction='none')."""
        return F.loss_backward(self._need_cache(self._cache), dloss)

    def _options(self) -> list[str]:
        """Arguments beyond reduction and the weights that differ from their defaults, for repr."""
        return []

    def extra_repr(self):
        parts = [f"reduction={self.reduction!r}", *self._options()]
        parts += [f"{name}={_short(value)}" for name, value in self._buffers.items() if value is not None]
        return ", ".join(parts)


class _ClassLoss(_Loss):
    """Shared by the losses over class labels: per-class ``weight`` and ``ignore_index``."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(reduction=reduction)
        self.register_buffer("weight", _weight("weight", weight, "one weight per class, shape (C,)", True))
        self.ignore_index = _checks.integer("ignore_index", ignore_index)

    def _kwargs(self):
        return {"weight": self.weight, "ignore_index": self.ignore_index}

    def _options(self):
        return [f"ignore_index={self.ignore_index}"] if self.ignore_index != -100 else []


class CrossEntropyLoss(_ClassLoss):
    """Logits (N, C) and integer labels (N,): log-softmax and negative log-likelihood fused.

    As torch's: ``weight`` (C,) scales each class's loss and 'mean' divides by
    the total weight of the targets; targets equal to ``ignore_index`` count
    for nothing (all ignored: the mean is nan, as in torch); ``label_smoothing``
    eps mixes the one-hot target with the uniform distribution (weighted by
    ``weight`` when given, divided by the same total).

    The target may also hold class probabilities: a float array of the
    logits' own shape (``ignore_index`` must then stay negative; 'mean'
    divides by the number of positions, whatever the weights), as in torch.

    Shape: logits (N, C) with labels (N,); (N, C, d1, d2, ...) with labels
    (N, d1, d2, ...): a loss per position, e.g. per pixel of a segmentation;
    an unbatched (C,) with a 0-d label. reduction='none' gives a loss per
    position (the labels' shape); an empty batch gives nan for 'mean', 0 for 'sum'.
    """
    _fn = F.cross_entropy_forward

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction)
        self.label_smoothing = _checks.probability("label_smoothing", label_smoothing)

    def _kwargs(self):
        return {**super()._kwargs(), "label_smoothing": self.label_smoothing}

    def _options(self):
        return ([f"label_smoothing={self.label_smoothing}"] if self.label_smoothing else []) + super()._options()


class NLLLoss(_ClassLoss):
    """Log-probabilities (N, C) (e.g. after a log-softmax) and integer labels (N,): L = -weight[y] * input[y].

    ``weight``, ``ignore_index``, the weighted mean and the shapes ((N, C, d1, ...)
    with labels (N, d1, ...), an unbatched (C,)) as in :class:`CrossEntropyLoss`.
    """
    _fn = F.nll_forward


class BCELoss(_Loss):
    """Binary log-loss on probabilities (write-up 003); inputs in [0, 1], targets of the same shape.

    ``weight``: an array broadcasting to the input's shape that scales each
    element's loss ('mean' still divides by the number of elements, as torch).
    """
    _fn = F.bce_forward

    def __init__(self, weight=None, *, reduction="mean"):
        super().__init__(reduction=reduction)
        self.register_buffer("weight", _weight("weight", weight, "weights broadcasting to the input's shape"))

    def _kwargs(self):
        return {"weight": self.weight}


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary log-loss fused (stable for any logit).

    ``weight`` scales each element's loss; ``pos_weight`` (one value per
    class, along the last axis) scales the loss of positive targets, trading
    recall for precision as in torch. Both broadcast to the input's shape.
    """
    _fn = F.bce_with_logits_forward

    def __init__(self, weight=None, *, reduction="mean", pos_weight=None):
        super().__init__(reduction=reduction)
        self.register_buffer("weight", _weight("weight", weight, "weights broadcasting to the input's shape"))
        self.register_buffer("pos_weight", _weight("pos_weight", pos_weight,
                                                   "weights of positive targets broadcasting to the input's shape"))

    def _kwargs(self):
        return {"weight": self.weight, "pos_weight": self.pos_weight}


class MSELoss(_Loss):
    """Mean squared error (write-up 002)."""
    _fn = F.mse_forward
