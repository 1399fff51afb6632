"""Residual and Concat, nested containers and modules called more than once in a forward pass.

Ground truth: the same network in torch (float64, rtol 1e-10) built from
torch.nn layers and strided.io's torch Residual/Concat, loaded with the
same weights: the output, the input gradient, every parameter gradient and
every buffer after the step must agree. Numerical gradients
(``strided.gradcheck``) check each container on its own.
"""
import numpy as np
import pytest

import strided
from strided import nn
from strided import io as sio

from _parity import assert_close, load_torch_weights, run_ours, run_torch

pytestmark = pytest.mark.torch


# -- the networks, in strided and in torch ---------------------------------------------------------

def _basic_block(m, cin, cout, stride, dtype):
    """A ResNet basic block (conv-BN-ReLU-conv-BN plus shortcut) in strided (m = strided.nn) or torch (m = torch.nn)."""
    body = m.Sequential(m.Conv2d(cin, cout, 3, stride, 1, bias=False, dtype=dtype), m.BatchNorm2d(cout, dtype=dtype),
                        m.ReLU(), m.Conv2d(cout, cout, 3, 1, 1, bias=False, dtype=dtype),
                        m.BatchNorm2d(cout, dtype=dtype))
    if stride == 1 and cin == cout:
        return body, None
    return body, m.Sequential(m.Conv2d(cin, cout, 1, stride, bias=False, dtype=dtype), m.BatchNorm2d(cout, dtype=dtype))


def _pair_residual(torch, cin, cout, stride):
    body, short = _basic_block(nn, cin, cout, stride, np.float64)
    tbody, tshort = _basic_block(torch.nn, cin, cout, stride, torch.float64)
    return nn.Residual(body, short), sio.torch_residual(tbody, tshort)


def _pair_concat(torch):
    def branches(m, dt):
        return (m.Conv2d(3, 2, 1, dtype=dt),
                m.Sequential(m.Conv2d(3, 4, 3, padding=1, dtype=dt), m.BatchNorm2d(4, dtype=dt), m.Tanh()),
                m.MaxPool2d(3, 1, 1))
    return nn.Concat(*branches(nn, np.float64)), sio.torch_concat(*branches(torch.nn, torch.float64))


def _pair_network(torch):
    """Residual blocks inside Sequentials, a Concat inside a Residual: every container nested in another."""
    def net(m, residual, concat, dt):
        b1, s1 = _basic_block(m, 3, 3, 1, dt)
        b2, s2 = _basic_block(m, 3, 6, 2, dt)
        mixed = concat(m.Conv2d(6, 2, 1, dtype=dt), m.Sequential(m.Conv2d(6, 4, 3, padding=1, dtype=dt), m.ReLU()))
        return m.Sequential(
            m.Conv2d(3, 3, 3, padding=1, dtype=dt), m.ReLU(),
            m.Sequential(residual(b1, s1), m.ReLU(), residual(b2, s2), m.ReLU()),
            residual(mixed), m.AvgPool2d(2), m.Flatten(), m.Linear(6 * 2 * 2, 5, dtype=dt))
    return (net(nn, nn.Residual, nn.Concat, np.float64),
            net(torch.nn, sio.torch_residual, sio.torch_concat, torch.float64))


def _randomise_buffers(torch, tm):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, b in tm.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g, dtype=b.dtype) + 0.5)


def _check_step(torch, m, tm, x, train=True):
    """One forward and backward in each library; every output, gradient and buffer compared."""
    _randomise_buffers(torch, tm)
    load_torch_weights(m, tm)
    m.train(train)
    tm.train(train)
    dy = np.random.default_rng(7).standard_normal(m(x.copy()).shape)
    load_torch_weights(m, tm)  # the probe forward above moved the running statistics
    (y, dx, grads), (ty, tdx, tgrads) = run_ours(m, x, dy), run_torch(torch, tm, x, dy)
    assert_close(y, ty, "output")
    assert_close(dx, tdx, "input gradient")
    assert list(grads) == list(tgrads)
    for name, g in grads.items():
        if tgrads[name] is None:  # frozen in both
            assert g is None, name
        else:
            assert_close(g, tgrads[name], f"gradient of {name}")
    theirs = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(m.state_dict()) == list(theirs)
    for k, v in m.state_dict().items():
        assert_close(v, theirs[k], f"buffer or parameter {k} after the step")


def _x(*shape):
    return np.random.default_rng(0).standard_normal(shape)


