"""GroupNorm, LayerNorm, GELU, SiLU, ELU, Hardswish and Dropout2d against torch, numerical gradients and runtimes.

float64 runs are compared with torch tightly (1e-10) over seeded random
configurations: the output, the input gradient and every parameter gradient,
in training and evaluation mode, batched, unbatched and with an empty batch.
Dropout2d draws its own masks, so it is compared under torch's mask (read off
torch's output and fed back as the uniforms strided thresholds), and exactly
where there is nothing to draw (p = 0, p = 1, eval).
"""
import importlib
import math
import os
import warnings

import numpy as np
import pytest
from _parity import KeepUniforms, assert_close, assert_same_run, load_torch_weights, run_ours, run_torch, torch_state

import strided
import strided.functional as F
from strided import io as sio
from strided import nn

T64 = np.float64


# -- torch pairs -----------------------------------------------------------------------------------------------

def _norm_pair(torch, kind, args, kw, dtype=T64):
    tdt = torch.float64 if dtype == T64 else torch.float32
    if kind == "group":
        tm = torch.nn.GroupNorm(*args, **kw, dtype=tdt)
        m = nn.GroupNorm(*args, **kw, dtype=dtype)
    else:
        tm = torch.nn.LayerNorm(*args, **kw, dtype=tdt)
        m = nn.LayerNorm(*args, **kw, dtype=dtype)
    rng = np.random.default_rng(len(args) + len(kw))
    with torch.no_grad():
        for p in tm.parameters():  # away from ones and zeros, so the affine part is really checked
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape))))
    return load_torch_weights(m, tm), tm


def _check_pair(torch, m, tm, x, rng, mode="train"):
    m.train(mode == "train")
    tm.train(mode == "train")
    y = m(x.copy())
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    assert_same_run(run_ours(m, x.copy(), dy), run_torch(torch, tm, x.copy(), dy), x.dtype)


def _random_group_norm(rng):
    g = int(rng.integers(1, 4))
    c = g * int(rng.integers(1, 4))
    spatial = tuple(int(rng.integers(1, 5)) for _ in range(int(rng.integers(0, 4))))
    n = int(rng.choice([0, 1, 2, 3]))
    affine = bool(rng.integers(0, 4))                     # mostly affine
    kw = dict(eps=float(rng.choice([1e-5, 1e-3, 0.1])), affine=affine, bias=bool(rng.integers(0, 3)))
    return (g, c), kw, (n, c, *spatial)


def _random_layer_norm(rng):
    shape = tuple(int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 4))))
    lead = tuple(int(rng.choice([0, 1, 2, 3])) for _ in range(int(rng.integers(0, 3))))
    arg = shape[0] if len(shape) == 1 and rng.integers(0, 2) else (list(shape) if rng.integers(0, 2) else shape)
    kw = dict(eps=float(rng.choice([1e-5, 1e-3, 0.1])), elementwise_affine=bool(rng.integers(0, 4)),
              bias=bool(rng.integers(0, 3)))
    return (arg,), kw, lead + shape


@pytest.mark.torch
@pytest.mark.parametrize("kind,make", [("group", _random_group_norm), ("layer", _random_layer_norm)])
def test_norm_random_sweep_float64(torch, kind, make):
    rng = np.random.default_rng(7 if kind == "group" else 8)
    sizes = set()
    for _ in range(60):
        args, kw, shape = make(rng)
        m, tm = _norm_pair(torch, kind, args, kw)
        assert list(m.state_dict()) == list(tm.state_dict())
        x = (rng.standard_normal(shape) * rng.uniform(0.1, 10) + rng.uniform(-5, 5))
        for mode in ("train", "eval"):
            _check_pair(torch, m, tm, x, rng, mode)
        sizes.add(shape[0] == 0)
    assert sizes == {True, False}  # empty batches were among the configurations


