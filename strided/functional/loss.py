"""Losses: a value and the gradient with respect to the prediction.

Each ``*_forward(pred, target, reduction, ...)`` returns ``(value, cache)`` and
``loss_backward(cache)`` returns dL/dpred for the reduced value. Formulas,
reductions and numerical safeguards follow torch (w: the optional weights,
p = softmax(z), e = onehot(y), eps = label_smoothing, C classes):

    cross_entropy      L = (1 - eps) w[y] (-logp[y]) + eps/C sum_c w[c] (-logp[c])
                       dz = (1 - eps) w[y] (p - e) + eps/C (p sum_c w[c] - w)
    nll                L = -w[y] x[y]                           dx = -w[y] e
    bce (write-up 003)     L = -w (t log p + (1 - t) log(1 - p))     dp = w (p - t) / max(p (1 - p), 1e-12)
                       (each log clamped at -100, as torch)
    bce_with_logits    L = w ((1 - t) z + l softplus(-z))        dz = w (l sigmoid(z) - pw t)
                       with l = 1 + (pw - 1) t  (pw = pos_weight; 1 without it)
    mse (write-up 002)     L = (p - t)^2                            dp = 2 (p - t)

``reduction='mean'`` divides the sum by the number of elements, except for
cross_entropy and nll, which divide by the total weight of the targets
(sum of w[y], or their count without weights). Targets equal to
``ignore_index`` contribute nothing, not even to that total, so a batch
whose targets are all ignored has the mean 0/0 = nan and a zero gradient,
as in torch.

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
    grad: np.ndarray          # dL/dpred of the reduced value (what backward returns for dloss = 1)
    reduction: str


def _reduce(per: np.ndarray, grad: np.ndarray, reduction: str, count: int):
    """(value, cache) from per-element losses and their derivatives; 'mean' divides both by ``count``."""
    if reduction == "none":
        return per, LossCache(grad, reduction)
    total = per.sum(dtype=per.dtype)
    if reduction == "sum":
        return total, LossCache(grad, reduction)
    return total / per.dtype.type(count), LossCache(grad * grad.dtype.type(1.0 / count), reduction)


def loss_backward(cache: LossCache, dloss=1.0) -> np.ndarray:
    """dL/dpred; ``dloss`` is the upstream gradient (an array of per-element weights for reduction='none')."""
    g = cache.grad
    if cache.reduction == "none" or np.ndim(dloss) or dloss != 1.0:
        dloss = np.asarray(dloss, dtype=g.dtype)
        if cache.reduction == "none" and dloss.ndim and dloss.shape != g.shape:
            dloss = dloss.reshape(dloss.shape + (1,) * (g.ndim - dloss.ndim))
        return g * dloss
    return g.copy()  # the caller may modify it; the cache stays valid for another backward


def _pred(pred, name="input"):
    pred = _checks.as_float_array(name, pred)
    _checks.nonempty(name, pred)
    return pred


# ----------------------------------------------------------------------------- class labels: cross entropy, nll
def _labels(target, n: int, c: int, ignore_index: int):
    """target: (N,) integer labels, as int64, and the mask of those not equal to ``ignore_index``."""
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class labels, got dtype {target.dtype}")
    if target.shape != (n,):
        raise ValueError(f"target must have shape ({n},) to match input ({n}, {c}), got {tuple(target.shape)}")
    target = target.astype(np.int64, copy=False)
    keep = target != ignore_index
    bad = keep & ((target < 0) | (target >= c))
    if bad.any():
        raise ValueError(f"target contains label {int(target[bad][0])} outside [0, {c - 1}] for {c} classes "
                         f"(labels equal to ignore_index={ignore_index} are skipped)")
    return target, keep


def _class_weight(weight, c: int, dtype, input_shape) -> np.ndarray | None:
    """``weight`` checked to hold one value per class, shape (C,), in the input's dtype (None stays None)."""
    if weight is None:
        return None
    w = _checks.as_float_array("weight", weight)
    if w.shape != (c,):
        raise ValueError(f"weight must hold one value per class: shape ({c},) for input of shape "
                         f"{tuple(input_shape)}, got shape {tuple(w.shape)}")
    return w.astype(dtype, copy=False)


