"""torch's behaviours at the edges of the layers and losses, against torch in float64.

- unbatched inputs (C, H, W) (and (in_features,) for Linear) wherever torch
  takes them: an unbatched output, and backward takes the unbatched dy and
  returns an unbatched dx;
- per-position losses: CrossEntropyLoss and NLLLoss over (N, C, d1, d2, ...)
  with labels (N, d1, d2, ...), weights and ignore_index under every
  reduction; class-probability targets; an unbatched (C,) with a 0-d label;
- empty batches: an empty output, an empty input gradient and zero parameter
  gradients for every layer; nan ('mean') or 0 ('sum') for every loss;
- MaxPool2d's torch argument order and ``return_indices`` (torch's indices
  exactly), AvgPool2d's order and ``divisor_override``;
- Softmax of a 0-d array and ``dim=None`` (torch's legacy rule).

Shapes and configurations are drawn at random from seeded generators.
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

REDUCTIONS = ["mean", "sum", "none"]
F64 = np.float64


def _t64(torch):
    return torch.float64


def _pair(torch, ours, theirs):
    """A strided layer given the torch layer's weights (both float64)."""
    theirs = theirs.to(_t64(torch))
    return load_torch_weights(ours, theirs), theirs


def _compare(torch, m, tm, x, rng):
    """Forward and backward through both with the same x and a random dy; everything compared."""
    y = m(x)
    dy = rng.standard_normal(np.shape(y))
    assert_same_run(run_ours(m, x, dy), run_torch(torch, tm, x, dy))
    return y


# ----------------------------------------------------------------------------- unbatched inputs
def _random_image_layer(torch, rng, kind):
    """A (strided, torch) pair of one image layer with random arguments, and an unbatched input shape."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(5, 10)), int(rng.integers(5, 10))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    if kind == "conv":
        out = int(rng.integers(1, 5))
        kw = dict(stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))), padding=int(rng.integers(0, 3)),
                  padding_mode=str(rng.choice(["zeros", "reflect", "replicate", "circular"])))
        if kw["padding_mode"] == "reflect":
            kw["padding"] = min(kw["padding"], 1)
        pair = _pair(torch, nn.Conv2d(c, out, k, dtype=F64, **kw), torch.nn.Conv2d(c, out, k, **kw))
    elif kind == "max":
        args = (k, (int(rng.integers(1, 3)), int(rng.integers(1, 3))), (k[0] // 2, k[1] // 2), 1, False,
                bool(rng.integers(0, 2)))
        pair = nn.MaxPool2d(*args), torch.nn.MaxPool2d(*args)
    else:
        args = (k, None, (k[0] // 2, k[1] // 2), bool(rng.integers(0, 2)), bool(rng.integers(0, 2)),
                [None, 3][int(rng.integers(0, 2))])
        pair = nn.AvgPool2d(*args), torch.nn.AvgPool2d(*args)
    return pair, (c, h, w)


@pytest.mark.parametrize("kind", ["conv", "max", "avg"])
@pytest.mark.parametrize("seed", range(6))
def test_unbatched_image_layers(torch, kind, seed):
    """(C, H, W) in, (C', OH, OW) out; dx (C, H, W), parameter gradients as torch's."""
    rng = np.random.default_rng(seed)
    (m, tm), shape = _random_image_layer(torch, rng, kind)
    x = rng.standard_normal(shape)
    y = _compare(torch, m, tm, x, rng)
    assert np.ndim(y) == 3
    # the same image as a batch of one gives the same numbers
    batched = m(x[None])
    np.testing.assert_array_equal(batched[0], y)


def test_unbatched_layers_of_any_shape(torch, rng):
    """Linear (in,), activations, Dropout in eval, Flatten and Identity on (C, H, W): torch's outputs and gradients."""
    x = rng.standard_normal((3, 4, 5))
    cases = [
        _pair(torch, nn.Linear(5, 2, dtype=F64), torch.nn.Linear(5, 2)),
        (nn.ReLU(), torch.nn.ReLU()), (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Tanh(), torch.nn.Tanh()), (nn.Identity(), torch.nn.Identity()),
        (nn.Flatten(), torch.nn.Flatten()), (nn.Flatten(0), torch.nn.Flatten(0)),
        (nn.Softmax(), torch.nn.Softmax()), (nn.Softmax(-1), torch.nn.Softmax(-1)),
        (nn.Dropout(0.5).eval(), torch.nn.Dropout(0.5).eval()),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # torch's note on Softmax's implicit dim
        for m, tm in cases:
            _compare(torch, m, tm, x, rng)
        m, tm = _pair(torch, nn.Linear(5, 2, dtype=F64), torch.nn.Linear(5, 2))
        y = _compare(torch, m, tm, rng.standard_normal(5), rng)      # unbatched (in_features,)
        assert y.shape == (2,)


def test_unbatched_dropout_in_training():
    """Dropout keeps an unbatched shape; its gradient is the same scaled mask."""
    m = nn.Dropout(0.4, seed=3)
    x = np.random.default_rng(1).standard_normal((2, 5, 5))
    y = m(x)
    mask = np.where(y != 0, 1 / 0.6, 0.0)
    np.testing.assert_allclose(y, x * mask, rtol=1e-12)
    np.testing.assert_allclose(m.backward(np.ones_like(x)), mask, rtol=1e-12)


def test_unbatched_network(torch, rng):
    """A small network on one image (C, H, W), Flatten(0) before the dense layer, as a torch user writes it."""
    t = torch.nn
    tm = t.Sequential(t.Conv2d(2, 3, 3, padding=1), t.ReLU(), t.MaxPool2d(2), t.Conv2d(3, 4, 3), t.Tanh(),
                      t.AvgPool2d(2, ceil_mode=True), t.Flatten(0), t.Linear(4, 3)).to(torch.float64)
    m = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3), nn.Tanh(),
                      nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(0), nn.Linear(4, 3)).to(F64)
    load_torch_weights(m, tm)
    y = _compare(torch, m, tm, rng.standard_normal((2, 8, 8)), rng)
    assert y.shape == (3,)