@pytest.mark.torch
@pytest.mark.parametrize("kind,args,kw,shape", [
    ("group", (2, 4), {}, (3, 4, 5, 5)),
    ("group", (3, 6), dict(affine=False), (2, 6, 7)),
    ("layer", ((3, 4),), {}, (2, 5, 3, 4)),
    ("layer", (8,), dict(bias=False), (4, 8)),
])
def test_norm_float32(torch, kind, args, kw, shape):
    rng = np.random.default_rng(3)
    m, tm = _norm_pair(torch, kind, args, kw, np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    _check_pair(torch, m, tm, x, rng)
    assert m(x).dtype == np.float32


@pytest.mark.torch
def test_norm_unbatched_and_empty(torch):
    rng = np.random.default_rng(4)
    # LayerNorm: x of exactly normalized_shape (no leading axes) and with an empty batch
    m, tm = _norm_pair(torch, "layer", ((3, 4),), {})
    for shape in [(3, 4), (0, 3, 4), (2, 0, 3, 4)]:
        _check_pair(torch, m, tm, rng.standard_normal(shape), rng)
    # GroupNorm: torch has no unbatched form, (C, L) is read as (N, C); an empty batch gives zero parameter gradients
    m, tm = _norm_pair(torch, "group", (2, 4), {})
    for shape in [(3, 4), (0, 4, 3, 3), (0, 4)]:
        _check_pair(torch, m, tm, rng.standard_normal(shape), rng)
    m.zero_grad()
    m(np.zeros((0, 4, 2, 2)))
    m.backward(np.zeros((0, 4, 2, 2)))
    assert np.array_equal(m.weight.grad, np.zeros(4)) and np.array_equal(m.bias.grad, np.zeros(4))


def test_norm_train_and_eval_agree():
    rng = np.random.default_rng(5)
    for m, x in [(nn.GroupNorm(2, 6, dtype=T64), rng.standard_normal((3, 6, 4))),
                 (nn.LayerNorm((2, 5), dtype=T64), rng.standard_normal((3, 2, 5)))]:
        m.weight.data = rng.standard_normal(m.weight.shape)
        y_train, before = m.train()(x), m.state_dict()
        y_eval = m.eval()(x)
        assert np.array_equal(y_train, y_eval)
        assert all(np.array_equal(v, m.state_dict()[k]) for k, v in before.items())  # nothing updated
        assert not m._buffers  # no running statistics


def test_group_norm_standardises_each_group():
    """Independent of torch: each (example, group) of the output has mean 0 and variance 1 without affine."""
    x = np.random.default_rng(6).standard_normal((2, 6, 3, 3)) * 5 + 2
    y = nn.GroupNorm(3, 6, affine=False, eps=1e-12)(x).reshape(2, 3, -1)
    np.testing.assert_allclose(y.mean(axis=2), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=2), 1, rtol=1e-9)


# -- activations ---------------------------------------------------------------------------------------------------

ACTIVATIONS = {
    # name -> (strided factory, torch factory)
    "gelu": (lambda: nn.GELU(), lambda T: T.GELU()),
    "gelu_tanh": (lambda: nn.GELU("tanh"), lambda T: T.GELU(approximate="tanh")),
    "silu": (lambda: nn.SiLU(), lambda T: T.SiLU()),
    "elu": (lambda: nn.ELU(), lambda T: T.ELU()),
    "elu_alpha": (lambda: nn.ELU(0.3), lambda T: T.ELU(0.3)),
    "elu_negative_alpha": (lambda: nn.ELU(-0.7), lambda T: T.ELU(-0.7)),
    "elu_zero_alpha": (lambda: nn.ELU(0.0), lambda T: T.ELU(0.0)),
    "hardswish": (lambda: nn.Hardswish(), lambda T: T.Hardswish()),
}
INPLACE = {
    "silu": (lambda: nn.SiLU(inplace=True), lambda T: T.SiLU(inplace=True)),
    "elu": (lambda: nn.ELU(0.6, inplace=True), lambda T: T.ELU(0.6, inplace=True)),
    "elu_zero_alpha": (lambda: nn.ELU(0.0, inplace=True), lambda T: T.ELU(0.0, inplace=True)),
    "hardswish": (lambda: nn.Hardswish(inplace=True), lambda T: T.Hardswish(inplace=True)),
}
KINKS = np.array([-3.0, 3.0, 0.0, -0.0, -1.5, 1e-300, -1e-300, 40.0, -40.0])


