"""Numerical corners: NaN and infinite inputs, byte order, extreme magnitudes, and inputs changed after forward."""
import warnings

import numpy as np
import pytest

from strided import nn

CORNERS = np.array([[np.nan, np.inf, -np.inf, 1.0, -1.0, 0.0, 30.0, -30.0]])
ACTIVATIONS = {
    "ReLU": (lambda: nn.ReLU(), lambda t: t.nn.ReLU()),
    "ReLU-inplace": (lambda: nn.ReLU(inplace=True), lambda t: t.nn.ReLU()),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), lambda t: t.nn.LeakyReLU(0.1)),
    "Sigmoid": (lambda: nn.Sigmoid(), lambda t: t.nn.Sigmoid()),
    "Tanh": (lambda: nn.Tanh(), lambda t: t.nn.Tanh()),
    "GELU": (lambda: nn.GELU(), lambda t: t.nn.GELU()),
    "GELU-tanh": (lambda: nn.GELU("tanh"), lambda t: t.nn.GELU(approximate="tanh")),
    "SiLU": (lambda: nn.SiLU(), lambda t: t.nn.SiLU()),
    "ELU": (lambda: nn.ELU(), lambda t: t.nn.ELU()),
    "Hardswish": (lambda: nn.Hardswish(), lambda t: t.nn.Hardswish()),
    "Softmax": (lambda: nn.Softmax(1), lambda t: t.nn.Softmax(1)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients_at_nan_and_infinite_inputs_are_torchs(torch, name):
    ours, theirs = ACTIVATIONS[name]
    layer = ours()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = layer(CORNERS.copy())
        dx = layer.backward(np.full_like(y, 2.0))
    xt = torch.tensor(CORNERS, requires_grad=True)
    yt = theirs(torch)(xt)
    yt.backward(torch.full_like(yt, 2.0))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=0, equal_nan=True)


BYTE_ORDER_LAYERS = {
    "MaxPool2d": lambda: nn.MaxPool2d(2), "AvgPool2d": lambda: nn.AvgPool2d(2),
    "AdaptiveAvgPool2d": lambda: nn.AdaptiveAvgPool2d(3), "AdaptiveMaxPool2d": lambda: nn.AdaptiveMaxPool2d(3),
    "Flatten": lambda: nn.Flatten(), "ReLU": lambda: nn.ReLU(), "Sigmoid": lambda: nn.Sigmoid(),
    "GELU": lambda: nn.GELU(), "Softmax": lambda: nn.Softmax(1), "Upsample": lambda: nn.Upsample(scale_factor=2),
    "Conv2d": lambda: nn.Conv2d(3, 4, 3, rng=0).to(np.float64), "BatchNorm2d": lambda: nn.BatchNorm2d(3).to(np.float64),
}


@pytest.mark.parametrize("name", BYTE_ORDER_LAYERS)
def test_the_other_byte_order_is_computed_in_its_own_precision(name):
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    swapped = x.astype(x.dtype.newbyteorder("S"))
    native_layer, swapped_layer = BYTE_ORDER_LAYERS[name](), BYTE_ORDER_LAYERS[name]()
    y, y_swapped = native_layer(x), swapped_layer(swapped)
    assert y_swapped.dtype == np.float64 and y_swapped.dtype.isnative
    np.testing.assert_array_equal(y_swapped, y)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_array_equal(swapped_layer.backward(dy.astype(dy.dtype.newbyteorder("S"))),
                                  native_layer.backward(dy))


def test_in_place_on_the_other_byte_order_is_refused_by_name():
    x = np.ones((2, 3)).astype(np.dtype(np.float64).newbyteorder("S"))
    with pytest.raises(TypeError, match="with inplace=True .*in the machine's byte order.*got dtype >f8"):
        nn.ReLU(inplace=True)(x)


def _gradients_after(layer_fn, x, mutate):
    """The gradients of a fresh layer's backward, with x changed in place between forward and backward or not."""
    layer = layer_fn()
    x = x.copy(order="K")
    y = layer(x)
    if mutate:
        x *= -3.0
        x += 1.0
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx = layer.backward(dy)
    return [dx] + [p.grad for p in layer.parameters()]


MUTATION_CASES = {
    **{f"conv-{alg}-{pad}-{groups}": (lambda alg=alg, pad=pad, groups=groups: nn.Conv2d(
        4, 4, 3, stride=(1 if pad else 2), padding=pad, groups=groups, algorithm=alg, rng=0).to(np.float64), (2, 4, 9, 9))
       for alg in ("naive", "im2col", "gather", "scipy", "window_rows", "fft", "winograd", "depthwise")
       for pad in (0, 1) for groups in (1, 4)
       # the geometries each algorithm serves (Winograd: stride 1; depthwise: one group per channel)
       if not (alg == "winograd" and pad == 0) and not (alg == "depthwise" and groups == 1)},
    "conv-reflect": (lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect", rng=0).to(np.float64),
                     (2, 4, 9, 9)),
    **{f"conv_transpose-{alg}": (lambda alg=alg: nn.ConvTranspose2d(4, 3, 3, stride=2, algorithm=alg, rng=0).to(
        np.float64), (2, 4, 5, 5)) for alg in ("naive", "im2col", "scipy", "window_rows")},
    "linear": (lambda: nn.Linear(6, 3, rng=0).to(np.float64), (4, 6)),
    "linear-3d": (lambda: nn.Linear(6, 3, rng=0).to(np.float64), (2, 4, 6)),
}


@pytest.mark.parametrize("name, batch_last", [(name, batch_last) for name, (_, shape) in MUTATION_CASES.items()
                                              for batch_last in ((False, True) if len(shape) == 4 else (False,))])
def test_changing_x_after_forward_does_not_change_the_gradients(name, batch_last):
    layer_fn, shape = MUTATION_CASES[name]
    x = np.random.default_rng(0).standard_normal(shape)
    if batch_last:       # (N, C, H, W) with the batch innermost in memory, as after a convolution
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 0, -1)), -1, 0)
    expected = _gradients_after(layer_fn, x, mutate=False)
    for got, want in zip(_gradients_after(layer_fn, x, mutate=True), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("algorithm", ["naive", "im2col", "gather", "scipy", "fft", "winograd"])
def test_large_float32_inputs_stay_finite_where_the_default_does(algorithm):
    # a float32 transform of a plane of values near 1e37 overflowed in the scipy and fft algorithms
    pytest.importorskip("scipy")
    import strided.functional as F
    x = (np.random.default_rng(0).standard_normal((2, 3, 8, 8)) * 1e37).astype(np.float32)
    w = (np.random.default_rng(1).standard_normal((4, 3, 3, 3)) * 0.1).astype(np.float32)
    dy = np.full((2, 4, 8, 8), 1e-3, np.float32)
    y_ref, cache_ref = F.conv2d_forward(x, w, padding=1, algorithm="window_rows")
    ref = F.conv2d_backward(dy, cache_ref)
    assert np.isfinite(y_ref).all() and np.isfinite(ref.x).all() and np.isfinite(ref.weight).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y, cache = F.conv2d_forward(x, w, padding=1, algorithm=algorithm)
        got = F.conv2d_backward(dy, cache)
    assert y.dtype == got.weight.dtype == np.float32
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-6 * float(np.abs(y_ref).max()))
    np.testing.assert_allclose(got.weight, ref.weight, rtol=1e-4, atol=1e-6 * float(np.abs(ref.weight).max()))