def test_unbatched_need_input_grad_false():
    m = nn.Conv2d(1, 2, 3, dtype=F64)
    y = m(np.ones((1, 5, 5)))
    assert m.backward(np.ones_like(y), need_input_grad=False) is None
    assert m.weight.grad.shape == (2, 1, 3, 3)


# ----------------------------------------------------------------------------- per-position losses
def _loss_run(torch, ours, theirs, pred, target, rng, torch_target=None):
    """Loss value and dL/dpred from both; reduction='none' is weighted by a random dloss per position."""
    value = ours(pred, target)
    dloss = rng.standard_normal(np.shape(value)) if ours.reduction == "none" else None
    grad = ours.backward() if dloss is None else ours.backward(dloss)
    tp = torch.tensor(pred, requires_grad=True)
    tv = theirs(tp, torch.tensor(target) if torch_target is None else torch_target)
    tv.backward(None if dloss is None else torch.tensor(dloss))
    assert_close(value, tv.detach().numpy(), "loss")
    assert_close(grad, tp.grad.numpy(), "gradient")
    return value


def _random_logits(seed):
    """A generator of that seed and logits of a random shape (N, C, d1, ..., dk), k in 0..3."""
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 4)), int(rng.integers(2, 6))
    shape = (n, c, *(int(d) for d in rng.integers(1, 5, size=int(rng.integers(0, 4)))))
    return rng, 3 * rng.standard_normal(shape)


def _labels_with_ignored(rng, shape, ignore_index):
    labels = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    labels[rng.random(labels.shape) < 0.3] = ignore_index
    return labels


