"""Stochastic gradient descent, with momentum, dampening, Nesterov and weight decay (torch's formulas)."""
from __future__ import annotations

import numpy as np

from .. import _checks
from .optimizer import Optimizer, flag


class SGD(Optimizer):
    """``torch.optim.SGD``: the update rule of every seed (``W -= lr * dW``), plus momentum.

    For each parameter ``p`` with gradient ``g`` (same shape as ``p``), step t::

        g = g + weight_decay * p                           (if weight_decay)
        b = g                                              (t = 1)
        b = momentum * b + (1 - dampening) * g             (t > 1)
        g = g + momentum * b   if nesterov   else   g = b  (if momentum)
        p = p - lr * g

    (``g`` is negated first when ``maximize``.) State per parameter: the
    ``momentum_buffer`` ``b`` (only when momentum is used).
    """

    _state_arrays = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _check_options(self, o: dict, name) -> dict:
        out = {
            "momentum": _checks.positive_float(name("momentum"), o["momentum"], allow_zero=True),
            "dampening": _checks.probability(name("dampening"), o["dampening"]),
            "weight_decay": _checks.positive_float(name("weight_decay"), o["weight_decay"], allow_zero=True),
            "nesterov": flag(name("nesterov"), o["nesterov"]),
            "maximize": flag(name("maximize"), o["maximize"]),
        }
        if out["nesterov"] and (out["momentum"] == 0 or out["dampening"] != 0):
            raise ValueError(
                f"{name('nesterov')}=True needs momentum > 0 and dampening = 0, "
                f"got momentum={o['momentum']!r}, dampening={o['dampening']!r}"
            )
        return out

    def _update(self, p, grad, state, group) -> None:
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        d = self._direction(p, grad, float(group["weight_decay"]), group["maximize"])
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(d, dtype=p.data.dtype, copy=True)
            else:
                buf *= momentum
                if dampening != 0:
                    buf += np.multiply(d, 1.0 - dampening, out=self._scratch(p, 1))
                else:
                    buf += d
            if group["nesterov"]:
                look_ahead = np.multiply(buf, momentum, out=self._scratch(p, 1))
                look_ahead += d
                d = look_ahead
            else:
                d = buf
        p.data -= np.multiply(d, lr, out=self._scratch(p, 1))
