"""Numerical gradient checking by central differences in float64.

For a module ``m`` and input ``x`` we fix a random projection ``R`` of the
output and compare, for every input element and parameter entry,

    analytic   dL/dv from m.backward(R)          (L = sum(m(x) * R))
    numerical  (L(v + eps) - L(v - eps)) / (2 eps)

For a loss ``crit`` the scalar is ``crit(pred, target)`` itself and the
analytic gradient is ``crit.backward()`` (an unreduced loss, ``reduction='none'``,
is projected like a module's output and ``crit.backward(R)`` is checked).
Works on any object following the module contract, so users can check their
own layers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from . import _checks


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


@dataclass
class GradcheckResult:
    ok: bool
    max_abs_error: dict = field(default_factory=dict)   # name -> max |analytic - numerical|
    failures: list = field(default_factory=list)

    def __bool__(self):
        return self.ok


def _numerical(f, v: np.ndarray, eps: float) -> np.ndarray:
    g = np.zeros_like(v)
    flat, gflat = v.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def _compare(name, analytic, numerical, atol, rtol, result):
    if analytic is None:
        analytic = np.zeros_like(numerical)
    analytic = np.asarray(analytic, dtype=np.float64).reshape(numerical.shape)
    err = np.abs(analytic - numerical)
    result.max_abs_error[name] = float(err.max()) if err.size else 0.0
    bad = err > atol + rtol * np.abs(numerical)
    if bad.any():
        i = np.unravel_index(np.argmax(err - rtol * np.abs(numerical)), err.shape)
        result.failures.append(
            f"{name}: {int(bad.sum())} of {bad.size} entries differ; worst at {tuple(map(int, i))}: "
            f"analytic {analytic[i]:.8g} vs numerical {numerical[i]:.8g}"
        )


def gradcheck(module, x, target=None, *, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4,
              params: bool = True, seed: int = 0, raise_exception: bool = True) -> GradcheckResult:
    """Check ``module``'s backward against central differences, on a float64 copy of it.

    x: the input (any shape the module takes). With ``target`` given, ``module``
    is a loss: ``module(x, target)`` is the scalar and ``module.backward()`` its
    gradient. Parameters are checked too unless ``params=False``. Put layers
    with randomness (Dropout) in eval mode or seed them per call. The module
    itself is left untouched (a deep copy is checked) and so is x: each call
    gets a copy, so in-place layers (``ReLU(inplace=True)``) are checked too.

    Returns a :class:`GradcheckResult` (truthy when every entry agrees within
    ``atol + rtol * |numerical|``); raises :class:`GradcheckError` listing the
    worst entry of each failing tensor unless ``raise_exception=False``.

    Example::

        strided.gradcheck(nn.Conv2d(2, 3, 3, padding=1), np.random.randn(2, 2, 5, 5))
        strided.gradcheck(nn.CrossEntropyLoss(), logits, labels)
    """
    if not callable(module) or not callable(getattr(module, "backward", None)):
        raise TypeError(f"module must be callable and have a backward method, got {type(module).__name__}")
    eps = _checks.positive_float("eps", eps)
    atol = _checks.positive_float("atol", atol, allow_zero=True)
    rtol = _checks.positive_float("rtol", rtol, allow_zero=True)
    m = copy.deepcopy(module)
    if hasattr(m, "to"):
        m.to(np.float64)
    named = list(m.named_parameters()) if (params and hasattr(m, "named_parameters")) else []
    for _, p in named:
        # perturbations are written through a flat view, which needs contiguous data
        p.data = np.ascontiguousarray(p.data)
    if hasattr(m, "zero_grad"):
        m.zero_grad()
    x = np.array(_checks.as_float_array("x", x), dtype=np.float64, copy=True)
    result = GradcheckResult(ok=True)
    is_loss = target is not None

    # every call gets its own copy of x: an in-place layer (ReLU(inplace=True)) overwrites its input, which
    # would otherwise corrupt the point the differences are taken around
    if is_loss:
        value = m(x.copy(), target)
        if np.ndim(value) == 0:
            def scalar():
                return float(m(x.copy(), target))
            analytic_x = m.backward()
        else:
            proj = np.random.default_rng(seed).standard_normal(np.shape(value))

            def scalar():
                return float(np.sum(m(x.copy(), target) * proj))
            analytic_x = m.backward(proj)
    else:
        y = m(x.copy())
        proj = np.random.default_rng(seed).standard_normal(np.shape(y))

        def scalar():
            return float(np.sum(m(x.copy()) * proj))
        analytic_x = m.backward(proj)
    analytic_p = {n: (None if p.grad is None else p.grad.copy()) for n, p in named if p.requires_grad}
    _compare("input", analytic_x, _numerical(scalar, x, eps), atol, rtol, result)
    for n, p in named:
        if p.requires_grad:
            _compare(n, analytic_p[n], _numerical(scalar, p.data, eps), atol, rtol, result)
    result.ok = not result.failures
    if raise_exception and not result.ok:
        raise GradcheckError(f"gradcheck failed for {type(module).__name__}:\n  " + "\n  ".join(result.failures))
    return result
