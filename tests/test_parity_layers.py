"""Every layer of strided.nn against torch.nn: output, input gradient and parameter gradients.

float64 runs are compared tightly (1e-10); float32 runs loosely. Configurations
are listed explicitly for the cases the layers must get right (rectangular
kernels, tuple strides, every padding form, dilation, groups, ceil mode...)
and then swept with seeded random draws.
"""
import copy
import warnings

import numpy as np
import pytest
from _parity import (
    assert_close,
    assert_same_run,
    load_torch_weights,
    run_ours,
    run_torch,
    torch_max_pool_is_safe,
)

import strided
from strided import nn

pytestmark = pytest.mark.torch


def _conv_pair(torch, cin, cout, kernel, dtype=np.float64, **kw):
    tm = torch.nn.Conv2d(cin, cout, kernel, **kw).to(torch.float64 if dtype == np.float64 else torch.float32)
    m = load_torch_weights(nn.Conv2d(cin, cout, kernel, dtype=dtype, **kw), tm)
    return m, tm


def _check_conv(torch, rng, x_shape, cout, kernel, dtype=np.float64, **kw):
    m, tm = _conv_pair(torch, x_shape[1], cout, kernel, dtype, **kw)
    x = rng.standard_normal(x_shape).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's note on 'same' with even kernels
        y = m(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        theirs = run_torch(torch, tm, x, dy)
    assert_same_run(run_ours(m, x, dy), theirs, dtype)


CONV_CASES = [
    # x shape, out_channels, kernel_size, keyword arguments
    ((2, 3, 7, 9), 4, (3, 2), {}),                                   # rectangular kernel
    ((2, 3, 9, 8), 4, 3, dict(stride=(2, 3))),                       # tuple stride
    ((1, 2, 5, 6), 3, 3, dict(padding=1)),                           # batch of one
    ((2, 2, 5, 7), 3, (2, 3), dict(padding=(2, 1))),                 # pair padding
    ((2, 2, 6, 5), 3, 3, dict(padding=5)),                           # padding larger than the kernel
    ((2, 2, 4, 4), 2, 2, dict(padding=(4, 0), stride=2)),
    ((2, 3, 7, 8), 2, 3, dict(padding="same")),
    ((2, 3, 7, 8), 2, (4, 2), dict(padding="same")),                 # even kernel: extra pad bottom/right
    ((2, 3, 9, 8), 2, (2, 3), dict(padding="same", dilation=(2, 3))),
    ((2, 3, 9, 8), 2, 4, dict(padding="same", dilation=3)),
    ((2, 3, 7, 8), 2, 3, dict(padding="valid")),
    ((2, 2, 9, 10), 3, 3, dict(dilation=2)),
    ((2, 2, 11, 9), 3, (2, 3), dict(dilation=(3, 2), stride=(2, 1), padding=(1, 2))),
    ((2, 4, 6, 6), 6, 3, dict(groups=2, padding=1)),
    ((2, 4, 6, 7), 4, 3, dict(groups=4, padding=1, stride=2)),       # depthwise
    ((2, 4, 6, 7), 8, 3, dict(groups=4, padding=(0, 2))),            # depthwise, channel multiplier 2
    ((2, 6, 5, 5), 3, 1, dict(groups=3)),                            # 1x1, grouped
    ((2, 3, 7, 7), 4, 3, dict(bias=False, padding=1)),
    ((1, 1, 1, 1), 1, 1, {}),
    ((3, 3, 5, 5), 2, 5, {}),                                        # kernel as large as the input
    ((2, 3, 13, 11), 5, (5, 3), dict(stride=(3, 2), padding=(2, 4), dilation=(1, 2))),
    ((1, 3, 3, 17), 2, (1, 7), dict(stride=(1, 4), padding=(0, 3))),
]


@pytest.mark.parametrize("x_shape,cout,kernel,kw", CONV_CASES)
def test_conv2d_cases(torch, rng, x_shape, cout, kernel, kw):
    _check_conv(torch, rng, x_shape, cout, kernel, **kw)


def _random_conv_config(rng):
    g = int(rng.choice([1, 1, 2, 3]))
    cin, cout = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
    kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    form = rng.integers(0, 4)
    if form == 0:
        padding = int(rng.integers(0, 7))
    elif form == 1:
        padding = (int(rng.integers(0, 7)), int(rng.integers(0, 7)))
    elif form == 2:
        padding = "valid"
    else:
        padding, stride = "same", 1
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]
    h, w = (int(rng.integers(max(1, s - 2), s + 8)) for s in span)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=g, bias=bool(rng.integers(0, 2)))
    return (int(rng.integers(1, 4)), cin, h, w), cout, kernel, kw


