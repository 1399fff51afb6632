"""Model files, checkpoints and atomic writes (strided.io).

Round trips compare against the original model itself: the reloaded model
must produce bit-identical outputs and state. Damaged files are made from
real saved files (truncated, an entry removed, the description edited), and
a failing write is simulated by making the writer raise half-way.
"""
import importlib
import json
import os
import zipfile

import numpy as np
import pytest

import strided
from strided import models, nn, optim
from strided import io as sio
from strided.io import FileFormatError, containers, tree

# ----------------------------------------------------------------------------- helpers
def _needs(fmt):
    """The safetensors format needs its extra: skipped locally without it, required in CI."""
    if fmt == "safetensors":
        if os.environ.get("STRIDED_REQUIRE_TORCH") == "1":
            importlib.import_module("safetensors")
        else:
            pytest.importorskip("safetensors", reason="pip install strided[safetensors]")


# (layer factory, input shape): one of each layer type, with non-default arguments
LAYERS = {
    "conv_rect": (lambda dt: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=False,
                                       dtype=dt), (2, 3, 9, 8)),
    "conv_same_groups": (lambda dt: nn.Conv2d(4, 6, 4, padding="same", groups=2, dtype=dt), (2, 4, 7, 6)),
    "conv_algorithm": (lambda dt: nn.Conv2d(2, 3, 3, padding=4, algorithm="naive", dtype=dt), (1, 2, 5, 5)),
    "linear": (lambda dt: nn.Linear(5, 3, dtype=dt), (4, 5)),
    "linear_nobias": (lambda dt: nn.Linear(5, 3, bias=False, dtype=dt), (4, 2, 5)),
    "flatten": (lambda dt: nn.Flatten(), (2, 3, 4, 5)),
    "flatten_dims": (lambda dt: nn.Flatten(2, 3), (2, 3, 4, 5)),
    "maxpool": (lambda dt: nn.MaxPool2d(3, 2, 1, dilation=1, ceil_mode=True), (2, 3, 8, 7)),
    "maxpool_dilated": (lambda dt: nn.MaxPool2d((2, 3), (1, 2), (1, 0), dilation=(2, 1)), (1, 2, 7, 9)),
    "avgpool": (lambda dt: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 8, 7)),
    "avgpool_divisor": (lambda dt: nn.AvgPool2d(2, divisor_override=3), (2, 3, 6, 6)),
    "relu": (lambda dt: nn.ReLU(), (3, 4)),
    "leaky_relu": (lambda dt: nn.LeakyReLU(0.2), (3, 4)),
    "sigmoid": (lambda dt: nn.Sigmoid(), (3, 4)),
    "tanh": (lambda dt: nn.Tanh(), (3, 4)),
    "gaussian": (lambda dt: nn.Gaussian(), (3, 4)),
    "softmax": (lambda dt: nn.Softmax(dim=0), (3, 4)),
    "identity": (lambda dt: nn.Identity(), (3, 4)),
    "bn1d": (lambda dt: nn.BatchNorm1d(5, eps=1e-3, momentum=None, dtype=dt), (4, 5)),
    "bn1d_plain": (lambda dt: nn.BatchNorm1d(5, affine=False, dtype=dt), (4, 5, 3)),
    "bn2d": (lambda dt: nn.BatchNorm2d(3, momentum=0.3, dtype=dt), (4, 3, 5, 5)),
    "bn2d_untracked": (lambda dt: nn.BatchNorm2d(3, track_running_stats=False, dtype=dt), (4, 3, 5, 5)),
    "dropout": (lambda dt: nn.Dropout(0.3, seed=5), (3, 4)),
}


def _randomise(model, rng):
    """Random weights and running statistics, so a round trip cannot pass by re-initialisation."""
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape).astype(p.dtype)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.track_running_stats:
            m._sync_buffer("running_mean", rng.standard_normal(m.num_features).astype(m.running_mean.dtype))
            m._sync_buffer("running_var", rng.uniform(0.5, 2, m.num_features).astype(m.running_var.dtype))
            m._sync_buffer("num_batches_tracked", np.array(7, dtype=np.int64))
    return model


