"""Each process's share of an epoch: ``shard_indices``, torch's ``DistributedSampler`` as a function."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _checks
from ..data.loader import deal_shard


def _non_negative_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        raise TypeError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def shard_indices(n: int, epoch: int, seed: int, rank: int, world_size: int, drop_last: bool = False,
                  shuffle: bool = True) -> np.ndarray:
    """The indices of the ``n`` samples that process ``rank`` of ``world_size`` visits in ``epoch``.

    The epoch's order is ``np.random.default_rng([seed, epoch]).permutation(n)``
    (``arange(n)`` without ``shuffle``), the same on every process. It is
    made divisible by ``world_size`` and dealt out like cards: process r
    takes positions r, r + world_size, r + 2 world_size, ... so every
    process gets the same number of samples (collectives then match up)
    and the shards are disjoint.

    - ``drop_last=False`` (the default): the order is padded by repeating
      its start (from its first index on, cyclically when n < world_size)
      up to ``ceil(n / world_size) * world_size``; the shards cover every
      sample, and at most ``world_size - 1`` samples are visited twice.
    - ``drop_last=True``: the order is cut to ``floor(n / world_size) *
      world_size``; the shards are disjoint, and at most ``world_size - 1``
      samples (different ones every epoch) are left out.

    Returns int64 (ceil or floor of n / world_size,); torch's
    ``DistributedSampler`` pads and drops the same way (its permutation
    comes from torch's generator, so the indices themselves differ).
    ``DataLoader(..., shard=(rank, world_size))`` deals out its own epoch
    order (drawn from its seed and the epoch) the same way.
    """
    n = _non_negative_int("n", n)
    epoch = _non_negative_int("epoch", epoch)
    seed = _non_negative_int("seed", seed)
    world_size = _checks.positive_int("world_size", world_size)
    rank = _non_negative_int("rank", rank)
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, {world_size - 1}] for world_size {world_size}, got {rank}")
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n, dtype=np.int64)
    return deal_shard(order, rank, world_size, drop_last)