def test_conv2d_random_sweep(torch):
    """Seeded random configurations: where torch accepts one we match it, where it refuses we raise ValueError."""
    rng = np.random.default_rng(1234)
    checked = 0
    for _ in range(80):
        x_shape, cout, kernel, kw = _random_conv_config(rng)
        x = rng.standard_normal(x_shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                torch.nn.functional.conv2d(torch.tensor(x), torch.zeros(cout, x_shape[1] // kw["groups"], *kernel,
                                                                        dtype=torch.float64),
                                           None, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
            except RuntimeError:
                with pytest.raises(ValueError, match="larger than the padded input"):
                    nn.Conv2d(x_shape[1], cout, kernel, dtype=np.float64, **kw)(x)
                continue
            _check_conv(torch, rng, x_shape, cout, kernel, **kw)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("x_shape,cout,kernel,kw", CONV_CASES[::3])
def test_conv2d_float32(torch, rng, x_shape, cout, kernel, kw):
    _check_conv(torch, rng, x_shape, cout, kernel, dtype=np.float32, **kw)


# -- pooling -----------------------------------------------------------------

def _check_pool(torch, rng, kind, x, **kw):
    if kind == "max":
        m, tm = nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw)
    else:
        m, tm = nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw)
    y = m(x)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy), x.dtype)


