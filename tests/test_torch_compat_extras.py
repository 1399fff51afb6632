"""torch's arguments for ported models: in-place activations, loss weights and ignore_index, Conv2d padding modes.

Every argument is compared with torch 2.13 (value and gradients, float32 and
float64), including the edge cases torch defines (every target ignored, a
zero total weight: nan where torch has nan) and the inputs torch refuses.
"""
import importlib
import os

import numpy as np
import pytest
from _parity import assert_close, assert_same_run, load_torch_weights, run_ours, run_torch, torch_state

import strided.functional as F
from strided import io as sio
from strided import nn
from strided.windows import is_batch_last, to_batch_last

pytestmark = pytest.mark.torch

DTYPES = [np.float64, np.float32]
REDUCTIONS = ["mean", "sum", "none"]
MODES = ["reflect", "replicate", "circular"]


def _tdtype(torch, dtype):
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def _raises(exc, *fragments):
    """pytest.raises that also checks the message names what went wrong."""
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *args):
            handled = self.ctx.__exit__(*args)
            for f in fragments:
                assert f in str(self.info.value), f"{f!r} not in {str(self.info.value)!r}"
            return handled
    return Check()


# ============================================================================ in-place activations
ACTIVATIONS = {
    "relu": (lambda inplace: nn.ReLU(inplace=inplace), lambda T, inplace: T.ReLU(inplace=inplace)),
    "leaky": (lambda inplace: nn.LeakyReLU(inplace=inplace), lambda T, inplace: T.LeakyReLU(inplace=inplace)),
    "leaky_0.2": (lambda inplace: nn.LeakyReLU(0.2, inplace), lambda T, inplace: T.LeakyReLU(0.2, inplace)),
    "leaky_0": (lambda inplace: nn.LeakyReLU(0.0, inplace), lambda T, inplace: T.LeakyReLU(0.0, inplace)),
    "leaky_1.5": (lambda inplace: nn.LeakyReLU(1.5, inplace), lambda T, inplace: T.LeakyReLU(1.5, inplace)),
}


