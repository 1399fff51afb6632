"""Weight initialisation with torch's defaults.

torch initialises ``Conv2d`` and ``Linear`` weights with
``kaiming_uniform_(a=sqrt(5))``, which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
and biases with the same bound. fan_in = in_features, or in_channels/groups * kh * kw.

Inside :func:`shapes_only` every initialiser returns a read-only array of the
right shape and dtype that takes no memory (a broadcast zero): a model built
there has its parameters' shapes and nothing else, which is how
:func:`strided.io.load` checks a file's architecture against its tensors
before it builds the model.
"""
from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from .. import random as _random


class _Mode(threading.local):
    shapes_only = False


_MODE = _Mode()


@contextlib.contextmanager
def shapes_only():
    """Within this block (in this thread) initialisers return zero-memory placeholders of the right shape and dtype."""
    before, _MODE.shapes_only = _MODE.shapes_only, True
    try:
        yield
    finally:
        _MODE.shapes_only = before


def _placeholder(shape, dtype) -> np.ndarray:
    return np.broadcast_to(np.zeros((), dtype), shape)


def full(shape, value: float, dtype) -> np.ndarray:
    """An array of ``shape`` filled with ``value`` (ones and zeros of normalisation layers)."""
    if _MODE.shapes_only:
        return _placeholder(shape, dtype)
    return np.full(shape, value, dtype)


def uniform_fan_in(shape, fan_in: int, dtype, rng=None) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the given shape and dtype (torch's default for weights and biases)."""
    if _MODE.shapes_only:
        return _placeholder(shape, dtype)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    gen = _random.resolve(rng)
    return gen.uniform(-bound, bound, size=shape).astype(dtype)


def kaiming_uniform(shape, fan_in: int, dtype, gain: float = math.sqrt(2.0), rng=None) -> np.ndarray:
    """He initialisation: U(-b, b) with b = gain * sqrt(3 / fan_in) (for ReLU networks)."""
    if _MODE.shapes_only:
        return _placeholder(shape, dtype)
    bound = gain * math.sqrt(3.0 / fan_in)
    return _random.resolve(rng).uniform(-bound, bound, size=shape).astype(dtype)


def xavier_uniform(shape, fan_in: int, fan_out: int, dtype, gain: float = 1.0, rng=None) -> np.ndarray:
    """Glorot initialisation: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (for tanh/sigmoid networks)."""
    if _MODE.shapes_only:
        return _placeholder(shape, dtype)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _random.resolve(rng).uniform(-bound, bound, size=shape).astype(dtype)
