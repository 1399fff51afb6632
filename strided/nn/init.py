"""Weight initialisation with torch's defaults.

torch initialises ``Conv2d`` and ``Linear`` weights with
``kaiming_uniform_(a=sqrt(5))``, which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
and biases with the same bound. fan_in = in_features, or in_channels/groups * kh * kw.
"""
from __future__ import annotations

import math

import numpy as np

from .. import random as _random


def uniform_fan_in(shape, fan_in: int, dtype, rng=None) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the given shape and dtype (torch's default for weights and biases)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    gen = _random.resolve(rng)
    return gen.uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform(shape, fan_in: int, dtype, gain: float = math.sqrt(2.0), rng=None) -> np.ndarray:
    """He initialisation: U(-b, b) with b = gain * sqrt(3 / fan_in) (for ReLU networks)."""
    bound = gain * math.sqrt(3.0 / fan_in)
    return _random.resolve(rng).uniform(-bound, bound, size=shape).astype(dtype)


def xavier_uniform(shape, fan_in: int, fan_out: int, dtype, gain: float = 1.0, rng=None) -> np.ndarray:
    """Glorot initialisation: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (for tanh/sigmoid networks)."""
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _random.resolve(rng).uniform(-bound, bound, size=shape).astype(dtype)