def _check_cross_entropy(torch, rng, z, target, w, reduction, **kw):
    """CrossEntropyLoss against torch's without and with the class weights w, without and with label smoothing."""
    for weight in (None, w):
        tw = None if weight is None else torch.tensor(weight)
        for ls in (0.0, 0.2):
            value = _loss_run(torch, nn.CrossEntropyLoss(weight, reduction=reduction, label_smoothing=ls, **kw),
                              torch.nn.CrossEntropyLoss(tw, reduction=reduction, label_smoothing=ls, **kw),
                              z, target, rng)
            if reduction == "none":                     # a loss per position: the input without its class axis
                assert np.shape(value) == (z.shape[0], *z.shape[2:])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("seed", range(5))
def test_per_position_labels(torch, reduction, seed):
    """(N, C, d1, ...) with labels (N, d1, ...): weight, ignore_index and label smoothing under each reduction."""
    rng, z = _random_logits(seed)
    ignore = int(rng.choice([-100, 1]))
    t = _labels_with_ignored(rng, z.shape, ignore)
    w = rng.random(z.shape[1]) + 0.1
    _check_cross_entropy(torch, rng, z, t, w, reduction, ignore_index=ignore)
    logp = torch.log_softmax(torch.tensor(z), 1).numpy()
    for weight in (None, w):
        tw = None if weight is None else torch.tensor(weight)
        _loss_run(torch, nn.NLLLoss(weight, ignore_index=ignore, reduction=reduction),
                  torch.nn.NLLLoss(tw, ignore_index=ignore, reduction=reduction), logp, t, rng)


