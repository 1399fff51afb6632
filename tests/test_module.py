"""The module contract: parameters, gradient accumulation, state dicts with torch's names, modes, dtypes, freezing.

Names, orders, shapes, counts and accumulated gradients are compared with the
same architecture built in torch.
"""
import copy

import numpy as np
import pytest
from _parity import assert_close, load_torch_weights, torch_state

import strided
from strided import nn

pytestmark = pytest.mark.torch


def _pair(torch):
    """A network with every kind of parameter and buffer, in strided and in torch."""
    t = torch.nn
    tm = t.Sequential(t.Conv2d(2, 4, 3, padding=1), t.BatchNorm2d(4), t.ReLU(), t.MaxPool2d(2),
                      t.Conv2d(4, 4, 3, groups=2, bias=False), t.Flatten(), t.Linear(4, 6), t.BatchNorm1d(6),
                      t.Tanh(), t.Dropout(0.2), t.Linear(6, 3))
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(4, 4, 3, groups=2, bias=False), nn.Flatten(), nn.Linear(4, 6), nn.BatchNorm1d(6),
                      nn.Tanh(), nn.Dropout(0.2), nn.Linear(6, 3))
    return m, tm


def _lenet_torch(torch):
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 6, 5, padding=2), t.Tanh(), t.AvgPool2d(2), t.Conv2d(6, 16, 5), t.Tanh(),
                        t.AvgPool2d(2), t.Flatten(), t.Linear(400, 120), t.Tanh(), t.Linear(120, 84), t.Tanh(),
                        t.Linear(84, 10))


# -- names, state dicts -------------------------------------------------------------

def test_parameter_and_state_dict_names_match_torch(torch):
    m, tm = _pair(torch)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert [p.shape for p in m.parameters()] == [tuple(p.shape) for p in tm.parameters()]
    sd, tsd = m.state_dict(), tm.state_dict()
    assert list(sd) == list(tsd)  # same keys in the same order, buffers included
    for k in sd:
        assert sd[k].shape == tuple(tsd[k].shape), k
        assert isinstance(sd[k], np.ndarray)
    assert sd["1.num_batches_tracked"].dtype == np.int64
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in tm.named_buffers()]


def test_lenet5_is_torchs_sequential(torch):
    m, tm = strided.models.lenet5(), _lenet_torch(torch)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert [type(layer).__name__ for layer in m] == [type(layer).__name__ for layer in tm]
    for k, v in m.state_dict().items():
        assert v.shape == tuple(tm.state_dict()[k].shape)
    load_torch_weights(m, tm)  # loads without complaint and reproduces torch's outputs
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert_close(m(x), tm(torch.tensor(x)).detach().numpy(), "lenet5 output", np.float32)


def test_state_dict_round_trip_from_torch(torch, rng):
    m, tm = _pair(torch)
    tm.train()
    tm(torch.randn(5, 2, 6, 6))  # move the running statistics away from their initial values
    tm.eval()
    returned = m.load_state_dict(torch_state(tm))
    assert returned is m
    m.eval()
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, tm.state_dict()[k].numpy())
        assert v.dtype == tm.state_dict()[k].numpy().dtype
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    assert_close(m(x), tm(torch.tensor(x)).detach().numpy(), "output", np.float32)


def test_state_dict_holds_copies():
    m = nn.Linear(3, 2)
    sd = m.state_dict()
    sd["weight"][:] = 7.0
    assert not np.any(m.weight.data == 7.0)


def test_load_state_dict_keeps_the_model_dtype():
    m = nn.Linear(3, 2)
    m.load_state_dict({"weight": np.ones((2, 3)), "bias": np.arange(2)})  # float64 and int64 arrays
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    np.testing.assert_array_equal(m.bias.data, [0, 1])


def test_load_state_dict_errors_leave_the_model_untouched(torch):
    m, tm = _pair(torch)
    before = m.state_dict()
    good = torch_state(tm)

    missing = {k: v for k, v in good.items() if k != "7.running_var"}
    with pytest.raises(KeyError, match=r"missing keys \['7.running_var'\]"):
        m.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['extra.weight'\]"):
        m.load_state_dict({**good, "extra.weight": np.zeros(3)})
    wrong = {**good, "6.weight": np.zeros((6, 5), np.float32)}
    with pytest.raises(ValueError, match=r"'6.weight' has shape \(6, 5\), expected \(6, 4\)"):
        m.load_state_dict(wrong)
    with pytest.raises(TypeError, match="'0.bias' has dtype <U1"):
        m.load_state_dict({**good, "0.bias": np.array(list("abcd"))})
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_load_state_dict_non_strict(torch):
    m, tm = _pair(torch)
    good = torch_state(tm)
    part = {"0.weight": good["0.weight"], "unknown": np.zeros(1)}
    m.load_state_dict(part, strict=False)
    np.testing.assert_array_equal(m[0].weight.data, good["0.weight"])
    assert not np.array_equal(m[6].weight.data, good["6.weight"])


# -- accumulation, zero_grad --------------------------------------------------------

