"""Adagrad (torch's formulas: learning-rate decay, weight decay, initial accumulator)."""
from __future__ import annotations

import numpy as np

from .. import _checks
from .optimizer import Optimizer, flag


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``: step sizes shrink with the sum of all squared gradients seen so far.

    For each parameter ``p`` with gradient ``g``, at step t = 1, 2, ...::

        g   = g + weight_decay * p
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s   = s + g * g                    ("sum", starts at initial_accumulator_value)
        p   = p - lr_t * g / (sqrt(s) + eps)

    Elements that keep receiving large gradients slow down; rarely updated
    ones keep a large step. State per parameter: ``step`` and ``sum``.
    """

    _state_arrays = ("sum",)
    _state_counters = ("step",)

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _check_options(self, o: dict, name) -> dict:
        return {
            "lr_decay": _checks.positive_float(name("lr_decay"), o["lr_decay"], allow_zero=True),
            "weight_decay": _checks.positive_float(name("weight_decay"), o["weight_decay"], allow_zero=True),
            "initial_accumulator_value": _checks.positive_float(
                name("initial_accumulator_value"), o["initial_accumulator_value"], allow_zero=True),
            "eps": _checks.positive_float(name("eps"), o["eps"], allow_zero=True),
            "maximize": flag(name("maximize"), o["maximize"]),
        }

    def _update(self, p, grad, state, group) -> None:
        step = state["step"] = state.get("step", 0) + 1
        total = self._state_array(state, "sum", p, fill=float(group["initial_accumulator_value"]))
        clr = float(group["lr"]) / (1 + (step - 1) * float(group["lr_decay"]))
        g = self._direction(p, grad, float(group["weight_decay"]), group["maximize"])

        tmp = self._scratch(p, 1)
        total += np.multiply(g, g, out=tmp)
        std = np.sqrt(total, out=tmp)
        std += float(group["eps"])
        update = np.multiply(g, -clr, out=self._scratch(p, 0))
        update /= std
        p.data += update