def _activation_inputs(rng, dtype=T64):
    """Shapes from a scalar to 4-D, empty ones included; values spread wide, with the kinks in the 1-D one."""
    return [rng.standard_normal((2, 3, 4, 5)).astype(dtype) * 4, rng.standard_normal((7,)).astype(dtype),
            np.concatenate([KINKS, rng.uniform(-6, 6, 40)]).astype(dtype), np.array(0.7, dtype),
            np.zeros((0, 3, 2, 2), dtype), rng.standard_normal((3, 0)).astype(dtype)]


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_parity(torch, name):
    make, tmake = ACTIVATIONS[name]
    rng = np.random.default_rng(len(name))
    for dtype in (T64, np.float32):
        for x in _activation_inputs(rng, dtype):
            dy = rng.standard_normal(x.shape).astype(dtype)
            assert_same_run(run_ours(make(), x, dy), run_torch(torch, tmake(torch.nn), x, dy), dtype)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_activation_parity(torch, name):
    """The result is written into x (x is returned) and the gradient is torch's in-place one."""
    make, tmake = INPLACE[name]
    rng = np.random.default_rng(len(name) + 10)
    for x in _activation_inputs(rng):
        dy = rng.standard_normal(x.shape)
        tx = torch.tensor(x, requires_grad=True)
        ty = tmake(torch.nn)(tx * 1)  # torch's in-place layers need a non-leaf input
        ty.backward(torch.tensor(dy))
        m, ours = make(), x.copy()
        y = m(ours)
        assert y is ours
        assert_close(y, ty.detach().numpy(), "output")
        assert_close(m.backward(dy), tx.grad.numpy(), "input gradient")


@pytest.mark.torch
def test_gradients_at_the_kinks_are_torchs(torch):
    """Hardswish: 0 at -3 and 1 at 3; ELU: alpha at 0 (the x <= 0 branch)."""
    x = np.array([-3.0, 3.0, 0.0])
    for m, tm in [(nn.Hardswish(), torch.nn.Hardswish()), (nn.ELU(0.4), torch.nn.ELU(0.4))]:
        m(x)
        tx = torch.tensor(x, requires_grad=True)
        tm(tx).sum().backward()
        assert np.array_equal(m.backward(np.ones(3)), tx.grad.numpy())
    nn_hs = nn.Hardswish()
    nn_hs(x)
    assert np.array_equal(nn_hs.backward(np.ones(3)), [0.0, 1.0, 0.5])


def test_elu_inplace_negative_alpha_has_no_backward():
    m = nn.ELU(-0.5, inplace=True)
    x = np.array([-1.0, 2.0])
    m(x)
    with pytest.raises(ValueError, match="ELU with alpha=-0.5 and inplace=True has no backward"):
        m.backward(np.ones(2))


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_extremes_as_torch_and_quiet(torch, name):
    """Overflowing and infinite inputs give torch's values (NaN where torch's formula gives inf * 0), silently."""
    make, tmake = ACTIVATIONS[name]
    x = np.array([-1e300, -800.0, -1e160, 800.0, 1e160, 1e300, np.inf, -np.inf, np.nan])
    dy = np.ones_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = run_ours(make(), x, dy)
    assert_same_run(ours, run_torch(torch, tmake(torch.nn), x, dy))


# -- erf -------------------------------------------------------------------------------------------------------------

def test_erf_matches_the_standard_library():
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.uniform(-7, 7, 20000), rng.uniform(-1.2, 1.2, 20000), 10.0 ** rng.uniform(-300, 1, 5000),
                        [0.0, 1.0, 2.0, 3.0, 4.5, 6.0, 6.5, 5e-324]])
    x = np.concatenate([x, -x])
    ref = np.array([math.erf(v) for v in x])
    got = F.erf(x)
    ulps = np.abs(got - ref) / np.spacing(np.abs(ref))
    assert ulps.max() <= 4, f"{ulps.max()} ulp at x = {x[np.argmax(ulps)]}"
    special = F.erf(np.array([np.inf, -np.inf, np.nan, -0.0]))
    assert special[0] == 1 and special[1] == -1 and np.isnan(special[2]) and np.signbit(special[3])
    x32 = x.astype(np.float32)
    got32 = F.erf(x32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref.astype(np.float32), rtol=4e-7, atol=1e-45)


