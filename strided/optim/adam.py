"""Adam and AdamW (torch's formulas, with AMSGrad)."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _checks
from .optimizer import Optimizer, flag, lerp_, unit_interval


class Adam(Optimizer):
    """``torch.optim.Adam``: per-element step sizes from running moments of the gradient.

    For each parameter ``p`` with gradient ``g``, at step t = 1, 2, ...::

        g  = g + weight_decay * p                 (L2 penalty; AdamW decays p instead)
        m  = beta1 * m + (1 - beta1) * g          (first moment, "exp_avg")
        v  = beta2 * v + (1 - beta2) * g * g      (second moment, "exp_avg_sq")
        v' = max(v', v)   if amsgrad   else v     ("max_exp_avg_sq")
        p  = p - lr / (1 - beta1**t) * m / (sqrt(v') / sqrt(1 - beta2**t) + eps)

    The ``1 - beta**t`` factors undo the bias of moments that start at zero.
    State per parameter: ``step`` (t), ``exp_avg``, ``exp_avg_sq`` and, with
    amsgrad, ``max_exp_avg_sq``. With ``decoupled_weight_decay`` (what
    :class:`AdamW` is) the decay is applied to the weights directly,
    ``p = p * (1 - lr * weight_decay)``, instead of through the gradient.
    """

    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _state_counters = ("step",)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def _check_options(self, o: dict, name) -> dict:
        betas = o["betas"]
        if isinstance(betas, np.ndarray):
            betas = betas.tolist()
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name('betas')} must be a pair (beta1, beta2), got {o['betas']!r}")
        if not all(isinstance(b, numbers.Real) and not isinstance(b, (bool, np.bool_)) for b in betas):
            raise TypeError(f"{name('betas')} must be a pair of numbers, got {o['betas']!r}")
        return {
            "betas": (unit_interval(f"{name('betas')}[0]", betas[0]), unit_interval(f"{name('betas')}[1]", betas[1])),
            "eps": _checks.positive_float(name("eps"), o["eps"], allow_zero=True),
            "weight_decay": _checks.positive_float(name("weight_decay"), o["weight_decay"], allow_zero=True),
            "amsgrad": flag(name("amsgrad"), o["amsgrad"]),
            "maximize": flag(name("maximize"), o["maximize"]),
            "decoupled_weight_decay": flag(name("decoupled_weight_decay"), o["decoupled_weight_decay"]),
        }

    def _update(self, p, grad, state, group) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        decoupled = group["decoupled_weight_decay"]
        step = state["step"] = state.get("step", 0) + 1
        exp_avg = self._state_array(state, "exp_avg", p)
        exp_avg_sq = self._state_array(state, "exp_avg_sq", p)
        tmp = self._scratch(p, 1)

        g = self._direction(p, grad, 0.0 if decoupled else weight_decay, group["maximize"])
        if decoupled and weight_decay != 0:
            p.data *= 1.0 - lr * weight_decay

        lerp_(exp_avg, g, 1.0 - beta1, tmp)
        exp_avg_sq *= beta2
        np.multiply(g, 1.0 - beta2, out=tmp)
        tmp *= g
        exp_avg_sq += tmp

        step_size = lr / (1.0 - beta1**step)
        bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
        second = exp_avg_sq
        if group["amsgrad"]:
            second = self._state_array(state, "max_exp_avg_sq", p)
            np.maximum(second, exp_avg_sq, out=second)
        # g is no longer needed: its work array takes the denominator.
        denom = np.sqrt(second, out=self._scratch(p, 0))
        denom /= bias_correction2_sqrt
        denom += eps
        update = np.multiply(exp_avg, -step_size, out=tmp)
        update /= denom
        p.data += update


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (Loshchilov & Hutter).

    Same as :class:`Adam` except that weight decay shrinks the weights
    directly, ``p = p * (1 - lr * weight_decay)``, rather than entering the
    moment estimates through the gradient; default ``weight_decay=1e-2``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)

    def _check_options(self, o: dict, name) -> dict:
        out = super()._check_options(o, name)
        if not out["decoupled_weight_decay"]:
            raise ValueError(f"{name('decoupled_weight_decay')} must be True for AdamW (use Adam for L2 decay), "
                             f"got {o['decoupled_weight_decay']!r}")
        return out
