"""Losses: a value and the gradient with respect to the prediction.

Each ``*_forward(pred, target, reduction)`` returns ``(value, cache)`` and
``*_backward(cache)`` returns dL/dpred (for the reduced value). Formulas,
reductions and numerical safeguards follow torch:

    cross_entropy      L = logsumexp(z) - z[y]                 dz = (softmax(z) - onehot(y)) / N
    bce (seed 003)     L = -(t log p + (1 - t) log(1 - p))      dp = (p - t) / max(p (1 - p), 1e-12) / N
                       (each log clamped at -100, as torch)
    bce_with_logits    L = max(z, 0) - z t + log(1 + exp(-|z|))  dz = (sigmoid(z) - t) / N
    mse (seed 002)     L = (p - t)^2                            dp = 2 (p - t) / N

Logits of +-1e4 give a finite loss and gradient: nothing here exponentiates a
positive number.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks
from .activation import log_softmax, sigmoid

REDUCTIONS = ("mean", "sum", "none")
_BCE_EPS = np.float32(1e-12)


@dataclass
class LossCache:
    grad: np.ndarray          # dL/dpred for reduction='sum' (per-element derivative)
    reduction: str
    count: int                # what 'mean' divides by


def _reduce(per_sample: np.ndarray, reduction: str, count: int):
    if reduction == "none":
        return per_sample
    total = per_sample.sum(dtype=per_sample.dtype)
    return (total / per_sample.dtype.type(count)) if reduction == "mean" else total


def loss_backward(cache: LossCache, dloss=1.0) -> np.ndarray:
    """dL/dpred; ``dloss`` is the upstream gradient (an array of per-element weights for reduction='none')."""
    g = cache.grad
    if cache.reduction == "mean":
        g = g * g.dtype.type(1.0 / cache.count)
    if cache.reduction == "none" or np.ndim(dloss) or dloss != 1.0:
        dloss = np.asarray(dloss, dtype=g.dtype)
        if cache.reduction == "none" and dloss.ndim and dloss.shape != g.shape:
            dloss = dloss.reshape(dloss.shape + (1,) * (g.ndim - dloss.ndim))
        g = g * dloss
    return g


def _pred(pred, name="input"):
    pred = _checks.as_float_array(name, pred)
    _checks.nonempty(name, pred)
    return pred


def cross_entropy_forward(logits, target, reduction="mean", label_smoothing=0.0):
    """logits: (N, C) unnormalised scores, target: (N,) integer class labels in [0, C).

    Log-softmax and the negative log-likelihood fused, so it never takes the
    log of an underflowed probability.
    """
    logits = _pred(logits, "input")
    _checks.ndim("input", logits, 2, "(N, C)")
    _checks.choice("reduction", reduction, REDUCTIONS)
    ls = _checks.probability("label_smoothing", label_smoothing)
    target = np.asarray(target)
    n, c = logits.shape
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class labels, got dtype {target.dtype}")
    if target.shape != (n,):
        raise ValueError(f"target must have shape ({n},) to match input {tuple(logits.shape)}, got {tuple(target.shape)}")
    if target.size and (target.min() < 0 or target.max() >= c):
        bad = target[(target < 0) | (target >= c)][0]
        raise ValueError(f"target contains label {int(bad)} outside [0, {c - 1}] for {c} classes")
    logp = log_softmax(logits, axis=1)
    rows = np.arange(n)
    per = -logp[rows, target]
    grad = np.exp(logp)
    if ls:
        per = (1 - ls) * per - (ls / c) * logp.sum(axis=1)
        grad -= logits.dtype.type(ls / c)
        grad[rows, target] -= logits.dtype.type(1 - ls)
    else:
        grad[rows, target] -= 1
    per = per.astype(logits.dtype, copy=False)
    return _reduce(per, reduction, n), LossCache(grad, reduction, n)


def bce_forward(prob, target, reduction="mean"):
    """prob: probabilities in [0, 1] (e.g. after a sigmoid), target: same shape, in [0, 1] (seed 003's log-loss)."""
    prob = _pred(prob, "input")
    target = _target_like(prob, target)
    _checks.choice("reduction", reduction, REDUCTIONS)
    if np.any((prob < 0) | (prob > 1)) or np.any(np.isnan(prob)):
        raise ValueError("input of BCELoss must be probabilities in [0, 1]; use BCEWithLogitsLoss for logits")
    with np.errstate(divide="ignore"):
        logp = np.maximum(np.log(prob), -100)
        log1mp = np.maximum(np.log1p(-prob), -100)
    per = -(target * logp + (1 - target) * log1mp)
    # torch's clamp is the float32 constant 1e-12 (9.9999999600e-13) in either precision
    grad = (prob - target) / np.maximum(prob * (1 - prob), prob.dtype.type(_BCE_EPS))
    return _reduce(per, reduction, prob.size), LossCache(grad, reduction, prob.size)


def bce_with_logits_forward(logits, target, reduction="mean"):
    """logits: any shape, target: same shape in [0, 1]; sigmoid and log-loss fused for stability."""
    logits = _pred(logits, "input")
    target = _target_like(logits, target)
    _checks.choice("reduction", reduction, REDUCTIONS)
    per = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    grad = sigmoid(logits) - target
    return _reduce(per, reduction, logits.size), LossCache(grad, reduction, logits.size)


def mse_forward(pred, target, reduction="mean"):
    """pred and target of the same shape; mean squared error (seed 002)."""
    pred = _pred(pred, "input")
    target = _target_like(pred, target)
    _checks.choice("reduction", reduction, REDUCTIONS)
    diff = pred - target
    return _reduce(diff * diff, reduction, pred.size), LossCache(2 * diff, reduction, pred.size)


def _target_like(pred, target):
    target = _checks.as_float_array("target", target, dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ValueError(f"target must have the input's shape {tuple(pred.shape)}, got {tuple(target.shape)}")
    return target.astype(pred.dtype, copy=False)