POOL_CASES = [
    ("max", (2, 3, 8, 8), dict(kernel_size=2)),
    ("max", (2, 3, 9, 7), dict(kernel_size=3, stride=2)),                           # overlapping
    ("max", (2, 3, 9, 7), dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1))),
    ("max", (2, 2, 7, 7), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ("max", (2, 2, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max", (2, 2, 10, 9), dict(kernel_size=3, stride=2, dilation=2, padding=1)),
    ("max", (2, 2, 10, 11), dict(kernel_size=(2, 3), dilation=(3, 2), ceil_mode=True, stride=(2, 3))),
    ("max", (1, 1, 5, 5), dict(kernel_size=5)),
    ("max", (2, 2, 6, 6), dict(kernel_size=2, stride=3)),                           # gaps between windows
    ("avg", (2, 3, 8, 8), dict(kernel_size=2)),
    ("avg", (2, 3, 9, 7), dict(kernel_size=3, stride=2)),
    ("avg", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("avg", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg", (2, 2, 7, 7), dict(kernel_size=2, ceil_mode=True)),
    ("avg", (2, 2, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg", (2, 2, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg", (2, 2, 8, 10), dict(kernel_size=(3, 4), stride=(2, 3), padding=(1, 2), ceil_mode=True)),
    ("avg", (2, 2, 6, 6), dict(kernel_size=3, padding=1, divisor_override=5)),
    ("avg", (2, 2, 6, 6), dict(kernel_size=2, stride=3)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,x_shape,kw", POOL_CASES)
def test_pool_cases(torch, rng, kind, x_shape, kw, dtype):
    _check_pool(torch, rng, kind, rng.standard_normal(x_shape).astype(dtype), **kw)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_random_sweep(torch, kind):
    rng = np.random.default_rng(99 if kind == "max" else 98)
    checked = 0
    for _ in range(150):
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        stride = None if rng.random() < 0.3 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        kw = dict(kernel_size=k, stride=stride,
                  padding=(int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1))),
                  ceil_mode=bool(rng.integers(0, 2)))
        if kind == "max":
            kw["dilation"] = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        else:
            kw["count_include_pad"] = bool(rng.integers(0, 2))
        x = rng.standard_normal((int(rng.integers(1, 3)), 2, int(rng.integers(1, 10)), int(rng.integers(1, 10))))
        if rng.random() < 0.3:
            x = np.round(x)  # ties: the first maximum in scan order must win, as in torch
        layer = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(**kw)
        try:
            layer(torch.tensor(x))
        except RuntimeError:
            with pytest.raises(ValueError):
                (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(**kw)(x)
            continue
        if kind == "max" and not torch_max_pool_is_safe(torch, x, **{k: kw[k] for k in (
                "kernel_size", "stride", "padding", "dilation", "ceil_mode")}):
            continue
        _check_pool(torch, rng, kind, x, **kw)
        checked += 1
    assert checked > 80


def test_max_pool_ties_go_to_first_in_scan_order(torch):
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, 1:4, 2:5] = 1.0  # plateaus shared by several overlapping windows
    for kw in (dict(kernel_size=3, stride=1), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2)):
        _check_pool(torch, np.random.default_rng(0), "max", x, **kw)


def test_max_pool_nan_and_inf_like_torch(torch):
    """NaN wins a window (and takes its gradient); -inf windows credit their first real pixel, as torch."""
    rng = np.random.default_rng(5)
    for _ in range(60):
        x = rng.standard_normal((2, 2, 5, 6))
        u = rng.random(x.shape)
        x[u < 0.1] = np.nan
        x[(u >= 0.1) & (u < 0.3)] = -np.inf
        x[(u >= 0.3) & (u < 0.35)] = np.inf
        k = int(rng.integers(1, 4))
        kw = dict(kernel_size=k, stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, k // 2 + 1)),
                  ceil_mode=bool(rng.integers(0, 2)))
        m, tm = nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw)
        y = m(x)
        dy = rng.standard_normal(y.shape)
        ty, tdx, _ = run_torch(torch, tm, x, dy)
        np.testing.assert_array_equal(y, ty)  # NaN positions included
        assert_close(m.backward(dy), tdx, "input gradient")


def test_max_pool_gradient_with_inf_and_nan_in_dy_like_torch(torch):
    """Pixels that lost their window get exactly 0 even when the window's gradient is inf or NaN."""
    rng = np.random.default_rng(6)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2, padding=1)):
        x = rng.standard_normal((2, 3, 6, 6))
        m, tm = nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw)
        y = m(x)
        dy = rng.standard_normal(y.shape)
        dy.flat[::7] = np.inf
        dy.flat[3::11] = np.nan
        _, tdx, _ = run_torch(torch, tm, x, dy)
        np.testing.assert_array_equal(m.backward(dy), tdx)


# -- linear, flatten, activations ---------------------------------------------

@pytest.mark.parametrize("x_shape,bias", [((4, 7), True), ((1, 7), False), ((2, 3, 7), True), ((7,), True)])
def test_linear(torch, rng, x_shape, bias):
    tm = torch.nn.Linear(7, 5, bias=bias).double()
    m = load_torch_weights(nn.Linear(7, 5, bias=bias, dtype=np.float64), tm)
    x = rng.standard_normal(x_shape)
    dy = rng.standard_normal((*x_shape[:-1], 5))
    assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy))


@pytest.mark.parametrize("start_dim,end_dim", [(1, -1), (0, -1), (1, 2), (-2, -1), (2, 2)])
def test_flatten(torch, rng, start_dim, end_dim):
    x = rng.standard_normal((2, 3, 4, 5))
    m, tm = nn.Flatten(start_dim, end_dim), torch.nn.Flatten(start_dim, end_dim)
    y = m(x)
    assert_same_run(run_ours(m, x, y * 2), run_torch(torch, tm, x, y * 2))


