"""Loss modules: ``value = crit(pred, target)`` then ``dpred = crit.backward()``."""
from __future__ import annotations

from .. import _checks
from .. import functional as F
from .module import Module


class _Loss(Module):
    _fn = None

    def __init__(self, reduction="mean"):
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

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Logits (N, C) and integer labels (N,): log-softmax and negative log-likelihood fused."""
    _fn = F.cross_entropy_forward

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.label_smoothing = _checks.probability("label_smoothing", label_smoothing)

    def _kwargs(self):
        return {"label_smoothing": self.label_smoothing}

    def extra_repr(self):
        s = super().extra_repr()
        return s + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class BCELoss(_Loss):
    """Binary log-loss on probabilities (seed 003); inputs in [0, 1], targets of the same shape."""
    _fn = F.bce_forward


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary log-loss fused (stable for any logit)."""
    _fn = F.bce_with_logits_forward


class MSELoss(_Loss):
    """Mean squared error (seed 002)."""
    _fn = F.mse_forward
