"""strided.utils: gradient clipping against torch.nn.utils (same gradients in, same gradients and norm out)."""
import math

import numpy as np
import pytest

from strided import utils
from strided.nn import Parameter

SHAPES = [(3, 4), (5,), (2, 3, 3, 3)]


def _pair(torch, dtype, scale, seed=0):
    """Parameters with gradients (one without) for us and for torch, holding the same values."""
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in SHAPES]
    ours = [Parameter(np.zeros(s, dtype)) for s in SHAPES] + [Parameter(np.zeros(2, dtype))]
    theirs = [torch.zeros(s, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True) for s in SHAPES]
    theirs.append(torch.zeros(2, dtype=theirs[0].dtype, requires_grad=True))
    for p, t, g in zip(ours, theirs, grads):
        p.grad = g.copy()
        t.grad = torch.from_numpy(g.copy())
    return ours, theirs


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm,norm_type,scale", [
    (1.0, 2.0, 1.0),        # clipped
    (100.0, 2.0, 1.0),      # below the bound: scaled by 1
    (0.5, 1.0, 1.0),
    (0.3, math.inf, 1.0),
    (0.3, "inf", 1.0),
    (2.0, 3.5, 0.7),
    (5.0, 0.0, 1.0),        # norm 0 counts the non-zero entries
])
def test_clip_grad_norm_matches_torch(torch, dtype, max_norm, norm_type, scale):
    ours, theirs = _pair(torch, dtype, scale)
    total = utils.clip_grad_norm_(iter(ours), max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected.item(), rtol=rtol)
    for p, t in zip(ours, theirs):
        if t.grad is None:
            assert p.grad is None
            continue
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=rtol, atol=0)


@pytest.mark.torch
def test_clip_grad_norm_clips_to_the_bound(torch):
    ours, _ = _pair(torch, np.float64, 3.0)
    before = utils.clip_grad_norm_(ours, 0.25)
    assert before > 0.25
    after = np.sqrt(sum(float((p.grad ** 2).sum()) for p in ours if p.grad is not None))
    assert after == pytest.approx(0.25, rel=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_value_matches_torch(torch, dtype):
    ours, theirs = _pair(torch, dtype, 2.0)
    assert utils.clip_grad_value_(ours, 0.8) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.8)
    for p, t in zip(ours[:len(SHAPES)], theirs):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
    assert max(float(np.abs(p.grad).max()) for p in ours[:len(SHAPES)]) == pytest.approx(0.8)


def test_clip_grad_norm_of_no_gradients_is_zero_and_a_single_parameter_works():
    assert utils.clip_grad_norm_([Parameter(np.ones(3))], 1.0) == 0.0
    p = Parameter(np.zeros(2))
    p.grad = np.array([3.0, 4.0])
    assert utils.clip_grad_norm_(p, 1.0) == 5.0
    np.testing.assert_allclose(p.grad, [3.0 / (5 + 1e-6), 4.0 / (5 + 1e-6)], rtol=1e-15)


def test_nonfinite_norm_raises_only_when_asked():
    p = Parameter(np.zeros(2))
    p.grad = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="error_if_nonfinite=False"):
        utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert p.grad[1] == 1.0  # nothing was scaled
    assert utils.clip_grad_norm_([p], 1.0) == math.inf


@pytest.mark.parametrize("call,exc,match", [
    (lambda ps: utils.clip_grad_norm_(ps, -1.0), ValueError, "max_norm"),
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, norm_type=-2), ValueError, "norm_type"),
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, norm_type="two"), ValueError, "norm_type"),
    (lambda ps: utils.clip_grad_norm_([np.zeros(3)], 1.0), TypeError, r"parameters\[0\] must be a strided Parameter"),
    (lambda ps: utils.clip_grad_value_(ps, -0.5), ValueError, "clip_value"),
    (lambda ps: utils.clip_grad_value_(ps, "1"), TypeError, "clip_value"),
])
def test_bad_arguments_name_themselves_and_change_nothing(call, exc, match):
    p = Parameter(np.zeros(2))
    p.grad = np.array([3.0, -4.0])
    with pytest.raises(exc, match=match):
        call([p])
    np.testing.assert_array_equal(p.grad, [3.0, -4.0])