def _layout(rng, layout, dtype):
    """(x, the array x is a view of, or None): a C-ordered, batch-last, strided-view or 2-d input with kinks at 0."""
    if layout == "view":
        base = (3 * rng.standard_normal((2, 6, 4, 5))).astype(dtype)
        base[:, ::2].flat[::5] = 0
        return base[:, ::2], base
    shape = (5, 7) if layout == "2d" else (3, 2, 4, 5)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    x.flat[::5] = 0   # the kink: torch's derivative there is the left one
    return (to_batch_last(x) if layout == "batch_last" else x), None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["c_order", "batch_last", "view", "2d"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_inplace_activation_matches_torch(torch, rng, name, layout, dtype):
    make, tmake = ACTIVATIONS[name]
    x, base = _layout(rng, layout, dtype)
    original = x.copy()
    others = None if base is None else base[:, 1::2].copy()
    dy = rng.standard_normal(x.shape).astype(dtype)

    m = make(True)
    y = m(x)
    dx = m.backward(dy)
    assert y is x and dx.dtype == dtype
    assert is_batch_last(y) == (layout == "batch_last")
    if base is not None:  # only the view's own elements were written
        np.testing.assert_array_equal(base[:, 1::2], others)

    tx = torch.tensor(original, requires_grad=True)
    ty = tmake(torch.nn, True)(tx * 1)     # torch's in-place layers need a non-leaf input
    ty.backward(torch.tensor(dy))
    assert_close(x, ty.detach().numpy(), "in-place output", dtype)
    assert_close(dx, tx.grad.numpy(), "input gradient", dtype)

    # bit for bit what the out-of-place layer gives
    plain = make(False)
    np.testing.assert_array_equal(plain(original.copy()), y)
    np.testing.assert_array_equal(plain.backward(dy), dx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_activations_in_a_network_match_torch(torch, rng, dtype):
    def build(lib):
        return lib.Sequential(lib.Conv2d(2, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(inplace=True),
                              lib.Conv2d(4, 3, 3), lib.LeakyReLU(0.1, inplace=True), lib.MaxPool2d(2),
                              lib.Flatten(), lib.Linear(12, 5), lib.ReLU(inplace=True))

    tm = build(torch.nn).to(_tdtype(torch, dtype))
    m = load_torch_weights(build(nn).to(dtype), tm)
    x = rng.standard_normal((3, 2, 6, 6)).astype(dtype)
    dy = rng.standard_normal((3, 5)).astype(dtype)
    assert_same_run(run_ours(m, x.copy(), dy), run_torch(torch, tm, x, dy), dtype)


def test_inplace_repr_config_and_files_match_torch(torch, tmp_path):
    for ours, theirs in ((nn.ReLU(inplace=True), torch.nn.ReLU(inplace=True)), (nn.ReLU(), torch.nn.ReLU()),
                         (nn.LeakyReLU(0.2, True), torch.nn.LeakyReLU(0.2, True)),
                         (nn.LeakyReLU(), torch.nn.LeakyReLU())):
        assert repr(ours) == repr(theirs)
        loaded = sio.load(sio.save(ours, tmp_path / "act.npz"))
        assert loaded.inplace == ours.inplace and loaded.get_config() == ours.get_config()


def test_inplace_errors(torch, rng):
    with _raises(TypeError, "x must be a float32 or float64 NumPy array with inplace=True", "got list"):
        nn.ReLU(inplace=True)([[1.0, -1.0]])
    with _raises(TypeError, "got dtype int64"):
        nn.LeakyReLU(inplace=True)(np.array([1, -1], dtype=np.int64))
    frozen = np.array([1.0, -2.0])
    frozen.setflags(write=False)
    with _raises(ValueError, "read-only", "inplace=False"):
        nn.ReLU(inplace=True)(frozen)
    np.testing.assert_array_equal(frozen, [1.0, -2.0])
    shared = np.lib.stride_tricks.as_strided(np.array([-1.0, 2.0]), (3, 2), (0, 8))  # writeable, rows alias
    with _raises(ValueError, "sharing memory", "(3, 2)"):
        F.leaky_relu_forward(shared, 0.5, inplace=True)
    with _raises(TypeError, "inplace must be True or False", "'yes'"):
        nn.ReLU(inplace="yes")
    with _raises(TypeError, "inplace must be True or False"):
        nn.LeakyReLU(0.1, 1)

    # a negative slope: the forward works, the backward is refused, as in torch
    x = rng.standard_normal((4, 3))
    m = nn.LeakyReLU(-0.1, inplace=True)
    y = m(x.copy())
    assert_close(y, torch.nn.functional.leaky_relu(torch.tensor(x), -0.1).numpy())
    with _raises(ValueError, "negative_slope=-0.1", "inplace=True", "inplace=False"):
        m.backward(np.ones_like(x))
    with pytest.raises(RuntimeError, match="negative slope"):
        torch.nn.LeakyReLU(-0.1, inplace=True)(torch.tensor(x, requires_grad=True) * 1).sum().backward()


# ============================================================================ losses
def _loss_parity(torch, rng, ours, theirs, pred, target, dtype):
    """Value and dL/dpred of both libraries (an upstream gradient per element for reduction='none')."""
    value = ours(pred, target)
    dloss = rng.standard_normal(np.shape(value)).astype(dtype) if ours.reduction == "none" else None
    grad = ours.backward() if dloss is None else ours.backward(dloss)
    tp = torch.tensor(pred, requires_grad=True)
    tv = theirs(tp, torch.as_tensor(target))
    tv.backward(None if dloss is None else torch.tensor(dloss))
    assert np.asarray(value).dtype == dtype and grad.dtype == dtype and grad.shape == pred.shape
    assert_close(value, tv.detach().numpy(), "loss", dtype)
    assert_close(grad, tp.grad.numpy(), "gradient", dtype)
    return value, grad


# which targets are ignored, and the ignore_index used: in range (a real class), default -100
IGNORED = {"none": -100, "some": -100, "some_class_2": 2, "all": -100, "all_class_2": 2}


def _labels(rng, n, c, ignored):
    ignore_index = IGNORED[ignored]
    classes = [k for k in range(c) if k != ignore_index]
    t = rng.choice(classes, n)
    if ignored.startswith("some"):
        t[rng.random(n) < 0.4] = ignore_index
        t[0] = ignore_index
        t[-1] = classes[0]
    elif ignored.startswith("all"):
        t[:] = ignore_index
    return t.astype(np.int64), ignore_index


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ignored", sorted(IGNORED))
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_weight_ignore_index_smoothing(torch, rng, reduction, weighted, smoothing, ignored, dtype):
    n, c = int(rng.integers(2, 9)), int(rng.integers(3, 7))
    z = (3 * rng.standard_normal((n, c))).astype(dtype)
    t, ignore_index = _labels(rng, n, c, ignored)
    w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
    ours = nn.CrossEntropyLoss(w, ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    theirs = torch.nn.CrossEntropyLoss(None if w is None else torch.tensor(w), ignore_index=ignore_index,
                                       reduction=reduction, label_smoothing=smoothing)
    value, grad = _loss_parity(torch, rng, ours, theirs, z, t, dtype)
    if ignored.startswith("all"):
        assert np.isnan(value) if reduction == "mean" else not np.any(value)
        assert not np.any(grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ignored", ["none", "some", "some_class_2", "all"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(torch, rng, reduction, weighted, ignored, dtype):
    n, c = int(rng.integers(1, 9)), int(rng.integers(3, 7))
    logp = F.log_softmax(rng.standard_normal((n, c)), axis=1).astype(dtype)
    t, ignore_index = _labels(rng, n, c, ignored)
    w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
    ours = nn.NLLLoss(w, ignore_index=ignore_index, reduction=reduction)
    theirs = torch.nn.NLLLoss(None if w is None else torch.tensor(w), ignore_index=ignore_index, reduction=reduction)
    _loss_parity(torch, rng, ours, theirs, logp, t, dtype)


def test_cross_entropy_is_log_softmax_then_nll(rng):
    z, t, w = rng.standard_normal((6, 4)), np.array([0, 3, -100, 1, 1, 2]), rng.uniform(0.5, 2, 4)
    ce, nll = nn.CrossEntropyLoss(w), nn.NLLLoss(w)
    assert_close(ce(z, t), nll(F.log_softmax(z, axis=1), t))


@pytest.mark.parametrize("loss, smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.3), ("nll", 0.0)])
def test_zero_total_weight_gives_torchs_nan(torch, rng, loss, smoothing):
    """Every counted target has weight 0: torch's mean is 0/0 = nan, with nan (or 0) gradients row by row."""
    z = rng.standard_normal((4, 3))
    t = np.array([0, -100, 0, 1])
    w = np.array([0.0, 0.0, 2.0])
    if loss == "nll":
        ours, theirs = nn.NLLLoss(w), torch.nn.NLLLoss(torch.tensor(w))
    else:
        ours = nn.CrossEntropyLoss(w, label_smoothing=smoothing)
        theirs = torch.nn.CrossEntropyLoss(torch.tensor(w), label_smoothing=smoothing)
    value, grad = _loss_parity(torch, rng, ours, theirs, z, t, np.float64)
    assert np.isnan(value) and np.isnan(grad).any() and not np.any(grad[1])   # the ignored row stays 0


WEIGHT_SHAPES = {"none": None, "full": (4, 3), "per_class": (3,), "per_row": (4, 1), "scalar": ()}


def _weight(rng, key, dtype):
    shape = WEIGHT_SHAPES[key]
    return None if shape is None else rng.uniform(0.2, 3.0, shape).astype(dtype)


def _t(torch, a):
    return None if a is None else torch.tensor(a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wkey", sorted(WEIGHT_SHAPES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_weight(torch, rng, reduction, wkey, dtype):
    p = rng.uniform(0.02, 0.98, (4, 3)).astype(dtype)
    t = rng.uniform(0, 1, (4, 3)).astype(dtype)
    w = _weight(rng, wkey, dtype)
    _loss_parity(torch, rng, nn.BCELoss(w, reduction=reduction),
                 torch.nn.BCELoss(_t(torch, w), reduction=reduction), p, t, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pkey", ["none", "per_class", "full", "scalar"])
@pytest.mark.parametrize("wkey", ["none", "full", "per_row"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_weight_and_pos_weight(torch, rng, reduction, wkey, pkey, dtype):
    z = (4 * rng.standard_normal((4, 3))).astype(dtype)
    z[0] = [60.0, -60.0, 0.0]                   # saturated logits stay finite and exact
    t = (rng.random((4, 3)) < 0.5).astype(dtype)
    t[1] = [0.25, 0.5, 1.0]                     # soft targets too
    w, pw = _weight(rng, wkey, dtype), _weight(rng, pkey, dtype)
    _loss_parity(torch, rng, nn.BCEWithLogitsLoss(w, reduction=reduction, pos_weight=pw),
                 torch.nn.BCEWithLogitsLoss(_t(torch, w), reduction=reduction, pos_weight=_t(torch, pw)), z, t, dtype)


def test_loss_weights_are_buffers_like_torchs(torch, rng, tmp_path):
    w, pw = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    pairs = [
        (nn.CrossEntropyLoss(w, ignore_index=3, reduction="sum", label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(torch.tensor(w), ignore_index=3, reduction="sum", label_smoothing=0.1)),
        (nn.NLLLoss(w, ignore_index=0), torch.nn.NLLLoss(torch.tensor(w), ignore_index=0)),
        (nn.BCELoss(w), torch.nn.BCELoss(torch.tensor(w))),
        (nn.BCEWithLogitsLoss(w, pos_weight=pw),
         torch.nn.BCEWithLogitsLoss(torch.tensor(w), pos_weight=torch.tensor(pw))),
        (nn.BCEWithLogitsLoss(pos_weight=pw), torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))),
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
    ]
    z = rng.uniform(0.05, 0.95, (5, 4))
    t = np.array([0, 3, 1, 2, 2])
    for ours, theirs in pairs:
        state = ours.state_dict()
        assert list(state) == list(theirs.state_dict())
        for k, v in torch_state(theirs).items():
            np.testing.assert_array_equal(state[k], v)
        target = t if isinstance(ours, (nn.CrossEntropyLoss, nn.NLLLoss)) else (z > 0.5).astype(np.float64)
        loaded = sio.load(sio.save(ours, tmp_path / "loss.npz"))
        assert type(loaded) is type(ours) and repr(loaded) == repr(ours)
        assert np.array_equal(loaded(z, target), ours(z, target))
        assert_close(ours(z, target), theirs(torch.tensor(z), torch.tensor(target)).numpy())

    # the weights follow .to(); each forward uses them in the input's dtype, never promoting it
    ce = nn.CrossEntropyLoss(w.astype(np.float32))
    assert ce(z, t).dtype == np.float64 and ce(z.astype(np.float32), t).dtype == np.float32
    assert ce.to(np.float64).weight.dtype == np.float64
    assert "ignore_index=3" in repr(pairs[0][0]) and "weight=[" in repr(pairs[0][0])


LOSS_ERRORS = [
    (lambda: nn.CrossEntropyLoss("sum"), TypeError, ["weight must be None", "reduction='sum'"]),
    (lambda: nn.BCELoss("none"), TypeError, ["weight must be None", "reduction='none'"]),
    (lambda: nn.CrossEntropyLoss(np.ones((2, 3))), ValueError, ["weight must be a 1-D array", "(2, 3)"]),
    (lambda: nn.NLLLoss(np.array([], dtype=float)), ValueError, ["weight must be a 1-D array", "(0,)"]),
    (lambda: nn.CrossEntropyLoss(np.array([1j, 2j])), TypeError, ["weight must be a real-valued array",
                                                                   "complex128"]),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=["a"]), TypeError, ["pos_weight must be a real-valued array"]),
    (lambda: nn.CrossEntropyLoss(ignore_index=1.5), TypeError, ["ignore_index must be an int", "1.5"]),
    (lambda: nn.NLLLoss(ignore_index=True), TypeError, ["ignore_index must be an int", "True"]),
    (lambda: nn.CrossEntropyLoss(np.ones(4), None, 3), TypeError, ["positional"]),
    (lambda: nn.CrossEntropyLoss(np.ones(3))(np.zeros((2, 4)), np.array([0, 1])), ValueError,
     ["weight must hold one value per class", "shape (4,)", "(2, 4)", "got shape (3,)"]),
    (lambda: nn.NLLLoss(np.ones(5))(np.zeros((2, 4)), np.array([0, 1])), ValueError,
     ["weight must hold one value per class", "got shape (5,)"]),
    (lambda: nn.CrossEntropyLoss(ignore_index=-1)(np.zeros((2, 4)), np.array([-1, 5])), ValueError,
     ["target contains label 5", "outside [0, 3]", "ignore_index=-1"]),
    (lambda: nn.NLLLoss()(np.zeros((2, 4)), np.array([-100, -1])), ValueError, ["target contains label -1"]),
    (lambda: nn.BCELoss(np.ones(4))(np.full((2, 3), 0.5), np.zeros((2, 3))), ValueError,
     ["weight must have a shape that broadcasts to the input's shape (2, 3)", "got shape (4,)"]),
    (lambda: nn.BCELoss(np.ones((2, 2, 3)))(np.full((2, 3), 0.5), np.zeros((2, 3))), ValueError,
     ["weight", "got shape (2, 2, 3)"]),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=np.ones(2))(np.zeros((2, 3)), np.zeros((2, 3))), ValueError,
     ["pos_weight must have one weight per class along the last axis", "(2, 3)", "got shape (2,)"]),
    (lambda: nn.BCEWithLogitsLoss(np.ones((3, 2)))(np.zeros((2, 3)), np.zeros((2, 3))), ValueError,
     ["weight must have a shape that broadcasts", "got shape (3, 2)"]),
]


@pytest.mark.parametrize("i", range(len(LOSS_ERRORS)))
def test_loss_argument_errors(i):
    call, exc, fragments = LOSS_ERRORS[i]
    with _raises(exc, *fragments):
        call()


def test_refused_shapes_are_refused_by_torch_too(torch):
    """The weights strided refuses at forward time, torch refuses as well (only the message differs)."""
    cases = [
        (nn.CrossEntropyLoss(np.ones(3)), torch.nn.CrossEntropyLoss(torch.ones(3, dtype=torch.float64)),
         np.zeros((2, 4)), np.array([0, 1])),
        (nn.BCELoss(np.ones(4)), torch.nn.BCELoss(torch.ones(4, dtype=torch.float64)),
         np.full((2, 3), 0.5), np.zeros((2, 3))),
        (nn.BCEWithLogitsLoss(pos_weight=np.ones(2)),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(2, dtype=torch.float64)), np.zeros((2, 3)), np.zeros((2, 3))),
    ]
    for ours, theirs, pred, target in cases:
        with pytest.raises(ValueError):
            ours(pred, target)
        assert ours._cache is None   # refused before any work
        with pytest.raises(RuntimeError):
            theirs(torch.tensor(pred), torch.tensor(target))


# ============================================================================ Conv2d padding_mode
# (x shape, in, out, kernel, keyword arguments): asymmetric 'same', groups, strides, dilation, 1-pixel inputs
CONV_CASES = [
    ((2, 3, 7, 6), 3, 4, 3, dict(padding=1)),
    ((2, 4, 6, 7), 4, 6, (3, 2), dict(stride=(2, 1), padding=(2, 1), groups=2)),
    ((1, 2, 5, 5), 2, 3, 4, dict(padding="same", bias=False)),
    ((2, 2, 8, 6), 2, 2, 3, dict(padding="same", dilation=(2, 1))),
    ((3, 1, 4, 4), 1, 2, 2, dict(padding="valid")),
    ((2, 3, 3, 5), 3, 3, 3, dict(padding=2, groups=3, stride=2)),
    ((1, 1, 2, 3), 1, 2, 1, dict(padding=(1, 2))),
    ((1, 2, 3, 3), 2, 2, 3, dict(padding=3)),             # circular: exactly the input's size
    ((2, 1, 2, 2), 1, 1, 3, dict(padding=(5, 4))),        # replicate: padding of any size
    ((1, 2, 1, 4), 2, 2, (1, 3), dict(padding=(0, 1))),   # a one-pixel-high image
]


def _conv_pair(torch, mode, dtype, cin, cout, kernel, kw):
    tm = torch.nn.Conv2d(cin, cout, kernel, padding_mode=mode, dtype=_tdtype(torch, dtype), **kw)
    m = load_torch_weights(nn.Conv2d(cin, cout, kernel, padding_mode=mode, dtype=dtype, **kw), tm)
    return m, tm


def _torch_accepts(torch, tm, x):
    try:
        with torch.no_grad():
            tm(torch.tensor(x))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("mode", MODES)
def test_conv_padding_mode_matches_torch(torch, rng, mode, case, dtype):
    x_shape, cin, cout, kernel, kw = CONV_CASES[case]
    m, tm = _conv_pair(torch, mode, dtype, cin, cout, kernel, kw)
    x = rng.standard_normal(x_shape).astype(dtype)
    if not _torch_accepts(torch, tm, x):   # too much padding for the mode: both refuse
        with pytest.raises(ValueError, match=f"mode '{mode}'"):
            m(x)
        return
    y = m(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy), dtype)
    # batch-last input: the same numbers
    m.zero_grad()
    yb = m(to_batch_last(x))
    np.testing.assert_allclose(yb, y, **({"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12}))


@pytest.mark.parametrize("mode", MODES)
def test_conv_padding_mode_random_sweep(torch, mode):
    """Random layers and inputs; whenever torch refuses the padding for the input's size, so does strided."""
    rng = np.random.default_rng(["reflect", "replicate", "circular"].index(mode))
    refused = 0
    for _ in range(25):
        groups = int(rng.choice([1, 2]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
        x_shape = (int(rng.integers(1, 3)), cin, int(rng.integers(1, 7)), int(rng.integers(1, 7)))
        if rng.random() < 0.2:
            kw = dict(padding="same", dilation=tuple(int(d) for d in rng.integers(1, 3, 2)))
        else:
            kw = dict(padding=tuple(int(p) for p in rng.integers(0, 5, 2)),
                      stride=tuple(int(s) for s in rng.integers(1, 3, 2)))
        kw["groups"] = groups
        m, tm = _conv_pair(torch, mode, np.float64, cin, cout, kernel, kw)
        x = rng.standard_normal(x_shape)
        if not _torch_accepts(torch, tm, x):
            refused += 1
            with pytest.raises(ValueError):
                m(x)
            continue
        y = m(x)
        dy = rng.standard_normal(y.shape)
        assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy))
    assert refused < 25


def test_conv_padding_mode_partial_backward(torch, rng):
    """The network's input needs no gradient: none is computed, the weight gradients are still torch's."""
    m, tm = _conv_pair(torch, "reflect", np.float64, 2, 3, 3, dict(padding=2))
    x = rng.standard_normal((2, 2, 5, 4))
    y = m(x)
    dy = rng.standard_normal(y.shape)
    assert m.backward(dy, need_input_grad=False) is None
    _, _, tgrads = run_torch(torch, tm, x, dy)
    assert_close(m.weight.grad, tgrads["weight"])
    assert_close(m.bias.grad, tgrads["bias"])


@pytest.mark.parametrize("mode", MODES)
def test_conv_padding_mode_config_state_dict_and_model_file(torch, rng, tmp_path, mode):
    m = nn.Conv2d(2, 3, (3, 2), padding=(2, 1), padding_mode=mode, rng=1)
    tm = torch.nn.Conv2d(2, 3, (3, 2), padding=(2, 1), padding_mode=mode)
    assert list(m.state_dict()) == list(tm.state_dict())
    cfg = m.get_config()
    assert cfg["padding_mode"] == mode and nn.Conv2d(**cfg).padding_mode == mode
    assert f"padding_mode={mode!r}" in repr(m)
    x = rng.standard_normal((2, 2, 5, 4)).astype(np.float32)
    for fmt in ("npz", "safetensors"):
        if fmt == "safetensors" and importlib.util.find_spec("safetensors") is None:
            continue
        loaded = sio.load(sio.save(nn.Sequential(m, nn.ReLU(inplace=True)), tmp_path / f"m.{fmt}"))
        assert loaded[0].padding_mode == mode and loaded[1].inplace
        np.testing.assert_array_equal(loaded(x.copy()), np.maximum(m(x), 0))


def test_conv_padding_mode_errors(torch):
    with _raises(ValueError, "unknown padding_mode 'mirror'", "'reflect'", "'replicate'", "'circular'"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError):
        torch.nn.Conv2d(1, 1, 3, padding_mode="mirror")
    with _raises(ValueError, "padding (3, 3) along W", "smaller than the input's size 3", "'reflect'"):
        nn.Conv2d(1, 1, 3, padding=(1, 3), padding_mode="reflect")(np.zeros((1, 1, 5, 3), np.float32))
    with _raises(ValueError, "padding (4, 4) along H", "at most the input's size 3", "'circular'"):
        nn.Conv2d(1, 1, 3, padding=4, padding_mode="circular")(np.zeros((1, 1, 3, 6), np.float32))
    # the convolution's own errors name x's real shape and the layer's padding, not the padded array
    with _raises(ValueError, "(1, 1, 2, 2)", "padding (1, 1, 1, 1)"):
        nn.Conv2d(1, 1, 5, padding=1, padding_mode="replicate")(np.zeros((1, 1, 2, 2), np.float32))
    with _raises(TypeError, "dtype float64", "float32"):
        nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")(np.zeros((1, 1, 4, 4)))
    with _raises(ValueError, "Conv2d expects 2 input channels"):
        nn.Conv2d(2, 1, 3, padding=1, padding_mode="circular")(np.zeros((1, 3, 4, 4), np.float32))


# ---------------------------------------------------------------------------- the padding functions themselves
PADS = [1, (2, 0), (0, 0, 1, 2), (2, 1, 0, 3), (3, 3, 3, 3), 0]


@pytest.mark.parametrize("layout", ["c_order", "batch_last", "view"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", PADS)
@pytest.mark.parametrize("mode", MODES)
def test_pad_matches_torch_pad(torch, rng, mode, padding, dtype, layout):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    if layout == "batch_last":
        x = to_batch_last(x)
    elif layout == "view":
        x = rng.standard_normal((2, 3, 8, 5)).astype(dtype)[:, :, ::2]
    top, bottom, left, right = (padding,) * 4 if isinstance(padding, int) else \
        (padding[0], padding[0], padding[1], padding[1]) if len(padding) == 2 else padding
    if mode == "reflect" and max(top, bottom) >= 4:
        pytest.skip("torch refuses a reflection as wide as the input (tested in test_pad_errors)")
    xp, cache = F.pad_forward(x, padding, mode)
    assert xp.dtype == dtype and is_batch_last(xp) == (layout == "batch_last")
    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    txp = torch.nn.functional.pad(tx, (left, right, top, bottom), mode=mode)
    dxp = rng.standard_normal(xp.shape).astype(dtype)
    if layout == "batch_last":
        dxp = to_batch_last(dxp)
    txp.backward(torch.tensor(np.ascontiguousarray(dxp)))
    np.testing.assert_array_equal(xp, txp.detach().numpy())   # copies: exact
    dx = F.pad_backward(dxp, cache)
    assert dx.dtype == dtype and dx.shape == x.shape
    assert is_batch_last(dx) == (layout == "batch_last")
    assert_close(dx, tx.grad.numpy(), "gradient", dtype)
    # asked for batch-last (what Conv2d asks for): the same numbers in that memory order
    xb, _ = F.pad_forward(x, padding, mode, batch_last=True)
    np.testing.assert_array_equal(xb, xp)
    padded = any((top, bottom, left, right))   # no padding: x itself comes back
    assert is_batch_last(xb) == (padded or layout == "batch_last")


def test_pad_backward_is_the_adjoint(rng):
    """<pad(x), g> == <x, pad_backward(g)> in float64, for random sizes and paddings (circular wraps fully)."""
    for mode in MODES:
        for _ in range(10):
            h, w = (int(s) for s in rng.integers(1, 6, 2))
            limit = (h - 1, w - 1) if mode == "reflect" else (h, w) if mode == "circular" else (7, 7)
            pad = tuple(int(rng.integers(0, limit[i // 2] + 1)) for i in range(4))
            x = rng.standard_normal((2, 2, h, w))
            xp, cache = F.pad_forward(x, pad, mode)
            g = rng.standard_normal(xp.shape)
            assert np.isclose((xp * g).sum(), (x * F.pad_backward(g, cache)).sum(), rtol=1e-12, atol=1e-12)


def test_pad_errors():
    x = np.zeros((1, 2, 3, 4), np.float32)
    with _raises(ValueError, "padding (0, 4) along W", "smaller than the input's size 4", "mode 'reflect'"):
        F.pad_forward(x, (0, 0, 0, 4), "reflect")
    with _raises(ValueError, "padding (4, 0) along H", "at most the input's size 3", "mode 'circular'"):
        F.pad_forward(x, (4, 0, 0, 0), "circular")
    F.pad_forward(x, (3, 0, 0, 4), "circular")        # wrapping around once is fine
    F.pad_forward(x, 9, "replicate")                  # replication has no limit
    with _raises(ValueError, "unknown mode 'zeros'", "'reflect'"):
        F.pad_forward(x, 1, "zeros")
    with _raises(ValueError, "padding must be non-negative", "-1"):
        F.pad_forward(x, (0, -1, 0, 0), "replicate")
    with _raises(TypeError, "padding must be an int, a pair or (top, bottom, left, right)", "1.5"):
        F.pad_forward(x, (0, 1.5, 0, 0), "replicate")
    with _raises(ValueError, "x must have 4 dimensions", "(2, 3, 4)"):
        F.pad_forward(np.zeros((2, 3, 4)), 1, "reflect")
    _, cache = F.pad_forward(x, 1, "reflect")
    with _raises(ValueError, "dxp must have the output's shape (1, 2, 5, 6)", "got (1, 2, 3, 4)"):
        F.pad_backward(x, cache)


# ---------------------------------------------------------------------------- ONNX
def _optional(name):
    """Skip locally without the onnx extra; in CI (STRIDED_REQUIRE_TORCH=1) a missing package is an error."""
    if os.environ.get("STRIDED_REQUIRE_TORCH") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name, reason="pip install strided[onnx]")


@pytest.mark.parametrize("mode", MODES)
def test_onnx_export_of_padding_modes(tmp_path, mode):
    onnx, ort = _optional("onnx"), _optional("onnxruntime")
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(3)
    model = nn.Sequential(nn.Conv2d(2, 3, (3, 2), padding=(2, 1), padding_mode=mode), nn.ReLU(inplace=True),
                          nn.Conv2d(3, 2, 4, padding="same", dilation=(1, 2), padding_mode=mode, bias=False),
                          nn.LeakyReLU(0.1, inplace=True))
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape).astype(np.float32)
    shape = (2, 6, 5)
    path = sio.export_onnx(model, tmp_path / "pad.onnx", shape)
    proto = onnx.load(str(path))
    ops = [node.op_type for node in proto.graph.node]
    assert ("Concat" in ops and "Slice" in ops) if mode == "circular" else ops.count("Pad") == 2
    for node in proto.graph.node:
        if node.op_type == "Conv":
            assert [a.ints for a in node.attribute if a.name == "pads"][0] == [0, 0, 0, 0]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(proto)
    for n in (3, 1):
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        expected = model(x.copy())
        scale = np.abs(expected).max()
        for got in (session.run(None, {"input": x})[0], reference.run(None, {"input": x})[0]):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)


# ---------------------------------------------------------------------------- numerical gradients (float64)
def test_new_arguments_pass_gradcheck(rng):
    """Central differences agree with every new backward: the ground truth that needs no torch."""
    import strided

    for mode in MODES:
        strided.gradcheck(nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(2, 1), padding_mode=mode, rng=0),
                          rng.standard_normal((2, 2, 5, 4)))
    z, t = rng.standard_normal((5, 4)), np.array([0, 3, -100, 1, 3])
    w = rng.uniform(0.5, 2, 4)
    for reduction in REDUCTIONS:
        strided.gradcheck(nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=0.2), z, t)
        strided.gradcheck(nn.NLLLoss(w, ignore_index=1, reduction=reduction), z, np.array([0, 3, 1, 1, 2]))
        pw = rng.uniform(0.5, 3, 4)
        target = (rng.random((5, 4)) < 0.5) * 1.0
        strided.gradcheck(nn.BCEWithLogitsLoss(w, reduction=reduction, pos_weight=pw), 3 * z, target)
        strided.gradcheck(nn.BCELoss(w[:, None] * np.ones(4), reduction=reduction),
                          rng.uniform(0.1, 0.9, (4, 4)), target[:4])
