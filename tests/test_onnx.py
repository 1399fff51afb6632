"""ONNX export, checked by running the exported graph.

Every layer configuration and every zoo model is exported and run in
onnxruntime and in ``onnx.reference`` (the specification's own evaluator);
both must agree with strided's output (eval mode) within 1e-5, for batch
sizes other than the one used while exporting (the batch is dynamic).
"""
import importlib
import os

import numpy as np
import pytest

from strided import distributed, models, nn
from strided import io as sio


def _optional(name):
    """Skip locally without the onnx extra; in CI (STRIDED_REQUIRE_TORCH=1) a missing package is an error."""
    if os.environ.get("STRIDED_REQUIRE_TORCH") == "1":
        return importlib.import_module(name)
    return pytest.importorskip(name, reason="pip install strided[onnx]")


onnx = _optional("onnx")
ort = _optional("onnxruntime")
from onnx.reference import ReferenceEvaluator  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)

# name -> (layer factory, shape of one example)
LAYERS = {
    "conv": (lambda: nn.Conv2d(3, 4, 3), (3, 7, 6)),
    "conv_stride_pad_dilation": (lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 3), dilation=(2, 1)),
                                 (3, 9, 8)),
    "conv_same_even": (lambda: nn.Conv2d(2, 3, 4, padding="same", dilation=1, bias=False), (2, 7, 6)),
    "conv_same_even_dilated": (lambda: nn.Conv2d(2, 3, (2, 4), padding="same", dilation=(3, 1)), (2, 8, 7)),
    "conv_groups": (lambda: nn.Conv2d(4, 6, 3, padding=5, groups=2), (4, 5, 5)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 3), padding=(1, 0),
                                                 output_padding=(1, 2), dilation=(1, 2)), (4, 5, 4)),
    "conv_transpose_op_dilation": (lambda: nn.ConvTranspose2d(2, 3, 3, padding=1, output_padding=1, dilation=2,
                                                             bias=False), (2, 4, 5)),
    "conv_depthwise": (lambda: nn.Conv2d(3, 3, 3, stride=2, groups=3, padding="valid"), (3, 8, 8)),
    "linear": (lambda: nn.Linear(6, 4), (6,)),
    "linear_nobias_3d": (lambda: nn.Linear(6, 4, bias=False), (5, 6)),
    "linear_3d": (lambda: nn.Linear(6, 4), (2, 5, 6)),
    "flatten": (lambda: nn.Flatten(), (3, 4, 5)),
    "flatten_partial": (lambda: nn.Flatten(2, 3), (3, 4, 5)),
    "flatten_middle": (lambda: nn.Flatten(1, 2), (3, 4, 5)),
    "maxpool": (lambda: nn.MaxPool2d(2), (3, 8, 8)),
    "maxpool_overlap_pad": (lambda: nn.MaxPool2d(3, 2, 1), (2, 7, 9)),
    "maxpool_ceil": (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 8, 6)),
    "maxpool_positional": (lambda: nn.MaxPool2d(3, 2, 1, 1, False, True), (2, 8, 6)),   # torch's order
    "maxpool_ceil_stride1": (lambda: nn.MaxPool2d(3, 1, 1, ceil_mode=True), (2, 5, 5)),
    "maxpool_dilated_ceil": (lambda: nn.MaxPool2d((2, 3), (2, 3), (1, 0), dilation=(2, 1), ceil_mode=True),
                             (2, 9, 10)),
    "avgpool": (lambda: nn.AvgPool2d(2), (3, 8, 8)),
    "avgpool_pad_include": (lambda: nn.AvgPool2d(3, 2, 1), (2, 7, 9)),
    "avgpool_pad_exclude": (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 7, 9)),
    "avgpool_ceil_include": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (2, 8, 6)),
    "avgpool_ceil_exclude": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 8, 6)),
    "avgpool_ceil_nopad": (lambda: nn.AvgPool2d(3, 3, ceil_mode=True), (2, 7, 8)),
    "avgpool_ceil_nopad_exclude": (lambda: nn.AvgPool2d((4, 3), 3, ceil_mode=True, count_include_pad=False),
                                   (2, 8, 7)),
    "avgpool_divisor": (lambda: nn.AvgPool2d(2, divisor_override=3), (2, 6, 6)),
    "avgpool_divisor_pad_ceil": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, divisor_override=5), (2, 8, 6)),
    "relu": (lambda: nn.ReLU(), (3, 4, 4)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), (3, 4, 4)),
    "sigmoid": (lambda: nn.Sigmoid(), (7,)),
    "tanh": (lambda: nn.Tanh(), (7,)),
    "gaussian": (lambda: nn.Gaussian(), (3, 4, 4)),
    "softmax": (lambda: nn.Softmax(), (7,)),
    "softmax_dim": (lambda: nn.Softmax(dim=-1), (3, 4, 5)),
    "softmax_implicit_3d": (lambda: nn.Softmax(), (3, 4)),           # dim=None on (N, 3, 4): dim 0, as torch
    "softmax_implicit_4d": (lambda: nn.Softmax(), (3, 4, 5)),        # dim=None on (N, 3, 4, 5): dim 1
    "identity": (lambda: nn.Identity(), (3, 4)),
    "dropout": (lambda: nn.Dropout(0.5), (3, 4)),
    "bn2d": (lambda: nn.BatchNorm2d(3, eps=1e-3), (3, 5, 4)),
    "bn2d_no_affine": (lambda: nn.BatchNorm2d(3, affine=False), (3, 5, 4)),
    "bn2d_batch_stats": (lambda: nn.BatchNorm2d(3, track_running_stats=False), (3, 5, 4)),
    "bn1d": (lambda: nn.BatchNorm1d(5), (5,)),
    "bn1d_seq": (lambda: nn.BatchNorm1d(5), (5, 6)),
    "bn1d_batch_stats": (lambda: nn.BatchNorm1d(5, track_running_stats=False, affine=True), (5,)),
    "sync_bn2d": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3), distributed.SyncBatchNorm(3, eps=1e-3)), (2, 5, 4)),
    "sync_bn1d_batch_stats": (lambda: distributed.SyncBatchNorm(5, track_running_stats=False), (5, 3)),
    "residual_identity": (lambda: nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())), (3, 5, 4)),
    "residual_conv_bn_shortcut": (lambda: nn.Residual(
        nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(3, 4, 1, 2, bias=False), nn.BatchNorm2d(4))), (3, 7, 6)),
    "concat": (lambda: nn.Concat(nn.Conv2d(3, 2, 1), nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh()),
                                 nn.MaxPool2d(3, 1, 1)), (3, 5, 5)),
    "concat_last_dim": (lambda: nn.Concat(nn.Linear(4, 3), nn.Identity(), dim=-1), (2, 4)),
    "nested_containers": (lambda: nn.Sequential(
        nn.Residual(nn.Concat(nn.Conv2d(2, 1, 1), nn.Sequential(nn.Residual(nn.Conv2d(2, 2, 1)), nn.Conv2d(2, 1, 1)))),
        nn.Residual(nn.Sequential()), nn.Flatten(), nn.Linear(2 * 3 * 3, 2)), (2, 3, 3)),
}


