"""Bad arguments give a clear error: TypeError or ValueError, naming the argument.

A property-based fuzz of every layer's constructor (one argument replaced by
a hostile value; what is accepted must then run forward and backward or
refuse the input clearly), of the functional backwards given something that
is not their cache, and the cases found by earlier fuzzing, one by one.
"""
import inspect
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strided
import strided.functional as F
from strided import data, nn, optim

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# the arguments each layer needs; every other argument has a default
REQUIRED = {
    "Conv2d": dict(in_channels=2, out_channels=4, kernel_size=3),
    "ConvTranspose2d": dict(in_channels=2, out_channels=4, kernel_size=3),
    "Linear": dict(in_features=5, out_features=3), "MaxPool2d": dict(kernel_size=2), "AvgPool2d": dict(kernel_size=2),
    "AdaptiveAvgPool2d": dict(output_size=2), "AdaptiveMaxPool2d": dict(output_size=2),
    "Upsample": dict(scale_factor=2), "UpsamplingNearest2d": dict(scale_factor=2),
    "UpsamplingBilinear2d": dict(scale_factor=2), "BatchNorm1d": dict(num_features=2),
    "BatchNorm2d": dict(num_features=2), "GroupNorm": dict(num_groups=1, num_channels=2),
    "LayerNorm": dict(normalized_shape=4),
}
# an input each layer takes with its required arguments
INPUT_SHAPES = {"Linear": (3, 5), "BatchNorm1d": (3, 2), "LayerNorm": (2, 3, 4)}
CONTAINERS = {"Module", "Parameter", "Sequential", "Residual", "Concat"}
LAYERS = sorted(name for name in nn.__all__ if inspect.isclass(getattr(nn, name)) and name not in CONTAINERS)
# sizes: a few, not so many that an accepted one allocates terabytes (a MemoryError is the honest answer then)
HOSTILE = st.one_of(
    st.sampled_from(["a", "", "zeros", None, True, False, (), [], {}, object(), (1, -1), (2, 0), [1, 2, 3],
                     float("nan"), float("inf"), -float("inf"), 1e308, np.float64(2.0), np.int64(3), b"1"]),
    st.integers(-3, 9), st.floats(-3, 9, allow_nan=False))


