"""RMSprop (torch's formulas: centered variant, momentum, weight decay)."""
from __future__ import annotations

import numpy as np

from .. import _checks
from .optimizer import Optimizer, flag, lerp_


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``: divide the gradient by a running root-mean-square of recent gradients.

    For each parameter ``p`` with gradient ``g``::

        g   = g + weight_decay * p
        v   = alpha * v + (1 - alpha) * g * g        ("square_avg")
        a   = alpha * a + (1 - alpha) * g            ("grad_avg", if centered)
        s   = sqrt(v - a * a) if centered else sqrt(v)
        s   = s + eps
        b   = momentum * b + g / s ;  p = p - lr * b  (if momentum > 0, "momentum_buffer")
        p   = p - lr * g / s                          (otherwise)

    Centering subtracts the squared mean, so ``s`` estimates the gradient's
    standard deviation rather than its magnitude. State per parameter:
    ``step``, ``square_avg`` and, when used, ``grad_avg`` and ``momentum_buffer``.
    """

    _state_arrays = ("square_avg", "grad_avg", "momentum_buffer")
    _state_counters = ("step",)

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _check_options(self, o: dict, name) -> dict:
        return {
            "alpha": _checks.probability(name("alpha"), o["alpha"]),
            "eps": _checks.positive_float(name("eps"), o["eps"], allow_zero=True),
            "weight_decay": _checks.positive_float(name("weight_decay"), o["weight_decay"], allow_zero=True),
            "momentum": _checks.positive_float(name("momentum"), o["momentum"], allow_zero=True),
            "centered": flag(name("centered"), o["centered"]),
            "maximize": flag(name("maximize"), o["maximize"]),
        }

    def _update(self, p, grad, state, group) -> None:
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        momentum = float(group["momentum"])
        state["step"] = state.get("step", 0) + 1
        square_avg = self._state_array(state, "square_avg", p)
        tmp = self._scratch(p, 1)

        g = self._direction(p, grad, float(group["weight_decay"]), group["maximize"])
        square_avg *= alpha
        np.multiply(g, 1.0 - alpha, out=tmp)
        tmp *= g
        square_avg += tmp
        if group["centered"]:
            grad_avg = lerp_(self._state_array(state, "grad_avg", p), g, 1.0 - alpha, tmp)
            np.multiply(grad_avg, grad_avg, out=tmp)
            np.subtract(square_avg, tmp, out=tmp)
            avg = np.sqrt(tmp, out=tmp)
        else:
            avg = np.sqrt(square_avg, out=tmp)
        avg += float(group["eps"])

        # The scaled gradient goes into work array 0 (it may already hold g, which is used up here).
        if momentum > 0:
            buf = self._state_array(state, "momentum_buffer", p)
            buf *= momentum
            buf += np.divide(g, avg, out=self._scratch(p, 0))
            p.data -= np.multiply(buf, lr, out=tmp)
        else:
            update = np.multiply(g, -lr, out=self._scratch(p, 0))
            update /= avg
            p.data += update
