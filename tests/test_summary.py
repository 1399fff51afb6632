"""strided.summary: output shapes against the model's own forward, parameter counts against the torch twin,
multiply-adds against their formulas."""
import io

import numpy as np
import pytest

import strided
from strided import models, nn


def _walk_shapes(m, x, name, out):
    """(name, output shape) of every module call, a container before its children, by running the tree by hand."""
    row = len(out)
    out.append(None)
    if isinstance(m, nn.Sequential):
        y = x
        for child_name, child in m.named_children():
            y = _walk_shapes(child, y, f"{name}.{child_name}" if name else child_name, out)
    elif isinstance(m, nn.Residual):
        y = _walk_shapes(m.body, x, f"{name}.body", out)
        if m.shortcut is not None:
            _walk_shapes(m.shortcut, x, f"{name}.shortcut", out)
        y = m(x)
    elif isinstance(m, nn.Concat):
        for i, branch in enumerate(m):
            _walk_shapes(branch, x, f"{name}.{i}", out)
        y = m(x)
    else:
        y = m(x)
    out[row] = (name, (y[0] if isinstance(y, tuple) else y).shape)
    return y


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_zoo_shapes_and_parameter_counts(torch, name):
    build, image_shape, _ = models.MODELS[name]
    model = build()
    model.eval()
    s = strided.summary(model, (3, *image_shape), verbose=False)
    expected = []
    _walk_shapes(model, np.zeros((3, *image_shape), np.float32), "", expected)
    assert [(r.name, r.output_shape) for r in s.layers] == expected
    assert s.output_shape == model(np.zeros((3, *image_shape), np.float32)).shape

    twin = strided.io.to_torch(model)
    assert s.total_params == sum(p.numel() for p in twin.parameters())
    for row in s.layers:
        own = sum(p.numel() for p in twin.get_submodule(row.name).parameters(recurse=False))
        assert row.num_params == own, row.name
    assert sum(r.num_params for r in s.layers) == s.total_params


def _branching_net():
    """Concat, an identity Residual and a projection Residual, nested in Sequentials."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Concat(nn.Conv2d(4, 2, 1), nn.Sequential(nn.Conv2d(4, 3, 3, padding=1), nn.ReLU())),
        nn.Residual(nn.Sequential(nn.Conv2d(5, 5, 3, padding=1), nn.GroupNorm(5, 5))),
        nn.Residual(nn.Conv2d(5, 6, 3, stride=2, padding=1), nn.Conv2d(5, 6, 1, stride=2)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


@pytest.mark.torch
def test_branching_containers(torch):
    model = _branching_net()
    s = strided.summary(model, (2, 3, 8, 8), verbose=False)
    expected = []
    _walk_shapes(model, np.zeros((2, 3, 8, 8), np.float32), "", expected)
    assert [(r.name, r.output_shape) for r in s.layers] == expected
    assert [r.depth for r in s.layers][:6] == [0, 1, 1, 2, 2, 3]
    twin = strided.io.to_torch(model)
    for row in s.layers:
        assert row.num_params == sum(p.numel() for p in twin.get_submodule(row.name).parameters(recurse=False))
    assert s.total_params == sum(p.numel() for p in twin.parameters())
    assert "1.1.0 (Conv2d)" in str(s)


def test_mult_adds_by_formula():
    conv = nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=1, groups=2)
    s = strided.summary(conv, (2, 4, 9, 11), verbose=False)
    oh, ow = (9 + 2 - 3) // 2 + 1, (11 + 2 - 5) // 1 + 1
    assert s.output_shape == (2, 6, oh, ow)
    assert s.total_mult_adds == 2 * 6 * oh * ow * (4 // 2) * 3 * 5

    lin = nn.Linear(7, 5)
    assert strided.summary(lin, (4, 7), verbose=False).total_mult_adds == 4 * 5 * 7

    tconv = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
    s = strided.summary(tconv, (2, 4, 5, 5), verbose=False)
    assert s.total_mult_adds == 2 * 4 * 5 * 5 * (6 // 2) * 3 * 3

    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    s = strided.summary(net, (5, 1, 6, 6), verbose=False)
    assert [r.mult_adds for r in s.layers] == [0, 5 * 3 * 4 * 4 * 9, 0, 0, 5 * 2 * 48]
    assert s.total_mult_adds == 5 * 3 * 4 * 4 * 9 + 5 * 2 * 48


def test_shared_module_counts_its_parameters_once():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    s = strided.summary(net, (2, 4), verbose=False)
    assert [r.num_params for r in s.layers] == [0, 20, 0, 0]
    assert [r.mult_adds for r in s.layers] == [0, 32, 0, 32]
    assert s.total_params == 20


def test_leaves_the_model_as_it_was():
    model = models.fashion_cnn()
    state = {k: v.copy() for k, v in model.state_dict().items()}
    model.train()
    model[2].eval()                                 # a mixed model comes back mixed
    modes = [m.training for m in model.modules()]
    strided.summary(model, (2, 1, 28, 28), verbose=False)
    assert [m.training for m in model.modules()] == modes and False in modes
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


def test_prints_the_table_with_totals():
    buf = io.StringIO()
    s = strided.summary(models.lenet5(), (1, 1, 28, 28), file=buf)
    text = buf.getvalue()
    assert text.strip() == str(s).strip()
    assert "0 (Conv2d)" in text and "(1, 6, 28, 28)" in text
    assert f"Total params: {s.total_params:,}" in text
    assert f"Total mult-adds: {s.total_mult_adds:,}" in text


@pytest.mark.parametrize("bad", [(), (1, 0, 28), [1, 1.5], "1x28", (True, 1)])
def test_bad_input_shape(bad):
    with pytest.raises(ValueError, match="input_shape must be a tuple of positive ints"):
        strided.summary(models.lenet5(), bad, verbose=False)


def test_float64_input():
    s = strided.summary(models.lenet5().double(), (1, 1, 28, 28), verbose=False)
    assert s.dtype == np.float64