# -- numerical gradients ---------------------------------------------------------------------------------------------

GRADCHECK = {
    "group_norm": (lambda: nn.GroupNorm(2, 4), (3, 4, 2, 3)),
    "group_norm_no_bias": (lambda: nn.GroupNorm(4, 4, bias=False), (2, 4, 3)),
    "group_norm_no_affine": (lambda: nn.GroupNorm(1, 3, affine=False), (2, 3, 2, 2)),
    "layer_norm": (lambda: nn.LayerNorm(5), (3, 5)),
    "layer_norm_2d": (lambda: nn.LayerNorm((2, 3), bias=False), (2, 4, 2, 3)),
    "layer_norm_unbatched": (lambda: nn.LayerNorm((3, 4)), (3, 4)),
    "gelu": (lambda: nn.GELU(), (3, 7)),
    "gelu_tanh": (lambda: nn.GELU("tanh"), (3, 7)),
    "silu": (lambda: nn.SiLU(), (3, 7)),
    "silu_inplace": (lambda: nn.SiLU(inplace=True), (3, 7)),
    "elu": (lambda: nn.ELU(0.8), (3, 7)),
    "elu_inplace": (lambda: nn.ELU(0.8, inplace=True), (3, 7)),
    "hardswish": (lambda: nn.Hardswish(), (3, 7)),
    "hardswish_inplace": (lambda: nn.Hardswish(inplace=True), (3, 7)),
    "dropout2d_eval": (lambda: nn.Dropout2d(0.5).eval(), (2, 3, 2, 2)),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK))
def test_gradcheck(name):
    make, shape = GRADCHECK[name]
    x = np.random.default_rng(len(name)).standard_normal(shape) * 2
    x[np.abs(np.abs(x) - 3) < 1e-3] += 0.01  # no element on Hardswish's kinks
    assert strided.gradcheck(make(), x).ok


def test_gradcheck_dropout2d_training_with_a_fixed_mask():
    """With a seeded layer every call draws the same mask, so the numerical gradient sees a fixed function."""
    class Reseeded(nn.Module):
        def __init__(self):
            self.inner = nn.Dropout2d(0.4, seed=1)

        def forward(self, x):
            self.inner.own_generator = np.random.default_rng(1)
            return self.inner(x)

        def backward(self, dy, need_input_grad=True):
            return self.inner.backward(dy)

    x = np.random.default_rng(2).standard_normal((3, 4, 2, 2))
    assert strided.gradcheck(Reseeded(), x).ok


# -- Dropout2d -------------------------------------------------------------------------------------------------------

def _torch_dropout2d(torch, x, p, dy, inplace=False, train=True):
    tx = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's notes on 3-D (and deprecated 2-D/5-D) inputs
        ty = torch.nn.Dropout2d(p, inplace=inplace).train(train)(tx * 1)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.torch
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (2, 3, 5), (0, 3, 4, 4), (1, 1, 2, 2), (2, 3, 2, 2, 2), (4, 5)])
@pytest.mark.parametrize("inplace", [False, True])
def test_dropout2d_under_torchs_mask(torch, shape, inplace):
    rng = np.random.default_rng(11)
    p = 0.4
    x = rng.uniform(1, 2, shape)          # no zero: a dropped channel is recognisable
    dy = rng.standard_normal(shape)
    ty, tdx = _torch_dropout2d(torch, x, p, dy, inplace)
    kept = (ty != 0).any(axis=tuple(range(2, len(shape))), keepdims=True)
    ours = x.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        y, cache = F.dropout2d_forward(ours, p, KeepUniforms(kept), inplace=inplace)
    assert (y is ours) == inplace
    assert_close(y, ty, "output")
    assert_close(F.dropout2d_backward(dy, cache), tdx, "input gradient")