# -- parity with torch ------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (4, 6, 2)], ids=["identity", "conv_bn_shortcut"])
def test_residual_matches_torch(torch, cin, cout, stride, train):
    m, tm = _pair_residual(torch, cin, cout, stride)
    assert (m.shortcut is None) == (stride == 1)
    _check_step(torch, m, tm, _x(3, cin, 7, 7), train)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_concat_matches_torch(torch, train):
    m, tm = _pair_concat(torch)
    _check_step(torch, m, tm, _x(3, 3, 6, 5), train)
    assert m(_x(2, 3, 6, 5)).shape == (2, 9, 6, 5)


@pytest.mark.parametrize("dim", [0, 2, -1])
def test_concat_along_other_dims_matches_torch(torch, dim):
    m = nn.Concat(nn.Linear(4, 3, dtype=np.float64), nn.Tanh(), nn.Linear(4, 2, dtype=np.float64), dim=dim)
    tm = sio.torch_concat(torch.nn.Linear(4, 3, dtype=torch.float64), torch.nn.Tanh(),
                          torch.nn.Linear(4, 2, dtype=torch.float64), dim=dim)
    if dim == 0:  # dim 0 joins batches, which needs the same feature count: project to 4 first
        m = nn.Concat(nn.Linear(4, 4, dtype=np.float64), nn.Tanh(), dim=0)
        tm = sio.torch_concat(torch.nn.Linear(4, 4, dtype=torch.float64), torch.nn.Tanh(), dim=0)
    _check_step(torch, m, tm, _x(2, 5, 4) if dim != 0 else _x(3, 4))


def test_nested_containers_match_torch(torch):
    m, tm = _pair_network(torch)
    assert [k for k in m.state_dict() if k.startswith("2.0.")][:2] == ["2.0.body.0.weight", "2.0.body.1.weight"]
    assert "2.2.shortcut.0.weight" in m.state_dict() and "3.body.1.0.weight" in m.state_dict()
    _check_step(torch, m, tm, _x(4, 3, 8, 8))


def test_torch_model_loads_strided_weights_by_name(torch):
    """The container's keys are torch's: a torch module with the same attribute names takes the state dict."""
    m, tm = _pair_network(torch)
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    m.eval()
    tm.eval()
    x = _x(2, 3, 8, 8)
    assert_close(m(x), tm(torch.from_numpy(x)).detach().numpy(), "output with strided's weights")


# -- numerical gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Tanh())), (2, 2, 4, 4)),
    (lambda: nn.Residual(nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), nn.Sigmoid()),
                         nn.Sequential(nn.Conv2d(2, 3, 1, stride=2), nn.BatchNorm2d(3))), (3, 2, 5, 5)),
    (lambda: nn.Concat(nn.Conv2d(2, 1, 1), nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Tanh()),
                       nn.AvgPool2d(3, 1, 1)), (2, 2, 4, 3)),
    (lambda: nn.Concat(nn.Linear(3, 2), nn.Sigmoid(), dim=-1), (4, 3)),
    (lambda: nn.Sequential(nn.Residual(nn.Concat(nn.Linear(4, 1), nn.Linear(4, 3))), nn.Tanh(),
                           nn.Residual(nn.Sequential(nn.Linear(4, 4), nn.Tanh()), nn.Linear(4, 4))), (3, 4)),
], ids=["residual_identity", "residual_conv_bn_shortcut", "concat_channels", "concat_last_dim", "nested"])
def test_gradcheck(make, shape):
    assert strided.gradcheck(make(), _x(*shape))


# -- a module called several times in one forward pass ------------------------------------------------

def test_the_same_linear_twice_in_a_sequential_matches_torch(torch):
    lin, tlin = nn.Linear(4, 4, dtype=np.float64), torch.nn.Linear(4, 4, dtype=torch.float64)
    m = nn.Sequential(lin, nn.Tanh(), lin, nn.ReLU(), nn.Linear(4, 2, dtype=np.float64))
    tm = torch.nn.Sequential(tlin, torch.nn.Tanh(), tlin, torch.nn.ReLU(), torch.nn.Linear(4, 2, dtype=torch.float64))
    assert list(m.state_dict()) == list(tm.state_dict())  # both places, as torch
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]  # each once
    _check_step(torch, m, tm, _x(5, 4))
    assert strided.gradcheck(m, _x(5, 4))


