"""Shared test fixtures.

Parity tests compare against PyTorch. Locally they skip when torch is not
installed; with ``STRIDED_REQUIRE_TORCH=1`` (set by ``.ci/run``) a missing
torch is an error, so CI can never pass by skipping them.
"""
import os

import numpy as np
import pytest


def _import_torch():
    try:
        import torch
    except ImportError:
        if os.environ.get("STRIDED_REQUIRE_TORCH") == "1":
            raise
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def torch():
    return _import_torch()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def threads():
    """``set_num_threads``, with the thread count restored after the test."""
    from strided import _parallel
    old = _parallel.num_threads()
    yield _parallel.set_num_threads
    _parallel.set_num_threads(old)


@pytest.fixture
def pool_for_every_call(monkeypatch):
    """A function that sends every call to the thread pool, however small (to test the parallel paths)."""
    from strided import _parallel

    def apply():
        for name in ("MIN_PARALLEL_MACS", "MIN_CHUNK_MACS"):
            monkeypatch.setattr(_parallel, name, 1)
        monkeypatch.setattr(_parallel, "_inline_until", 0.0)
        monkeypatch.setattr(_parallel, "BACKOFF_SHARE", 2.0)
    return apply