def test_per_pixel_weighted_mean_is_over_kept_pixels(torch, rng):
    """'mean' divides by the total weight of the pixels that are not ignored, across the whole batch."""
    z = rng.standard_normal((2, 3, 4, 5))
    t = _labels_with_ignored(rng, z.shape, 255)
    w = np.array([0.2, 1.0, 3.0])
    crit = nn.CrossEntropyLoss(w, ignore_index=255, reduction="none")
    per = crit(z, t)
    kept = t != 255
    expected = per.sum() / w[t[kept]].sum()
    value = nn.CrossEntropyLoss(w, ignore_index=255)(z, t)
    assert_close(value, expected, "weighted mean")
    _loss_run(torch, nn.CrossEntropyLoss(w, ignore_index=255), torch.nn.CrossEntropyLoss(torch.tensor(w),
                                                                                          ignore_index=255), z, t, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("seed", range(4))
def test_class_probability_targets(torch, reduction, seed):
    """A float target of the input's shape: class probabilities, with weights and label smoothing."""
    rng, z = _random_logits(seed)
    p = rng.random(z.shape)
    p /= p.sum(axis=1, keepdims=True)
    _check_cross_entropy(torch, rng, z, p, rng.random(z.shape[1]) + 0.1, reduction)
    # a negative ignore_index other than the default is allowed (and changes nothing), as in torch
    _loss_run(torch, nn.CrossEntropyLoss(ignore_index=-1, reduction=reduction),
              torch.nn.CrossEntropyLoss(ignore_index=-1, reduction=reduction), z, p, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unbatched_losses(torch, rng, reduction):
    """An unbatched (C,) input with a 0-d label, or with probabilities (C,)."""
    z = rng.standard_normal(5)
    w = rng.random(5) + 0.1
    for label in (np.array(3), np.array(2, dtype=np.int32)):
        tl = torch.tensor(int(label))
        for weight in (None, w):
            tw = None if weight is None else torch.tensor(weight)
            _loss_run(torch, nn.CrossEntropyLoss(weight, reduction=reduction, label_smoothing=0.1),
                      torch.nn.CrossEntropyLoss(tw, reduction=reduction, label_smoothing=0.1), z, label, rng, tl)
            _loss_run(torch, nn.NLLLoss(weight, reduction=reduction), torch.nn.NLLLoss(tw, reduction=reduction),
                      z, label, rng, tl)
    # the one label ignored: nan for 'mean', as torch
    v = _loss_run(torch, nn.CrossEntropyLoss(ignore_index=3, reduction=reduction),
                  torch.nn.CrossEntropyLoss(ignore_index=3, reduction=reduction), z, np.array(3), rng,
                  torch.tensor(3))
    assert np.isnan(v) == (reduction == "mean")
    p = rng.random(5)
    _loss_run(torch, nn.CrossEntropyLoss(w, reduction=reduction), torch.nn.CrossEntropyLoss(torch.tensor(w),
                                                                                           reduction=reduction),
              z, p / p.sum(), rng)


# ----------------------------------------------------------------------------- empty batches
def _empty_layers(torch):
    t = torch.nn
    return {
        "conv": (_pair(torch, nn.Conv2d(2, 3, 3, padding=1, dtype=F64), t.Conv2d(2, 3, 3, padding=1)), (0, 2, 6, 5)),
        "conv_reflect": (_pair(torch, nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect", dtype=F64),
                               t.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")), (0, 2, 6, 5)),
        "conv_groups_stride": (_pair(torch, nn.Conv2d(4, 2, 2, stride=2, groups=2, dtype=F64),
                                     t.Conv2d(4, 2, 2, stride=2, groups=2)), (0, 4, 6, 6)),
        "linear": (_pair(torch, nn.Linear(4, 3, dtype=F64), t.Linear(4, 3)), (0, 4)),
        "linear_3d": (_pair(torch, nn.Linear(4, 3, dtype=F64), t.Linear(4, 3)), (0, 2, 4)),
        "max_pool": ((nn.MaxPool2d(3, 2, 1), t.MaxPool2d(3, 2, 1)), (0, 2, 7, 7)),
        "avg_pool": ((nn.AvgPool2d(2, ceil_mode=True), t.AvgPool2d(2, ceil_mode=True)), (0, 2, 5, 5)),
        "batch_norm_2d": (_pair(torch, nn.BatchNorm2d(2, dtype=F64), t.BatchNorm2d(2)), (0, 2, 3, 3)),
        "batch_norm_1d": (_pair(torch, nn.BatchNorm1d(3, dtype=F64), t.BatchNorm1d(3)), (0, 3)),
        "batch_norm_1d_3d": (_pair(torch, nn.BatchNorm1d(3, momentum=None, dtype=F64),
                                   t.BatchNorm1d(3, momentum=None)), (0, 3, 4)),
        "batch_norm_no_stats": (_pair(torch, nn.BatchNorm2d(2, track_running_stats=False, dtype=F64),
                                      t.BatchNorm2d(2, track_running_stats=False)), (0, 2, 3, 3)),
        "relu": ((nn.ReLU(), t.ReLU()), (0, 3)),
        "leaky_relu": ((nn.LeakyReLU(), t.LeakyReLU()), (0, 2, 4, 4)),
        "sigmoid": ((nn.Sigmoid(), t.Sigmoid()), (0, 3)),
        "tanh": ((nn.Tanh(), t.Tanh()), (0, 3)),
        "softmax": ((nn.Softmax(1), t.Softmax(1)), (0, 3)),
        "identity": ((nn.Identity(), t.Identity()), (0, 3)),
        "dropout": ((nn.Dropout(0.3), t.Dropout(0.3)), (0, 2, 4, 4)),
        "flatten": ((nn.Flatten(), t.Flatten()), (0, 2, 3, 4)),
    }


EMPTY_LAYERS = ["conv", "conv_reflect", "conv_groups_stride", "linear", "linear_3d", "max_pool", "avg_pool",
                "batch_norm_2d", "batch_norm_1d", "batch_norm_1d_3d", "batch_norm_no_stats", "relu", "leaky_relu",
                "sigmoid", "tanh", "softmax", "identity", "dropout", "flatten"]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", EMPTY_LAYERS)
def test_empty_batch_layers(torch, name, training):
    """An empty batch: an empty output and input gradient, zero parameter gradients, torch's buffers."""
    (m, tm), shape = _empty_layers(torch)[name]
    m.train(training)
    tm.train(training)
    if "batch_norm" in name and m.track_running_stats:
        # running statistics that are not the initial ones, to see that the empty batch leaves them
        stats = {"running_mean": np.linspace(-1, 1, m.num_features),
                 "running_var": np.linspace(0.5, 2, m.num_features)}
        for k, v in stats.items():
            getattr(tm, k).copy_(torch.tensor(v))
        m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.zeros(shape)
    dy_shape = np.shape(copy.deepcopy(m)(x))     # a twin, so that the buffers see one batch only
    assert dy_shape[0] == 0
    dy = np.zeros(dy_shape)
    ours, theirs = run_ours(m, x, dy), run_torch(torch, tm, x, dy)
    assert_same_run(ours, theirs)
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v.numpy(), err_msg=k)
    # the layer still works on a real batch afterwards
    full = np.ones((2, *shape[1:]))
    assert np.shape(m(full))[0] == 2


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch_losses(torch, rng, reduction):
    """Every loss on an empty batch: nan for 'mean', 0 for 'sum', empty for 'none'; an empty gradient."""
    w = rng.random(3) + 0.1
    zi = np.zeros(0, dtype=np.int64)
    cases = [
        (nn.CrossEntropyLoss(reduction=reduction), torch.nn.CrossEntropyLoss(reduction=reduction), (0, 3), zi),
        (nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(torch.tensor(w), reduction=reduction, label_smoothing=0.1), (0, 3), zi),
        (nn.CrossEntropyLoss(reduction=reduction), torch.nn.CrossEntropyLoss(reduction=reduction), (0, 3, 4, 2),
         np.zeros((0, 4, 2), dtype=np.int64)),
        (nn.CrossEntropyLoss(w, reduction=reduction), torch.nn.CrossEntropyLoss(torch.tensor(w), reduction=reduction),
         (0, 3), np.zeros((0, 3))),                                                     # probabilities
        (nn.NLLLoss(w, reduction=reduction), torch.nn.NLLLoss(torch.tensor(w), reduction=reduction), (0, 3), zi),
        (nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), (0, 3), np.zeros((0, 3))),
        (nn.BCELoss(reduction=reduction), torch.nn.BCELoss(reduction=reduction), (0, 3), np.zeros((0, 3))),
        (nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=w),
         torch.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=torch.tensor(w)), (0, 3), np.zeros((0, 3))),
    ]
    for ours, theirs, shape, target in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")            # no division warnings on the way to nan
            value = _loss_run(torch, ours, theirs, np.zeros(shape), target, rng)
        assert np.isnan(value) if reduction == "mean" else np.size(value) == 0 or value == 0


