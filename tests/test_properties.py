"""Property-based tests: random shapes, strides, paddings, dtypes and magnitudes thrown at every layer.

The property: each call either matches torch (output, input gradient and
parameter gradients, in the same dtype) or raises one of our clear errors
(ValueError/TypeError), and then torch refuses the same call too. Never
another exception, a warning, a hang or a silently wrong shape. Example
counts are bounded so the whole file runs in well under a minute.
"""
import warnings

import numpy as np
import pytest
from _parity import TOL, assert_close, load_torch_weights, torch_max_pool_is_safe
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from strided import nn

pytestmark = pytest.mark.torch

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GEOMETRY = settings(FAST, max_examples=150)  # convolution and pooling have the most arguments to combine
DTYPES = st.sampled_from([np.float32, np.float64])
small = st.integers(1, 4)


def _tdtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def _layout(x, how):
    """The same values in a non-contiguous array: our code must not assume C order."""
    if how == "reversed":
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    if how == "transposed":
        return np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
    return x


def _torch_run(torch, tm, x, dy):
    tx = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    ty = tm(tx)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy(), {n: p.grad.numpy() for n, p in tm.named_parameters()}


def _outcome(ours_call, torch_call):
    """Run our call; if it refuses with ValueError/TypeError, torch must refuse too. Returns our result or None."""
    try:
        result = ours_call()
    except (ValueError, TypeError) as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)  # a message, not a bare exception
        with pytest.raises(Exception):  # noqa: B017 - torch's error types vary (RuntimeError, ValueError...)
            torch_call()
        return None
    return result


def _backward(m, y, dy):
    """Our (y, dx, grads) for the forward that produced y, in the layout of ``run_ours``."""
    dx = m.backward(dy)
    return y, dx, {n: p.grad for n, p in m.named_parameters()}


def _compare_runs(ours, theirs, dtype):
    event("compared with torch")
    (y, dx, g), (ty, tdx, tg) = ours, theirs
    assert y.dtype == dtype and dx.dtype == dtype
    assert_close(y, ty, "output", dtype)
    assert_close(dx, tdx, "input gradient", dtype)
    for name, grad in g.items():
        assert grad.dtype == dtype
        assert_close(grad, tg[name], f"gradient of {name}", dtype)


# -- convolution ---------------------------------------------------------------------

@st.composite
def conv_configs(draw):
    g = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    kernel = draw(st.one_of(st.integers(1, 5), st.tuples(st.integers(1, 5), st.integers(1, 5))))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.one_of(st.integers(0, 7), st.tuples(st.integers(0, 7), st.integers(0, 7)),
                             st.sampled_from(["same", "valid"])))
    shape = (draw(small), cin, draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    return shape, cout, kernel, dict(stride=stride, padding=padding, dilation=dilation, groups=g,
                                     bias=draw(st.booleans()))


@GEOMETRY
@given(cfg=conv_configs(), dtype=DTYPES, layout=st.sampled_from(["c", "reversed", "transposed"]),
       seed=st.integers(0, 2**16))
def test_conv2d_matches_torch_or_refuses(torch, cfg, dtype, layout, seed):
    shape, cout, kernel, kw = cfg
    rng = np.random.default_rng(seed)
    x = _layout(rng.standard_normal(shape).astype(dtype), layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's note about 'same' with even kernels

        def torch_layer():
            return torch.nn.Conv2d(shape[1], cout, kernel, **kw).to(_tdtype(torch, dtype))

        m = _outcome(lambda: nn.Conv2d(shape[1], cout, kernel, dtype=dtype, **kw), torch_layer)
        if m is None:
            return
        tm = torch_layer()
        load_torch_weights(m, tm)
        y = _outcome(lambda: m(x), lambda: tm(torch.tensor(np.ascontiguousarray(x))))
        if y is None:
            return
        dy = rng.standard_normal(y.shape).astype(dtype)
        _compare_runs(_backward(m, y, dy), _torch_run(torch, tm, x, dy), dtype)


# -- pooling ----------------------------------------------------------------------------

@st.composite
def pool_configs(draw):
    kind = draw(st.sampled_from(["max", "avg"]))
    kh, kw_ = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    excess = draw(st.sampled_from([0, 0, 0, 1]))  # now and then more padding than torch allows
    padding = (draw(st.integers(0, kh // 2 + excess)), draw(st.integers(0, kw_ // 2 + excess)))
    kw = dict(kernel_size=(kh, kw_) if kh != kw_ else kh,
              stride=draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))),
              padding=padding if padding[0] != padding[1] else padding[0],
              ceil_mode=draw(st.booleans()))
    if kind == "max":
        kw["dilation"] = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 2), st.integers(1, 3))))
    else:
        kw["count_include_pad"] = draw(st.booleans())
    shape = (draw(small), draw(small), draw(st.integers(1, 10)), draw(st.integers(1, 10)))
    return kind, shape, kw