def _arguments(name):
    return [p.name for p in inspect.signature(getattr(nn, name)).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


LAYER_ARGUMENTS = [(name, argument) for name in LAYERS for argument in _arguments(name)]


def _names_the_argument(exc, argument):
    return argument in str(exc)


@FUZZ
@given(data=st.data())
def test_layer_constructors_accept_or_name_the_bad_argument(data):
    name, argument = data.draw(st.sampled_from(LAYER_ARGUMENTS), label="layer, argument")
    value = data.draw(HOSTILE, label="value")
    kwargs = dict(REQUIRED.get(name, {}), **{argument: value})
    try:
        layer = getattr(nn, name)(**kwargs)
    except (TypeError, ValueError) as exc:
        assert _names_the_argument(exc, argument), str(exc)
        return
    if name.endswith("Loss"):
        return
    x = np.random.default_rng(0).standard_normal(INPUT_SHAPES.get(name, (2, 2, 6, 6))).astype(np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = layer(x)
            y = y[0] if isinstance(y, tuple) else y
            layer.backward(np.ones_like(y))
    except (TypeError, ValueError, RuntimeError):
        pass        # an argument accepted alone, refused with this input (groups not dividing 2 channels...)


BACKWARDS = [F.conv2d_backward, F.conv_transpose2d_backward, F.linear_backward, F.batch_norm_backward,
             F.group_norm_backward, F.layer_norm_backward, F.pad_backward, F.max_pool2d_backward,
             F.avg_pool2d_backward, F.adaptive_avg_pool2d_backward, F.adaptive_max_pool2d_backward,
             F.interpolate_backward, F.dropout2d_backward]


@pytest.mark.parametrize("backward", BACKWARDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("cache", ["not a cache", None, (1, 2), np.ones(3)], ids=["str", "None", "tuple", "array"])
def test_a_backward_given_something_else_than_its_cache_says_so(backward, cache):
    forward = backward.__name__.replace("_backward", "_forward")
    with pytest.raises(TypeError, match=f"cache must be the .*Cache that {forward} returned, got {type(cache).__name__}"):
        backward(np.ones((1, 1, 2, 2), np.float32), cache)


def test_loss_backward_given_something_else_than_its_cache_says_so():
    with pytest.raises(TypeError, match="cache must be the LossCache that a loss forward returned, got str"):
        F.loss_backward("not a cache")


@pytest.mark.parametrize("slope", ["a", None, [0.1], float("nan")])
def test_leaky_relu_names_a_bad_negative_slope(slope):
    with pytest.raises((TypeError, ValueError), match="negative_slope must be a .*number, got " + re.escape(repr(slope))):
        nn.LeakyReLU(slope)


@pytest.mark.parametrize("seed", [-1, 1.5, "a", [1, 2], True])
def test_dropout_names_a_bad_seed(seed):
    with pytest.raises((TypeError, ValueError), match="seed must be"):
        nn.Dropout(0.5, seed=seed)


def test_standardize_refuses_a_zero_std_without_eps():
    with pytest.raises(ValueError, match=r"std is 0 for channel\(s\) \[1\] and eps is 0"):
        data.Standardize(mean=[0.0, 0.0], std=[1.0, 0.0], eps=0)
    with pytest.raises(ValueError, match=r"std is 0 for channel\(s\) \[0\] and eps is 0"):
        data.Standardize(eps=0).fit(np.zeros((2, 1, 3, 3), np.uint8))
    assert np.isfinite(data.Standardize(eps=1e-7).fit(np.zeros((2, 1, 3, 3), np.uint8))(np.ones((1, 1, 3, 3)))).all()


@pytest.mark.parametrize("optimizer", ["sgd", None, object()])
def test_fit_names_a_bad_optimizer(optimizer):
    model = nn.Linear(2, 2)
    train = (np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="optimizer must be a strided optimizer"):
        strided.fit(model, nn.CrossEntropyLoss(), optimizer, train, progress=False, log=None)


def test_fit_names_a_bad_scheduler():
    model = nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    train = (np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="scheduler must be a learning-rate scheduler"):
        strided.fit(model, nn.CrossEntropyLoss(), opt, train, scheduler="step", progress=False, log=None)


def test_an_infinite_upsampled_size_is_refused_by_name():
    with pytest.raises(ValueError, match="scale_factor=1e\\+308 makes an infinite output size"):
        nn.Upsample(scale_factor=1e308)(np.ones((1, 1, 2, 2), np.float32))


def _functional_calls():
    """Each functional forward with arguments it takes: {name: (function, keyword arguments)}."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    stats = dict(running_mean=np.zeros(4, np.float32), running_var=np.ones(4, np.float32))
    return {
        "conv2d_forward": (F.conv2d_forward, dict(x=x, weight=w)),
        "conv_transpose2d_forward": (F.conv_transpose2d_forward, dict(x=x, weight=w)),
        "max_pool2d_forward": (F.max_pool2d_forward, dict(x=x, kernel_size=2)),
        "avg_pool2d_forward": (F.avg_pool2d_forward, dict(x=x, kernel_size=2)),
        "adaptive_avg_pool2d_forward": (F.adaptive_avg_pool2d_forward, dict(x=x, output_size=2)),
        "adaptive_max_pool2d_forward": (F.adaptive_max_pool2d_forward, dict(x=x, output_size=2)),
        "linear_forward": (F.linear_forward, dict(x=x[:, :, 0], weight=np.ones((3, 6), np.float32))),
        "interpolate_forward": (F.interpolate_forward, dict(x=x, scale_factor=2)),
        "batch_norm_forward": (F.batch_norm_forward, dict(x=x, **stats)),
        "group_norm_forward": (F.group_norm_forward, dict(x=x, num_groups=2)),
        "layer_norm_forward": (F.layer_norm_forward, dict(x=x, normalized_shape=(6,))),
        "dropout_forward": (F.dropout_forward, dict(x=x, p=0.5, rng=np.random.default_rng(0))),
        "dropout2d_forward": (F.dropout2d_forward, dict(x=x, p=0.5, rng=np.random.default_rng(0))),
        "pad_forward": (F.pad_forward, dict(x=x, padding=(1, 1, 1, 1), mode="reflect")),
        "relu_forward": (F.relu_forward, dict(x=x)),
        "leaky_relu_forward": (F.leaky_relu_forward, dict(x=x)),
        "elu_forward": (F.elu_forward, dict(x=x)),
        "gelu_forward": (F.gelu_forward, dict(x=x)),
        "softmax_forward": (F.softmax_forward, dict(x=x)),
        "cross_entropy_forward": (F.cross_entropy_forward, dict(logits=x[:, :, 0, 0], target=np.zeros(2, np.int64))),
        "mse_forward": (F.mse_forward, dict(pred=x, target=x)),
    }


FUNCTIONAL = _functional_calls()
FUNCTIONAL_ARGUMENTS = [(name, p.name) for name, (fn, _) in FUNCTIONAL.items()
                        for p in inspect.signature(fn).parameters.values()
                        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
HOSTILE_ARRAYS = st.sampled_from([np.ones((2, 2)), np.array(["a"]), np.ones(3, complex), np.ones(4, np.float64)])
# the losses call their first argument ``input``, as torch does
MESSAGE_NAMES = {"logits": "input", "pred": "input"}


@FUZZ
@given(data=st.data())
def test_functional_ops_accept_or_name_the_bad_argument(data):
    name, argument = data.draw(st.sampled_from(FUNCTIONAL_ARGUMENTS), label="op, argument")
    value = data.draw(st.one_of(HOSTILE, HOSTILE_ARRAYS), label="value")
    fn, kwargs = FUNCTIONAL[name]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(**dict(kwargs, **{argument: value}))
    except (TypeError, ValueError) as exc:
        assert MESSAGE_NAMES.get(argument, argument) in str(exc), str(exc)