def test_gradients_accumulate_like_torch(torch, rng):
    m, tm = _pair(torch)
    tm.double()
    m.to(np.float64)
    load_torch_weights(m, tm)
    m[9].eval()  # dropout: different generators
    tm[9].eval()
    tm.zero_grad()
    for _ in range(3):
        x = rng.standard_normal((4, 2, 6, 6))
        dy = rng.standard_normal((4, 3))
        y = m(x)
        m.backward(dy)
        tm(torch.tensor(x)).backward(torch.tensor(dy))
    for (n, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters(), strict=True):
        assert_close(p.grad, tp.grad.numpy(), f"accumulated gradient of {n}")
    assert y.shape == (4, 3)


def test_second_backward_doubles_the_gradient(rng):
    m = nn.Conv2d(2, 3, 3, padding=1)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    m(x)
    m.backward(dy)
    once = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.backward(dy)  # the same cache, the gradient arrives again
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-6)
        assert p.grad is not once[n]


def test_zero_grad(rng):
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    m(rng.standard_normal((4, 3)).astype(np.float32))
    m.backward(np.ones((4, 2), np.float32))
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_parameter_attributes():
    m = nn.Conv2d(2, 3, 3)
    assert isinstance(m.weight, nn.Parameter) and isinstance(m.bias, nn.Parameter)
    assert isinstance(m.weight.data, np.ndarray) and m.weight.grad is None and m.weight.requires_grad
    assert m.weight.shape == (3, 2, 3, 3) and m.bias.shape == (3,)
    assert nn.Conv2d(2, 3, 3, bias=False).bias is None
    assert [n for n, _ in nn.Conv2d(2, 3, 3, bias=False).named_parameters()] == ["weight"]


# -- modes and dtypes ------------------------------------------------------------------

def test_train_and_eval_are_recursive_and_return_the_module(torch):
    m, _ = _pair(torch)
    assert m.training and all(c.training for c in m.modules())
    assert m.eval() is m
    assert not any(c.training for c in m.modules())
    assert m.train() is m
    assert all(c.training for c in m.modules())


def test_eval_changes_batch_norm_and_dropout(rng):
    m = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.5, seed=0))
    x = rng.standard_normal((8, 3)).astype(np.float32) + 5
    y_train = m(x)
    count = int(m[0].num_batches_tracked)
    m.eval()
    y1, y2 = m(x), m(x)
    np.testing.assert_array_equal(y1, y2)  # deterministic: running statistics, no dropout
    assert not np.allclose(y1, y_train)
    assert int(m[0].num_batches_tracked) == count  # eval does not update the running statistics
    rm, rv = m[0].running_mean, m[0].running_var
    np.testing.assert_allclose(y1, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-5)


def test_to_float64_returns_the_module_and_casts_everything(rng):
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
    m(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    m.backward(np.ones((2, 2), np.float32))
    assert m.to(np.float64) is m
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert all(p.grad.dtype == np.float64 for p in m.parameters())
    assert m[1].running_mean.dtype == np.float64 and m[1].running_var.dtype == np.float64
    assert m[1].num_batches_tracked.dtype == np.int64
    assert all(v.dtype == np.float64 for k, v in m.state_dict().items() if "num_batches" not in k)
    y = m(rng.standard_normal((2, 1, 5, 5)))
    assert y.dtype == np.float64
    assert m.float() is m and m[0].weight.dtype == np.float32 and m[1].running_var.dtype == np.float32
    assert m.double() is m and m.dtype == np.float64
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int32"):
        m.to(np.int32)


def test_dtype_argument_of_constructors():
    for m in (nn.Conv2d(1, 2, 3, dtype=np.float64), nn.Linear(2, 2, dtype=np.float64),
              nn.BatchNorm2d(2, dtype=np.float64), strided.models.lenet5(dtype=np.float64)):
        assert all(v.dtype == np.float64 for k, v in m.state_dict().items() if "num_batches" not in k)
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(2, 2, dtype=np.float16)


# -- freezing -------------------------------------------------------------------------

def test_freeze_skips_gradients_but_not_the_input_gradient(torch, rng):
    m, tm = _pair(torch)
    m.to(np.float64)
    tm.double()
    load_torch_weights(m, tm)
    m[9].eval()
    tm[9].eval()
    assert m[0].freeze() is m[0]
    for p in tm[0].parameters():
        p.requires_grad_(False)
    m[6].bias.requires_grad = False
    tm[6].bias.requires_grad_(False)
    x = rng.standard_normal((3, 2, 6, 6))
    dy = rng.standard_normal((3, 3))
    y = m(x)
    dx = m.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    tm(tx).backward(torch.tensor(dy))
    assert_close(dx, tx.grad.numpy(), "input gradient through frozen layers")
    for (n, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters(), strict=True):
        if tp.grad is None:
            assert p.grad is None, n
        else:
            assert_close(p.grad, tp.grad.numpy(), n)
    assert m[0].weight.grad is None and m[0].bias.grad is None and m[6].bias.grad is None
    assert m.num_parameters(trainable_only=True) == sum(p.numel() for p in tm.parameters() if p.requires_grad)
    assert y.shape == (3, 3)
    m.unfreeze()
    assert all(p.requires_grad for p in m.parameters())


def test_frozen_weights_get_no_update(rng):
    optim = pytest.importorskip("strided.optim")
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    m[0].freeze()
    frozen = copy.deepcopy(m[0].state_dict())
    trained = copy.deepcopy(m[2].state_dict())
    opt = optim.SGD(m.parameters(), lr=0.1)
    for _ in range(3):
        m.zero_grad()
        m(rng.standard_normal((5, 3)).astype(np.float32))
        m.backward(np.ones((5, 2), np.float32))
        opt.step()
    for k, v in m[0].state_dict().items():
        np.testing.assert_array_equal(v, frozen[k])
    assert not np.array_equal(m[2].weight.data, trained["weight"])


def test_sequential_skips_the_network_input_gradient_only_when_asked(rng):
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2))
    m(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))
    assert m.backward(np.ones((2, 2), np.float32), need_input_grad=False) is None
    g_skip = m[0].weight.grad.copy()
    m.zero_grad()
    dx = m.backward(np.ones((2, 2), np.float32))
    assert dx.shape == (2, 1, 5, 5)
    np.testing.assert_array_equal(m[0].weight.grad, g_skip)