def _class_args(pred, target, reduction, weight, ignore_index):
    """Every check of cross_entropy and nll, before any work: (pred, labels, kept mask, weight)."""
    pred = _pred(pred, "input")
    _checks.ndim("input", pred, 2, "(N, C)")
    _checks.choice("reduction", reduction, REDUCTIONS)
    n, c = pred.shape
    labels, keep = _labels(target, n, c, _checks.integer("ignore_index", ignore_index))
    return pred, labels, keep, _class_weight(weight, c, pred.dtype, pred.shape)


def _class_loss(logp, labels, keep, w, reduction, label_smoothing=0.0, through_softmax=False):
    """Per-class losses on logp: (N, C) (cross entropy's log-softmax, or nll's input); ``(value, cache)``.

    The gradient follows torch's own chain (dL/dlogp, then log-softmax's
    backward for cross entropy), so a mean over a zero total weight gives
    torch's nan exactly where torch has it.
    """
    n, c = logp.shape
    dt = logp.dtype
    rows = np.arange(n)
    eps = label_smoothing
    # ignored rows (their label may be any number) read class 0, then count for nothing
    safe = np.where(keep, labels, 0)
    logp_y = np.where(keep, logp[rows, safe], dt.type(0))
    wy = keep.astype(dt) if w is None else np.where(keep, w[safe], dt.type(0))
    nll = -wy * logp_y
    smooth = None
    if eps:
        smooth = np.where(keep, -(logp.sum(axis=1) if w is None else logp @ w), dt.type(0))

    if reduction == "mean":
        total = wy.sum(dtype=dt)
        with np.errstate(divide="ignore", invalid="ignore"):
            # each part over the total as torch, so a zero total gives its nan (0/0), not inf (x/0)
            value = nll.sum(dtype=dt) / total
            if eps:
                value = dt.type(1 - eps) * value + dt.type(eps / c) * (smooth.sum(dtype=dt) / total)
            scale = dt.type(1) / total          # inf for a zero total: torch's nan and inf follow
    else:
        per = nll if not eps else dt.type(1 - eps) * nll + dt.type(eps / c) * smooth
        value = per.astype(dt, copy=False) if reduction == "none" else per.sum(dtype=dt)
        scale = dt.type(1)
    with np.errstate(invalid="ignore"):
        g = np.zeros((n, c), dtype=dt)         # dL/dlogp; ignored rows stay exactly 0
        g[rows[keep], labels[keep]] = -dt.type(1 - eps) * wy[keep] * scale
        if eps:
            g[keep] -= dt.type(eps / c) * (np.ones(c, dt) if w is None else w) * scale
        if through_softmax:                    # log-softmax's backward: dz = g - softmax(z) * sum(g)
            g -= np.exp(logp) * g.sum(axis=1, keepdims=True)
    return value, LossCache(g, reduction)


def cross_entropy_forward(logits, target, reduction="mean", label_smoothing=0.0, weight=None, ignore_index=-100):
    """logits: (N, C) unnormalised scores, target: (N,) integer class labels in [0, C) or ``ignore_index``.

    ``weight``: (C,) per-class weights or None. Log-softmax and the negative
    log-likelihood fused, so it never takes the log of an underflowed probability.
    """
    ls = _checks.probability("label_smoothing", label_smoothing)
    logits, labels, keep, w = _class_args(logits, target, reduction, weight, ignore_index)
    return _class_loss(log_softmax(logits, axis=1), labels, keep, w, reduction, ls, through_softmax=True)


def nll_forward(logp, target, reduction="mean", weight=None, ignore_index=-100):
    """logp: (N, C) log-probabilities (e.g. log_softmax's output), target: (N,) labels in [0, C) or ``ignore_index``.

    L = -weight[y] * logp[y]: cross entropy without the log-softmax.
    """
    logp, labels, keep, w = _class_args(logp, target, reduction, weight, ignore_index)
    return _class_loss(logp, labels, keep, w, reduction)


