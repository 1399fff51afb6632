"""The library's random number generator, seeded like ``torch.manual_seed``.

Weight initialisation and dropout draw from one process-wide
``np.random.Generator`` unless they are given their own, so
``strided.manual_seed(0)`` makes a whole run reproducible bit for bit.
Its state is a plain dict (``get_state``/``set_state``), which is what a
checkpoint saves to resume a run exactly.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (and return it)."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    return _generator


def resolve(rng=None, name: str = "rng") -> np.random.Generator:
    """``rng`` if given (a Generator or an int seed), else the global generator; ``name``: the argument's, for errors."""
    if rng is None:
        return _generator
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
        raise TypeError(f"{name} must be None, a numpy Generator or a non-negative int seed, got {rng!r}")
    return np.random.default_rng(int(rng))


def get_state() -> dict:
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state