@GEOMETRY
@given(cfg=pool_configs(), dtype=DTYPES, layout=st.sampled_from(["c", "reversed", "transposed"]),
       seed=st.integers(0, 2**16))
def test_pooling_matches_torch_or_refuses(torch, cfg, dtype, layout, seed):
    kind, shape, kw = cfg
    rng = np.random.default_rng(seed)
    x = _layout(rng.standard_normal(shape).astype(dtype), layout)
    ours_cls, torch_cls = (nn.MaxPool2d, torch.nn.MaxPool2d) if kind == "max" else (nn.AvgPool2d, torch.nn.AvgPool2d)
    m = _outcome(lambda: ours_cls(**kw), lambda: torch_cls(**kw)(torch.tensor(np.ascontiguousarray(x))))
    if m is None:
        return
    y = _outcome(lambda: m(x), lambda: torch_cls(**kw)(torch.tensor(np.ascontiguousarray(x))))
    if y is None:
        return
    dy = rng.standard_normal(y.shape).astype(dtype)
    ty = torch_cls(**kw)(torch.tensor(np.ascontiguousarray(x))).numpy()
    assert_close(y, ty, "output", dtype)
    if kind == "max" and not torch_max_pool_is_safe(torch, np.ascontiguousarray(x), kw["kernel_size"], kw["stride"],
                                                    kw["padding"], kw["dilation"], kw["ceil_mode"]):
        # some window sees only padding (torch's backward would write out of bounds): -inf, no gradient
        dx = m.backward(dy)
        assert np.isneginf(y).any() and np.all(np.isfinite(dx))
        return
    _compare_runs(_backward(m, y, dy), _torch_run(torch, torch_cls(**kw), x, dy), dtype)


# -- batch norm ----------------------------------------------------------------------------

