"""PyTorch interchange: from_torch / to_torch against torch itself.

Every supported layer is converted in both directions; the converted model
must compute what the original computes (float64, within 1e-6 and in fact
to rounding), hold the same tensors, and keep frozen parameters and modes.
"""
from collections import OrderedDict

import numpy as np
import pytest

from strided import distributed, models, nn
from strided import io as sio

pytestmark = [pytest.mark.torch,
              # torch's note that 'same' padding with an even kernel copies the input
              pytest.mark.filterwarnings("ignore:Using padding='same'")]


def _torch_all_layers(torch, dtype):
    T = torch.nn
    return T.Sequential(
        T.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), dtype=dtype),
        T.BatchNorm2d(4, momentum=0.2, dtype=dtype), T.LeakyReLU(0.1),
        T.Conv2d(4, 6, 4, padding="same", groups=2, bias=False, dtype=dtype), T.ReLU(),
        T.MaxPool2d(3, 2, 1, ceil_mode=True),
        T.Sequential(T.Conv2d(6, 6, 1, dtype=dtype), T.Tanh()),
        T.AvgPool2d(2, 1, 1, ceil_mode=True, count_include_pad=False),
        T.AvgPool2d(2, divisor_override=3),
        T.Flatten(), T.Dropout(0.3), T.Linear(36, 10, dtype=dtype), T.BatchNorm1d(10, affine=False, dtype=dtype),
        T.Sigmoid(), T.Identity(), T.Linear(10, 5, bias=False, dtype=dtype), T.Softmax(dim=1),
    )


def _input(dtype=np.float64, n=4):
    return np.random.default_rng(1).standard_normal((n, 3, 11, 9)).astype(dtype)