# ----------------------------------------------------------------------------- MaxPool2d and AvgPool2d arguments
def _random_pool_args(rng):
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    stride = [None, (int(rng.integers(1, 4)), int(rng.integers(1, 4)))][int(rng.integers(0, 2))]
    padding = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    return k, stride, padding, dilation


@pytest.mark.parametrize("seed", range(30))
def test_max_pool_positional_and_indices(torch, seed):
    """torch's positional order (kernel, stride, padding, dilation, return_indices, ceil_mode); indices exact."""
    rng = np.random.default_rng(seed)
    k, stride, padding, dilation = _random_pool_args(rng)
    ceil_mode = bool(rng.integers(0, 2))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(8, 13)), int(rng.integers(8, 13)))
    if seed % 3 == 0:
        shape = shape[1:]                                       # unbatched
    x = rng.standard_normal(shape)
    if seed % 5 == 0:
        x = np.round(x)                                         # ties: the first in row-major order wins
    args = (k, stride, padding, dilation, True, ceil_mode)
    m, tm = nn.MaxPool2d(*args), torch.nn.MaxPool2d(*args)
    assert (m.return_indices, m.ceil_mode) == (True, ceil_mode)
    probe = x if x.ndim == 4 else x[None]
    if not torch_max_pool_is_safe(torch, probe, k, stride, padding, dilation, ceil_mode):
        pytest.skip("a window sees only padding: torch's indices point outside the input")
    y, idx = m(x)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = tm(tx)
    assert idx.dtype == np.int64 and idx.shape == y.shape
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert_close(y, ty.detach().numpy(), "output")
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    assert_close(m.backward(dy), tx.grad.numpy(), "input gradient")
    # without return_indices the same arguments pool the same way
    plain = nn.MaxPool2d(k, stride, padding, dilation, False, ceil_mode)
    np.testing.assert_array_equal(plain(x), y)