@pytest.mark.torch
@pytest.mark.parametrize("p", [0.0, 1.0])
@pytest.mark.parametrize("train", [True, False])
def test_dropout2d_edges_exact(torch, p, train):
    """p = 0 and p = 1 draw nothing, so strided and torch agree exactly (NaN * 0 stays NaN when p = 1, as torch)."""
    x = np.random.default_rng(12).standard_normal((2, 3, 2, 2))
    x[0, 0, 0, 0] = np.nan
    dy = np.random.default_rng(13).standard_normal(x.shape)
    ty, tdx = _torch_dropout2d(torch, x, p, dy, train=train)
    m = nn.Dropout2d(p).train(train)
    np.testing.assert_array_equal(m(x.copy()), ty)
    np.testing.assert_array_equal(m.backward(dy), tdx)


def test_dropout2d_zeroes_whole_channels_and_scales():
    p = 0.3
    m = nn.Dropout2d(p, seed=0)
    x = np.ones((400, 16, 3, 3))
    y = m(x)
    per_channel = y.reshape(400, 16, -1)
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))   # each channel all dropped or all kept
    assert set(np.unique(y)) == {0.0, 1 / (1 - p)}
    dropped = (per_channel[:, :, 0] == 0).mean()
    assert abs(dropped - p) < 4 * math.sqrt(p * (1 - p) / 6400)        # within 4 standard deviations
    dy = np.random.default_rng(1).standard_normal(x.shape)
    np.testing.assert_array_equal(m.backward(dy), dy * (y / x))        # exact given the mask
    assert m.eval()(x) is x                                             # identity in eval


def test_dropout2d_randomness_comes_from_strided_generators():
    x = np.ones((4, 8, 2, 2))
    strided.manual_seed(3)
    a = nn.Dropout2d(0.5)(x)
    strided.manual_seed(3)
    b = nn.Dropout2d(0.5)(x)
    assert np.array_equal(a, b)
    assert np.array_equal(nn.Dropout2d(0.5, seed=5)(x), nn.Dropout2d(0.5, seed=5)(x))
    assert np.array_equal(nn.Dropout2d(0.5, seed=5)(x), nn.Dropout2d(0.5, seed=5)(x.astype(np.float32)))


def test_dropout2d_inputs_as_torch_2_13():
    m = nn.Dropout2d(0.5, seed=0)
    with pytest.warns(UserWarning, match=r"reads it as \(N, C, L\)"):
        y = m(np.ones((3, 8, 5)))
    rows = y.reshape(24, 5)
    assert np.all(rows.min(axis=1) == rows.max(axis=1)) and len(np.unique(rows[:, 0])) == 2
    with pytest.warns(UserWarning, match="2-D x"):
        m(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"Dropout2d needs x of shape \(N, C, H, W\), got shape \(5,\)"):
        m(np.ones(5))
    assert m(np.ones((0, 3, 2, 2))).shape == (0, 3, 2, 2)
    x = np.ones((0, 3, 2, 2))
    assert nn.Dropout2d(inplace=True)(x) is x


# -- arguments and errors ------------------------------------------------------------------------------------------

