"""Numerical gradient checks (central differences, float64) for every layer and loss, and for gradcheck itself.

These need no torch: they compare each backward with the derivative of its
own forward, in float64 where central differences are accurate to ~1e-9.
"""
import copy

import numpy as np
import pytest

import strided
from strided import GradcheckError, gradcheck, nn
from strided.gradcheck import GradcheckResult


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


LAYERS = [
    ("conv", lambda: nn.Conv2d(2, 3, 3), (2, 2, 5, 5)),
    ("conv rect stride pad", lambda: nn.Conv2d(2, 2, (2, 3), stride=(2, 1), padding=(1, 2)), (2, 2, 5, 4)),
    ("conv pad > kernel", lambda: nn.Conv2d(1, 2, 2, padding=3, stride=2), (1, 1, 3, 4)),
    ("conv same even dilated", lambda: nn.Conv2d(2, 2, (2, 3), padding="same", dilation=(2, 1)), (1, 2, 4, 5)),
    ("conv groups no bias", lambda: nn.Conv2d(4, 4, 3, groups=2, padding=1, bias=False), (1, 4, 4, 3)),
    ("conv depthwise", lambda: nn.Conv2d(3, 3, 2, groups=3, stride=2), (2, 3, 5, 5)),
    ("max pool overlap pad", lambda: nn.MaxPool2d(3, 2, 1), (2, 2, 6, 5)),
    ("max pool ceil dilation", lambda: nn.MaxPool2d(2, 2, dilation=2, ceil_mode=True), (1, 2, 6, 7)),
    ("avg pool", lambda: nn.AvgPool2d(2), (2, 2, 4, 6)),
    ("avg pool ceil no pad count", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     (1, 2, 6, 5)),
    ("avg pool divisor", lambda: nn.AvgPool2d((2, 3), 1, divisor_override=4), (1, 2, 4, 5)),
    ("linear", lambda: nn.Linear(5, 4), (3, 5)),
    ("linear 3d no bias", lambda: nn.Linear(5, 2, bias=False), (2, 3, 5)),
    ("flatten", lambda: nn.Flatten(), (2, 3, 2, 2)),
    ("relu", lambda: nn.ReLU(), (3, 7)),
    ("leaky relu", lambda: nn.LeakyReLU(0.2), (3, 7)),
    ("sigmoid", lambda: nn.Sigmoid(), (3, 7)),
    ("tanh", lambda: nn.Tanh(), (3, 7)),
    ("gaussian", lambda: nn.Gaussian(), (3, 7)),
    ("softmax", lambda: nn.Softmax(1), (3, 7)),
    ("softmax dim 0 4d", lambda: nn.Softmax(0), (3, 2, 2, 2)),
    ("identity", lambda: nn.Identity(), (3, 4)),
    ("batch norm 1d", lambda: nn.BatchNorm1d(3), (5, 3)),
    ("batch norm 1d (N, C, L)", lambda: nn.BatchNorm1d(3), (2, 3, 4)),
    ("batch norm 2d", lambda: nn.BatchNorm2d(2), (3, 2, 3, 3)),
    ("batch norm 2d no affine", lambda: nn.BatchNorm2d(2, affine=False), (3, 2, 2, 3)),
    ("batch norm 2d eval", lambda: _bn_eval(), (3, 2, 2, 3)),
    ("batch norm without running stats, eval", lambda: nn.BatchNorm1d(3, track_running_stats=False).eval(), (4, 3)),
    ("dropout eval", lambda: nn.Dropout(0.5).eval(), (3, 4)),
    ("dropout p=0", lambda: nn.Dropout(0.0), (3, 4)),
    ("small cnn", lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3), nn.Tanh()), (2, 1, 4, 4)),
]


def _bn_eval():
    m = nn.BatchNorm2d(2, dtype=np.float64)
    for seed in range(3):
        m(_x(4, 2, 3, 3, seed=seed) * 2 + 1)
    m.weight.data[:] = [1.5, 0.5]
    m.bias.data[:] = [0.2, -0.1]
    return m.eval()


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_gradients(name, make, shape):
    result = gradcheck(make(), _x(*shape, seed=len(name)))
    assert result.ok
    assert "input" in result.max_abs_error