def _activations(torch):
    """(ours, torch's) for every activation; torch has no Gaussian layer, so exp(-x^2) is spelled out."""
    class TorchGaussian(torch.nn.Module):
        def forward(self, x):
            return torch.exp(-x * x)

    return [
        (nn.ReLU(), torch.nn.ReLU()), (nn.LeakyReLU(), torch.nn.LeakyReLU()),
        (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)), (nn.Sigmoid(), torch.nn.Sigmoid()),
        (nn.Tanh(), torch.nn.Tanh()), (nn.Gaussian(), TorchGaussian()),
        (nn.Softmax(1), torch.nn.Softmax(1)), (nn.Softmax(-1), torch.nn.Softmax(-1)),
        (nn.Softmax(0), torch.nn.Softmax(0)), (nn.Identity(), torch.nn.Identity()),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4, 5)])
def test_activations(torch, rng, x_shape, dtype):
    x = (3 * rng.standard_normal(x_shape)).astype(dtype)
    x.flat[::7] = 0.0  # the kink of ReLU/LeakyReLU: torch's derivative there is the left one
    for m, tm in _activations(torch):
        dy = rng.standard_normal(x_shape).astype(dtype)
        assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_extreme_inputs(torch, rng, dtype):
    """Huge and infinite inputs: no overflow warning (warnings are errors here), finite gradients, torch's values."""
    big = np.finfo(dtype).max
    x = np.array([[-big, -1e30, -1e4, -88.0, -20.0, 0.0, 20.0, 89.0, 1e4, big],
                  [-1e4, 1e4, 0.0, -1e4, 1e4, 3.0, -3.0, 1e3, -1e3, 0.5]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for m, tm in _activations(torch):
            dy = rng.standard_normal(x.shape).astype(dtype)
            y, dx, _ = run_ours(m, x, dy)
            assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), type(m).__name__
            if isinstance(m, nn.Gaussian):
                continue  # torch's spelled-out exp(-x*x) overflows to inf * 0 = NaN in its gradient
            ty, tdx, _ = run_torch(torch, tm, x, dy)
            assert_close(y, ty, f"{type(m).__name__} output", dtype)
            assert_close(dx, tdx, f"{type(m).__name__} gradient", dtype)


def test_gaussian_at_infinity_is_zero_with_zero_gradient():
    x = np.array([-np.inf, -1e20, 1e20, np.inf, np.nan])
    m = nn.Gaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = m(x)
        dx = m.backward(np.ones_like(x))
    np.testing.assert_array_equal(y[:4], np.exp(-np.array([np.inf] * 4)))
    np.testing.assert_array_equal(dx[:4], np.zeros(4))
    assert np.isnan(y[4]) and np.isnan(dx[4])


# -- batch normalisation --------------------------------------------------------

BN_CASES = [
    ("1d", (6, 3), {}), ("1d", (4, 3, 5), {}), ("2d", (3, 3, 4, 5), {}),
    ("2d", (2, 3, 3, 3), dict(momentum=0.3, eps=1e-3)), ("2d", (2, 3, 3, 3), dict(momentum=None)),
    ("2d", (2, 3, 3, 3), dict(affine=False)), ("1d", (5, 3), dict(track_running_stats=False)),
    ("2d", (1, 3, 2, 2), {}),  # batch of one, several values per channel: fine in training
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("dim,x_shape,kw", BN_CASES)
def test_batch_norm_train_then_eval(torch, dim, x_shape, kw, dtype):
    rng = np.random.default_rng(3)
    tcls, cls = (torch.nn.BatchNorm1d, nn.BatchNorm1d) if dim == "1d" else (torch.nn.BatchNorm2d, nn.BatchNorm2d)
    tm = tcls(3, **kw).to(torch.float64 if dtype == np.float64 else torch.float32)
    if tm.affine:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
            tm.bias.uniform_(-0.5, 0.5)
    m = load_torch_weights(cls(3, dtype=dtype, **kw), tm)
    for step in range(4):
        if step == 3:
            m.eval()
            tm.eval()
        x = (2 * rng.standard_normal(x_shape) + rng.standard_normal(3).reshape(1, 3, *[1] * (len(x_shape) - 2))
             ).astype(dtype)
        dy = rng.standard_normal(x_shape).astype(dtype)
        assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy), dtype)
        state, tstate = m.state_dict(), tm.state_dict()
        assert list(state) == list(tstate)
        for k in state:  # running mean, unbiased running variance, num_batches_tracked
            assert_close(state[k], tstate[k].numpy(), k, dtype)