BAD = [
    (lambda: nn.GroupNorm(3, 4), ValueError, r"num_channels \(4\) must be divisible by num_groups \(3\)"),
    (lambda: nn.GroupNorm(0, 4), ValueError, "num_groups must be a positive int, got 0"),
    (lambda: nn.GroupNorm(2.0, 4), TypeError, "num_groups must be a positive int, got 2.0"),
    (lambda: nn.GroupNorm(2, 4, eps=-1), ValueError, "eps must be a finite number > 0, got -1"),
    (lambda: nn.GroupNorm(2, 4, affine="yes"), TypeError, "affine must be True or False, got 'yes'"),
    (lambda: nn.GroupNorm(2, 4, bias=1), TypeError, "bias must be True or False, got 1"),
    (lambda: nn.GroupNorm(2, 4, dtype=np.int32), TypeError, "dtype must be float32 or float64, got int32"),
    (lambda: nn.GroupNorm(2, 4)(np.zeros((2, 6, 3))), ValueError, r"expects 4 channels, got x of shape \(2, 6, 3\)"),
    (lambda: nn.GroupNorm(2, 4)(np.zeros(4)), ValueError, r"x must have at least 2 dimensions \(N, C, \*\), got shape"),
    (lambda: nn.GroupNorm(2, 4).backward(np.zeros(4)), ValueError, "backward called before forward"),
    (lambda: nn.LayerNorm("4"), TypeError, "normalized_shape must be an int or a non-empty tuple of ints, got '4'"),
    (lambda: nn.LayerNorm(()), TypeError, r"normalized_shape must be an int or a non-empty tuple of ints, got \(\)"),
    (lambda: nn.LayerNorm((3, 0)), ValueError, r"normalized_shape must hold positive sizes, got \(3, 0\)"),
    (lambda: nn.LayerNorm(4, elementwise_affine=None), TypeError, "elementwise_affine must be True or False"),
    (lambda: nn.LayerNorm(4)(np.zeros((3, 5))), ValueError,
     r"x must end with normalized_shape \(4,\), i.e. have shape \(\*, 4\), got shape \(3, 5\)"),
    (lambda: nn.LayerNorm((2, 4))(np.zeros(4)), ValueError, r"got shape \(4,\)"),
    (lambda: nn.GELU("exact"), ValueError, "unknown approximate 'exact'; expected one of: 'none', 'tanh'"),
    (lambda: nn.GELU(None), TypeError, "approximate must be 'none' or 'tanh', got None"),
    (lambda: nn.ELU("1"), TypeError, "alpha must be a number, got '1'"),
    (lambda: nn.ELU(float("nan")), ValueError, "alpha must be a finite number, got nan"),
    (lambda: nn.SiLU(inplace=1), TypeError, "inplace must be True or False, got 1"),
    (lambda: nn.Hardswish(inplace="no"), TypeError, "inplace must be True or False, got 'no'"),
    (lambda: nn.SiLU(inplace=True)(np.zeros(3, np.int64)), TypeError, "float32 or float64 NumPy array"),
    (lambda: nn.Dropout2d(1.5), ValueError, r"p must be in \[0, 1\], got 1.5"),
    (lambda: nn.Dropout2d(0.5, inplace="x"), TypeError, "inplace must be True or False"),
    (lambda: nn.GELU()(np.array(["a"])), TypeError, "x must be a real-valued array, got dtype <U1"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_arguments(case):
    build, exc, message = BAD[case]
    with pytest.raises(exc, match=message):
        build()


@pytest.mark.parametrize("make", [lambda: nn.LayerNorm(3, dtype=np.float64), lambda: nn.GroupNorm(1, 3, dtype=T64)])
def test_float32_input_to_float64_layer_is_refused_not_promoted(make):
    m = make()
    with pytest.raises(TypeError, match="weight has dtype float64 but the input has dtype float32"):
        m(np.zeros((2, 3), np.float32))
    assert m(np.zeros((2, 3), np.int64)).dtype == np.float64  # integers take the layer's dtype


# -- files, torch and ONNX -----------------------------------------------------------------------------------------

def _all_new_layers(dtype=np.float32):
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, dtype=dtype), nn.GroupNorm(3, 6, dtype=dtype), nn.GELU(), nn.Dropout2d(0.2),
        nn.Conv2d(6, 4, 3, dtype=dtype), nn.GroupNorm(2, 4, affine=False), nn.SiLU(inplace=True),
        nn.LayerNorm((4, 3, 3), bias=False, dtype=dtype), nn.Hardswish(), nn.ELU(0.5), nn.Flatten(),
        nn.LayerNorm(36, dtype=dtype), nn.GELU("tanh"), nn.Linear(36, 5, dtype=dtype),
    )


def _randomise(model, rng):
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape).astype(p.dtype)
    return model


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_load_round_trip(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    model = _randomise(_all_new_layers(np.float64), np.random.default_rng(0)).eval()
    path = strided.save(model, tmp_path / f"m{suffix}")
    back = strided.load(path).eval()
    assert repr(back) == repr(model)
    assert [type(m) for m in back.modules()] == [type(m) for m in model.modules()]
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5))
    np.testing.assert_array_equal(back(x.copy()), model(x.copy()))
    assert back[7].normalized_shape == (4, 3, 3) and back[7].bias is None and back[5].weight is None