# ----------------------------------------------------------------------------- element-wise losses
def _elementwise_weight(name: str, weight, pred: np.ndarray) -> np.ndarray | None:
    """``weight`` checked to broadcast to pred's shape (without enlarging it), in pred's dtype (None stays None)."""
    if weight is None:
        return None
    w = _checks.as_float_array(name, weight)
    try:
        fits = np.broadcast_shapes(w.shape, pred.shape) == pred.shape
    except ValueError:
        fits = False
    if not fits:
        what = "one weight per class along the last axis, or any shape" if name == "pos_weight" else "a shape"
        raise ValueError(f"{name} must have {what} that broadcasts to the input's shape {tuple(pred.shape)}, "
                         f"got shape {tuple(w.shape)}")
    return w.astype(pred.dtype, copy=False)


def bce_forward(prob, target, reduction="mean", weight=None):
    """prob: probabilities in [0, 1] (e.g. after a sigmoid), target: same shape, in [0, 1] (write-up 003's log-loss).

    ``weight``: None or an array broadcasting to prob's shape that scales each element's loss.
    """
    prob = _pred(prob, "input")
    target = _target_like(prob, target)
    _checks.choice("reduction", reduction, REDUCTIONS)
    w = _elementwise_weight("weight", weight, prob)
    if np.any((prob < 0) | (prob > 1)) or np.any(np.isnan(prob)):
        raise ValueError("input of BCELoss must be probabilities in [0, 1]; use BCEWithLogitsLoss for logits")
    with np.errstate(divide="ignore"):
        logp = np.maximum(np.log(prob), -100)
        log1mp = np.maximum(np.log1p(-prob), -100)
    per = -(target * logp + (1 - target) * log1mp)
    # torch's clamp is the float32 constant 1e-12 (9.9999999600e-13) in either precision
    grad = (prob - target) / np.maximum(prob * (1 - prob), prob.dtype.type(_BCE_EPS))
    if w is not None:
        per, grad = per * w, grad * w
    return _reduce(per, grad, reduction, prob.size)


def bce_with_logits_forward(logits, target, reduction="mean", weight=None, pos_weight=None):
    """logits: any shape, target: same shape in [0, 1]; sigmoid and log-loss fused for stability.

    ``weight`` scales each element's loss; ``pos_weight`` scales the positive
    term t log(sigmoid(z)) (one value per class, along the last axis). Both
    broadcast to the logits' shape.
    """
    logits = _pred(logits, "input")
    target = _target_like(logits, target)
    _checks.choice("reduction", reduction, REDUCTIONS)
    w = _elementwise_weight("weight", weight, logits)
    pw = _elementwise_weight("pos_weight", pos_weight, logits)
    softplus_neg = np.log1p(np.exp(-np.abs(logits)))    # softplus(-z) - max(-z, 0)
    if pw is None:
        per = np.maximum(logits, 0) - logits * target + softplus_neg
        grad = sigmoid(logits) - target
    else:
        lw = 1 + (pw - 1) * target
        per = (1 - target) * logits + lw * (np.maximum(-logits, 0) + softplus_neg)
        grad = lw * sigmoid(logits) - pw * target
    if w is not None:
        per, grad = per * w, grad * w
    return _reduce(per, grad, reduction, logits.size)


def mse_forward(pred, target, reduction="mean"):
    """pred and target of the same shape; mean squared error (write-up 002)."""
    pred = _pred(pred, "input")
    target = _target_like(pred, target)
    _checks.choice("reduction", reduction, REDUCTIONS)
    diff = pred - target
    return _reduce(diff * diff, 2 * diff, reduction, pred.size)


def _target_like(pred, target):
    target = _checks.as_float_array("target", target, dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ValueError(f"target must have the input's shape {tuple(pred.shape)}, got {tuple(target.shape)}")
    return target.astype(pred.dtype, copy=False)