def test_one_relu_at_several_places_and_a_shared_branch_match_torch(torch):
    """torchvision's style (one self.relu used after every conv) and a module in both branches of a Residual."""
    relu, trelu = nn.ReLU(), torch.nn.ReLU()
    conv = nn.Conv2d(3, 3, 3, padding=1, dtype=np.float64)
    tconv = torch.nn.Conv2d(3, 3, 3, padding=1, dtype=torch.float64)
    bn, tbn = nn.BatchNorm2d(3, dtype=np.float64), torch.nn.BatchNorm2d(3, dtype=torch.float64)
    m = nn.Sequential(conv, bn, relu, nn.Residual(nn.Sequential(conv, relu), nn.Sequential(conv, bn)), relu,
                      nn.Concat(conv, relu, conv))
    tm = torch.nn.Sequential(tconv, tbn, trelu, sio.torch_residual(torch.nn.Sequential(tconv, trelu),
                                                                     torch.nn.Sequential(tconv, tbn)),
                             trelu, sio.torch_concat(tconv, trelu, tconv))
    _check_step(torch, m, tm, _x(2, 3, 5, 5))
    assert strided.gradcheck(m, _x(2, 3, 4, 4))


def test_reuse_leaves_no_cache_behind_between_passes():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, lin)
    x = _x(2, 3).astype(np.float32)
    for _ in range(3):  # inference only: nothing piles up
        m(x)
    assert len(lin._earlier_caches) == 1
    m.backward(np.ones((2, 3), np.float32))
    assert lin._earlier_caches == []


# -- modes, dtypes, freezing ---------------------------------------------------------------------------

def test_frozen_parameters_inside_a_residual_match_torch(torch):
    m, tm = _pair_residual(torch, 4, 6, 2)
    m.body[0].freeze()
    m.shortcut[1].bias.requires_grad = False
    for p in tm.body[0].parameters():
        p.requires_grad_(False)
    tm.shortcut[1].bias.requires_grad_(False)
    _check_step(torch, m, tm, _x(2, 4, 6, 6))
    assert m.body[0].weight.grad is None and m.shortcut[1].bias.grad is None and m.shortcut[1].weight.grad is not None
    assert m.num_parameters(trainable_only=True) == sum(p.numel() for p in tm.parameters() if p.requires_grad)


def test_containers_skip_the_input_gradient_only_when_asked(rng):
    for m, shape in [(nn.Residual(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 1)), (2, 2, 4, 4)),
                     (nn.Residual(nn.Conv2d(2, 2, 3, padding=1)), (2, 2, 4, 4)),
                     (nn.Concat(nn.Conv2d(2, 1, 1), nn.Conv2d(2, 3, 3, padding=1)), (2, 2, 4, 4))]:
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(m(x).shape).astype(np.float32)
        assert m.backward(dy, need_input_grad=False) is None
        skipped = {n: p.grad.copy() for n, p in m.named_parameters()}
        m.zero_grad()
        m(x)
        assert m.backward(dy).shape == shape
        for n, p in m.named_parameters():
            np.testing.assert_array_equal(p.grad, skipped[n], err_msg=n)


def test_train_eval_and_dtype_reach_every_nested_module(rng):
    m = nn.Sequential(nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Dropout()),
                                  nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))),
                      nn.Concat(nn.Identity(), nn.Sequential(nn.Conv2d(2, 1, 1), nn.Dropout(0.2))))
    assert m.eval() is m and not any(sub.training for sub in m.modules())
    assert m.train() is m and all(sub.training for sub in m.modules())
    assert m.to(np.float64) is m
    assert {p.dtype for p in m.parameters()} == {np.dtype(np.float64)}
    assert {b.dtype for n, b in m.named_buffers() if "running" in n} == {np.dtype(np.float64)}
    x = rng.standard_normal((2, 2, 4, 4))
    assert m(x).dtype == np.float64 and m.backward(np.ones((2, 3, 4, 4))).dtype == np.float64
    with pytest.raises(TypeError, match="dtype float32 but the input has dtype float64"):
        m.to(np.float32)(x)


def test_children_and_modules_follow_torch(torch):
    m, tm = _pair_network(torch)
    assert [n for n, _ in m.named_children()] == [n for n, _ in tm.named_children()]
    assert [n for n, _ in m.named_modules()] == [n for n, _ in tm.named_modules()]
    assert [type(c).__name__ for c in m.children()][:3] == ["Conv2d", "ReLU", "Sequential"]
    shared = nn.ReLU()
    seq = nn.Sequential(shared, nn.Tanh(), shared)
    assert [n for n, _ in seq.named_children()] == ["0", "1"]  # each module once, as torch
    assert [n for n, _ in seq.named_modules(remove_duplicate=False)] == ["", "0", "1", "2"]