def _randomise_torch(torch, module):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.normal_(generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.num_batches_tracked.fill_(11)
    return module


def _run_torch(torch, module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _assert_same_tensors(torch_module, model):
    ts = torch_module.state_dict()
    ss = model.state_dict()
    assert list(ts) == list(ss)
    for k in ts:
        a = ts[k].detach().numpy()
        assert a.dtype == ss[k].dtype and np.array_equal(a, ss[k]), k


def test_from_torch_every_layer(torch):
    tm = _randomise_torch(torch, _torch_all_layers(torch, torch.float64)).eval()
    model = sio.from_torch(tm)
    _assert_same_tensors(tm, model)
    assert model.training is False and all(not m.training for m in model.modules())
    x = _input()
    np.testing.assert_allclose(model(x), _run_torch(torch, tm, x), rtol=1e-6, atol=1e-6)
    assert model(x).dtype == np.float64


def test_from_torch_training_mode_batch_statistics(torch):
    tm = _torch_all_layers(torch, torch.float64)
    tm[10].p = 0.0  # dropout draws differ between libraries; batch statistics must not
    tm.train()
    model = sio.from_torch(tm)
    assert model.training and model[1].training
    x = _input()
    np.testing.assert_allclose(model(x), _run_torch(torch, tm, x), rtol=1e-6, atol=1e-6)
    # running statistics moved the same way in both
    _assert_close_state(tm, model)


def _assert_close_state(tm, model):
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


def test_to_torch_every_layer(torch):
    model = sio.from_torch(_randomise_torch(torch, _torch_all_layers(torch, torch.float64)))
    model.eval()
    back = sio.to_torch(model)
    _assert_same_tensors(back, model)
    assert not back.training and not back[6][0].training
    x = _input()
    np.testing.assert_allclose(_run_torch(torch, back, x), model(x), rtol=1e-6, atol=1e-6)
    # the round trip rebuilds the same strided model
    again = sio.from_torch(back)
    assert [type(m) for m in again.modules()] == [type(m) for m in model.modules()]
    assert [m.get_config() for m in again.modules()] == [m.get_config() for m in model.modules()]


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_zoo_to_torch_and_back(torch, name):
    build, shape, _ = models.MODELS[name]
    model = build(dtype=np.float64).eval()
    rng = np.random.default_rng(2)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m._sync_buffer("running_mean", rng.standard_normal(m.num_features))
            m._sync_buffer("running_var", rng.uniform(0.5, 2, m.num_features))
    tm = sio.to_torch(model)
    assert isinstance(tm, torch.nn.Sequential)
    _assert_same_tensors(tm, model)
    x = rng.standard_normal((2, *shape))
    np.testing.assert_allclose(_run_torch(torch, tm, x), model(x), rtol=1e-6, atol=1e-6)
    back = sio.from_torch(tm)
    _assert_same_tensors(tm, back)
    np.testing.assert_allclose(back(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(6, 3, 5, 4), (6, 3), (6, 3, 7)])
def test_sync_batchnorm_both_ways(torch, shape):
    """SyncBatchNorm <-> torch.nn.SyncBatchNorm: same arguments and state-dict names; in one process both
    are batch norm, in training (batch statistics, running statistics, gradients) and in eval mode."""
    model = nn.Sequential(distributed.SyncBatchNorm(3, eps=1e-3, momentum=0.3, dtype=np.float64), nn.Tanh())
    tm = sio.to_torch(model)
    assert type(tm[0]) is torch.nn.SyncBatchNorm
    assert (tm[0].eps, tm[0].momentum, tm[0].affine, tm[0].track_running_stats) == (1e-3, 0.3, True, True)
    _assert_same_tensors(tm, model)
    rng = np.random.default_rng(6)
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = tm(tx)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(model(x), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.backward(dy), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model[0].weight.grad, tm[0].weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    _assert_close_state(tm, model)
    tm[0].num_batches_tracked.fill_(4)
    back = sio.from_torch(tm.eval())
    assert type(back[0]) is distributed.SyncBatchNorm and not back[0].training
    assert back[0].get_config() == model[0].get_config()
    _assert_same_tensors(tm, back)
    np.testing.assert_allclose(back(x), _run_torch(torch, tm, x), rtol=1e-10, atol=1e-12)
    frozen = sio.from_torch(torch.nn.SyncBatchNorm(2, affine=False, track_running_stats=False))
    assert frozen.get_config() == distributed.SyncBatchNorm(2, affine=False, track_running_stats=False).get_config()


def test_float32_and_frozen(torch):
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))
    tm[0].weight.requires_grad_(False)
    model = sio.from_torch(tm)
    assert model.dtype == np.float32 and model[2].weight.dtype == np.float32
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["0.weight"]
    x = np.random.default_rng(3).standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(model(x), _run_torch(torch, tm, x), rtol=1e-5, atol=1e-6)
    back = sio.to_torch(model)
    assert back[0].weight.dtype == torch.float32 and not back[0].weight.requires_grad and back[2].weight.requires_grad


def test_gaussian_and_single_layers(torch):
    g = sio.to_torch(nn.Gaussian())
    x = np.linspace(-3, 3, 13).reshape(1, 13)
    np.testing.assert_allclose(_run_torch(torch, g, x), np.exp(-x * x), rtol=1e-12)
    assert isinstance(sio.from_torch(g), nn.Gaussian)
    lin = sio.from_torch(torch.nn.Linear(3, 2, dtype=torch.float64))
    assert isinstance(lin, nn.Linear) and lin.weight.dtype == np.float64


def test_named_children_become_numbered(torch):
    tm = torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(1, 2, 3), act=torch.nn.ReLU()))
    model = sio.from_torch(tm)
    assert list(model.state_dict()) == ["0.weight", "0.bias"]
    assert np.array_equal(model[0].weight.data, tm.conv.weight.detach().numpy())


