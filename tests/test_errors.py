"""Bad input fails early with a ValueError/TypeError that names the argument, what it got and what it expected.

Each case lists the fragments its message must contain; "before any work" is
checked by making sure a rejected call leaves the layer exactly as it was.
"""
import re

import numpy as np
import pytest

import strided.functional as F
from strided import nn

X = np.zeros((2, 3, 8, 8), np.float32)


def _forward_then_backward(m, x, dy):
    m(x)
    return m.backward(dy)


CASES = [
    # -- wrong number of dimensions
    ("conv 2-d input", lambda: nn.Conv2d(3, 4, 3)(np.zeros((8, 8), np.float32)), ValueError,
     ["x must have 3 or 4 dimensions", "(C, H, W) or (N, C, H, W)", "got shape (8, 8)"]),
    ("max pool 5-d input", lambda: nn.MaxPool2d(2)(np.zeros((1, 2, 3, 8, 8))), ValueError,
     ["x must have 3 or 4 dimensions", "got shape (1, 2, 3, 8, 8)"]),
    ("avg pool 2-d input", lambda: nn.AvgPool2d(2)(np.zeros((8, 8))), ValueError,
     ["x must have 3 or 4 dimensions", "got shape (8, 8)"]),
    ("functional pool 3-d input", lambda: F.max_pool2d_forward(np.zeros((3, 8, 8)), 2), ValueError,
     ["x must have 4 dimensions", "(N, C, H, W)", "got shape (3, 8, 8)"]),
    ("batch norm 2d on 2-d input", lambda: nn.BatchNorm2d(3)(np.zeros((4, 3), np.float32)), ValueError,
     ["x must have 4 dimensions", "got shape (4, 3)"]),
    ("batch norm 2d unbatched (torch refuses it too)", lambda: nn.BatchNorm2d(3)(np.zeros((3, 4, 4), np.float32)),
     ValueError, ["x must have 4 dimensions", "got shape (3, 4, 4)"]),
    ("batch norm 1d on 4-d input", lambda: nn.BatchNorm1d(3)(X), ValueError,
     ["x must have 2 or 3 dimensions", "(N, C) or (N, C, L)", "got shape (2, 3, 8, 8)"]),
    ("cross entropy on 0-d logits", lambda: nn.CrossEntropyLoss()(np.zeros(()), np.zeros((), int)),
     ValueError, ["input must have 1 or more dimensions", "(N, C, d1, d2, ...)", "0-d"]),
    ("cross entropy per-position labels", lambda: nn.CrossEntropyLoss()(np.zeros((2, 3, 4)), np.zeros(2, int)),
     ValueError, ["target must have shape (2, 4) to match input (2, 3, 4)", "got (2,)"]),
    ("cross entropy unbatched label", lambda: nn.CrossEntropyLoss()(np.zeros(3), np.zeros(1, int)),
     ValueError, ["target must have shape () to match input (3,)", "got (1,)"]),
    ("integer class probabilities", lambda: nn.CrossEntropyLoss()(np.zeros((2, 3)), np.zeros((2, 3), int)),
     TypeError, ["holds class probabilities and must be a float array", "got dtype int64", "labels have shape (2,)"]),
    ("ignore_index with class probabilities", lambda: nn.CrossEntropyLoss(ignore_index=0)(np.zeros((2, 3)),
                                                                                          np.zeros((2, 3))),
     ValueError, ["ignore_index=0 cannot be used with class-probability targets"]),
    ("nll class probabilities", lambda: nn.NLLLoss()(np.zeros((2, 3)), np.zeros((2, 3))), TypeError,
     ["target must hold integer class labels", "got dtype float64"]),
    ("cross entropy no classes", lambda: nn.CrossEntropyLoss()(np.zeros((2, 0)), np.zeros(2, int)), ValueError,
     ["input must have at least one class", "got shape (2, 0)"]),
    ("max pool return_indices", lambda: nn.MaxPool2d(2, return_indices=1), TypeError,
     ["return_indices must be True or False", "got 1"]),
    ("conv weight 3-d", lambda: F.conv2d_forward(X, np.zeros((4, 3, 3))), ValueError,
     ["weight must have 4 dimensions", "got shape (4, 3, 3)"]),
    # -- channel counts
    ("conv channels", lambda: nn.Conv2d(4, 2, 3)(X), ValueError,
     ["Conv2d expects 4 input channels", "shape (2, 3, 8, 8)", "(3 channels)"]),
    ("functional conv channels with groups", lambda: F.conv2d_forward(X, np.zeros((4, 2, 3, 3), np.float32),
                                                                     groups=2), ValueError,
     ["x has 3 channels", "groups=2", "expects 4"]),
    ("batch norm channels", lambda: nn.BatchNorm2d(4)(X), ValueError,
     ["BatchNorm2d expects 4 channels", "shape (2, 3, 8, 8)"]),
    ("linear features", lambda: nn.Linear(10, 2)(X), ValueError,
     ["Linear expects 10 input features", "shape (2, 3, 8, 8)", "Flatten"]),
    ("conv bias shape", lambda: F.conv2d_forward(X, np.zeros((4, 3, 3, 3), np.float32), np.zeros(3, np.float32)),
     ValueError, ["bias must have shape (4,)", "got (3,)"]),
    # -- kernel larger than the (padded) input
    ("conv kernel too large", lambda: nn.Conv2d(3, 2, 9)(X), ValueError,
     ["kernel (9, 9)", "larger than the padded input (8, 8)", "x shape (2, 3, 8, 8)"]),
    ("conv dilated kernel too large", lambda: nn.Conv2d(3, 2, 3, dilation=(1, 4))(X), ValueError,
     ["spans (3, 9)", "larger than the padded input (8, 8)"]),
    ("conv kernel fits only with padding", lambda: nn.Conv2d(3, 2, (3, 11), padding=(0, 1))(X), ValueError,
     ["kernel (3, 11)", "padded input (8, 10)"]),
    ("max pool kernel too large", lambda: nn.MaxPool2d(3, dilation=4)(X), ValueError,
     ["too small for kernel_size=(3, 3)", "dilation=(4, 4)", "input (2, 3, 8, 8)"]),
    ("avg pool kernel too large", lambda: nn.AvgPool2d((2, 9))(X), ValueError,
     ["too small for kernel_size=(2, 9)", "output would be (4, 0)"]),
    # -- non-positive / wrongly typed sizes
    ("conv stride 0", lambda: nn.Conv2d(3, 2, 3, stride=0), ValueError, ["stride must be positive", "got 0"]),
    ("conv stride pair", lambda: nn.Conv2d(3, 2, 3, stride=(1, -2)), ValueError,
     ["stride must be positive", "got (1, -2)"]),
    ("conv kernel 0", lambda: nn.Conv2d(3, 2, (0, 3)), ValueError, ["kernel_size must be positive", "got (0, 3)"]),
    ("conv dilation 0", lambda: nn.Conv2d(3, 2, 3, dilation=0), ValueError, ["dilation must be positive", "got 0"]),
    ("conv kernel float", lambda: nn.Conv2d(3, 2, 2.5), TypeError,
     ["kernel_size must be an int or a pair of ints", "got 2.5"]),
    ("conv kernel triple", lambda: nn.Conv2d(3, 2, (3, 3, 3)), TypeError,
     ["kernel_size must be an int or a pair of ints", "got (3, 3, 3)"]),
    ("conv stride bool", lambda: nn.Conv2d(3, 2, 3, stride=True), TypeError,
     ["stride must be an int or a pair of ints", "got True"]),
    ("conv negative padding", lambda: nn.Conv2d(3, 2, 3, padding=-1), ValueError,
     ["padding must be non-negative", "got -1"]),
    ("conv in_channels 0", lambda: nn.Conv2d(0, 2, 3), ValueError, ["in_channels must be a positive int", "got 0"]),
    ("max pool kernel 0", lambda: nn.MaxPool2d(0), ValueError, ["kernel_size must be positive", "got 0"]),
    ("max pool stride 0", lambda: nn.MaxPool2d(2, stride=0), ValueError, ["stride must be positive", "got 0"]),
    ("max pool dilation 0", lambda: nn.MaxPool2d(2, dilation=(1, 0)), ValueError,
     ["dilation must be positive", "got (1, 0)"]),
    ("avg pool stride negative", lambda: nn.AvgPool2d(2, stride=-1), ValueError, ["stride must be positive", "got -1"]),
    ("pool padding more than half the kernel", lambda: nn.MaxPool2d(3, padding=2), ValueError,
     ["padding must be at most half of kernel_size", "got padding=2", "kernel_size=3"]),
    ("functional pool padding", lambda: F.avg_pool2d_forward(X, 2, padding=(0, 2)), ValueError,
     ["padding must be at most half of kernel_size", "padding=(0, 2)"]),
    ("avg pool divisor_override", lambda: nn.AvgPool2d(2, divisor_override=0)(X), ValueError,
     ["divisor_override must be a positive int", "got 0"]),
    ("linear in_features", lambda: nn.Linear(-1, 2), ValueError, ["in_features must be a positive int", "got -1"]),
    ("batch norm num_features", lambda: nn.BatchNorm2d(0), ValueError,
     ["num_features must be a positive int", "got 0"]),
    ("batch norm eps", lambda: nn.BatchNorm2d(3, eps=-1e-5), ValueError, ["eps must be a finite number > 0", "-1e-05"]),
    ("batch norm momentum", lambda: nn.BatchNorm2d(3, momentum=1.5), ValueError, ["momentum must be in [0, 1]", "1.5"]),
    # -- groups
    ("groups vs in_channels", lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError,
     ["groups=2 must divide in_channels=3"]),
    ("groups vs out_channels", lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     ["groups=4 must divide out_channels=6"]),
    ("groups 0", lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, ["groups must be a positive int", "got 0"]),
    ("functional groups vs out_channels", lambda: F.conv2d_forward(X, np.zeros((4, 1, 3, 3), np.float32), groups=3),
     ValueError, ["groups=3 must divide out_channels=4"]),
    # -- padding strings
    ("unknown padding string", lambda: nn.Conv2d(3, 2, 3, padding="full"), ValueError,
     ["unknown padding 'full'", "'same', 'valid'"]),
    ("functional unknown padding", lambda: F.conv2d_forward(X, np.zeros((2, 3, 3, 3), np.float32), padding="Same"),
     ValueError, ["unknown padding 'Same'"]),
    ("same with stride", lambda: nn.Conv2d(3, 2, 3, padding="same", stride=(1, 2)), ValueError,
     ["padding='same' requires stride 1", "got stride=(1, 2)"]),
    ("functional same with stride", lambda: F.conv2d_forward(X, np.zeros((2, 3, 3, 3), np.float32), stride=2,
                                                             padding="same"), ValueError,
     ["padding='same' requires stride 1", "got stride=(2, 2)"]),
    ("padding_mode", lambda: nn.Conv2d(3, 2, 3, padding_mode="mirror"), ValueError,
     ["unknown padding_mode 'mirror'", "'zeros'", "'reflect'"]),
    # -- labels and targets
    ("label too large", lambda: nn.CrossEntropyLoss()(np.zeros((3, 4)), np.array([0, 4, 1])), ValueError,
     ["target contains label 4", "outside [0, 3]", "4 classes"]),
    ("label negative", lambda: nn.CrossEntropyLoss()(np.zeros((3, 4)), np.array([0, -1, 1])), ValueError,
     ["target contains label -1", "outside [0, 3]"]),
    ("float labels", lambda: nn.CrossEntropyLoss()(np.zeros((2, 4)), np.array([0.0, 1.0])), TypeError,
     ["target must hold integer class labels", "got dtype float64"]),
    ("bool labels", lambda: nn.CrossEntropyLoss()(np.zeros((2, 4)), np.array([True, False])), TypeError,
     ["target must hold integer class labels", "got dtype bool"]),
    ("labels shape", lambda: nn.CrossEntropyLoss()(np.zeros((2, 4)), np.array([[0, 1]])), ValueError,
     ["target must have shape (2,)", "got (1, 2)"]),
    ("bce probabilities", lambda: nn.BCELoss()(np.array([0.5, 1.2]), np.array([1.0, 0.0])), ValueError,
     ["input of BCELoss must be probabilities in [0, 1]", "BCEWithLogitsLoss"]),
    ("mse target shape", lambda: nn.MSELoss()(np.zeros((2, 3)), np.zeros((3, 2))), ValueError,
     ["target must have the input's shape (2, 3)", "got (3, 2)"]),
    ("unknown reduction", lambda: nn.MSELoss(reduction="average"), ValueError,
     ["unknown reduction 'average'", "'mean', 'sum', 'none'"]),
    ("reduction by position", lambda: nn.MSELoss("sum"), TypeError,
     ["MSELoss takes its arguments by name", "reduction='sum'", "size_average"]),
    ("label smoothing", lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ValueError,
     ["label_smoothing must be in [0, 1]", "-0.1"]),
    # -- dtypes
    ("float64 input to a float32 conv", lambda: nn.Conv2d(3, 2, 3)(X.astype(np.float64)), TypeError,
     ["weight has dtype float32 but the input has dtype float64", "model.to(np.float64)"]),
    ("float64 input to a float32 linear", lambda: nn.Linear(3, 2)(np.zeros((2, 3))), TypeError,
     ["weight has dtype float32 but the input has dtype float64"]),
    ("float64 input to a float32 batch norm", lambda: nn.BatchNorm1d(3)(np.zeros((2, 3))), TypeError,
     ["running_mean has dtype float32 but the input has dtype float64"]),
    ("complex input", lambda: nn.ReLU()(np.zeros(3, complex)), TypeError,
     ["x must be a real-valued array", "got dtype complex128"]),
    ("string input", lambda: nn.MaxPool2d(2)(np.array([["a"]])), TypeError,
     ["x must be a real-valued array", "got dtype <U1"]),
    ("module dtype", lambda: nn.Conv2d(3, 2, 3, dtype=np.int32), TypeError,
     ["dtype must be float32 or float64", "got int32"]),
    # -- other arguments
    ("empty image", lambda: nn.Conv2d(3, 2, 3)(np.zeros((2, 3, 0, 8), np.float32)), ValueError,
     ["x must not be empty", "got shape (2, 3, 0, 8)"]),
    ("dropout p", lambda: nn.Dropout(p=1.5), ValueError, ["p must be in [0, 1]", "got 1.5"]),
    ("softmax dim", lambda: nn.Softmax(dim=2)(np.zeros((2, 3))), ValueError,
     ["dim must be in [-2, 1]", "shape (2, 3)", "got 2"]),
    ("softmax dim type", lambda: nn.Softmax(dim="1"), TypeError, ["dim must be an int or None", "got '1'"]),
    ("softmax dim of a 0-d input", lambda: nn.Softmax(dim=1)(np.zeros(())), ValueError,
     ["dim must be in [-1, 0]", "shape ()", "got 1"]),
    ("flatten dims", lambda: nn.Flatten(start_dim=3)(np.zeros((2, 3))), ValueError,
     ["Flatten start_dim=3 is out of range", "shape (2, 3)", "expected in [-2, 1]"]),
    ("algorithm", lambda: nn.Conv2d(3, 2, 3, algorithm="magic"), ValueError, ["unknown algorithm 'magic'"]),
    ("seed", lambda: nn.Linear(3, 2, rng=1.5), TypeError, ["rng must be None, a numpy Generator", "got 1.5"]),
    # -- backward: before forward, wrong gradient shape
    ("dy shape conv", lambda: _forward_then_backward(nn.Conv2d(3, 2, 3), X, np.zeros((2, 2, 5, 5))), ValueError,
     ["dy must have the output's shape (2, 2, 6, 6)", "got (2, 2, 5, 5)"]),
    ("dy shape max pool", lambda: _forward_then_backward(nn.MaxPool2d(2), X, np.zeros((2, 3, 4))), ValueError,
     ["dy must have the output's shape (2, 3, 4, 4)", "got (2, 3, 4)"]),
    ("dy shape unbatched conv", lambda: _forward_then_backward(nn.Conv2d(3, 2, 3), X[0], np.zeros((1, 2, 6, 6))),
     ValueError, ["dy must have the output's shape (2, 6, 6)", "got (1, 2, 6, 6)"]),
    ("dy shape empty batch", lambda: _forward_then_backward(nn.AvgPool2d(2), X[:0], np.zeros((1, 3, 4, 4))),
     ValueError, ["dy must have the output's shape (0, 3, 4, 4)", "got (1, 3, 4, 4)"]),
    ("dy shape relu (would broadcast)", lambda: _forward_then_backward(nn.ReLU(), np.zeros((2, 3)), np.zeros(3)),
     ValueError, ["dy must have the output's shape (2, 3)", "got (3,)"]),
    ("dy shape linear", lambda: _forward_then_backward(nn.Linear(3, 2), np.zeros((4, 3), np.float32),
                                                        np.zeros((4, 3))), ValueError,
     ["dy must have the output's shape (4, 2)", "got (4, 3)"]),
    ("dy shape batch norm", lambda: _forward_then_backward(nn.BatchNorm2d(3), X, np.zeros((2, 3, 8, 1))),
     ValueError, ["dy must have the output's shape (2, 3, 8, 8)", "got (2, 3, 8, 1)"]),
    ("dy shape flatten", lambda: _forward_then_backward(nn.Flatten(), X, np.zeros((2, 191))), ValueError,
     ["dy must have the output's shape (2, 192)", "got (2, 191)"]),
]