def test_max_pool_keywords_still_work():
    m = nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True)
    assert (m.dilation, m.ceil_mode, m.return_indices) == ((2, 2), True, False)
    assert "return_indices=True" in repr(nn.MaxPool2d(2, return_indices=True))


@pytest.mark.parametrize("seed", range(12))
def test_avg_pool_positional(torch, seed):
    """torch's positional order (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)."""
    rng = np.random.default_rng(seed)
    k, stride, padding, _ = _random_pool_args(rng)
    args = (k, stride, padding, bool(rng.integers(0, 2)), bool(rng.integers(0, 2)),
            [None, int(rng.integers(1, 7))][int(rng.integers(0, 2))])
    x = rng.standard_normal((2, 3, int(rng.integers(6, 11)), int(rng.integers(6, 11))))
    _compare(torch, nn.AvgPool2d(*args), torch.nn.AvgPool2d(*args), x, rng)


def test_max_pool_return_indices_round_trips(torch, tmp_path):
    """Saved and loaded, and to torch and back, a MaxPool2d keeps return_indices."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, 2, 0, 1, True, True))
    strided.save(model, tmp_path / "m.npz")
    back = strided.load(tmp_path / "m.npz")
    assert back[1].return_indices and back[1].ceil_mode
    x = np.random.default_rng(0).standard_normal((1, 1, 7, 7)).astype(np.float32)
    y, idx = back(x)
    np.testing.assert_array_equal(idx, model(x)[1])
    tm = strided.io.to_torch(nn.MaxPool2d(3, 1, 1, 1, True, False))
    assert tm.return_indices and not tm.ceil_mode
    assert strided.io.from_torch(torch.nn.Sequential(torch.nn.MaxPool2d(2, return_indices=True)))[0].return_indices


# ----------------------------------------------------------------------------- Softmax
def test_softmax_of_a_0d_array(torch):
    """Softmax of one number is 1 and its gradient 0, for dim 0, -1 and None, as torch."""
    for dim in (0, -1, None):
        m = nn.Softmax(dim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            y, dx, _ = run_ours(m, np.array(2.5), np.array(3.0))
            ty, tdx, _ = run_torch(torch, torch.nn.Softmax(dim), np.array(2.5), np.array(3.0))
        assert y.shape == () and dx.shape == ()
        assert_close(y, ty, "output")
        assert_close(dx, tdx, "input gradient")
        assert y == 1.0 and dx == 0.0


@pytest.mark.parametrize("ndim", range(5))
def test_softmax_implicit_dim(torch, rng, ndim):
    """dim=None (the default, as torch): dim 0 for 0-, 1- and 3-d inputs, dim 1 otherwise."""
    x = rng.standard_normal(tuple(int(d) for d in rng.integers(2, 5, size=ndim)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _compare(torch, nn.Softmax(), torch.nn.Softmax(), x, rng)
    assert nn.Softmax().dim is None
    assert strided.io.from_torch(torch.nn.Sequential(torch.nn.Softmax()))[0].dim is None