def _torch_padded(torch, mode):
    T = torch.nn
    return T.Sequential(
        T.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(2, 1), padding_mode=mode, dtype=torch.float64), T.Tanh(),
        # 'same' with an even kernel pads one more at the bottom/right, in torch as in strided
        T.Conv2d(4, 2, (4, 3), padding="same", dilation=(1, 2), padding_mode=mode, dtype=torch.float64),
    )


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_mode_round_trip(torch, mode):
    tm = _torch_padded(torch, mode)
    model = sio.from_torch(tm)
    assert [m.padding_mode for m in (model[0], model[2])] == [mode, mode]
    _assert_same_tensors(tm, model)
    x = _input()
    np.testing.assert_allclose(model(x), _run_torch(torch, tm, x), rtol=1e-6, atol=1e-6)
    back = sio.to_torch(model)
    assert [back[0].padding_mode, back[2].padding_mode] == [mode, mode]
    np.testing.assert_allclose(_run_torch(torch, back, x), model(x), rtol=1e-6, atol=1e-6)
    # a strided model built directly: torch computes what it computes, not a zero-padded convolution
    conv = nn.Conv2d(3, 2, 3, padding=2, padding_mode=mode, dtype=np.float64)
    tconv = sio.to_torch(conv)
    assert tconv.padding_mode == mode
    np.testing.assert_allclose(_run_torch(torch, tconv, x), conv(x), rtol=1e-6, atol=1e-6)
    assert sio.from_torch(tconv).padding_mode == mode


def _torch_inplace(torch):
    T = torch.nn
    return T.Sequential(
        T.Conv2d(3, 4, 3, dtype=torch.float64), T.ReLU(inplace=True), T.Conv2d(4, 4, 3, dtype=torch.float64),
        T.LeakyReLU(0.2, inplace=True), T.Flatten(), T.Dropout(0.3, inplace=True),
        T.Linear(4 * 7 * 5, 6, dtype=torch.float64), T.ReLU(), T.LeakyReLU(0.1),
    )


def _inplace_flags(model):
    return [m.inplace for m in model if hasattr(m, "inplace")]


def test_inplace_round_trip(torch):
    tm = _torch_inplace(torch).eval()
    model = sio.from_torch(tm)
    assert [type(m).__name__ for m in model] == [type(m).__name__ for m in tm]
    assert _inplace_flags(model) == _inplace_flags(tm) == [True, True, True, False, False]
    assert model[3].negative_slope == 0.2
    x = _input()
    original = x.copy()
    np.testing.assert_allclose(model(x), _run_torch(torch, tm, x), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(x, original)  # the in-place layers write into the convolutions' outputs only
    back = sio.to_torch(model)
    assert _inplace_flags(back) == _inplace_flags(model)
    np.testing.assert_allclose(_run_torch(torch, back, x), model(x), rtol=1e-6, atol=1e-6)
    # training mode: the same gradients through the in-place layers (no dropout: the draws differ)
    tm = _torch_inplace(torch)
    tm[5].p = 0.0
    model = sio.from_torch(tm)
    dy = np.random.default_rng(4).standard_normal((4, 6))
    tx = torch.tensor(x, requires_grad=True)
    tm(tx).backward(torch.tensor(dy))
    model(x.copy())
    np.testing.assert_allclose(model.backward(dy), tx.grad.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model[0].weight.grad, tm[0].weight.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_unsupported_layers_are_named(torch):
    T = torch.nn
    with pytest.raises(TypeError, match=r"^2 is torch\.nn\.modules\.activation\.Mish.*Supported: Sequential"):
        sio.from_torch(T.Sequential(T.Linear(2, 2), T.ReLU(), T.Mish()))
    with pytest.raises(TypeError, match=r"1\.0 is .*Conv1d"):
        sio.from_torch(T.Sequential(T.ReLU(), T.Sequential(T.Conv1d(1, 1, 1))))

    class Net(T.Module):
        def __init__(self):
            super().__init__()
            self.fc = T.Linear(2, 2)

    with pytest.raises(TypeError, match="Net.*a torch container strided has no equivalent.*torch_concat"):
        sio.from_torch(Net())
    with pytest.raises(TypeError, match="torch.float16"):
        sio.from_torch(T.Linear(2, 2).half())
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        sio.from_torch(nn.ReLU())

    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"^1 is .*Custom: to_torch supports"):
        sio.to_torch(nn.Sequential(nn.ReLU(), Custom()))
    with pytest.raises(TypeError, match="must be a strided.nn.Module"):
        sio.to_torch(T.ReLU())
