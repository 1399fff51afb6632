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