LOSSES = [
    ("cross entropy", lambda r: nn.CrossEntropyLoss(reduction=r), lambda: (_x(4, 5), np.array([0, 4, 2, 2]))),
    ("cross entropy smoothed", lambda r: nn.CrossEntropyLoss(reduction=r, label_smoothing=0.3),
     lambda: (_x(4, 5), np.array([1, 3, 0, 0]))),
    ("bce", lambda r: nn.BCELoss(reduction=r),
     lambda: (np.random.default_rng(1).uniform(0.05, 0.95, (3, 4)), np.random.default_rng(2).random((3, 4)))),
    ("bce with logits", lambda r: nn.BCEWithLogitsLoss(reduction=r),
     lambda: (3 * _x(3, 4), (_x(3, 4, seed=1) > 0) * 1.0)),
    ("mse", lambda r: nn.MSELoss(reduction=r), lambda: (_x(2, 3, 2), _x(2, 3, 2, seed=1))),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,make,data", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_gradients(name, make, data, reduction):
    pred, target = data()
    assert gradcheck(make(reduction), pred, target).ok


def test_sigmoid_then_bce_chain():
    """A loss after a layer: chain the two backward passes and check the composite against differences."""
    class SigmoidBCE(nn.Module):
        def __init__(self):
            self.sig, self.crit = nn.Sigmoid(), nn.BCELoss()

        def forward(self, z, t):
            return self.crit(self.sig(z), t)

        def backward(self, dloss=1.0):
            return self.sig.backward(self.crit.backward(dloss))

    assert gradcheck(SigmoidBCE(), 2 * _x(3, 4), (_x(3, 4, seed=5) > 0) * 1.0).ok


# -- gradcheck itself --------------------------------------------------------------

class Scale(nn.Module):
    """A user-written layer: y = x * w (w per feature). ``wrong`` gives it a buggy weight gradient."""

    def __init__(self, features, wrong=False):
        self.weight = nn.Parameter(np.linspace(0.5, 2.0, features))
        self.wrong = wrong
        self._x = None

    def forward(self, x):
        self._x = x
        return x * self.weight.data

    def backward(self, dy, need_input_grad=True):
        g = (dy * self._x).sum(axis=0)
        self.weight.accumulate(g * (1.1 if self.wrong else 1.0))
        return dy * self.weight.data


def test_user_layer_passes():
    result = gradcheck(Scale(4), _x(3, 4))
    assert result.ok and set(result.max_abs_error) == {"input", "weight"}
    assert result.max_abs_error["weight"] < 1e-7


def test_wrong_parameter_gradient_is_caught():
    with pytest.raises(GradcheckError, match="weight"):
        gradcheck(Scale(4, wrong=True), _x(3, 4))
    result = gradcheck(Scale(4, wrong=True), _x(3, 4), raise_exception=False)
    assert isinstance(result, GradcheckResult) and not result.ok and not bool(result)
    assert len(result.failures) == 1 and result.failures[0].startswith("weight")
    assert result.max_abs_error["input"] < 1e-7 < result.max_abs_error["weight"]


def test_wrong_input_gradient_is_caught():
    class BadTanh(nn.Tanh):
        def backward(self, dy, need_input_grad=True):
            return super().backward(dy) * 1.01

    with pytest.raises(GradcheckError, match="input"):
        gradcheck(BadTanh(), _x(2, 3))


def test_params_false_skips_parameters():
    assert gradcheck(Scale(4, wrong=True), _x(3, 4), params=False).ok


def test_frozen_parameters_are_not_checked():
    m = Scale(4, wrong=True)
    m.weight.requires_grad = False
    result = gradcheck(m, _x(3, 4))
    assert result.ok and set(result.max_abs_error) == {"input"}


def test_module_is_left_untouched():
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    before = copy.deepcopy(m.state_dict())
    gradcheck(m, _x(4, 3))
    assert m[0].weight.dtype == np.float32 and m[0].weight.grad is None
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


INPLACE = [
    ("relu", lambda: nn.ReLU(inplace=True), (3, 7)),
    ("leaky relu", lambda: nn.LeakyReLU(0.1, inplace=True), (3, 7)),
    ("dropout p=0", lambda: nn.Dropout(0.0, inplace=True), (3, 4)),
    ("dropout eval", lambda: nn.Dropout(0.5, inplace=True).eval(), (3, 4)),
    ("in a network", lambda: nn.Sequential(nn.Linear(5, 4), nn.ReLU(inplace=True), nn.Linear(4, 3),
                                           nn.LeakyReLU(0.1, inplace=True)), (2, 5)),
]


@pytest.mark.parametrize("name,make,shape", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_layers(name, make, shape):
    """An in-place layer overwrites its input; each call of the check must still see the same x."""
    x = _x(*shape, seed=3)
    original = x.copy()
    result = gradcheck(make(), x)
    assert result.ok and result.max_abs_error["input"] < 1e-7
    np.testing.assert_array_equal(x, original)


def test_gradcheck_argument_errors():
    with pytest.raises(ValueError, match="eps"):
        gradcheck(nn.ReLU(), _x(2, 2), eps=0.0)
    with pytest.raises(TypeError, match="backward"):
        gradcheck(lambda x: x, _x(2, 2))
    with pytest.raises(TypeError, match="x must be a real-valued array"):
        gradcheck(nn.ReLU(), np.array(["a", "b"]))


def test_exported_at_top_level():
    assert strided.gradcheck is gradcheck and strided.GradcheckError is GradcheckError
