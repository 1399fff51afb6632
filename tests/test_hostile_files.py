"""Crafted files fail with a FileFormatError naming the file, before they allocate what they claim.

The files come from :mod:`strided.bench.hostile_files` at a small scale (the bombs shrunk); how fast
and in how little memory they fail at full size is what ``strided bench hostile-files`` measures.
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import strided.io as sio
from strided import nn
from strided.bench import hostile_files
from strided.io import FileFormatError, atomic, containers, tree


@pytest.mark.parametrize("case", sorted(hostile_files.CASES))
def test_crafted_file_fails_clearly(tmp_path, case):
    path, reader = hostile_files.craft(case, tmp_path, scale=1 / 16)
    assert path.stat().st_size <= hostile_files.SIZE_LIMIT
    with pytest.raises(FileFormatError) as err:
        reader(path)
    assert str(err.value).startswith(f"{path}: ")
    assert err.value.path == str(path)


def test_architecture_is_checked_before_any_layer_is_built(tmp_path, monkeypatch):
    """Linear(20000, 20000) described next to 2x2 tensors: no parameter of that size is ever drawn."""
    path, reader = hostile_files.craft("arch_huge_linear", tmp_path, scale=1 / 64)
    made = []
    real = nn.init.uniform_fan_in

    def recording(shape, *args, **kwargs):
        made.append(real(shape, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(nn.init, "uniform_fan_in", recording)
    with pytest.raises(FileFormatError, match=r"wrong shapes \[0\.weight: file \(2, 2\) vs model \(20000, 20000\)"):
        reader(path)
    assert [a.shape for a in made] == [(20000, 20000), (20000,)]
    assert all(not any(a.strides) for a in made)  # placeholders: no memory behind them


def test_shapes_only_placeholders_take_no_memory():
    with nn.init.shapes_only():
        layer = nn.Linear(20000, 20000)
        norm = nn.BatchNorm2d(10 ** 9)
    assert layer.weight.shape == (20000, 20000) and layer.weight.data.strides == (0, 0)
    assert norm.running_var.shape == (10 ** 9,) and norm.running_var.strides == (0,)
    assert nn.Linear(3, 2).weight.data.flags.writeable  # outside the block, real arrays again


def test_lying_compressed_entry_is_read_only_to_its_declared_size(tmp_path):
    path, _ = hostile_files.craft("zip_bomb_lying", tmp_path, scale=1 / 16)
    with containers.open_checked(path) as c:
        assert "0.weight" in c.headers and "0.bias" in c.headers
        np.testing.assert_array_equal(c["0.bias"].shape, (2,))
        # the stream goes on for 128 MiB but is read only up to its declared 144 bytes, then the CRC fails
        with pytest.raises(FileFormatError, match=r"'0\.weight' cannot be read.*CRC"):
            c.headers["0.weight"]


def test_json_nesting_is_bounded(tmp_path):
    assert containers.json_depth('{"a": "[[[[", "b": [[1], {"c": []}]}') == 4
    assert containers.json_depth('{"a": "\\"[[["}') == 1
    with pytest.raises(FileFormatError, match=r"x\.npz: its description nests 101 levels deep"):
        containers.parse_json(tmp_path / "x.npz", "[" * 101 + "]" * 101)
    assert containers.parse_json(tmp_path / "x.npz", "[" * 100 + "]" * 100) is not None


@pytest.mark.parametrize("marker, message", [
    ({"__scalar__": "object", "value": 1}, "unknown scalar kind 'object'"),
    ({"__scalar__": "int8", "value": 300}, "300 is not a int8 value"),
    ({"__scalar__": "float32", "value": "a"}, "must hold a number"),
    ({"__float__": "big"}, "'__float__' must be"),
    ({"__dtype__": "O"}, "must name a numeric dtype"),
    ({"__tuple__": 3}, "'__tuple__' must hold a list"),
    ({"__dict__": [[[1], 2]]}, "cannot be a dict key"),
    ({"__array__": "nowhere"}, "which is missing"),
])
def test_crafted_markers_are_decode_errors(marker, message):
    with pytest.raises(tree.DecodeError, match=message):
        tree.decode(marker, {}, "metadata")


def test_valid_files_still_load(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    model.to(np.float64)
    model[4].weight.requires_grad = False
    path = sio.save(model, tmp_path / "m.npz", metadata={"mean": np.float32(0.5), "shape": (1, 4, 4)})
    back = sio.load(path)
    assert back.dtype == np.float64 and not back[4].weight.requires_grad
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert sio.info(path)["metadata"] == {"mean": np.float32(0.5), "shape": (1, 4, 4)}
    np.savez_compressed(tmp_path / "c.npz", w=np.asfortranarray(rng.standard_normal((3, 5))))
    np.testing.assert_array_equal(sio.load_state_dict(tmp_path / "c.npz")["w"],
                                  np.load(tmp_path / "c.npz")["w"])


_SAVER = """
import sys
import numpy as np
import strided.io as sio
from strided import nn
model = nn.Sequential(nn.Linear(400, 400), nn.Linear(400, 400))
print("ready", flush=True)
while True:
    sio.save(model, sys.argv[1])
"""


def test_killed_saves_leave_no_temporary_files_after_the_next_save(tmp_path):
    target = tmp_path / "m.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for i in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(target)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.013 * i)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    other = tmp_path / f".other.npz{atomic.TEMP_MARK}1-0123456789abcdef"
    other.write_bytes(b"not ours")  # another destination's temporary file is never touched
    sio.save(nn.Linear(2, 2), target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["m.npz", other.name])
    assert isinstance(sio.load(target), nn.Linear)


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    target = tmp_path / "m.npz"
    mine = atomic.temporary_path(target)  # named after this (running) process
    mine.write_bytes(b"in progress")
    sio.save(nn.Linear(2, 2), target)
    assert mine.exists()


def test_large_gzip_idx_is_read_in_pieces(tmp_path, monkeypatch, rng):
    import gzip
    import struct

    from strided import data
    from strided.data import idx

    monkeypatch.setattr(idx, "GZIP_DIRECT_BYTES", 1024)
    monkeypatch.setattr(idx, "GZIP_PIECE_BYTES", 700)
    images = rng.integers(0, 256, (30, 20, 20), dtype=np.uint8)
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *images.shape)
    whole, cut = tmp_path / "whole.gz", tmp_path / "cut.gz"
    whole.write_bytes(gzip.compress(header + images.tobytes()))
    np.testing.assert_array_equal(data.read_idx(whole), images)
    cut.write_bytes(gzip.compress(header + images.tobytes()[:5000]))
    with pytest.raises(FileFormatError, match=r"cut\.gz: truncated IDX data .* declares 12000 bytes .* holds 5000"):
        data.read_idx(cut)