def test_sequential_container():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    m = nn.Sequential(*layers)
    assert len(m) == 3 and list(m) == layers and m[0] is layers[0] and m[-1] is layers[2]
    assert isinstance(m[1:], nn.Sequential) and len(m[1:]) == 2
    assert m.append(nn.Sigmoid()) is m and len(m) == 4
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(TypeError, match="Sequential layer 1 must be a Module, got function"):
        nn.Sequential(nn.ReLU(), lambda x: x)


# -- description --------------------------------------------------------------------

def test_repr_shows_layers_and_parameter_counts(torch):
    m, tm = strided.models.lenet5(), _lenet_torch(torch)
    text = repr(m)
    total = sum(p.numel() for p in tm.parameters())
    assert text.splitlines()[-1] == f")  # {total:,} params"
    for i, (layer, tlayer) in enumerate(zip(m, tm, strict=True)):
        line = next(s for s in text.splitlines() if s.strip().startswith(f"({i}):"))
        assert type(layer).__name__ in line
        count = sum(p.numel() for p in tlayer.parameters())
        assert (f"# {count:,} params" in line) == (count > 0), line
    assert "kernel_size=(5, 5)" in text and "padding=(2, 2)" in text and "in_features=400" in text
    assert repr(nn.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(reduction='mean', label_smoothing=0.1)"
    assert "ceil_mode=True" in repr(nn.MaxPool2d(2, ceil_mode=True))
    assert "count_include_pad=False" in repr(nn.AvgPool2d(2, count_include_pad=False))
    assert "padding='same'" in repr(nn.Conv2d(1, 1, 3, padding="same"))


def test_get_config_rebuilds_the_layer():
    m = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2, bias=False)
    cfg = m.get_config()
    assert cfg["in_channels"] == 4 and cfg["kernel_size"] == (3, 2) and cfg["groups"] == 2 and cfg["bias"] is False
    clone = nn.Conv2d(**cfg)
    assert list(clone.state_dict()) == list(m.state_dict())
    assert clone.weight.shape == m.weight.shape and repr(clone) == repr(m)


# -- initialisation -------------------------------------------------------------------

INIT_CASES = [
    ("conv", lambda lib: lib.Conv2d(8, 16, 3), 8 * 9),
    ("conv grouped", lambda lib: lib.Conv2d(8, 16, (3, 5), groups=4), 2 * 15),
    ("linear", lambda lib: lib.Linear(50, 40), 50),
]


@pytest.mark.parametrize("name,make,fan_in", INIT_CASES, ids=[c[0] for c in INIT_CASES])
def test_default_initialisation_is_torchs(torch, name, make, fan_in):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias: torch's kaiming_uniform_(a=sqrt(5)) default."""
    stats = pytest.importorskip("scipy.stats")
    strided.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = make(nn), make(torch.nn)
    bound = 1 / np.sqrt(fan_in)
    for pname in ("weight", "bias"):
        w = getattr(ours, pname).data
        tw = getattr(theirs, pname).detach().numpy()
        assert w.shape == tw.shape and w.dtype == tw.dtype
        # both libraries stay within the same bound and fill it
        for values in (w, tw):
            assert np.abs(values).max() <= bound
            assert np.abs(values).max() > bound * (1 - 10 / values.size)
        # and ours is uniform on it (Kolmogorov-Smirnov)
        assert stats.kstest(w.ravel(), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3


def test_initialisation_is_seeded():
    strided.manual_seed(5)
    a = strided.models.lenet5().state_dict()
    strided.manual_seed(5)
    b = strided.models.lenet5().state_dict()
    c = nn.Linear(4, 3, rng=1).state_dict()
    d = nn.Linear(4, 3, rng=np.random.default_rng(1)).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    for k in c:
        np.testing.assert_array_equal(c[k], d[k])