@pytest.mark.parametrize("name,call,exc,fragments", CASES, ids=[c[0] for c in CASES])
def test_error_message(name, call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc  # not a subclass from deep inside NumPy
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


BACKWARD_FIRST = [
    nn.Conv2d(3, 2, 3), nn.Linear(3, 2), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.BatchNorm1d(3), nn.BatchNorm2d(3),
    nn.ReLU(), nn.LeakyReLU(), nn.Sigmoid(), nn.Tanh(), nn.Gaussian(), nn.Softmax(1), nn.Identity(), nn.Flatten(),
    nn.Dropout(0.5), nn.Sequential(nn.Linear(3, 2), nn.ReLU()),
]


@pytest.mark.parametrize("m", BACKWARD_FIRST, ids=[type(m).__name__ for m in BACKWARD_FIRST])
def test_backward_before_forward(m):
    with pytest.raises(ValueError, match=r"\.backward called before forward"):
        m.backward(np.zeros((2, 2)))


@pytest.mark.parametrize("crit", [nn.CrossEntropyLoss(), nn.BCELoss(), nn.BCEWithLogitsLoss(), nn.MSELoss()],
                         ids=lambda c: type(c).__name__)
def test_loss_backward_before_forward(crit):
    with pytest.raises(ValueError, match=re.escape(f"{type(crit).__name__}.backward called before forward")):
        crit.backward()


@pytest.mark.torch
def test_batch_norm_batch_of_one_like_torch(torch):
    """Training on one value per channel fails as in torch, and the running statistics stay untouched."""
    m = nn.BatchNorm1d(3)
    m(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    before = m.state_dict()
    with pytest.raises(ValueError) as ours:
        m(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError) as theirs:
        torch.nn.BatchNorm1d(3)(torch.ones(1, 3))
    prefix = "Expected more than 1 value per channel when training"
    assert str(ours.value).startswith(prefix) and str(theirs.value).startswith(prefix)
    assert "(1, 3)" in str(ours.value)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    for shape in ((1, 3, 1), (1, 3, 1, 1)):
        layer = nn.BatchNorm1d(3) if len(shape) == 3 else nn.BatchNorm2d(3)
        with pytest.raises(ValueError, match=prefix):
            layer(np.ones(shape, np.float32))
    m.eval()
    assert m(np.ones((1, 3), np.float32)).shape == (1, 3)  # evaluation uses the running statistics: fine


def test_rejected_input_leaves_the_layer_usable():
    """A failed forward changes nothing: backward still goes through the last good forward."""
    m = nn.Conv2d(3, 2, 3)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = m(x)
    with pytest.raises(ValueError):
        m(np.zeros((2, 4, 6, 6), np.float32))
    dx = m.backward(np.ones_like(y))
    assert dx.shape == x.shape
