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

cross_entropy and nll take (N, C) inputs with (N,) labels, (N, C, d1, d2, ...)
with (N, d1, d2, ...) labels (a loss per position, e.g. per pixel) or an
unbatched (C,) with a 0-d label; cross_entropy also takes class
probabilities, a float target of the input's own shape (then
L = -sum_c w[c] q[c] logp[c] with q = (1 - eps) target + eps/C).

``reduction='mean'`` divides the sum by the number of elements (of
positions, for probability targets), except for cross_entropy and nll
with labels, which divide by the total weight of the targets (sum of w[y]
over every position, or their count without weights). Targets equal to
``ignore_index`` contribute nothing, not even to that total, so a batch
whose targets are all ignored has the mean 0/0 = nan and a zero gradient,
as in torch; so has an empty batch, for every loss (its sum is 0).

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
    """(value, cache) from per-element losses and their derivatives; 'mean' divides both by ``count``.

    An empty input has the mean 0/0 = nan, as in torch (and an empty gradient).
    """
    if reduction == "none":
        return per, LossCache(grad, reduction)
    total = per.sum(dtype=per.dtype)
    if reduction == "sum":
        return total, LossCache(grad, reduction)
    dt = per.dtype.type
    with np.errstate(divide="ignore", invalid="ignore"):
        return total / dt(count), LossCache(grad * (dt(1) / dt(count)), reduction)


def loss_backward(cache: LossCache, dloss=1.0) -> np.ndarray:
    """dL/dpred; ``dloss`` is the upstream gradient (an array of per-element weights for reduction='none').

    For the class losses dloss has the per-element loss's shape, the input's
    without its class axis (axis 1, or 0 for an unbatched (C,) input).
    """
    _checks.cache(cache, LossCache, "a loss forward")
    g = cache.grad
    if cache.reduction == "none" or np.ndim(dloss) or dloss != 1.0:
        dloss = np.asarray(dloss, dtype=g.dtype)
        if cache.reduction == "none" and dloss.ndim and dloss.ndim == g.ndim - 1:
            dloss = np.expand_dims(dloss, 1)      # the class axis of (N, C, d1, ...)
        return g * dloss
    return g.copy()  # the caller may modify it; the cache stays valid for another backward


def _pred(pred, name="input"):
    return _checks.as_float_array(name, pred)


# ----------------------------------------------------------------------------- class labels: cross entropy, nll
# The input is (N, C), (N, C, d1, d2, ...) (a loss per position: per-pixel classification) or an
# unbatched (C,). The losses work on its rows: (M, C) with the class axis last, M = N * d1 * d2 * ...
_CLASS_LAYOUT = "(C,), (N, C) or (N, C, d1, d2, ...)"


