"""Helpers for comparing strided layers with their torch counterparts.

A strided module and a torch module are given the same weights (torch's,
loaded through ``load_state_dict`` as NumPy arrays), run on the same input
with the same output gradient, and every result is compared: the output, the
input gradient and each parameter gradient under its torch name.
"""
from __future__ import annotations

import numpy as np

TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-10), np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5)}


def torch_state(tm) -> dict:
    """A torch module's state dict as NumPy arrays (what a user would load)."""
    return {k: v.detach().numpy() for k, v in tm.state_dict().items()}


def load_torch_weights(m, tm):
    m.load_state_dict(torch_state(tm))
    return m


def run_ours(m, x, dy):
    """Forward and backward of a strided module: ``(y, dx, {name: grad})``."""
    m.zero_grad()
    y = m(x)
    dx = m.backward(dy)
    return y, dx, {n: p.grad for n, p in m.named_parameters()}


def run_torch(torch, tm, x, dy):
    """Forward and backward of a torch module on NumPy data: ``(y, dx, {name: grad})`` as NumPy arrays."""
    tm.zero_grad()
    tx = torch.tensor(x, requires_grad=True)
    ty = tm(tx)
    ty.backward(torch.tensor(np.asarray(dy, dtype=x.dtype)))
    grads = {n: (None if p.grad is None else p.grad.numpy()) for n, p in tm.named_parameters()}
    return ty.detach().numpy(), tx.grad.numpy(), grads


def assert_close(ours, theirs, what="", dtype=np.float64, **tol):
    tol = {**TOL[np.dtype(dtype)], **tol}
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch's {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, err_msg=what, equal_nan=True, **tol)


def assert_same_run(ours, theirs, dtype=np.float64, **tol):
    """Compare the outputs of ``run_ours`` and ``run_torch``."""
    (y, dx, g), (ty, tdx, tg) = ours, theirs
    assert_close(y, ty, "output", dtype, **tol)
    assert_close(dx, tdx, "input gradient", dtype, **tol)
    assert set(g) == set(tg), f"parameter names {sorted(g)} != torch's {sorted(tg)}"
    for name in g:
        assert_close(g[name], tg[name], f"gradient of {name}", dtype, **tol)


def torch_max_pool_is_safe(torch, x, kernel_size, stride, padding, dilation, ceil_mode) -> bool:
    """False when some window sees only padding.

    torch then records an index outside the input and its backward writes
    out of bounds (corrupting memory), so such configurations must never be
    run backward through torch. Assumes torch accepts the configuration.
    """
    # pooling zeros: a window holding no real pixel is the only way to get -inf (the padding value)
    probe = torch.zeros(x.shape, dtype=torch.float64)
    y = torch.nn.functional.max_pool2d(probe, kernel_size, stride, padding, dilation, ceil_mode)
    return not bool(torch.isinf(y).any())


class KeepUniforms(np.random.Generator):
    """A generator for dropout whose uniforms keep exactly the elements (or channels) where ``kept`` is True.

    Dropout keeps an element when its uniform is >= p, so True becomes 1 (kept for
    any p) and False 0 (dropped for any p > 0): torch's mask, read off torch's
    output, can be fed to strided's functional dropout.
    """

    def __init__(self, kept):
        super().__init__(np.random.PCG64(0))
        self.kept = kept

    def random(self, shape, dtype):
        assert tuple(shape) == self.kept.shape
        return self.kept.astype(dtype)