def test_forward_hooks_see_every_call_and_can_be_removed():
    relu = nn.ReLU()
    m = nn.Sequential(nn.Linear(2, 2), relu, nn.Linear(2, 2), relu)
    seen = []
    handle = relu.register_forward_hook(lambda mod, args, out: seen.append((mod, args[0].shape, out.copy())))
    y = m(np.ones((3, 2), np.float32))
    assert [s[0] for s in seen] == [relu, relu] and np.array_equal(seen[1][2], y)
    handle.remove()
    m(np.ones((3, 2), np.float32))
    assert len(seen) == 2
    m[0].register_forward_hook(lambda mod, args, out: out * 0)  # a hook's return value replaces the output
    np.testing.assert_array_equal(m[0](np.ones((1, 2), np.float32)), np.zeros((1, 2)))
    with pytest.raises(TypeError, match="hook must be callable"):
        relu.register_forward_hook(3)



def test_forward_pre_hooks_run_before_the_forward_and_can_replace_the_input():
    lin = nn.Linear(2, 2)
    order = []
    handle = lin.register_forward_pre_hook(lambda mod, args: order.append(("pre", args[0].shape)))
    lin.register_forward_hook(lambda mod, args, out: order.append(("post", out.shape)))
    lin(np.ones((3, 2), np.float32))
    assert order == [("pre", (3, 2)), ("post", (3, 2))]
    handle.remove()
    lin.register_forward_pre_hook(lambda mod, args: args[0] * 0)    # a single value replaces the one input
    np.testing.assert_array_equal(lin(np.ones((1, 2), np.float32)), lin.bias.data[None])
    with pytest.raises(TypeError, match="hook must be callable"):
        lin.register_forward_pre_hook(None)


# -- errors --------------------------------------------------------------------------------------------

def test_mismatched_branches_name_both_shapes():
    x = np.zeros((2, 3, 6, 6), np.float32)
    with pytest.raises(ValueError, match=r"body's output has shape \(2, 4, 6, 6\) but the input \(identity "
                                         r"shortcut\) has shape \(2, 3, 6, 6\)"):
        nn.Residual(nn.Conv2d(3, 4, 3, padding=1))(x)
    with pytest.raises(ValueError, match=r"body's output has shape \(2, 4, 3, 3\) but shortcut has shape "
                                         r"\(2, 4, 6, 6\)"):
        nn.Residual(nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(3, 4, 1))(x)
    with pytest.raises(ValueError, match=r"agree in every dimension except dim=1, got shapes "
                                         r"\[\(2, 4, 6, 6\), \(2, 4, 3, 3\)\]"):
        nn.Concat(nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1, stride=2))(x)
    with pytest.raises(ValueError, match=r"dim=4 is out of range for outputs with 4 dimensions"):
        nn.Concat(nn.Identity(), dim=4)(x)


def test_bad_arguments():
    with pytest.raises(TypeError, match="body must be a strided.nn.Module, got function"):
        nn.Residual(lambda x: x)
    with pytest.raises(TypeError, match="shortcut must be a strided.nn.Module, got int"):
        nn.Residual(nn.ReLU(), 3)
    with pytest.raises(ValueError, match="at least one branch"):
        nn.Concat()
    with pytest.raises(TypeError, match="Concat branch 1 must be a strided.nn.Module, got str"):
        nn.Concat(nn.ReLU(), "conv")
    with pytest.raises(TypeError, match="Concat dim must be an int, got 1.0"):
        nn.Concat(nn.ReLU(), dim=1.0)
    for m in (nn.Residual(nn.ReLU()), nn.Concat(nn.ReLU())):
        with pytest.raises(ValueError, match="backward called before forward"):
            m.backward(np.ones((1, 2), np.float32))
    m = nn.Residual(nn.ReLU())
    m(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 3\), got \(3, 2\)"):
        m.backward(np.ones((3, 2), np.float32))


# -- save and load ------------------------------------------------------------------------------------

def _small_resnet(dtype=np.float32):
    """A small residual network: stem, two basic blocks (one with a conv+BN shortcut), a Concat, a classifier."""
    b1, s1 = _basic_block(nn, 4, 4, 1, dtype)
    b2, s2 = _basic_block(nn, 4, 6, 2, dtype)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
        nn.Residual(b1, s1), nn.ReLU(), nn.Residual(b2, s2), nn.ReLU(),
        nn.Concat(nn.Conv2d(6, 2, 1, dtype=dtype), nn.MaxPool2d(3, 1, 1)), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 3, dtype=dtype))