@pytest.mark.torch
def test_state_dict_names_are_torchs(torch):
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.GroupNorm(3, 6), torch.nn.GELU(), torch.nn.Dropout2d(0.2),
        torch.nn.Conv2d(6, 4, 3), torch.nn.GroupNorm(2, 4, affine=False), torch.nn.SiLU(inplace=True),
        torch.nn.LayerNorm((4, 3, 3), bias=False), torch.nn.Hardswish(), torch.nn.ELU(0.5), torch.nn.Flatten(),
        torch.nn.LayerNorm(36), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(36, 5))
    ours = _all_new_layers()
    assert list(ours.state_dict()) == list(tm.state_dict())
    assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(v.shape) for v in tm.state_dict().values()]
    new = [i for i, m in enumerate(ours) if not isinstance(m, (nn.Conv2d, nn.Linear, nn.Flatten))]
    assert [repr(ours[i]).split("  #")[0] for i in new] == [repr(tm[i]) for i in new]  # torch's reprs


@pytest.mark.torch
@pytest.mark.parametrize("train", [False, True])
def test_from_torch_and_back(torch, train):
    rng = np.random.default_rng(2)
    model = _randomise(_all_new_layers(np.float64), rng)
    model[3].p = 0.0  # the dropouts' draws differ between libraries
    model.train(train)
    tm = sio.to_torch(model)
    assert [type(t).__name__ for t in tm] == [type(m).__name__ for m in model]
    assert tm[6].inplace and tm[9].alpha == 0.5 and tm[12].approximate == "tanh" and tm[7].bias is None
    x = rng.standard_normal((2, 3, 5, 5))
    with torch.no_grad():
        expected = tm(torch.tensor(x)).numpy()
    assert_close(model(x.copy()), expected, "to_torch output")
    back = sio.from_torch(tm)
    assert repr(back) == repr(model) and back.training == train
    assert all(np.array_equal(a, torch_state(tm)[k]) for k, a in back.state_dict().items())
    assert_close(back(x.copy()), expected, "from_torch output")


def _optional(name):
    if os.environ.get("STRIDED_REQUIRE_TORCH") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name, reason="pip install strided[onnx]")


ONNX_LAYERS = {
    "group_norm": (lambda: nn.GroupNorm(2, 6), (6, 5, 4)),
    "group_norm_1d": (lambda: nn.GroupNorm(3, 6, affine=False, eps=1e-3), (6, 5)),
    "group_norm_no_bias": (lambda: nn.GroupNorm(1, 4, bias=False), (4, 3, 3)),
    "layer_norm": (lambda: nn.LayerNorm(4), (3, 4)),
    "layer_norm_2d_no_bias": (lambda: nn.LayerNorm((3, 4), bias=False), (2, 3, 4)),
    "layer_norm_no_affine": (lambda: nn.LayerNorm(5, elementwise_affine=False), (5,)),
    "gelu": (lambda: nn.GELU(), (3, 4)),
    "gelu_tanh": (lambda: nn.GELU("tanh"), (3, 4)),
    "silu": (lambda: nn.SiLU(), (5,)),
    "elu": (lambda: nn.ELU(0.3), (5,)),
    "hardswish": (lambda: nn.Hardswish(), (3, 4, 4)),
    "dropout2d": (lambda: nn.Dropout2d(), (3, 4, 4)),
    "all": (_all_new_layers, (3, 5, 5)),
}


@pytest.mark.parametrize("name", sorted(ONNX_LAYERS))
def test_onnx_in_onnxruntime(tmp_path, name):
    onnx, ort = _optional("onnx"), _optional("onnxruntime")
    from onnx.reference import ReferenceEvaluator

    make, shape = ONNX_LAYERS[name]
    model = _randomise(make(), np.random.default_rng(3))
    path = sio.export_onnx(model, tmp_path / f"{name}.onnx", shape)
    proto = onnx.load(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    for n in (3, 1):
        x = (np.random.default_rng(n).standard_normal((n, *shape)) * 3).astype(np.float32)
        expected = model(x.copy())
        np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ReferenceEvaluator(proto).run(None, {"input": x})[0], expected, rtol=1e-5,
                                   atol=1e-5)