# -- dropout --------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_dropout_is_inverted_and_seeded(p):
    x = np.random.default_rng(0).standard_normal((200, 500)).astype(np.float32) + 3.0
    m = nn.Dropout(p, seed=7)
    y = m(x)
    assert y.dtype == np.float32
    kept = y != 0
    scale = 0.0 if p == 1 else 1 / (1 - p)
    np.testing.assert_allclose(y[kept], x[kept] * np.float32(scale), rtol=1e-6)
    # the fraction dropped is p within 6 standard deviations of a Binomial(100000, p)
    assert abs((1 - kept.mean()) - p) <= 6 * np.sqrt(p * (1 - p) / x.size) + 1e-12
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(m.backward(dy), np.where(kept, dy * np.float32(scale), 0), rtol=1e-6)
    # same seed, same masks; the generator moves on between calls
    np.testing.assert_array_equal(nn.Dropout(p, seed=7)(x), y)
    if 0 < p < 1:
        assert not np.array_equal(m(x), y)
    m.eval()
    assert m(x) is x or np.array_equal(m(x), x)
    np.testing.assert_array_equal(m.backward(dy), dy)


def test_dropout_global_seed():
    x = np.ones((50, 50))
    strided.manual_seed(3)
    a = nn.Dropout(0.5)(x)
    strided.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout(0.5)(x), a)


# -- whole networks ----------------------------------------------------------------

def _torch_lenet5(torch):
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 6, 5, padding=2), t.Tanh(), t.AvgPool2d(2), t.Conv2d(6, 16, 5), t.Tanh(),
                        t.AvgPool2d(2), t.Flatten(), t.Linear(400, 120), t.Tanh(), t.Linear(120, 84), t.Tanh(),
                        t.Linear(84, 10))


def test_lenet5_matches_torch(torch, rng):
    tm = _torch_lenet5(torch).double()
    m = load_torch_weights(strided.models.lenet5(dtype=np.float64), tm)
    x = rng.standard_normal((3, 1, 28, 28))
    dy = rng.standard_normal((3, 10))
    assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy))


def test_cnn_with_batch_norm_max_pool_and_dropout_matches_torch(torch, rng):
    t = torch.nn
    tm = t.Sequential(t.Conv2d(2, 4, 3, padding=1, bias=False), t.BatchNorm2d(4), t.ReLU(), t.MaxPool2d(2),
                      t.Conv2d(4, 6, (3, 2), stride=(1, 2), padding="valid", groups=2), t.LeakyReLU(0.1),
                      t.Flatten(), t.Dropout(0.5), t.Linear(6 * 2 * 2, 8), t.BatchNorm1d(8), t.Sigmoid(),
                      t.Linear(8, 3)).double()
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding="valid", groups=2), nn.LeakyReLU(0.1),
                      nn.Flatten(), nn.Dropout(0.5), nn.Linear(6 * 2 * 2, 8), nn.BatchNorm1d(8), nn.Sigmoid(),
                      nn.Linear(8, 3)).to(np.float64)
    load_torch_weights(m, tm)
    m[7].eval()  # dropout masks come from different generators; the rest stays in training mode
    tm[7].eval()
    for _ in range(2):
        x = rng.standard_normal((4, 2, 8, 8))
        dy = rng.standard_normal((4, 3))
        assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy))
    for k, v in m.state_dict().items():
        assert_close(v, tm.state_dict()[k].numpy(), k)


# -- float32 by default ------------------------------------------------------------

FLOAT32_LAYERS = [
    (lambda: nn.Conv2d(3, 4, 3, padding=1, stride=2), (2, 3, 7, 7)),
    (lambda: nn.Conv2d(4, 4, (2, 3), padding="same", groups=2, dilation=2), (2, 4, 6, 7)),
    (lambda: nn.Linear(6, 5), (4, 6)),
    (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 8, 8)),
    (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 8, 8)),
    (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    (lambda: nn.BatchNorm1d(3), (6, 3)),
    (lambda: nn.ReLU(), (4, 6)), (lambda: nn.LeakyReLU(0.1), (4, 6)), (lambda: nn.Sigmoid(), (4, 6)),
    (lambda: nn.Tanh(), (4, 6)), (lambda: nn.Gaussian(), (4, 6)), (lambda: nn.Softmax(1), (4, 6)),
    (lambda: nn.Flatten(), (2, 3, 4)), (lambda: nn.Dropout(0.4, seed=0), (4, 6)),
    (lambda: strided.models.lenet5(), (2, 1, 28, 28)),
]


