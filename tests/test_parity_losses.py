"""Every loss of strided.nn against torch.nn: value and gradient, every reduction, extreme inputs.

Extreme-input tests run with warnings turned into errors: a stable loss never
overflows, so it never warns.
"""
import warnings

import numpy as np
import pytest
from _parity import assert_close

import strided.functional as F
from strided import nn

pytestmark = pytest.mark.torch

REDUCTIONS = ["mean", "sum", "none"]


def _run(torch, ours, theirs, pred, target, dloss=None, torch_target=None):
    """Loss value and dL/dpred from both libraries; ``dloss`` weights each element for reduction='none'."""
    value = ours(pred, target)
    grad = ours.backward() if dloss is None else ours.backward(dloss)
    tp = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target) if torch_target is None else torch_target
    tv = theirs(tp, tt)
    tv.backward(None if dloss is None else torch.tensor(dloss))
    return (value, grad), (tv.detach().numpy(), tp.grad.numpy())


def _check(torch, ours, theirs, pred, target, dtype=np.float64):
    dloss = None
    if ours.reduction == "none":
        dloss = np.random.default_rng(2).standard_normal(np.shape(ours(pred, target))).astype(dtype)
    (v, g), (tv, tg) = _run(torch, ours, theirs, pred, target, dloss)
    assert np.asarray(v).dtype == dtype and g.dtype == dtype
    assert_close(v, tv, "loss", dtype)
    assert_close(g, tg, "gradient", dtype)


def _logits_and_labels(rng, n=7, c=5, scale=3.0, dtype=np.float64):
    return (scale * rng.standard_normal((n, c))).astype(dtype), rng.integers(0, c, n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy(torch, rng, reduction, label_smoothing, dtype):
    z, t = _logits_and_labels(rng, dtype=dtype)
    _check(torch, nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing),
           torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing), z, t, dtype)


def test_cross_entropy_label_dtypes(torch, rng):
    """Any integer label dtype works (torch wants int64 or uint8; both agree with it)."""
    z, t = _logits_and_labels(rng)
    for dt in (np.int64, np.int32, np.uint8, np.int16):
        ours = nn.CrossEntropyLoss()
        (v, g), (tv, tg) = _run(torch, ours, torch.nn.CrossEntropyLoss(), z, t.astype(dt),
                                torch_target=torch.tensor(t))
        assert_close(v, tv, str(dt))
        assert_close(g, tg, str(dt))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce(torch, rng, reduction, dtype):
    p = rng.uniform(0.02, 0.98, (6, 3)).astype(dtype)
    t = rng.uniform(0, 1, (6, 3)).astype(dtype)
    _check(torch, nn.BCELoss(reduction=reduction), torch.nn.BCELoss(reduction=reduction), p, t, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(torch, rng, reduction, dtype):
    z = (4 * rng.standard_normal((6, 3))).astype(dtype)
    t = (rng.random((6, 3)) < 0.5).astype(dtype)
    _check(torch, nn.BCEWithLogitsLoss(reduction=reduction), torch.nn.BCEWithLogitsLoss(reduction=reduction),
           z, t, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5), (4,)])
def test_mse(torch, rng, reduction, shape, dtype):
    p = rng.standard_normal(shape).astype(dtype)
    t = rng.standard_normal(shape).astype(dtype)
    _check(torch, nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), p, t, dtype)


def test_upstream_gradient_scales_the_result(torch, rng):
    """backward(dloss) for a reduced loss is dloss times backward(): the chain rule through the loss value."""
    z, t = _logits_and_labels(rng)
    crit = nn.CrossEntropyLoss()
    crit(z, t)
    g1 = crit.backward()
    np.testing.assert_allclose(crit.backward(2.5), 2.5 * g1, rtol=1e-12)
    tz = torch.tensor(z, requires_grad=True)
    (2.5 * torch.nn.functional.cross_entropy(tz, torch.tensor(t))).backward()
    assert_close(crit.backward(2.5), tz.grad.numpy())


# -- numerical safety -------------------------------------------------------------

EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4], [-1e4, 0.0, -1e4], [50.0, -50.0, 1e-3]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_logits_give_finite_losses_and_gradients(torch, dtype):
    z = EXTREME.astype(dtype)
    labels = np.array([1, 2, 0, 1, 1])  # includes a label whose logit is 2e4 below the maximum
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=dtype)
    cases = [
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), labels),
        (nn.CrossEntropyLoss(label_smoothing=0.2), torch.nn.CrossEntropyLoss(label_smoothing=0.2), labels),
        (nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), targets),
        (nn.MSELoss(), torch.nn.MSELoss(), targets),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ours, theirs, target in cases:
            (v, g), (tv, tg) = _run(torch, ours, theirs, z, target)
            assert np.isfinite(v) and np.all(np.isfinite(g)), type(ours).__name__
            assert_close(v, tv, type(ours).__name__, dtype)
            assert_close(g, tg, type(ours).__name__, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_on_saturated_sigmoid(torch, dtype):
    """Sigmoid of +-1e4 is exactly 0 or 1: BCE clamps each log at -100 like torch and the gradient stays finite."""
    z = EXTREME.astype(dtype)
    t = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=dtype)
    sig, crit = nn.Sigmoid(), nn.BCELoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = crit(sig(z), t)
        dz = sig.backward(crit.backward())
    tz = torch.tensor(z, requires_grad=True)
    tv = torch.nn.functional.binary_cross_entropy(torch.sigmoid(tz), torch.tensor(t))
    tv.backward()
    assert np.isfinite(v) and np.all(np.isfinite(dz))
    assert_close(v, tv.detach().numpy(), "loss", dtype)
    assert_close(dz, tz.grad.numpy(), "gradient", dtype)


def test_bce_at_exact_zero_and_one(torch):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (v, g), (tv, tg) = _run(torch, nn.BCELoss(), torch.nn.BCELoss(), p, t)
    assert_close(v, tv, "loss")
    assert_close(g, tg, "gradient", rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_functional_softmax_and_log_softmax_are_stable(torch, dtype):
    big = np.finfo(dtype).max
    x = np.array([[1e4, -1e4, 0.0], [big, -big, 0.0], [-big, -big, -big], [1e30, 1e30, -1e30]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, ls = F.softmax(x, axis=1), F.log_softmax(x, axis=1)
        y, _ = F.softmax_forward(x, 1)
    tx = torch.tensor(x)
    assert s.dtype == dtype and ls.dtype == dtype
    assert_close(s, torch.softmax(tx, 1).numpy(), "softmax", dtype)
    assert_close(y, s, "softmax_forward", dtype)
    assert_close(ls, torch.log_softmax(tx, 1).numpy(), "log_softmax", dtype)