def _to_rows(x: np.ndarray) -> np.ndarray:
    """(C,) -> (1, C); (N, C, d1, ...) -> (N * d1 * ..., C): the class axis last, one row per position."""
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim == 2:
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _from_rows(rows: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of :func:`_to_rows`: (M, C) back to the input's ``shape``, C-contiguous."""
    if len(shape) <= 2:
        return rows.reshape(shape)
    return np.ascontiguousarray(np.moveaxis(rows.reshape(shape[0], *shape[2:], shape[1]), -1, 1))


def _positions(shape: tuple) -> tuple:
    """The per-position shape (the input's without its class axis): what reduction='none' returns."""
    return () if len(shape) == 1 else (shape[0], *shape[2:])


def _labels(target, shape: tuple, c: int, ignore_index: int):
    """target: integer labels of the input's positions, as int64 rows (M,), and the mask of those kept."""
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class labels, got dtype {target.dtype}")
    expected = _positions(shape)
    if target.shape != expected:
        raise ValueError(f"target must have shape {expected} to match input {tuple(shape)}, got "
                         f"{tuple(target.shape)}")
    target = target.astype(np.int64, copy=False).reshape(-1)
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


def _class_args(pred, target, reduction, weight, ignore_index, probabilities: bool = False):
    """Every check of cross_entropy and nll, before any work.

    Returns (pred, labels (M,) or None, kept mask (M,) or None, class-probability rows (M, C) or None,
    weight). With ``probabilities`` (cross entropy) a float target of the input's own shape holds
    class probabilities, as in torch; otherwise the target holds labels.
    """
    pred = _pred(pred, "input")
    _checks.choice("reduction", reduction, REDUCTIONS)
    if pred.ndim == 0:
        raise ValueError(f"input must have 1 or more dimensions {_CLASS_LAYOUT}, got a 0-d array")
    c = pred.shape[0] if pred.ndim == 1 else pred.shape[1]
    if c == 0:
        raise ValueError(f"input must have at least one class (C > 0) in {_CLASS_LAYOUT}, got shape "
                         f"{tuple(pred.shape)}")
    ignore_index = _checks.integer("ignore_index", ignore_index)
    w = _class_weight(weight, c, pred.dtype, pred.shape)
    target_arr = np.asarray(target)
    if probabilities and target_arr.shape == pred.shape and pred.ndim:
        if target_arr.dtype.kind != "f":
            raise TypeError(f"target of the input's shape {tuple(pred.shape)} holds class probabilities and must "
                            f"be a float array, got dtype {target_arr.dtype} (labels have shape "
                            f"{_positions(pred.shape)})")
        if ignore_index >= 0:
            raise ValueError(f"ignore_index={ignore_index} cannot be used with class-probability targets (as in "
                             "torch); leave it at its default -100")
        prob = _checks.as_float_array("target", target_arr).astype(pred.dtype, copy=False)
        return pred, None, None, _to_rows(prob), w
    labels, keep = _labels(target_arr, pred.shape, c, ignore_index)
    return pred, labels, keep, None, w


def _class_loss(logp, labels, keep, w, reduction, label_smoothing=0.0, through_softmax=False):
    """Per-class losses on logp: (M, C) (cross entropy's log-softmax, or nll's input); ``(value, grad rows)``.

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
    return value, g


def _probability_loss(logp, prob, w, reduction, label_smoothing):
    """Cross entropy against class probabilities, as torch: ``(value, grad rows)``, logp and prob: (M, C).

    q = (1 - eps) prob + eps/C; L = -sum_c w[c] q[c] logp[c] per row; 'mean' divides
    by the number of rows M (not by the weights; nan for M = 0, as torch).
    """
    n, c = logp.shape
    dt = logp.dtype
    q = prob * dt.type(1 - label_smoothing) + dt.type(label_smoothing / c) if label_smoothing else prob
    wq = q if w is None else q * w
    if reduction == "none":
        value, scale = -(wq * logp).sum(axis=1), dt.type(1)
    else:
        value, scale = -(wq * logp).sum(dtype=dt), dt.type(1)
        if reduction == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                value, scale = value / dt.type(n), dt.type(1) / dt.type(n)
    g = -wq * scale                                  # dL/dlogp
    g -= np.exp(logp) * g.sum(axis=1, keepdims=True)  # log-softmax's backward
    return value, g


def _class_result(value, g_rows, pred_shape, reduction):
    """The value (per position for 'none', in the input's layout) and the cache (gradient in the input's shape)."""
    if reduction == "none":
        value = value.reshape(_positions(pred_shape))
    return value, LossCache(_from_rows(g_rows, pred_shape), reduction)


def cross_entropy_forward(logits, target, reduction="mean", label_smoothing=0.0, weight=None, ignore_index=-100):
    """Cross entropy of logits: (N, C), (N, C, d1, d2, ...) or (C,) unnormalised scores, as torch's.

    target: integer class labels in [0, C) or ``ignore_index``, of the input's
    shape without the class axis: (N,), (N, d1, d2, ...) or () — or class
    probabilities, a float array of the input's own shape (``ignore_index``
    must then stay negative). ``weight``: (C,) per-class weights or None.
    Returns ``(value, cache)``: value is a scalar, or per position (the
    target's shape) for reduction='none'. Log-softmax and the negative
    log-likelihood fused, so it never takes the log of an underflowed probability.
    """
    ls = _checks.probability("label_smoothing", label_smoothing)
    logits, labels, keep, prob, w = _class_args(logits, target, reduction, weight, ignore_index, probabilities=True)
    logp = log_softmax(_to_rows(logits), axis=1)
    if prob is not None:
        value, g = _probability_loss(logp, prob, w, reduction, ls)
    else:
        value, g = _class_loss(logp, labels, keep, w, reduction, ls, through_softmax=True)
    return _class_result(value, g, logits.shape, reduction)


def nll_forward(logp, target, reduction="mean", weight=None, ignore_index=-100):
    """logp: (N, C), (N, C, d1, ...) or (C,) log-probabilities (e.g. log_softmax's output).

    target: labels in [0, C) or ``ignore_index``, of shape (N,), (N, d1, ...) or ().
    L = -weight[y] * logp[y]: cross entropy without the log-softmax.
    """
    logp, labels, keep, _, w = _class_args(logp, target, reduction, weight, ignore_index)
    value, g = _class_loss(_to_rows(logp), labels, keep, w, reduction)
    return _class_result(value, g, logp.shape, reduction)


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