@FAST
@given(dim=st.sampled_from(["1d", "1d-L", "2d"]), n=small, c=st.integers(1, 3), spatial=st.integers(1, 3),
       momentum=st.sampled_from([0.1, 0.5, None]), affine=st.booleans(), track=st.booleans(),
       training=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_batch_norm_matches_torch_or_refuses(torch, dim, n, c, spatial, momentum, affine, track, training, dtype,
                                             seed):
    rng = np.random.default_rng(seed)
    shape = {"1d": (n, c), "1d-L": (n, c, spatial), "2d": (n, c, spatial, spatial)}[dim]
    ours_cls, torch_cls = ((nn.BatchNorm2d, torch.nn.BatchNorm2d) if dim == "2d"
                           else (nn.BatchNorm1d, torch.nn.BatchNorm1d))
    kw = dict(momentum=momentum, affine=affine, track_running_stats=track)
    tm = torch_cls(c, **kw).to(_tdtype(torch, dtype))
    m = load_torch_weights(ours_cls(c, dtype=dtype, **kw), tm)
    if track:  # start from non-trivial running statistics
        tm(torch.tensor(rng.standard_normal((4, *shape[1:])) * 3 + 1, dtype=_tdtype(torch, dtype)))
        load_torch_weights(m, tm)
    m.train(training)
    tm.train(training)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    y = _outcome(lambda: m(x), lambda: tm(torch.tensor(x)))
    if y is None:
        return
    dy = rng.standard_normal(shape).astype(dtype)
    tm.zero_grad()
    _compare_runs(_backward(m, y, dy), _torch_run(torch, tm, x, dy), dtype)
    for k, v in m.state_dict().items():
        assert_close(v, tm.state_dict()[k].numpy(), k, dtype)


# -- linear, activations ----------------------------------------------------------------------

@FAST
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), fin=st.integers(1, 6), fout=st.integers(1, 6),
       extra=st.sampled_from([0, 0, 0, 1, -1]), bias=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_linear_matches_torch_or_refuses(torch, lead, fin, fout, extra, bias, dtype, seed):
    given_features = max(fin + extra, 1)
    rng = np.random.default_rng(seed)
    tm = torch.nn.Linear(fin, fout, bias=bias).to(_tdtype(torch, dtype))
    m = load_torch_weights(nn.Linear(fin, fout, bias=bias, dtype=dtype), tm)
    x = rng.standard_normal((*lead, given_features)).astype(dtype)
    y = _outcome(lambda: m(x), lambda: tm(torch.tensor(x)))
    if y is None:
        return
    dy = rng.standard_normal(y.shape).astype(dtype)
    _compare_runs(_backward(m, y, dy), _torch_run(torch, tm, x, dy), dtype)


ACTIVATIONS = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Identity", "Flatten", "Gaussian"]


def _activation_pair(torch, name, ndim):
    if name == "Softmax":
        dim = -1 if ndim == 1 else 1
        return nn.Softmax(dim), torch.nn.Softmax(dim)
    if name == "Flatten":
        return nn.Flatten(0 if ndim == 1 else 1), torch.nn.Flatten(0 if ndim == 1 else 1)
    if name == "Gaussian":
        class TorchGaussian(torch.nn.Module):
            def forward(self, x):
                return torch.exp(-x * x)
        return nn.Gaussian(), TorchGaussian()
    return getattr(nn, name)(), getattr(torch.nn, name)()


