"""The residual zoo models: shapes, parameter counts, exact parity with torch, state dicts, CLI listing."""
import numpy as np
import pytest

import strided
from strided import io as sio
from strided import models, nn
from strided.runs import check_model_input


def _count(model):
    return sum(p.data.size for p in model.parameters())


def _block_params(cin, cout, stride):
    """conv3x3-BN-conv3x3-BN (no conv bias) plus, when the shape changes, conv1x1-BN."""
    n = 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout
    if stride != 1 or cin != cout:
        n += cin * cout + 2 * cout
    return n


@pytest.mark.parametrize("name", ["resnet20", "fashion_resnet", "fashion_resnet8"])
def test_forward_shape(name):
    build, shape, _ = models.MODELS[name]
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    assert build(num_classes=7)(x).shape == (2, 7)


def test_parameter_counts_follow_the_architecture():
    stem20 = 3 * 9 * 16 + 2 * 16
    blocks20 = sum(_block_params(c_in, c_out, s) for c_in, c_out, s in
                   [(16, 16, 1)] * 3 + [(16, 32, 2)] + [(32, 32, 1)] * 2 + [(32, 64, 2)] + [(64, 64, 1)] * 2)
    assert _count(models.resnet20()) == stem20 + blocks20 + 64 * 10 + 10
    assert 0.26e6 < _count(models.resnet20()) < 0.28e6
    stem_f = 9 * 32 + 2 * 32
    blocks_f = _block_params(32, 32, 1) + _block_params(32, 64, 2) + _block_params(64, 128, 2)
    assert _count(models.fashion_resnet()) == stem_f + blocks_f + 128 * 10 + 10
    assert _count(models.fashion_resnet8()) == stem_f + blocks_f + 128 * 10 + 10    # the same, with a stride-2 stem


def test_fashion_resnet8_zero_init_residual_starts_each_block_as_its_shortcut(rng):
    model = models.fashion_resnet8(zero_init_residual=True)
    bodies = [m.body for m in model.modules() if isinstance(m, nn.Residual)]
    assert len(bodies) == 3 and all(not b[-1].weight.data.any() for b in bodies)
    assert all(b[-1].weight.data.all() for b in (m.body for m in models.fashion_resnet8().modules()
                                                 if isinstance(m, nn.Residual)))
    # so each block's output is ReLU(shortcut(x)) whatever its body computes
    x = rng.standard_normal((2, 32, 14, 14)).astype(np.float32)
    block = model[3]
    np.testing.assert_array_equal(block(x), np.maximum(x, 0))
    with pytest.raises(TypeError, match="zero_init_residual"):
        models.fashion_resnet8(zero_init_residual="yes")


def test_basic_block_shortcut_only_when_shape_changes():
    assert models.basic_block(16, 16, 1)[0].shortcut is None
    assert models.basic_block(16, 32, 2)[0].shortcut is not None
    x = np.zeros((2, 16, 9, 9), np.float32)
    assert models.basic_block(16, 32, 2)(x).shape == (2, 32, 5, 5)


@pytest.mark.parametrize("name", ["resnet20", "fashion_resnet", "fashion_resnet8"])
def test_parity_with_torch_twin_train_and_eval(torch, name):
    build, shape, _ = models.MODELS[name]
    strided.manual_seed(0)
    m = build(dtype=np.float64)
    tm = sio.to_torch(m).double()
    assert sum(p.numel() for p in tm.parameters()) == _count(m)
    tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in m.state_dict().items()}, strict=True)
    rng = np.random.default_rng(1)
    for train in (True, False):
        m.train(train)
        tm.train(train)
        x = rng.standard_normal((2, *shape))
        dy = rng.standard_normal((2, 10))
        for p in m.parameters():
            p.grad = None
        tm.zero_grad(set_to_none=True)
        y = m(x)
        dx = m.backward(dy)
        tx = torch.tensor(x, requires_grad=True)
        ty = tm(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        tparams = dict(tm.named_parameters())
        for k, p in m.named_parameters():
            np.testing.assert_allclose(p.grad, tparams[k].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
        tstate = tm.state_dict()
        for k, v in m.state_dict().items():
            np.testing.assert_allclose(v, tstate[k].numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


def test_state_dict_keys_are_torch_style():
    keys = list(models.resnet20().state_dict())
    assert keys[0] == "0.weight"
    assert "3.0.0.body.0.weight" in keys
    assert "4.0.0.shortcut.0.weight" in keys and "3.0.0.shortcut.0.weight" not in keys
    assert keys[-2:] == ["8.weight", "8.bias"]


def test_save_load_round_trip(tmp_path):
    strided.manual_seed(0)
    m = models.resnet20()
    m.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    sio.save(m, tmp_path / "r.npz", input_shape=(3, 32, 32))
    back = sio.load(tmp_path / "r.npz")
    back.eval()
    assert back.state_dict().keys() == m.state_dict().keys()
    np.testing.assert_array_equal(back(x), m(x))


def test_cli_lists_the_residual_models(capsys):
    from strided.cli import main
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "fashion_resnet" in out


def test_model_dataset_compatibility():
    check_model_input("resnet20", (3, 32, 32))  # cifar10
    check_model_input("fashion_resnet", (1, 28, 28))
    with pytest.raises(ValueError, match="resnet20.*32x32.*28x28"):
        check_model_input("resnet20", (1, 28, 28))
    with pytest.raises(ValueError, match="unknown model"):
        check_model_input("resnet21", (3, 32, 32))


def test_train_cli_accepts_resnet20_on_cifar10_and_rejects_a_mismatch_before_reading_data(tmp_path, capsys):
    from strided.cli import main
    common = ["--data-root", str(tmp_path), "--epochs", "1"]
    assert main(["train", "--model", "resnet20", "--dataset", "fashion-mnist",
                 "--run-dir", str(tmp_path / "a"), *common]) == 2
    assert "takes 32x32 images" in capsys.readouterr().err
    # cifar10 passes the model check and stops only because its files are absent here
    assert main(["train", "--model", "resnet20", "--dataset", "cifar10",
                 "--run-dir", str(tmp_path / "b"), *common]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "takes 32x32" not in err