def _assert_same_model(a, b, x):
    assert type(a) is type(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k
    assert [p.requires_grad for p in a.parameters()] == [p.requires_grad for p in b.parameters()]
    assert [m.training for m in a.modules()] == [m.training for m in b.modules()]
    for (_, ma), (_, mb) in zip(a.named_modules(), b.named_modules()):
        assert type(ma) is type(mb) and _plain(ma.get_config()) == _plain(mb.get_config())
    modes = [m.training for m in a.modules()]
    a.eval()
    b.eval()
    ya, yb = a(x), b(x)
    assert ya.dtype == yb.dtype and np.array_equal(ya, yb)
    for m, mode in zip(a.modules(), modes):
        m.training = mode


def _plain(config):
    """A config with module arguments replaced by their class (modules compare by identity)."""
    return {k: type(v).__name__ if isinstance(v, nn.Module) else v for k, v in config.items()}


def _zoo():
    return {name: (build, shape) for name, (build, shape, _) in getattr(models, "MODELS", {}).items()} or \
        {"lenet5": (models.lenet5, (1, 28, 28))}


def _rewrite_npz(src, dst, edit):
    """Copy an npz, letting ``edit(arrays, meta)`` change entries and the description (meta None: dropped)."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop(containers.META_KEY).tobytes().decode())
    meta = edit(arrays, meta)
    if meta is not None:
        arrays[containers.META_KEY] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


@pytest.fixture
def saved(tmp_path, rng):
    model = _randomise(models.lenet5(), rng)
    path = tmp_path / "model.npz"
    sio.save(model, path)
    return model, path


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_round_trip(tmp_path, rng, name, dtype, fmt):
    _needs(fmt)
    factory, shape = LAYERS[name]
    model = _randomise(factory(dtype), rng)
    if name == "bn2d":
        model(rng.standard_normal(shape).astype(dtype))  # one training step: running statistics and the counter move
    path = sio.save(model, tmp_path / f"m.{fmt}")
    loaded = sio.load(path)
    _assert_same_model(model, loaded, rng.standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
@pytest.mark.parametrize("name", sorted(_zoo()))
def test_zoo_round_trip(tmp_path, rng, name, fmt):
    _needs(fmt)
    build, shape = _zoo()[name]
    model = _randomise(build(), rng)
    path = sio.save(model, tmp_path / f"{name}.{fmt}", input_shape=shape)
    _assert_same_model(model, sio.load(path), rng.standard_normal((3, *shape)).astype(np.float32))
    assert sio.info(path)["input_shape"] == list(shape)


def test_whole_sequential_of_every_layer(tmp_path, rng):
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding="same"), nn.BatchNorm2d(4), nn.LeakyReLU(0.1), nn.MaxPool2d(2, ceil_mode=True),
        nn.Sequential(nn.Conv2d(4, 4, 3, groups=2, padding=1), nn.Gaussian()), nn.AvgPool2d(2, count_include_pad=False),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Identity(),
        nn.Linear(6, 3), nn.Sigmoid(), nn.ReLU(), nn.Softmax(1),
    )
    _randomise(model, rng)
    model[8].weight.requires_grad = False
    model[4].eval()  # a mixed train/eval state is kept per module
    path = sio.save(model, tmp_path / "all.npz")
    loaded = sio.load(path)
    assert loaded[8].weight.requires_grad is False and loaded[4].training is False and loaded.training is True
    _assert_same_model(model, loaded, rng.standard_normal((2, 3, 8, 8)).astype(np.float32))


def test_losses_round_trip(tmp_path):
    for loss in (nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1), nn.MSELoss(), nn.BCELoss(reduction="none"),
                 nn.BCEWithLogitsLoss()):
        loaded = sio.load(sio.save(loss, tmp_path / "loss.npz"))
        assert type(loaded) is type(loss) and loaded.get_config() == loss.get_config()


def test_float64_model_stays_float64_and_frozen_and_eval(tmp_path, rng):
    model = _randomise(models.lenet5(dtype=np.float64), rng).eval()
    model[0].freeze()
    loaded = sio.load(sio.save(model, tmp_path / "m.npz"))
    assert loaded.dtype == np.float64 and loaded.training is False
    assert [n for n, p in loaded.named_parameters() if not p.requires_grad] == ["0.weight", "0.bias"]
    _assert_same_model(model, loaded, rng.standard_normal((2, 1, 28, 28)))


def test_metadata_and_info(tmp_path, rng):
    meta = {"classes": ("trouser", "dress"), "mean": np.float32(72.94), "std": np.array([0.5, 0.25]),
            "notes": None, "lr": float("inf"), 3: "int key"}
    path = sio.save(_randomise(models.lenet5(), rng), tmp_path / "m.npz", input_shape=(1, 28, 28), metadata=meta)
    info = sio.info(path)
    assert info["format"] == "strided.model" and info["format_version"] == sio.FORMAT_VERSION
    assert info["architecture"]["type"] == "Sequential" and len(info["architecture"]["children"]) == 12
    assert info["tensors"]["0.weight"] == {"dtype": "<f4", "shape": [6, 1, 5, 5]}
    got = info["metadata"]
    assert got["classes"] == meta["classes"] and type(got["mean"]) is np.float32 and got["mean"] == meta["mean"]
    assert np.array_equal(got["std"], meta["std"]) and got["lr"] == float("inf") and got[3] == "int key"


def test_npz_is_usable_with_plain_numpy(saved):
    model, path = saved
    with np.load(path, allow_pickle=False) as z:
        for k, v in model.state_dict().items():
            assert np.array_equal(z[k], v)


def test_state_dict_files(tmp_path, rng):
    _needs("safetensors")
    model = _randomise(models.lenet5(), rng)
    for suffix in ("npz", "safetensors"):
        path = sio.save_state_dict(model, tmp_path / f"w.{suffix}")
        state = sio.load_state_dict(path)
        assert list(state) == list(model.state_dict())
        fresh = models.lenet5().load_state_dict(state)
        x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
        assert np.array_equal(fresh(x), model(x))
        with pytest.raises(FileFormatError, match="only a state dict"):
            sio.load(path)
    # a plain npz of arrays (no strided description) is a state dict too
    plain = tmp_path / "plain.npz"
    np.savez(plain, **model.state_dict())
    assert list(sio.load_state_dict(plain)) == list(model.state_dict())
    with pytest.raises(FileFormatError, match="no strided description"):
        sio.load(plain)
    # the weights of a model file
    assert list(sio.load_state_dict(sio.save(model, tmp_path / "m.npz"))) == list(model.state_dict())


# ----------------------------------------------------------------------------- user-defined modules
class Scaled(nn.Module):
    """A user layer holding another module as an argument."""

    def __init__(self, body, scale=2.0, shape=(1, 2)):
        self.body, self.scale, self.shape = body, scale, shape

    def forward(self, x):
        return self.body(x) * self.scale


class NotRegistered(nn.Module):
    def __init__(self, n=3):
        self.lin = nn.Linear(n, n)

    def forward(self, x):
        return self.lin(x)


def test_registered_user_module(tmp_path, rng):
    sio.register_module(Scaled)
    sio.register_module(Scaled)  # registering twice is harmless
    model = nn.Sequential(Scaled(nn.Sequential(nn.Linear(4, 3), nn.Tanh()), scale=0.5, shape=(3, 4)), nn.ReLU())
    _randomise(model, rng)
    loaded = sio.load(sio.save(model, tmp_path / "s.npz"))
    assert loaded[0].shape == (3, 4) and loaded[0].scale == 0.5
    _assert_same_model(model, loaded, rng.standard_normal((2, 4)).astype(np.float32))


def test_unregistered_module_is_a_clear_error(tmp_path):
    path = tmp_path / "u.npz"
    with pytest.raises(sio.UnregisteredModuleError, match=r"NotRegistered.*register_module.*save_state_dict"):
        sio.save(nn.Sequential(nn.ReLU(), NotRegistered()), path)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_register_module_checks(tmp_path):
    class Linear(nn.Module):  # clashes with nn.Linear's name
        pass
    with pytest.raises(ValueError, match="already registered.*name="):
        sio.register_module(Linear)
    sio.register_module(Linear, name="MyLinear")
    assert sio.registered_modules()["MyLinear"] is Linear
    with pytest.raises(TypeError, match="subclass of strided.nn.Module"):
        sio.register_module(int)


def test_unknown_type_in_file(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "bad.npz"

    def edit(arrays, meta):
        meta["architecture"]["children"][1]["type"] = "Swish"
        return meta
    _rewrite_npz(path, bad, edit)
    with pytest.raises(FileFormatError, match=r"bad\.npz.*unknown module type 'Swish'.*register_module"):
        sio.load(bad)


def test_unsaveable_argument(tmp_path):
    layer = nn.Dropout(0.5, seed=np.random.default_rng(0))  # a Generator is not data
    with pytest.raises(TypeError, match=r"Dropout.*'seed'.*Generator"):
        sio.save(layer, tmp_path / "d.npz")


# ----------------------------------------------------------------------------- damaged files
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        sio.load(tmp_path / "nope.npz")


def test_truncated_file(tmp_path, saved):
    _, path = saved
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        bad = tmp_path / "cut.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(FileFormatError, match=r"cut\.npz: .*(truncated|corrupt)"):
            sio.load(bad)


def test_corrupt_byte_is_detected(tmp_path, saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("7.weight.npy")
    pos = info.header_offset + 30 + len(info.filename) + 200  # inside the entry's data
    data[pos] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"flipped\.npz: .*7\.weight.*(truncated|corrupt)"):
        sio.load(bad)


def test_missing_tensor(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "missing.npz"

    def edit(arrays, meta):
        del arrays["3.weight"]
        return meta
    _rewrite_npz(path, bad, edit)
    with pytest.raises(FileFormatError, match=r"missing\.npz: missing tensor '3\.weight'"):
        sio.load(bad)


def test_tensors_do_not_match_architecture(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "arch.npz"

    def edit(arrays, meta):
        meta["architecture"]["children"][11]["config"]["out_features"] = 7
        return meta
    _rewrite_npz(path, bad, edit)
    with pytest.raises(FileFormatError, match=r"arch\.npz: the tensors do not match the architecture.*11\.weight"):
        sio.load(bad)

    def edit2(arrays, meta):
        arrays["0.bias"] = np.zeros(5, np.float32)
        meta["tensors"]["0.bias"]["shape"] = [5]
        return meta
    _rewrite_npz(path, bad, edit2)
    with pytest.raises(FileFormatError, match=r"do not match the architecture.*0\.bias"):
        sio.load(bad)

    def edit3(arrays, meta):
        arrays["0.bias"] = np.zeros(6, np.float64)  # differs from the index
        return meta
    _rewrite_npz(path, bad, edit3)
    with pytest.raises(FileFormatError, match=r"tensor '0\.bias' is float64.*index says float32"):
        sio.load(bad)


@pytest.mark.parametrize("version, message", [(99, "format version 99 was written by a newer strided"),
                                              (0, "unknown format version 0"),
                                              ("1", "unknown format version '1'")])
def test_unknown_format_version(tmp_path, saved, version, message):
    _, path = saved
    bad = tmp_path / "v.npz"

    def edit(arrays, meta):
        meta["format_version"] = version
        return meta
    _rewrite_npz(path, bad, edit)
    with pytest.raises(FileFormatError, match=rf"v\.npz: {message}"):
        sio.load(bad)


def test_bad_description(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "d.npz"
    _rewrite_npz(path, bad, lambda a, m: {**m, "format": "something.else"})
    with pytest.raises(FileFormatError, match="unknown file format 'something.else'"):
        sio.load(bad)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[containers.META_KEY] = np.frombuffer(b"{not json", np.uint8)
    with open(bad, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(FileFormatError, match="not valid JSON"):
        sio.load(bad)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"hello, this is text", "not an .npz archive"),
    (b'{"a": 1}', "JSON/text"),
    (b"\x80\x04\x95 pickled", "pickle"),
])
def test_not_a_model_file(tmp_path, content, message):
    bad = tmp_path / "x.npz"
    bad.write_bytes(content)
    with pytest.raises(FileFormatError, match=rf"x\.npz: .*{message}"):
        sio.load(bad)


def test_npy_and_torch_files(tmp_path, torch):
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(FileFormatError, match=r"a\.npy: .*single \.npy array"):
        sio.load(npy)
    pt = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), pt)
    with pytest.raises(FileFormatError, match=r"model\.pt: .*PyTorch file.*from_torch"):
        sio.load(pt)


def test_truncated_safetensors(tmp_path, rng):
    _needs("safetensors")
    path = sio.save(_randomise(models.lenet5(), rng), tmp_path / "m.safetensors")
    data = path.read_bytes()
    for cut in (len(data) // 2, 40):
        path.write_bytes(data[:cut])
        with pytest.raises(FileFormatError, match=r"m\.safetensors: truncated"):
            sio.load(path)


def test_format_argument(tmp_path, rng):
    _needs("safetensors")
    model = _randomise(models.lenet5(), rng)
    path = sio.save(model, tmp_path / "weights.bin", format="safetensors")
    assert containers.kind_of(path) == "safetensors"
    _assert_same_model(model, sio.load(path), np.zeros((1, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="unknown format 'pickle'"):
        sio.save(model, tmp_path / "x", format="pickle")


# ----------------------------------------------------------------------------- atomic writes
def _only(tmp_path, *names):
    assert sorted(os.listdir(tmp_path)) == sorted(names)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_save_keeps_the_old_file(tmp_path, rng, monkeypatch, exc):
    old = _randomise(models.lenet5(), rng)
    path = sio.save(old, tmp_path / "model.npz")
    before = path.read_bytes()

    def half_then_fail(f, arrays):
        f.write(b"PK\x03\x04" + b"\0" * 1000)  # part of an archive reaches the disk...
        raise exc  # ...then the write fails

    monkeypatch.setattr(containers, "_write_npz", half_then_fail)
    with pytest.raises(type(exc)):
        sio.save(_randomise(models.lenet5(), rng), path)
    assert path.read_bytes() == before
    _only(tmp_path, "model.npz")
    _assert_same_model(old, sio.load(path), rng.standard_normal((2, 1, 28, 28)).astype(np.float32))


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def fail(f, arrays):
        f.write(b"partial")
        raise RuntimeError("boom")
    monkeypatch.setattr(containers, "_write_npz", fail)
    with pytest.raises(RuntimeError):
        sio.save(models.lenet5(), tmp_path / "model.npz")
    _only(tmp_path)


def test_failed_safetensors_save_keeps_the_old_file(tmp_path, rng, monkeypatch):
    _needs("safetensors")
    path = sio.save(_randomise(models.lenet5(), rng), tmp_path / "m.safetensors")
    before = path.read_bytes()
    monkeypatch.setattr(containers, "_safetensors_bytes", lambda a, m: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        sio.save(models.lenet5(), path)
    assert path.read_bytes() == before
    _only(tmp_path, "m.safetensors")


def test_atomic_write(tmp_path):
    target = tmp_path / "sub" / "notes.txt"
    with sio.atomic_write(target, "w") as f:
        f.write("héllo")
        assert f.name != str(target) and not target.exists()  # nothing visible until the block ends
    assert target.read_text(encoding="utf-8") == "héllo"
    os.chmod(target, 0o640)
    sio.write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o640
    with pytest.raises(ValueError, match="inside"):
        with sio.atomic_write(target) as f:
            f.write(b"half")
            raise ValueError("inside")
    assert target.read_bytes() == b"new"
    _only(target.parent, "notes.txt")
    sio.write_text_atomic(target, "text")
    assert target.read_text() == "text"
    with pytest.raises(ValueError, match="mode must be"):
        with sio.atomic_write(target, "a"):
            pass
    with pytest.raises(IsADirectoryError):
        sio.write_bytes_atomic(tmp_path, b"x")


# ----------------------------------------------------------------------------- JSON trees
def test_tree_round_trip_is_exact():
    value = {
        "ints": [0, -3, 2**100], "floats": (0.1, 1e-320, float("inf"), float("-inf")),
        "np": [np.float32(0.1), np.float64(1 / 3), np.int64(-5), np.uint8(200), np.bool_(True), np.float16(0.3)],
        "arrays": [np.arange(6, dtype=np.int16).reshape(2, 3), np.array(2.5), np.zeros((0, 3), np.float32),
                   np.array([True, False])],
        1: {"nested": {"__array__": "looks like a marker"}}, (1, "a"): None, "dtype": np.dtype(np.float32),
        "text": "ü",
    }
    arrays = {}
    text = tree.dumps(tree.encode(value, arrays, "value", "v"))
    back = tree.decode(tree.loads(text), arrays)
    assert back.keys() == value.keys()
    assert back["ints"] == value["ints"] and back["floats"] == value["floats"] and type(back["floats"]) is tuple
    for a, b in zip(back["np"], value["np"]):
        assert type(a) is type(b) and a == b
    for a, b in zip(back["arrays"], value["arrays"]):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert back[1] == value[1] and back[(1, "a")] is None and back["dtype"] == np.float32 and back["text"] == "ü"
    nan = tree.decode(tree.loads(tree.dumps(tree.encode(float("nan"), {}))), {})
    assert np.isnan(nan)


def test_tree_rejects_objects():
    with pytest.raises(TypeError, match=r"history\['f'\] is a function"):
        tree.encode({"f": lambda: 0}, {}, "history")
    with pytest.raises(TypeError, match="dtype object"):
        tree.encode(np.array([None]), {}, "x")


# ----------------------------------------------------------------------------- checkpoints
def _tiny_run(seed):
    """A small model exercising every source of state: BatchNorm statistics, seeded and global dropout."""
    strided.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.2, seed=seed + 1), nn.Linear(48, 8), nn.Tanh(), nn.Dropout(0.1),
                          nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    return model, opt, sched


def _data():
    rng = np.random.default_rng(123)
    return rng.standard_normal((40, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 40)


def _epoch(model, opt, sched, shuffle, x, y, history):
    loss = nn.CrossEntropyLoss()
    model.train()
    order = shuffle.permutation(len(x))
    total = 0.0
    for i in range(0, len(x), 16):
        idx = order[i:i + 16]
        opt.zero_grad()
        total += float(loss(model(x[idx]), y[idx]))
        model.backward(loss.backward())
        opt.step()
    sched.step()
    history["loss"].append(total)
    history["lr"].append(sched.get_last_lr()[0])


def _final_state(model, opt):
    return model.state_dict(), opt.state_dict()


def _assert_states_equal(a, b):
    (ma, oa), (mb, ob) = a, b
    assert list(ma) == list(mb)
    for k in ma:
        assert ma[k].dtype == mb[k].dtype and np.array_equal(ma[k], mb[k]), k
    for i in oa["state"]:
        for k, v in oa["state"][i].items():
            assert np.array_equal(v, ob["state"][i][k]), (i, k)
    assert oa["param_groups"] == ob["param_groups"]


def test_resume_is_bit_exact(tmp_path):
    x, y = _data()
    epochs, stop = 4, 2

    model, opt, sched = _tiny_run(0)
    shuffle = np.random.default_rng(7)
    history = {"loss": [], "lr": []}
    for _ in range(epochs):
        _epoch(model, opt, sched, shuffle, x, y, history)
    uninterrupted = _final_state(model, opt), history

    model, opt, sched = _tiny_run(0)
    shuffle = np.random.default_rng(7)
    history = {"loss": [], "lr": []}
    for _ in range(stop):
        _epoch(model, opt, sched, shuffle, x, y, history)
    path = sio.save_checkpoint(tmp_path / "ck.npz", model, opt, sched, epoch=stop, history=history,
                               rng_state={"global": strided.random.get_state(), "shuffle": shuffle.bit_generator.state,
                                          "dropout5": model[5].own_generator.bit_generator.state},
                               extra={"note": "after epoch 2", "best": np.float64(0.25)})
    _only(tmp_path, "ck.npz")
    del model, opt, sched

    # a new process would start from scratch: other seeds, other weights, other generator positions
    model, opt, sched = _tiny_run(99)
    shuffle = np.random.default_rng(0)
    ck = sio.load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)
    strided.random.set_state(ck["rng_state"]["global"])
    shuffle.bit_generator.state = ck["rng_state"]["shuffle"]
    model[5].own_generator.bit_generator.state = ck["rng_state"]["dropout5"]
    assert ck["epoch"] == stop and ck["model"] is model and ck["extra"]["note"] == "after epoch 2"
    assert type(ck["extra"]["best"]) is np.float64
    history = ck["history"]
    for _ in range(ck["epoch"], epochs):
        _epoch(model, opt, sched, shuffle, x, y, history)
    resumed = _final_state(model, opt), history

    _assert_states_equal(uninterrupted[0], resumed[0])
    assert uninterrupted[1] == resumed[1]


def test_fit_resume_matches_uninterrupted_run(tmp_path):
    from strided import train
    x, y = _data()
    quiet = dict(progress=False, log=lambda *a, **k: None, batch_size=16, seed=3)

    model, opt, sched = _tiny_run(0)
    full = train.fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=3, scheduler=sched, **quiet)
    expected = _final_state(model, opt)

    model, opt, sched = _tiny_run(0)
    train.fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, scheduler=sched, run_dir=tmp_path, **quiet)
    assert (tmp_path / "checkpoint.npz").exists()
    model, opt, sched = _tiny_run(5)
    history = train.fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=3, scheduler=sched, resume=tmp_path,
                        **quiet)
    _assert_states_equal(expected, _final_state(model, opt))
    assert history["train_loss"] == full["train_loss"] and history["lr"] == full["lr"]


def test_load_checkpoint_rebuilds_model(tmp_path, rng):
    model, opt, sched = _tiny_run(0)
    _randomise(model, rng)
    path = sio.save_checkpoint(tmp_path / "ck.npz", model, opt, epoch=1)
    ck = sio.load_checkpoint(path)
    _assert_same_model(model, ck["model"], rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    assert ck["history"] == {} and ck["extra"] == {} and ck["rng_state"] is None and ck["scheduler_state"] is None
    assert ck["optimizer_state"]["param_groups"][0]["lr"] == 1e-2
    _assert_same_model(model, sio.load(path), np.zeros((1, 1, 8, 8), np.float32))  # load() takes its model too


def test_checkpoint_errors(tmp_path, rng, saved):
    model, opt, sched = _tiny_run(0)
    path = sio.save_checkpoint(tmp_path / "ck.npz", model, opt, epoch=1)
    other, _, _ = _tiny_run(1)
    before = other.state_dict()
    sgd = optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(FileFormatError, match=r"ck\.npz: its optimizer state is from Adam, but the given .* SGD"):
        sio.load_checkpoint(path, model=other, optimizer=sgd)
    with pytest.raises(FileFormatError, match="holds no scheduler state"):
        sio.load_checkpoint(path, model=other, scheduler=optim.lr_scheduler.StepLR(sgd, 1))
    small = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(FileFormatError, match="do not match the architecture"):
        sio.load_checkpoint(path, model=small)
    fewer = optim.Adam(list(other.parameters())[:2], lr=0.1)
    with pytest.raises(FileFormatError, match="optimizer state does not fit"):
        sio.load_checkpoint(path, model=other, optimizer=fewer)
    # the optimizer fits but the scheduler does not: the optimizer is put back as it was
    full_path = sio.save_checkpoint(tmp_path / "full.npz", model, opt, sched, epoch=1)
    adam = optim.Adam(other.parameters(), lr=0.5)
    two_groups = optim.Adam([{"params": list(other.parameters())[:2]}, {"params": list(other.parameters())[2:]}])
    with pytest.raises(FileFormatError, match="scheduler state does not fit"):
        sio.load_checkpoint(full_path, model=other, optimizer=adam,
                            scheduler=optim.lr_scheduler.StepLR(two_groups, 1))
    assert adam.param_groups[0]["lr"] == 0.5
    # nothing was loaded into the model by the failed calls
    for k, v in other.state_dict().items():
        assert np.array_equal(v, before[k]), k
    with pytest.raises(FileFormatError, match="strided.model file; expected strided.checkpoint"):
        sio.load_checkpoint(saved[1])
    with pytest.raises(TypeError, match="optimizer must have state_dict"):
        sio.save_checkpoint(tmp_path / "x.npz", model, optimizer=object())
    with pytest.raises(TypeError, match=r"history\['f'\]"):
        sio.save_checkpoint(tmp_path / "x.npz", model, history={"f": print})
    assert not (tmp_path / "x.npz").exists()


# ----------------------------------------------------------------------------- optional dependencies
@pytest.mark.parametrize("modules, call, hint", [
    (("safetensors", "safetensors.numpy"), lambda p: sio.save(models.lenet5(), p / "m.safetensors"),
     r"pip install strided\[safetensors\]"),
    (("onnx",), lambda p: sio.export_onnx(models.lenet5(), p / "m.onnx", (1, 28, 28)), r"pip install strided\[onnx\]"),
    (("torch",), lambda p: sio.to_torch(models.lenet5()), "pip install torch"),
])
def test_missing_optional_dependency(tmp_path, monkeypatch, modules, call, hint):
    import sys
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(ImportError, match=hint):
        call(tmp_path)
    assert os.listdir(tmp_path) == []


class Block(nn.Sequential):
    """A Sequential subclass with its own constructor: rebuilt from its arguments."""

    def __init__(self, channels, slope=0.1):
        super().__init__(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(slope))


class Chain(nn.Sequential):
    """A Sequential subclass keeping Sequential's constructor: rebuilt from its children."""


def test_sequential_subclasses(tmp_path, rng):
    sio.register_module(Block)
    sio.register_module(Chain)
    model = Chain(Block(2, slope=0.3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    _randomise(model, rng)
    loaded = sio.load(sio.save(model, tmp_path / "b.npz"))
    assert type(loaded[0]) is Block and loaded[0][1].negative_slope == 0.3
    _assert_same_model(model, loaded, rng.standard_normal((2, 2, 4, 4)).astype(np.float32))


def test_new_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o027)
    try:
        path = sio.write_bytes_atomic(tmp_path / "f.bin", b"x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o640


def test_an_algorithm_set_after_construction_is_saved(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    model[0].algorithm = "im2col"
    assert model[0].get_config()["algorithm"] == "im2col"
    loaded = sio.load(sio.save(model, tmp_path / "m.npz"))
    assert loaded[0].algorithm == "im2col"
    with pytest.raises(ValueError, match="unknown algorithm 'magic'"):
        model[0].algorithm = "magic"
    assert model[0].algorithm == "im2col" and model[0].get_config()["algorithm"] == "im2col"