def _trained_a_little(model, x):
    """One forward and backward in training mode: the running statistics move away from their defaults."""
    model.train()
    model.backward(np.ones(model(x).shape, x.dtype))
    return model


def test_save_and_load_a_residual_network(tmp_path, rng):
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    model = _trained_a_little(_small_resnet(), x)
    model[5].shortcut[0].freeze()
    model[3].eval()
    path = sio.save(model, tmp_path / "resnet.npz", input_shape=(1, 8, 8))
    arch = sio.info(path)["architecture"]
    assert [c["type"] for c in arch["children"]][3:8] == ["Residual", "ReLU", "Residual", "ReLU", "Concat"]
    assert arch["children"][3]["config"]["shortcut"] is None
    assert arch["children"][7]["config"] == {"dim": 1} and len(arch["children"][7]["children"]) == 2
    loaded = sio.load(path)
    assert type(loaded[5]) is nn.Residual and type(loaded[7]) is nn.Concat and loaded[3].shortcut is None
    assert loaded[3].training is False and loaded[3].body[1].training is False and loaded[5].training is True
    assert [n for n, p in loaded.named_parameters() if not p.requires_grad] == ["5.shortcut.0.weight"]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v, err_msg=k)
    for m in (model, loaded):
        m.eval()
    np.testing.assert_array_equal(loaded(x), model(x))


def test_a_shared_module_stays_shared_through_a_file(tmp_path, rng):
    conv = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.Residual(nn.Sequential(conv, nn.Tanh()), conv), nn.Concat(conv, conv))
    arch = sio.info(sio.save(model, tmp_path / "shared.npz"))["architecture"]
    assert arch["children"][2]["config"]["shortcut"] == {"__module__": {"same_as": "model[0]"}}
    assert arch["children"][3]["children"] == [{"same_as": "model[0]"}] * 2
    loaded = sio.load(tmp_path / "shared.npz")
    assert loaded[2].body[0] is loaded[0] and loaded[2].shortcut is loaded[0] and loaded[3][1] is loaded[0]
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))
    loaded.backward(np.ones((2, 4, 4, 4), np.float32))
    model.backward(np.ones((2, 4, 4, 4), np.float32))
    np.testing.assert_allclose(loaded[0].weight.grad, model[0].weight.grad, rtol=1e-6)


def test_a_reference_to_a_module_not_yet_described_is_refused():
    from strided.io import serialize
    with pytest.raises(sio.ArchitectureError, match=r"model\[0\]: refers to a shared module at 'model\[1\]'"):
        serialize.build({"type": "Sequential", "children": [{"same_as": "model[1]"}, {"type": "ReLU"}]}, {})


# -- PyTorch interchange --------------------------------------------------------------------------------

def test_to_torch_and_back_keeps_containers_weights_modes_and_frozen_parameters(torch, rng):
    x = rng.standard_normal((3, 1, 8, 8))
    model = _trained_a_little(_small_resnet(np.float64), x)
    model[5].body[3].freeze()
    model[7].eval()
    tm = sio.to_torch(model)
    assert type(tm[3]).__name__ == "Residual" and tm[3].shortcut is None and type(tm[7]).__name__ == "Concat"
    assert not tm[5].body[3].weight.requires_grad and tm[5].body[0].weight.requires_grad
    assert not tm[7].training and not getattr(tm[7], "0").training and tm[5].training
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), model.state_dict()[k], err_msg=k)

    back = sio.from_torch(tm)
    assert [type(m).__name__ for m in back.modules()] == [type(m).__name__ for m in model.modules()]
    assert not back[5].body[3].weight.requires_grad and not back[7].training and back[5].training
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v, err_msg=k)
    _check_step(torch, model, tm, x)  # the torch twin computes the same step: outputs, gradients, buffers


def test_torch_containers_convert_in_both_directions_nested(torch):
    m, tm = _pair_network(torch)
    assert [type(c).__name__ for c in sio.from_torch(tm).modules()] == [type(c).__name__ for c in m.modules()]
    assert sio.from_torch(tm).state_dict().keys() == m.state_dict().keys()
    assert [n for n, _ in sio.to_torch(m).named_modules()] == [n for n, _ in tm.named_modules()]


def test_shared_modules_stay_shared_through_torch(torch):
    lin = nn.Linear(3, 3, dtype=np.float64)
    tm = sio.to_torch(nn.Sequential(lin, nn.Tanh(), nn.Residual(lin)))
    assert tm[2].body is tm[0]
    back = sio.from_torch(tm)
    assert back[2].body is back[0]
