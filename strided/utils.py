"""Gradient clipping, as ``torch.nn.utils``: ``clip_grad_norm_`` and ``clip_grad_value_``.

Both change ``Parameter.grad`` in place between ``backward`` and
``optimizer.step()``, and skip parameters without a gradient::

    model.backward(crit.backward())
    total = strided.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()

``strided.train.fit(..., clip_grad_norm=1.0)`` does the same after every backward.
The formulas are torch's, in the gradients' own dtype.
"""
from __future__ import annotations

import numpy as np

from . import _checks
from .nn import Parameter

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters) -> list[np.ndarray]:
    """The gradients of ``parameters`` (one Parameter or an iterable of them) that exist, in order."""
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"parameters[{i}] must be a strided Parameter (e.g. from model.parameters()), "
                            f"got {type(p).__name__}")
    return [p.grad for p in params if p.grad is not None]


def _norm_type(norm_type) -> float:
    try:
        value = float(norm_type)  # torch accepts 'inf' as well as math.inf
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(norm_type, (bool, np.bool_)) or not value >= 0:
        raise ValueError(f"norm_type must be a number >= 0 or 'inf', got {norm_type!r}")
    return value


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so that their joint ``norm_type``-norm is at most ``max_norm``.

    The total norm is the norm of the vector of per-gradient norms (as if all
    gradients were one vector); every gradient is multiplied in place by
    ``min(max_norm / (total + 1e-6), 1)``, computed in the gradients' dtype.

    Args:
        parameters: one Parameter or an iterable of them (e.g. ``model.parameters()``).
        max_norm: the largest allowed total norm, >= 0.
        norm_type: p of the p-norm, > 0, or ``inf`` (largest absolute value); 0 counts non-zero entries.
        error_if_nonfinite: raise RuntimeError (as torch does) instead of scaling when the total norm is NaN or inf.

    Returns:
        The total norm before clipping, a float (0.0 when no parameter has a gradient).
    """
    grads = _grads(parameters)
    max_norm = _checks.positive_float("max_norm", max_norm, allow_zero=True)
    p = _norm_type(norm_type)
    _checks.boolean("error_if_nonfinite", error_if_nonfinite)
    if not grads:
        return 0.0
    norms = [np.linalg.norm(g.reshape(-1), ord=p) for g in grads]
    dtype = np.result_type(*grads)
    total = dtype.type(np.linalg.norm(np.array(norms, dtype=dtype), ord=p))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"the total norm of order {p} of the gradients is {total}, so it cannot be clipped; "
                           "pass error_if_nonfinite=False to scale the gradients by it anyway")
    coef = min(dtype.type(max_norm) / (total + dtype.type(1e-6)), dtype.type(1.0))
    with np.errstate(invalid="ignore"):  # an infinite gradient times 0 is NaN, as in torch
        for g in grads:
            g *= g.dtype.type(coef)
    return float(total)


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]``, in place.

    Args:
        parameters: one Parameter or an iterable of them.
        clip_value: the largest allowed absolute value, >= 0.
    """
    grads = _grads(parameters)
    clip_value = _checks.positive_float("clip_value", clip_value, allow_zero=True)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