@FAST
@given(name=st.sampled_from(ACTIVATIONS), shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       scale=st.sampled_from([1.0, 30.0, 1e4, 1e30]), dtype=DTYPES, seed=st.integers(0, 2**16))
def test_activations_match_torch_without_warnings(torch, name, shape, scale, dtype, seed):
    if name == "Gaussian" and scale > 1e4:
        scale = 1e4  # torch's spelled-out exp(-x*x) would overflow in x*x
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    m, tm = _activation_pair(torch, name, len(shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = m(x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        ours = (y, m.backward(dy), {})
    assert np.all(np.isfinite(ours[0])) and np.all(np.isfinite(ours[1]))
    _compare_runs(ours, _torch_run(torch, tm, x, dy), dtype)


# -- losses ---------------------------------------------------------------------------------------

@FAST
@given(n=st.integers(1, 6), c=st.integers(1, 5), bad_label=st.sampled_from([None, None, None, -1, "C"]),
       scale=st.sampled_from([1.0, 1e4]),
       reduction=st.sampled_from(["mean", "sum", "none"]), smoothing=st.sampled_from([0.0, 0.25]),
       dtype=DTYPES, seed=st.integers(0, 2**16))
def test_cross_entropy_matches_torch_or_refuses(torch, n, c, bad_label, scale, reduction, smoothing, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    t = rng.integers(0, c, n)
    if bad_label is not None:
        t[rng.integers(n)] = -1 if bad_label == -1 else c
    crit = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    tcrit = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    _loss_matches_torch_or_refuses(torch, crit, tcrit, z, t, reduction, dtype, rng,
                                   lambda: tcrit(torch.tensor(z), torch.tensor(t)))


def _loss_matches_torch_or_refuses(torch, crit, tcrit, z, t, reduction, dtype, rng, torch_call, value_rtol=None):
    """Our loss and its gradient equal torch's (finite, no warnings), or both refuse the input."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = _outcome(lambda: crit(z, t), torch_call)
        if value is None:
            return
        dloss = rng.standard_normal(np.shape(value)).astype(dtype) if reduction == "none" else 1.0
        grad = crit.backward(dloss)
    tz = torch.tensor(z, requires_grad=True)
    tv = tcrit(tz, torch.tensor(t))
    tv.backward(torch.tensor(dloss) if reduction == "none" else None)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    tol = {} if value_rtol is None else {"rtol": value_rtol}
    assert_close(value, tv.detach().numpy(), "loss", dtype, **tol)
    assert_close(grad, tz.grad.numpy(), "gradient", dtype)


@FAST
@given(name=st.sampled_from(["BCELoss", "BCEWithLogitsLoss", "MSELoss"]),
       shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), scale=st.sampled_from([1.0, 1e4]),
       reduction=st.sampled_from(["mean", "sum", "none"]), target_shape_ok=st.booleans(), dtype=DTYPES,
       seed=st.integers(0, 2**16))
def test_elementwise_losses_match_torch_or_refuse(torch, name, shape, scale, reduction, target_shape_ok, dtype,
                                                  seed):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal(shape) * scale).astype(dtype)
    if name == "BCELoss":
        with np.errstate(over="ignore"):
            z = (1 / (1 + np.exp(-z.astype(np.float64)))).astype(dtype)  # probabilities, 0 and 1 included
    t_shape = shape if target_shape_ok else [*shape, 2]
    t = (rng.random(t_shape) < 0.5).astype(dtype)
    crit, tcrit = getattr(nn, name)(reduction=reduction), getattr(torch.nn, name)(reduction=reduction)
    _loss_matches_torch_or_refuses(torch, crit, tcrit, z, t, reduction, dtype, rng,
                                   lambda: _strict_shapes(tcrit, torch.tensor(z), torch.tensor(t)),
                                   value_rtol=TOL[np.dtype(dtype)]["rtol"] * 10)


def _strict_shapes(tcrit, z, t):
    # torch's MSELoss merely warns before broadcasting mismatched shapes; we refuse them
    if z.shape != t.shape:
        raise ValueError("shape mismatch")
    return tcrit(z, t)


# -- input dtypes --------------------------------------------------------------------------

LAYERS_FOR_DTYPES = [
    (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 4, 4)), (lambda: nn.Linear(4, 3), (3, 4)),
    (lambda: nn.MaxPool2d(2), (2, 2, 4, 4)), (lambda: nn.AvgPool2d(2, padding=1), (2, 2, 4, 4)),
    (lambda: nn.BatchNorm2d(2), (3, 2, 2, 2)), (lambda: nn.ReLU(), (3, 4)), (lambda: nn.Sigmoid(), (3, 4)),
    (lambda: nn.Softmax(1), (3, 4)), (lambda: nn.Flatten(), (2, 2, 3)), (lambda: nn.Gaussian(), (3, 4)),
]


@settings(max_examples=40, deadline=None)
@given(which=st.integers(0, len(LAYERS_FOR_DTYPES) - 1),
       dtype=st.sampled_from(["bool", "uint8", "int8", "int32", "int64", "float16", "complex64", "U1", "object"]),
       seed=st.integers(0, 2**16))
def test_integer_and_boolean_inputs_are_cast_other_kinds_rejected(which, dtype, seed):
    """Integers, booleans and float16 become the layer's float dtype (as a float32 cast would); the rest is refused."""
    make, shape = LAYERS_FOR_DTYPES[which]
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 3, shape)
    x = values.astype(dtype)
    m = make()
    if np.dtype(dtype).kind not in "biuf":
        with pytest.raises(TypeError, match="x must be a real-valued array"):
            m(x)
        return
    reference = make()
    reference.load_state_dict(m.state_dict())
    y = m(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, reference(x.astype(np.float32)))
