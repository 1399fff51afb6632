"""Batch norm and ReLU on batch-last activations (the layout convolutions return): the fast paths against torch and the generic ones."""
import numpy as np
import pytest

from strided import nn
from strided.functional import normalization as F
from strided.windows import is_batch_last, to_batch_last


def _pair(torch, dtype, affine, rng):
    momentum = 0.1 if affine else None                         # None: the cumulative average
    bn = nn.BatchNorm2d(6, affine=affine, momentum=momentum, dtype=dtype)
    if affine:
        bn.weight.data = rng.standard_normal(6).astype(dtype)
        bn.bias.data = rng.standard_normal(6).astype(dtype)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tbn = torch.nn.BatchNorm2d(6, affine=affine, momentum=momentum, dtype=tdtype)
    tbn.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in bn.state_dict().items()})
    return bn, tbn


@pytest.mark.parametrize("dtype, rel", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_last_batch_norm_matches_torch(torch, rng, affine, dtype, rel):
    bn, tbn = _pair(torch, dtype, affine, rng)
    for step in range(2):                                      # two steps: the running statistics move twice
        x = (rng.standard_normal((7, 6, 5, 9)) * 2 + 3).astype(dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        bn.zero_grad()
        tbn.zero_grad()
        y = bn(to_batch_last(x))
        dx = bn.backward(to_batch_last(dy))
        tx = torch.from_numpy(x).requires_grad_(True)
        ty = tbn(tx)
        ty.backward(torch.from_numpy(dy))
        assert is_batch_last(y) and is_batch_last(dx)
        pairs = [(y, ty), (dx, tx.grad), (bn.running_mean, tbn.running_mean), (bn.running_var, tbn.running_var)]
        if affine:
            pairs += [(bn.weight.grad, tbn.weight.grad), (bn.bias.grad, tbn.bias.grad)]
        for ours, theirs in pairs:
            theirs = theirs.detach().numpy()
            np.testing.assert_allclose(ours, theirs, rtol=rel, atol=rel * np.abs(theirs).max())


def test_batch_last_path_equals_the_generic_one(rng):
    x = rng.standard_normal((8, 5, 6, 7)) * 3 - 1
    dy = rng.standard_normal(x.shape)
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    fast = F.batch_norm_forward(to_batch_last(x), np.zeros(5), np.ones(5), w, b)
    generic = F.batch_norm_forward(np.ascontiguousarray(x), np.zeros(5), np.ones(5), w, b)
    assert F._channel_rows(to_batch_last(x)) is not None and F._channel_rows(x) is None
    for a, c in zip((fast[0], fast[2], fast[3]), (generic[0], generic[2], generic[3])):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    g_fast = F.batch_norm_backward(to_batch_last(dy), fast[1])
    g_generic = F.batch_norm_backward(dy, generic[1])
    for a, c in zip(g_fast, g_generic):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
    # a C-ordered gradient of a batch-last activation takes the generic path and gives the same numbers
    mixed = F.batch_norm_backward(np.ascontiguousarray(dy), fast[1])
    for a, c in zip(mixed, g_generic):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_float32_statistics_keep_their_digits_over_a_million_values(rng):
    # one running float32 sum over a whole channel would be off by about 1e-4 here
    x = (rng.standard_normal((64, 2, 128, 128)) * 3 + 5).astype(np.float32)
    y, cache, _, var = F.batch_norm_forward(to_batch_last(x), np.zeros(2, np.float32), np.ones(2, np.float32))
    x64 = x.astype(np.float64)
    true_var = x64.var(axis=(0, 2, 3))
    got_var = (var - 0.9) / 0.1 * (x[:, 0].size - 1) / x[:, 0].size
    np.testing.assert_allclose(got_var, true_var, rtol=2e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_last_eval_batch_norm_matches_torch(torch, rng, dtype):
    """Eval mode (the running statistics, one pass) on a batch-last activation, forward and backward."""
    bn, tbn = _pair(torch, dtype, True, rng)
    bn.running_mean[...] = rng.standard_normal(6)
    bn.running_var[...] = rng.uniform(0.5, 2, 6)
    tbn.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in bn.state_dict().items()})
    bn.eval()
    tbn.eval()
    x = (rng.standard_normal((7, 6, 5, 9)) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = bn(to_batch_last(x))
    dx = bn.backward(to_batch_last(dy))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = tbn(tx)
    ty.backward(torch.from_numpy(dy))
    rel = 1e-10 if dtype == np.float64 else 1e-5
    assert is_batch_last(y)
    for ours, theirs in [(y, ty), (dx, tx.grad), (bn.weight.grad, tbn.weight.grad), (bn.bias.grad, tbn.bias.grad)]:
        theirs = theirs.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=rel, atol=rel * np.abs(theirs).max())


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_is_bit_identical_for_any_cut_into_channel_groups(rng, threads, monkeypatch, training):
    """The statistics are computed per group of channels: one thread and whole, or many small groups, same bits."""
    from strided import _parallel
    x = to_batch_last(rng.standard_normal((6, 10, 7, 5)).astype(np.float32) * 3 + 1)
    dy = to_batch_last(rng.standard_normal(x.shape).astype(np.float32))
    w, b = rng.standard_normal(10).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    runs = []
    for n, min_elementwise in ((1, _parallel.MIN_ELEMENTWISE), (2, 1)):
        threads(n)
        monkeypatch.setattr(_parallel, "MIN_ELEMENTWISE", min_elementwise)
        y, cache, rm, rv = F.batch_norm_forward(x, np.zeros(10, np.float32), np.ones(10, np.float32), w, b,
                                                training=training)
        runs.append((y, rm, rv, *F.batch_norm_backward(dy, cache)))
    for a, c in zip(*runs):
        assert np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("inplace", [False, True])
def test_relu_gradient_selects_dy_as_torch_on_either_memory_order(torch, rng, dtype, inplace):
    """ReLU's gradient is dy exactly where y > 0 or y is NaN, 0 elsewhere (an infinite or NaN dy cut too)."""
    from strided.functional import activation as A
    x = rng.standard_normal((4, 3, 5, 6)).astype(dtype)
    x.flat[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30]
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy.flat[3:12] = [np.inf, np.nan, -np.inf, np.nan, np.inf, -0.0, np.nan, np.inf, -np.inf]
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    torch.relu(tx).backward(torch.from_numpy(dy))
    expected = tx.grad.numpy()
    for xin, din in [(to_batch_last(x), to_batch_last(dy)), (to_batch_last(x), dy), (x.copy(), to_batch_last(dy))]:
        y, cache = A.relu_forward(xin, inplace=inplace)
        np.testing.assert_array_equal(y, torch.relu(torch.from_numpy(x)).numpy())
        dx = A.relu_backward(din, cache)
        assert dx.dtype == dtype and is_batch_last(dx) == is_batch_last(xin)
        np.testing.assert_array_equal(dx, expected)            # NaN where torch has NaN, bit for bit otherwise
        assert np.array_equal(np.signbit(dx), np.signbit(expected))


@pytest.mark.parametrize("x", [np.array(2.0), np.array(-1.0, np.float32), np.zeros((0, 3)),
                               np.array([1.0, -2.0, 3.0, np.nan])[::2], np.broadcast_to(np.float32(-1), (3, 4))],
                         ids=["0-d", "0-d-negative", "empty", "strided", "broadcast"])
def test_relu_gradient_on_any_shape_and_strides(torch, x):
    from strided.functional import activation as A
    dy = np.full(x.shape, 3.0, x.dtype)
    _, cache = A.relu_forward(x)
    tx = torch.from_numpy(np.array(x)).requires_grad_(True)
    torch.relu(tx).backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(A.relu_backward(dy, cache), tx.grad.numpy())