@pytest.mark.parametrize("make,x_shape", FLOAT32_LAYERS)
def test_float32_by_default_and_close_to_float64(make, x_shape):
    rng = np.random.default_rng(11)
    m32 = make()
    m64 = copy.deepcopy(m32).to(np.float64)
    assert all(p.dtype == np.float32 for p in m32.parameters())
    x = rng.standard_normal(x_shape)
    dy_shape = m64(x).shape
    dy = rng.standard_normal(dy_shape)
    m64 = copy.deepcopy(m32).to(np.float64)  # fresh: the first call above moved the dropout generator
    y32, dx32, g32 = run_ours(m32, x.astype(np.float32), dy.astype(np.float32))
    y64, dx64, g64 = run_ours(m64, x, dy)
    assert y32.dtype == np.float32 and dx32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in g32.values())
    assert all(v.dtype == np.float32 for k, v in m32.state_dict().items() if "num_batches" not in k)
    tol = dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(y32, y64, **tol)
    np.testing.assert_allclose(dx32, dx64, **tol)
    for k in g32:
        np.testing.assert_allclose(g32[k], g64[k], err_msg=k, **tol)


# -- the functional core directly --------------------------------------------------------

@pytest.mark.parametrize("pad4", [(0, 2, 1, 0), (3, 0, 0, 4), (1, 1, 2, 2)])
def test_functional_conv_with_asymmetric_padding(torch, rng, pad4):
    """conv2d_forward takes (top, bottom, left, right) padding; torch spells it F.pad then conv2d."""
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    y, cache = strided.functional.conv2d_forward(x, w, b, stride=(2, 1), padding=pad4, dilation=(1, 2), groups=2)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = strided.functional.conv2d_backward(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    top, bottom, left, right = pad4
    ty = torch.nn.functional.conv2d(torch.nn.functional.pad(tx, (left, right, top, bottom)), tw, tb, (2, 1), 0,
                                    (1, 2), 2)
    ty.backward(torch.tensor(dy))
    for ours, theirs, what in ((y, ty.detach(), "y"), (dx, tx.grad, "dx"), (dw, tw.grad, "dw"), (db, tb.grad, "db")):
        assert_close(ours, theirs.numpy(), what)


def test_functional_conv_backward_computes_only_what_is_asked(rng):
    x = rng.standard_normal((2, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    y, cache = strided.functional.conv2d_forward(x, w, np.zeros(3))
    dy = rng.standard_normal(y.shape)
    full = strided.functional.conv2d_backward(dy, cache)
    part = strided.functional.conv2d_backward(dy, cache, need_x=False, need_bias=False)
    assert part.x is None and part.bias is None
    np.testing.assert_array_equal(part.weight, full.weight)
    only_x = strided.functional.conv2d_backward(dy, cache, need_weight=False, need_bias=False)
    assert only_x.weight is None and only_x.bias is None
    np.testing.assert_array_equal(only_x.x, full.x)


def test_functional_linear_accepts_array_likes(torch, rng):
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((2, 4))
    y, cache = strided.functional.linear_forward(x, w, [0.5, -1.0])
    dx, dw, db = strided.functional.linear_backward(np.ones((3, 2)), cache)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.linear(tx, tw, torch.tensor([0.5, -1.0], dtype=torch.float64))
    ty.sum().backward()
    assert_close(y, ty.detach().numpy(), "y")
    assert_close(dx, tx.grad.numpy(), "dx")
    assert_close(dw, tw.grad.numpy(), "dw")
    np.testing.assert_array_equal(db, [3.0, 3.0])