def _randomise(model, rng, weights=True):
    """Random running statistics, and (for single layers) weights of unit scale instead of the small default."""
    for p in model.parameters() if weights else ():
        p.data = rng.standard_normal(p.shape).astype(p.dtype)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, distributed.SyncBatchNorm)) and m.track_running_stats:
            m._sync_buffer("running_mean", rng.standard_normal(m.num_features).astype(np.float32))
            m._sync_buffer("running_var", rng.uniform(0.5, 2, m.num_features).astype(np.float32))
    return model


def _check(model, path, shape, batches=(3, 1)):
    """Run the exported file in onnxruntime and onnx.reference; compare with strided's eval-mode output."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(proto)
    model.eval()
    rng = np.random.default_rng(5)
    for n in batches:
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        expected = model(x)
        got_ort = session.run(None, {"input": x})[0]
        got_ref = reference.run(None, {"input": x})[0]
        assert got_ort.dtype == np.float32 and got_ort.shape == expected.shape
        np.testing.assert_allclose(got_ort, expected, **TOL)
        np.testing.assert_allclose(got_ref, expected, **TOL)
    return proto


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer(tmp_path, name):
    factory, shape = LAYERS[name]
    model = _randomise(factory(), np.random.default_rng(0))
    path = sio.export_onnx(model, tmp_path / f"{name}.onnx", shape)
    # BatchNorm with batch statistics needs more than one value per channel
    batches = (3, 2) if "batch_stats" in name else (3, 1)
    _check(model, path, shape, batches)


def test_sync_batchnorm_exports_as_batch_normalization(tmp_path):
    model = _randomise(distributed.convert_sync_batchnorm(models.fashion_cnn()), np.random.default_rng(4),
                       weights=False)
    path = sio.export_onnx(model, tmp_path / "sync.onnx", (1, 28, 28))
    proto = _check(model, path, (1, 28, 28), batches=(2,))
    sync = [m for m in model.modules() if isinstance(m, distributed.SyncBatchNorm)]
    assert len(sync) == [n.op_type for n in proto.graph.node].count("BatchNormalization") > 0


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_zoo_models(tmp_path, name):
    build, shape, _ = models.MODELS[name]
    model = _randomise(build(), np.random.default_rng(1), weights=False)
    path = sio.export_onnx(model, tmp_path / f"{name}.onnx", shape)
    proto = _check(model, path, shape, batches=(2,))
    # initializers carry the state dict's names
    names = {t.name for t in proto.graph.initializer}
    assert {k for k in model.state_dict() if not k.endswith("num_batches_tracked")} <= names


def test_float64_model_exports_float32(tmp_path):
    model = models.lenet5(dtype=np.float64).eval()
    path = sio.export_onnx(model, tmp_path / "m.onnx", (1, 28, 28))
    x = np.random.default_rng(3).standard_normal((2, 1, 28, 28))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.astype(np.float32)})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, model(x), **TOL)
    assert model.dtype == np.float64  # the model itself is untouched


def test_export_leaves_model_untouched(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5), nn.Flatten(), nn.Linear(8, 2))
    model.train()
    before = model.state_dict()
    x = np.random.default_rng(0).standard_normal((4, 1, 4, 4)).astype(np.float32)
    model(x)
    cache = model[0]._cache
    after_forward = model.state_dict()
    sio.export_onnx(model, tmp_path / "m.onnx", (1, 4, 4))
    assert model.training and all(m.training for m in model.modules())
    assert model[0]._cache is cache
    for k, v in model.state_dict().items():
        assert np.array_equal(v, after_forward[k])
    assert not np.array_equal(before["1.running_mean"], after_forward["1.running_mean"])


def test_fixed_batch_and_names(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax())
    path = sio.export_onnx(model, tmp_path / "m.onnx", (4,), batch_size=2, input_name="x", output_name="p")
    proto = onnx.load(str(path))
    assert proto.graph.input[0].name == "x" and proto.graph.output[0].name == "p"
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    x = np.ones((2, 4), np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, model(x), **TOL)


def test_flatten_batch_dimension(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(0, -1))
    path = sio.export_onnx(model, tmp_path / "m.onnx", (1, 5, 5))
    _check(model, path, (1, 5, 5), batches=(3, 1))


def test_errors(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return x

    path = tmp_path / "m.onnx"
    with pytest.raises(TypeError, match=r"layer 1 is a Custom, which has no ONNX conversion; supported layers: "):
        sio.export_onnx(nn.Sequential(nn.ReLU(), Custom()), path, (3,))
    with pytest.raises(TypeError, match="MSELoss"):
        sio.export_onnx(nn.MSELoss(), path, (3,))
    with pytest.raises(TypeError, match=r"layer 1 is a MaxPool2d with return_indices=True.*return_indices=False"):
        sio.export_onnx(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True)), path, (1, 4, 4))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\) cannot take an input of shape \(batch, 3, 28, 28\)"):
        sio.export_onnx(models.lenet5(), path, (3, 28, 28))
    with pytest.raises(ValueError, match="input_shape must be positive ints"):
        sio.export_onnx(models.lenet5(), path, (1, 0, 28))
    with pytest.raises(TypeError, match="input_shape must be the shape of one example"):
        sio.export_onnx(models.lenet5(), path, "1x28x28")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        sio.export_onnx(models.lenet5(), path, (1, 28, 28), batch_size=0)
    with pytest.raises(TypeError, match="model must be a strided.nn.Module"):
        sio.export_onnx(object(), path, (1, 28, 28))
    assert os.listdir(tmp_path) == []


def test_failed_export_keeps_the_old_file(tmp_path, monkeypatch):
    path = sio.export_onnx(models.lenet5(), tmp_path / "m.onnx", (1, 28, 28))
    before = path.read_bytes()
    monkeypatch.setattr(onnx.checker, "check_model", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bad")))
    with pytest.raises(RuntimeError):
        sio.export_onnx(models.lenet5(), path, (1, 28, 28))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.onnx"]


def test_cli_export(tmp_path, capsys):
    from strided import cli
    model = _randomise(models.lenet5(), np.random.default_rng(4), weights=False)
    src = sio.save(model, tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert cli.main(["export", str(src), str(out), "--input-shape", "1x28x28"]) == 0
    _check(model, out, (1, 28, 28), batches=(2,))
    assert cli.main(["export", str(src), str(tmp_path / "x.onnx")]) == 2  # no shape and no run directory
    assert "--input-shape" in capsys.readouterr().err


def test_a_residual_network_round_trips_through_a_file_and_onnx(tmp_path):
    """Saved, loaded, exported: the graph computes what the network computes, with Add and Concat in it."""
    rng = np.random.default_rng(2)
    relu = nn.ReLU()  # one activation used at several places, as torchvision writes its blocks
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), relu,
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), relu,
                                  nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))), relu,
        nn.Residual(nn.Sequential(nn.Conv2d(4, 6, 3, 2, 1, bias=False), nn.BatchNorm2d(6)),
                    nn.Sequential(nn.Conv2d(4, 6, 1, 2, bias=False), nn.BatchNorm2d(6))), relu,
        nn.Concat(nn.Conv2d(6, 2, 1), nn.AvgPool2d(3, 1, 1)), nn.Flatten(), nn.Linear(8 * 4 * 4, 3))
    _randomise(model, rng, weights=False)
    loaded = sio.load(sio.save(model, tmp_path / "resnet.npz"))
    path = sio.export_onnx(loaded, tmp_path / "resnet.onnx", (1, 8, 8))
    proto = _check(loaded, path, (1, 8, 8))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Add") == 2 and ops.count("Concat") == 1 and ops.count("Relu") == 4
    model.eval()
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model(x), **TOL)  # the original, not only the loaded copy


def test_container_errors_name_the_layer(tmp_path):
    with pytest.raises(ValueError, match=r"layer 1 \(Residual\) cannot take an input of shape \(batch, 2, 4, 4\) "
                                         r"from input_shape=\(2, 4, 4\): Residual: body's output has shape"):
        sio.export_onnx(nn.Sequential(nn.ReLU(), nn.Residual(nn.Conv2d(2, 3, 1))), tmp_path / "m.onnx", (2, 4, 4))

    class Gated(nn.Residual):
        def forward(self, x):
            return self.body(x) * x

    with pytest.raises(TypeError, match=r"layer 0\.1 is a Gated, which has no ONNX conversion.*Concat containers"):
        sio.export_onnx(nn.Sequential(nn.Concat(nn.ReLU(), Gated(nn.ReLU()))), tmp_path / "m.onnx", (2, 4, 4))
    assert not (tmp_path / "m.onnx").exists()
