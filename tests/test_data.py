"""Datasets: readers on synthetic and corrupt files, resolution order, download, subsets, splits,
standardisation (fitted on train only), batching and augmentation."""
import functools
import gzip
import hashlib
import http.server
import json
import os
import pickle
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import _fake_datasets as fake
from strided import data
from strided.data import locate as registry

REAL_SYSTEM_DIR = registry.SYSTEM_DATA_DIR
IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every location the resolver searches points into tmp_path, so no real data leaks into a test."""
    monkeypatch.delenv("STRIDED_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(registry, "SYSTEM_DATA_DIR", tmp_path / "system")
    return tmp_path


def leftovers(directory) -> list:
    """Temporary files an atomic write may have left behind."""
    return [p for p in Path(directory).rglob("*") if p.name.endswith(".part")]


# --------------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [True, False])
def test_idx_images_and_labels_read_back(tmp_path, gz):
    written = fake.fake_idx_dataset(tmp_path, n_train=7, n_test=3, gz=gz)
    suffix = ".gz" if gz else ""
    x = data.read_idx_images(tmp_path / f"train-images-idx3-ubyte{suffix}")
    y = data.read_idx_labels(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0], written["train"][0])
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, written["train"][1])
    assert x.flags.writeable


@settings(max_examples=25, deadline=None)
@given(
    dtype=st.sampled_from(["u1", "i1", "i2", "i4", "f4", "f8"]),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    gz=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_idx_all_types_big_endian_to_native(tmp_path_factory, dtype, shape, gz, seed):
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = fake.write(tmp_path_factory.mktemp("idx") / "a.idx", fake.idx_bytes(array), gz=gz)
    got = data.read_idx(path)
    assert got.shape == shape and got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_idx_format_detected_from_content_not_name(tmp_path):
    labels = np.arange(5, dtype=np.uint8)
    path = fake.write(tmp_path / "labels.idx", fake.idx_bytes(labels), gz=True)  # gzip without .gz
    np.testing.assert_array_equal(data.read_idx(path), labels)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_wrong_magic_names_file(tmp_path, gz):
    path = fake.write(tmp_path / "bad", fake.idx_bytes(np.zeros((2, 3, 3), np.uint8), magic=0x12345678), gz=gz)
    with pytest.raises(data.DataFileError, match="magic number 0x12345678") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("count, problem", [(11, "truncated"), (9, "more data|do not match")])
def test_idx_counts_that_do_not_match_the_payload(tmp_path, gz, count, problem):
    images = np.zeros((10, 4, 4), np.uint8)
    path = fake.write(tmp_path / "images", fake.idx_bytes(images, count=count), gz=gz)
    with pytest.raises(data.DataFileError, match=problem) as err:
        data.read_idx(path)
    assert str(path) in str(err.value) and str(count) in str(err.value)


def test_idx_cut_off_gzip(tmp_path):
    blob = gzip.compress(fake.idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataFileError, match="truncated gzip") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_idx_corrupt_gzip(tmp_path):
    blob = bytearray(gzip.compress(fake.idx_bytes(np.arange(4000, dtype=np.uint8).reshape(40, 10, 10) % 7)))
    blob[-6] ^= 0xFF  # inside the CRC/size trailer
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(data.DataFileError, match="gzip") as err:
        data.read_idx(path)
    assert str(path) in str(err.value)


def test_idx_impossible_count_fails_before_allocating(tmp_path):
    path = fake.write(tmp_path / "x.gz", fake.idx_bytes(np.zeros((2, 28, 28), np.uint8), count=2**31), gz=True)
    with pytest.raises(data.DataFileError, match="impossible"):
        data.read_idx(path)


def test_idx_file_shorter_than_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(data.DataFileError, match="header"):
        data.read_idx(path)


def test_idx_images_reject_label_file(tmp_path):
    path = fake.write(tmp_path / "labels", fake.idx_bytes(np.arange(3, dtype=np.uint8)), gz=False)
    with pytest.raises(data.DataFileError, match=r"\(N, H, W\)"):
        data.read_idx_images(path)


# --------------------------------------------------------------------------- CIFAR-10 reader


def _expected_nchw(rows):
    """The CIFAR row layout, spelled out: value c*1024 + i*32 + j is channel c, row i, column j."""
    n = len(rows)
    out = np.empty((n, 3, 32, 32), np.uint8)
    for c in range(3):
        for i in range(32):
            out[:, c, i, :] = rows[:, c * 1024 + i * 32: c * 1024 + i * 32 + 32]
    return out


@pytest.mark.parametrize("layout", ["batch-dir", "parent-dir", "archive"])
@pytest.mark.parametrize("style", ["py2", "bytes-keys", "str-keys"])
def test_cifar_reads_directory_and_archive(tmp_path, layout, style):
    members, arrays = fake.fake_cifar_members(n_per_batch=3, style=style)
    if layout == "archive":
        path = tmp_path / "cifar-10-python.tar.gz"
        path.write_bytes(fake.cifar_archive_bytes(members))
    else:
        fake.write_cifar_dir(tmp_path / "cifar-10-batches-py", members)
        path = tmp_path / "cifar-10-batches-py" if layout == "batch-dir" else tmp_path
    got = data.read_cifar10(path)
    for split in ("train", "test"):
        images, labels = got[split]
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        np.testing.assert_array_equal(images, _expected_nchw(arrays[split][0]))
        np.testing.assert_array_equal(labels, arrays[split][1])
    assert got["classes"] == tuple(fake.CIFAR_CLASSES)
    assert len(got["train"][0]) == 15 and len(got["test"][0]) == 3


def test_cifar_batch_with_wrong_keys(tmp_path):
    members, _ = fake.fake_cifar_members(n_per_batch=2)
    members["data_batch_3"] = fake.cifar_batch_bytes(np.zeros((2, 3072), np.uint8), [0, 1], drop=["labels"],
                                                     extra={"fine_labels": [0, 1]})
    fake.write_cifar_dir(tmp_path, members)
    with pytest.raises(data.DataFileError, match="data_batch_3.*'labels'.*fine_labels"):
        data.read_cifar10(tmp_path)


def test_cifar_batch_counts_do_not_match(tmp_path):
    members, _ = fake.fake_cifar_members(n_per_batch=2)
    members["test_batch"] = fake.cifar_batch_bytes(np.zeros((2, 3072), np.uint8), [0, 1, 2])
    fake.write_cifar_dir(tmp_path, members)
    with pytest.raises(data.DataFileError, match="test_batch.*counts do not match"):
        data.read_cifar10(tmp_path)


def test_cifar_batch_with_wrong_data_shape(tmp_path):
    members, _ = fake.fake_cifar_members(n_per_batch=2)
    members["data_batch_1"] = fake.cifar_batch_bytes(np.zeros((2, 784), np.uint8), [0, 1])
    fake.write_cifar_dir(tmp_path, members)
    with pytest.raises(data.DataFileError, match="data_batch_1.*3072"):
        data.read_cifar10(tmp_path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo unpickled > exploited",))


def test_cifar_pickle_may_only_build_arrays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    members, _ = fake.fake_cifar_members(n_per_batch=2)
    members["data_batch_2"] = pickle.dumps({b"data": _Exploit(), b"labels": [0]}, protocol=2)
    fake.write_cifar_dir(tmp_path / "d", members)
    with pytest.raises(data.DataFileError, match="data_batch_2.*refusing to load global"):
        data.read_cifar10(tmp_path / "d")
    assert not (tmp_path / "exploited").exists()


def test_cifar_truncated_archive(tmp_path):
    members, _ = fake.fake_cifar_members(n_per_batch=50)
    blob = fake.cifar_archive_bytes(members)
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(data.DataFileError, match="truncated or corrupt archive") as err:
        data.read_cifar10(path)
    assert str(path) in str(err.value)


def test_cifar_archive_missing_a_batch(tmp_path):
    members, _ = fake.fake_cifar_members(n_per_batch=2)
    del members["data_batch_4"]
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(fake.cifar_archive_bytes(members))
    with pytest.raises(data.DataFileError, match="lacks.*data_batch_4"):
        data.read_cifar10(path)


# --------------------------------------------------------------------------- names and resolution


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="'fashion-mnist', 'mnist', 'cifar10'"):
        data.load_dataset("imagenet")
    with pytest.raises(TypeError, match="name"):
        data.load_dataset(3)


@pytest.mark.parametrize("alias", ["Fashion-MNIST", "fashion_mnist", "FashionMNIST"])
def test_dataset_name_aliases(alias):
    assert data.dataset_info(alias).name == "fashion-mnist"
    assert data.dataset_info("CIFAR-10").name == "cifar10"


def test_resolution_order(isolated, monkeypatch):
    """root, then $STRIDED_DATA, then the cache, then /usr/share/datasets; each location holds
    different labels so the loaded data tells where it came from."""
    places = {
        "root": isolated / "explicit" / "fashion-mnist",
        "env": isolated / "env" / "fashion-mnist",
        "cache": isolated / "xdg-cache" / "strided" / "fashion-mnist",
        "system": isolated / "system" / "fashion-mnist",
    }
    for offset, directory in enumerate(places.values()):
        fake.fake_idx_dataset(directory, n_train=4, n_test=2, label_offset=offset, gz=offset % 2 == 0)
    monkeypatch.setenv("STRIDED_DATA", str(isolated / "env"))
    order = list(places)
    for i, where in enumerate(order):
        ds = data.load_dataset("fashion-mnist", root=isolated / "explicit" if where == "root" else None)
        assert ds.root == places[where]
        assert ds.train.labels[0] == i  # the label offset written there
        if where == "root":
            # root may also be the dataset directory itself
            assert data.load_dataset("fashion-mnist", root=places["root"]).root == places["root"]
        elif where == "env":
            monkeypatch.delenv("STRIDED_DATA")
        elif where == "cache":
            for p in places["cache"].iterdir():
                p.unlink()
    assert data.search_path("fashion-mnist")[-1] == isolated / "system" / "fashion-mnist"


def test_cache_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "strided"


def test_incomplete_directory_is_skipped_and_reported(isolated):
    partial = isolated / "xdg-cache" / "strided" / "mnist"
    fake.fake_idx_dataset(partial, n_train=2, n_test=2)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as err:
        data.load_dataset("mnist")
    message = str(err.value)
    assert f"{partial}: missing t10k-labels-idx1-ubyte[.gz]" in message
    assert "python -m strided.data download mnist" in message
    assert "apt-get" not in message  # no Debian package for MNIST


def test_missing_fashion_mnist_names_the_debian_package(isolated):
    with pytest.raises(FileNotFoundError) as err:
        data.load_dataset("fashion-mnist")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    for directory in data.search_path("fashion-mnist"):
        assert str(directory) in message
    with pytest.raises(FileNotFoundError, match=r"apt-get install(.|\n)*download fashion-mnist --root"):
        data.load_dataset("fashion-mnist", root=isolated / "nowhere")


def test_mixed_raw_and_gz_files(isolated):
    directory = isolated / "system" / "mnist"
    written = fake.fake_idx_dataset(directory, n_train=5, n_test=3, gz=True)
    raw = gzip.decompress((directory / "t10k-images-idx3-ubyte.gz").read_bytes())
    (directory / "t10k-images-idx3-ubyte.gz").unlink()
    (directory / "t10k-images-idx3-ubyte").write_bytes(raw)
    ds = data.load_dataset("mnist")
    np.testing.assert_array_equal(ds.test.images[:, 0], written["test"][0])


def test_images_and_labels_of_different_lengths(isolated):
    directory = isolated / "system" / "mnist"
    fake.fake_idx_dataset(directory, n_train=5, n_test=3)
    fake.write(directory / "train-labels-idx1-ubyte.gz", fake.idx_bytes(np.zeros(4, np.uint8)), gz=True)
    with pytest.raises(data.DataFileError, match="5 images but .*train-labels-idx1-ubyte.gz holds 4 labels"):
        data.load_dataset("mnist")


def test_labels_out_of_range(isolated):
    directory = isolated / "system" / "mnist"
    fake.fake_idx_dataset(directory, n_train=3, n_test=3)
    fake.write(directory / "t10k-labels-idx1-ubyte.gz", fake.idx_bytes(np.array([0, 10, 2], np.uint8)), gz=True)
    with pytest.raises(data.DataFileError, match="t10k-images.*0..10.*0..9"):
        data.load_dataset("mnist")


def test_wrong_image_size_for_the_dataset(isolated):
    fake.fake_idx_dataset(isolated / "system" / "mnist", n_train=3, n_test=3, shape=(32, 32))
    with pytest.raises(data.DataFileError, match=r"\(1, 32, 32\).*\(1, 28, 28\)"):
        data.load_dataset("mnist")


def test_cifar_through_load_dataset(isolated):
    members, arrays = fake.fake_cifar_members(n_per_batch=2)
    (isolated / "system" / "cifar10").mkdir(parents=True)
    (isolated / "system" / "cifar10" / "cifar-10-python.tar.gz").write_bytes(fake.cifar_archive_bytes(members))
    ds = data.load_dataset("cifar10", classes=["cat", "dog"])
    assert ds.classes == ("cat", "dog") and ds.image_shape == (3, 32, 32)
    keep = np.isin(arrays["train"][1], [3, 5])
    np.testing.assert_array_equal(ds.train.images, _expected_nchw(arrays["train"][0][keep]))
    np.testing.assert_array_equal(ds.train.labels, (arrays["train"][1][keep] == 5).astype(np.int64))


def test_dataset_table_and_cli_listing(isolated, capsys):
    fake.fake_idx_dataset(isolated / "system" / "fashion-mnist", n_train=2, n_test=2)
    rows = {row["name"]: row for row in data.dataset_table()}
    assert rows["fashion-mnist"]["location"] == str(isolated / "system" / "fashion-mnist")
    assert rows["fashion-mnist"]["get"] is None
    assert rows["mnist"]["location"] is None
    assert rows["mnist"]["get"] == ["python -m strided.data download mnist"]
    assert rows["cifar10"]["image_shape"] == (3, 32, 32) and len(rows["cifar10"]["classes"]) == 10
    from strided.data.__main__ import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "found in " + str(isolated / "system" / "fashion-mnist") in out
    assert "python -m strided.data download cifar10" in out


# --------------------------------------------------------------------------- class subsets


@pytest.fixture
def fmnist(isolated):
    """A fake Fashion-MNIST with 40 train / 20 test images, labels cycling 0..9."""
    written = fake.fake_idx_dataset(isolated / "system" / "fashion-mnist", n_train=40, n_test=20)
    return written


def test_classes_subset_relabels_in_given_order(fmnist):
    ds = data.load_dataset("fashion-mnist", classes=(1, 3))
    assert ds.classes == ("Trouser", "Dress") and ds.num_classes == 2
    x, y = fmnist["train"]
    keep = np.isin(y, [1, 3])
    np.testing.assert_array_equal(ds.train.images[:, 0], x[keep])
    np.testing.assert_array_equal(ds.train.labels, (y[keep] == 3).astype(np.int64))
    reversed_ = data.load_dataset("fashion-mnist", classes=("dress", "TROUSER"))
    assert reversed_.classes == ("Dress", "Trouser")
    np.testing.assert_array_equal(reversed_.train.labels, (y[keep] == 1).astype(np.int64))
    assert len(ds.test) == np.isin(fmnist["test"][1], [1, 3]).sum()


@pytest.mark.parametrize("classes, error, match", [
    ((1, 10), ValueError, "out of range"),
    ((1, 1), ValueError, "distinct"),
    (("Trouser", "Hat"), ValueError, "unknown class 'Hat'.*'Ankle boot'"),
    ((), ValueError, "at least one"),
    ("Trouser", TypeError, "sequence"),
])
def test_bad_classes_rejected_before_reading(isolated, classes, error, match):
    # no data anywhere: the argument error must come first
    with pytest.raises(error, match=match):
        data.load_dataset("fashion-mnist", classes=classes)


# --------------------------------------------------------------------------- download


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path.startswith("/cut/"):
            # announce more bytes than are sent, then hang up: an interrupted transfer
            body = Path(self.directory, self.path[len("/cut/"):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    """A file server on 127.0.0.1 (ephemeral port) for the test's duration; yields (directory, base URL)."""
    served = tmp_path / "www"
    served.mkdir()
    _Handler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _publish_fake_mnist(directory, monkeypatch, mirrors, *, n_train=8, n_test=4):
    """Write fake MNIST .gz files into ``directory`` and point the registry at ``mirrors`` with their checksums."""
    written = fake.fake_idx_dataset(directory, n_train=n_train, n_test=n_test, gz=True)
    specs = []
    for base in IDX_NAMES:
        blob = (Path(directory) / f"{base}.gz").read_bytes()
        content = gzip.decompress(blob)
        specs.append(data.FileSpec(f"{base}.gz", "idx", md5=fake.md5(blob), content_sha256=fake.sha256(content),
                                   content_size=len(content)))
    monkeypatch.setitem(registry.DATASETS, "mnist",
                        replace(registry.DATASETS["mnist"], files=tuple(specs), mirrors=tuple(mirrors)))
    return written


def test_download_tries_mirrors_in_order_and_writes_verified_files(isolated, http_server, monkeypatch):
    served, url = http_server
    written = _publish_fake_mnist(served / "good", monkeypatch, [url + "missing/", url + "good/"])
    ds = data.load_dataset("mnist", root=isolated / "data", download=True, classes=(0, 1))
    assert ds.root == isolated / "data" / "mnist"
    assert sorted(p.name for p in ds.root.iterdir()) == sorted(f"{b}.gz" for b in IDX_NAMES)
    keep = np.isin(written["train"][1], [0, 1])
    np.testing.assert_array_equal(ds.train.images[:, 0], written["train"][0][keep])
    assert _Handler.requests[:2] == ["/missing/train-images-idx3-ubyte.gz", "/good/train-images-idx3-ubyte.gz"]
    # found now: loading again makes no request
    count = len(_Handler.requests)
    data.load_dataset("mnist", root=isolated / "data", download=True)
    assert len(_Handler.requests) == count
    assert not leftovers(isolated)


def test_download_rejects_content_with_wrong_checksum(isolated, http_server, monkeypatch):
    served, url = http_server
    _publish_fake_mnist(served / "good", monkeypatch, [url + "good/"])
    # same file name, other content: the published checksums no longer match
    fake.fake_idx_dataset(served / "good", n_train=8, n_test=4, seed=1)
    with pytest.raises(data.DownloadError, match="train-images-idx3-ubyte.gz.*md5 of the published file mismatch"):
        data.download_dataset("mnist", isolated / "data", verbose=False)
    target = isolated / "data" / "mnist"
    assert not target.exists() or not any(target.iterdir())


def test_content_checksum_is_of_the_decompressed_data(isolated, http_server, monkeypatch):
    """A recompressed mirror file (different .gz bytes, same content) passes when only the content
    checksum is known, and fails when the content differs, whatever its .gz checksum."""
    served, url = http_server
    _publish_fake_mnist(served / "m", monkeypatch, [url + "m/"])
    info = registry.DATASETS["mnist"]
    monkeypatch.setitem(registry.DATASETS, "mnist",
                        replace(info, files=tuple(replace(s, md5=None) for s in info.files)))
    for base in IDX_NAMES:
        path = served / "m" / f"{base}.gz"
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=12345))
    assert data.download_dataset("mnist", isolated / "ok", verbose=False) == isolated / "ok" / "mnist"
    labels = served / "m" / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[-1] = (content[-1] + 1) % 10  # one label changed, still a valid IDX file
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(data.DownloadError, match="sha256 of the decompressed content mismatch"):
        data.download_dataset("mnist", isolated / "bad", verbose=False)
    assert not (isolated / "bad" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_interrupted_download_leaves_no_file(isolated, http_server, monkeypatch):
    served, url = http_server
    _publish_fake_mnist(served / "good", monkeypatch, [url + "cut/good/"], n_train=200)
    with pytest.raises(data.DownloadError, match="cut/good/train-images"):
        data.download_dataset("mnist", isolated / "data", verbose=False)
    assert not (isolated / "data" / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not leftovers(isolated / "data")


def test_download_replaces_a_corrupt_existing_file(isolated, http_server, monkeypatch):
    served, url = http_server
    _publish_fake_mnist(served / "good", monkeypatch, [url + "good/"])
    data.download_dataset("mnist", isolated / "data", verbose=False)
    victim = isolated / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
    good = victim.read_bytes()
    victim.write_bytes(good[:-10])
    before = len(_Handler.requests)
    data.download_dataset("mnist", isolated / "data", verbose=False)
    assert victim.read_bytes() == good
    assert _Handler.requests[before:] == ["/good/t10k-images-idx3-ubyte.gz"]


def test_download_cifar_from_file_url_verifies_archive_and_members(isolated, monkeypatch):
    members, arrays = fake.fake_cifar_members(n_per_batch=2)
    blob = fake.cifar_archive_bytes(members)
    mirror = isolated / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(blob)
    spec = data.FileSpec("cifar-10-python.tar.gz", "tar.gz", md5=fake.md5(blob),
                         members={name: fake.md5(b) for name, b in members.items()})
    monkeypatch.setitem(registry.DATASETS, "cifar10",
                        replace(registry.DATASETS["cifar10"], files=(spec,), mirrors=(mirror.as_uri() + "/",)))
    monkeypatch.setenv("STRIDED_DATA", str(isolated / "env"))
    ds = data.load_dataset("cifar10", download=True)
    assert ds.root == isolated / "env" / "cifar10"
    np.testing.assert_array_equal(ds.test.labels, arrays["test"][1])
    # a member whose md5 differs is caught even though the archive itself is well formed
    bad = dict(spec.members, test_batch="0" * 32)
    with pytest.raises(data.ChecksumError, match="md5 of archive member test_batch mismatch"):
        data.verify_file(mirror / "cifar-10-python.tar.gz", replace(spec, members=bad))


def test_download_command_line(isolated, http_server, monkeypatch, capsys):
    served, url = http_server
    _publish_fake_mnist(served / "good", monkeypatch, [url + "good/"])
    from strided.data.__main__ import main

    assert main(["download", "mnist", "--root", str(isolated / "d")]) == 0
    assert "mnist is in " + str(isolated / "d" / "mnist") in capsys.readouterr().out
    monkeypatch.setitem(registry.DATASETS, "mnist", replace(registry.DATASETS["mnist"], mirrors=(url + "none/",)))
    assert main(["download", "mnist", "--root", str(isolated / "e")]) == 1
    assert "could not download" in capsys.readouterr().err


# --------------------------------------------------------------------------- splits


def _split(n=100, c=1, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, c, 4, 4), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256  # makes every sample identifiable
    return data.Split(images, np.arange(n) % 10)


def test_train_valid_split_is_a_seeded_partition():
    split = _split(100)
    train, valid = data.train_valid_split(split, 0.2, seed=3)
    assert len(train) == 80 and len(valid) == 20
    ids_t, ids_v = train.images[:, 0, 0, 0], valid.images[:, 0, 0, 0]
    assert not set(ids_t) & set(ids_v) and sorted([*ids_t, *ids_v]) == list(range(100))
    assert np.all(np.diff(ids_t) > 0)  # each part keeps the dataset's order
    np.testing.assert_array_equal(train.labels, split.labels[ids_t])
    again = data.train_valid_split(split, 20, seed=3)[1]
    np.testing.assert_array_equal(again.images, valid.images)
    other = data.train_valid_split(split, 20, seed=4)[1]
    assert not np.array_equal(other.images, valid.images)


def test_train_valid_split_without_shuffle_holds_out_the_end():
    split = _split(30)
    train, valid = data.train_valid_split(split, 10, shuffle=False)
    np.testing.assert_array_equal(valid.images, split.images[20:])
    np.testing.assert_array_equal(train.labels, split.labels[:20])


@pytest.mark.parametrize("validation, error", [(1.0, ValueError), (-1, ValueError), (100, ValueError),
                                               ("10%", TypeError), (True, TypeError)])
def test_train_valid_split_bad_sizes(validation, error):
    with pytest.raises(error, match="validation"):
        data.train_valid_split(_split(100), validation)


def test_split_validates_its_arrays():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.Split(np.zeros(3), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="same length"):
        data.Split(np.zeros((3, 1, 2, 2)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="integer"):
        data.Split(np.zeros((3, 1, 2, 2)), np.zeros(3))
    assert data.Split(np.zeros((3, 1, 2, 2)), np.zeros(3, np.uint8)).labels.dtype == np.int64


# --------------------------------------------------------------------------- standardisation


def test_standardize_fits_per_channel_float64_statistics():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 3, 5, 6), dtype=np.uint8)
    std = data.Standardize().fit(x)
    ref = x.astype(np.float64)
    np.testing.assert_allclose(std.mean, ref.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std.std, ref.std(axis=(0, 2, 3)), rtol=1e-6)
    assert std.mean.dtype == np.float32 and std.std.dtype == np.float32
    y = std(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.astype(np.float64).mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.astype(np.float64).std(axis=(0, 2, 3)), 1, atol=1e-5)
    expected = (ref - ref.mean(axis=(0, 2, 3))[:, None, None]) / (ref.std(axis=(0, 2, 3))[:, None, None] + 1e-7)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    y64 = std(x.astype(np.float64))
    assert y64.dtype == np.float64
    assert std(x, dtype=np.float64).dtype == np.float64
    np.testing.assert_allclose(std.inverse(y), ref, atol=1e-3)


def test_standardize_chunked_fit_matches_numpy(monkeypatch):
    """The fit accumulates over chunks of images: force many small chunks and compare to NumPy."""
    from strided.data import transforms

    monkeypatch.setattr(transforms, "_FIT_CHUNK_VALUES", 7)
    x = np.random.default_rng(1).normal(1000.0, 0.5, size=(13, 2, 3, 3))  # large mean, small spread
    std = data.Standardize().fit(x)
    np.testing.assert_allclose(std.mean, x.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(std.std, x.std(axis=(0, 2, 3)), rtol=1e-5)


def test_standardize_state_round_trips_through_json():
    x = np.random.default_rng(2).integers(0, 256, size=(10, 3, 4, 4), dtype=np.uint8)
    std = data.Standardize().fit(x)
    restored = data.Standardize.from_state_dict(json.loads(json.dumps(std.state_dict())))
    np.testing.assert_array_equal(restored.mean, std.mean)
    np.testing.assert_array_equal(restored.std, std.std)
    np.testing.assert_array_equal(restored(x), std(x))


def test_standardize_errors():
    with pytest.raises(RuntimeError, match="fit"):
        data.Standardize()(np.zeros((1, 1, 2, 2)))
    std = data.Standardize().fit(np.ones((2, 3, 2, 2)))
    assert np.all(np.isfinite(std(np.ones((2, 3, 2, 2)))))  # constant channel: eps keeps it finite
    with pytest.raises(ValueError, match="3 channels"):
        std(np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="4 dimensions"):
        data.Standardize().fit(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="together"):
        data.Standardize(mean=[0.0])


def test_make_loaders_fits_statistics_on_the_training_part_only(fmnist):
    ds = data.load_dataset("fashion-mnist")
    # make every image distinct in brightness, so statistics over other samples would differ visibly
    ds.train.images[:] = (np.arange(len(ds.train)) * 6).astype(np.uint8)[:, None, None, None]
    loaders = data.make_loaders(ds, validation=10, batch_size=8, seed=5)
    train, valid = data.train_valid_split(ds.train, 10, seed=5)
    train_values = train.images.astype(np.float64)
    np.testing.assert_allclose(loaders.standardize.mean, [train_values.mean()], rtol=1e-6)
    np.testing.assert_allclose(loaders.standardize.std, [train_values.std()], rtol=1e-6)
    everything = ds.train.images.astype(np.float64)
    assert abs(everything.mean() - train_values.mean()) > 1e-3  # the check above could tell a leak
    # validation and test batches use the training statistics, in order, unaugmented
    xs = np.concatenate([x for x, _ in loaders.val])
    np.testing.assert_allclose(xs, loaders.standardize(valid.images), rtol=1e-6)
    xt, yt = zip(*loaders.test)
    np.testing.assert_array_equal(np.concatenate(yt), ds.test.labels)
    np.testing.assert_allclose(np.concatenate(xt), loaders.standardize(ds.test.images), rtol=1e-6)
    assert sorted(np.concatenate([y for _, y in loaders.train]).tolist()) == sorted(train.labels.tolist())


# --------------------------------------------------------------------------- batching


def test_batches_cover_every_sample_once_per_epoch():
    split = _split(53, c=2)
    seen = []
    for x, y in data.batches(split.images, split.labels, 8, rng=0):
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1:] == (2, 4, 4)
        ids = x[:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(x, split.images[ids].astype(np.float32))
        np.testing.assert_array_equal(y, split.labels[ids])
        seen += ids.tolist()
    assert sorted(seen) == list(range(53)) and seen != list(range(53))
    sizes = [len(y) for _, y in data.batches(split.images, split.labels, 8, rng=0, drop_last=True)]
    assert sizes == [8] * 6


def test_batches_are_reproducible_and_fresh_arrays():
    split = _split(20)
    a = [x for x, _ in data.batches(split.images, split.labels, 6, rng=7)]
    b = [x for x, _ in data.batches(split.images, split.labels, 6, rng=np.random.default_rng(7))]
    for xa, xb in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
    floats = split.images.astype(np.float64)
    before = floats.copy()
    for x, y in data.batches(floats, split.labels, 6, shuffle=False):
        assert x.dtype == np.float64
        x += 1
        y += 1
    np.testing.assert_array_equal(floats, before)
    np.testing.assert_array_equal(split.labels, np.arange(20) % 10)


def test_batches_check_arguments_when_called():
    x, y = np.zeros((4, 1, 2, 2), np.uint8), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(x, y, 0)
    with pytest.raises(ValueError, match="same length"):
        data.batches(x, y[:3], 2)
    with pytest.raises(ValueError, match="fitted"):
        data.batches(x, y, 2, standardize=data.Standardize())
    with pytest.raises(TypeError, match="dtype"):
        data.batches(x, y, 2, dtype=np.int32)
    with pytest.raises(TypeError, match="rng"):
        data.batches(x, y, 2, rng="seed")


def test_batches_without_labels_and_loaders_without_validation(fmnist):
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    got = [(xb, yb) for xb, yb in data.batches(x, None, 4, shuffle=False)]
    assert [yb for _, yb in got] == [None] * 3
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in got]), x.astype(np.float32))
    loaders = data.make_loaders(data.load_dataset("fashion-mnist"), validation=0, standardize=False)
    assert loaders.val is None and loaders.standardize is None and len(loaders.train.dataset) == 40


def test_data_loader_epochs_differ_but_runs_repeat():
    split = _split(30)

    def run():
        loader = data.DataLoader(split, 7, shuffle=True, seed=1)
        return [np.concatenate([y for _, y in loader]) for _ in range(2)], len(loader)

    (first, second), n_batches = run()
    assert n_batches == 5
    assert not np.array_equal(first, second)
    assert sorted(first.tolist()) == sorted(second.tolist()) == sorted(split.labels.tolist())
    (again, _), _ = run()
    np.testing.assert_array_equal(first, again)
    ordered = data.DataLoader(split, 7)
    np.testing.assert_array_equal(np.concatenate([y for _, y in ordered]), split.labels)


# --------------------------------------------------------------------------- augmentation


def _crop_offsets(padded, crops):
    """For each crop, every offset (i, j) of ``padded`` it equals (brute force, the ground truth)."""
    n, _, h, w = crops.shape
    out = []
    for k in range(n):
        out.append({(i, j) for i in range(padded.shape[2] - h + 1) for j in range(padded.shape[3] - w + 1)
                    if np.array_equal(padded[k, :, i:i + h, j:j + w], crops[k])})
    return out


def test_random_crop_cuts_padded_windows_at_random_offsets():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, size=(64, 3, 6, 5), dtype=np.uint8)
    crops = data.RandomCrop((6, 5), padding=(2, 1))(x, np.random.default_rng(1))
    assert crops.shape == x.shape and crops.dtype == np.uint8
    padded = np.zeros((64, 3, 10, 7), np.uint8)
    padded[:, :, 2:8, 1:6] = x
    offsets = _crop_offsets(padded, crops)
    assert all(offsets)  # every output is a window of its own padded image
    found = set().union(*offsets)
    assert len(found) > 10  # offsets vary across the batch (15 possible)
    again = data.RandomCrop((6, 5), padding=(2, 1))(x, np.random.default_rng(1))
    np.testing.assert_array_equal(again, crops)
    smaller = data.RandomCrop(3)(x.astype(np.float64), 4)
    assert smaller.shape == (64, 3, 3, 3) and smaller.dtype == np.float64
    assert all(_crop_offsets(x.astype(np.float64), smaller))


def test_random_crop_fill_and_errors():
    x = np.full((4, 1, 2, 2), 9.0)
    crops = data.RandomCrop(4, padding=1, fill=-5.0)(x, 0)
    np.testing.assert_array_equal(crops, np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-5.0))
    with pytest.raises(ValueError, match="larger than the padded image"):
        data.RandomCrop(5, padding=1)(x, 0)
    with pytest.raises(ValueError, match="4 dimensions"):
        data.RandomCrop(2)(np.zeros((2, 2, 2)), 0)


def test_random_horizontal_flip():
    x = np.random.default_rng(0).integers(0, 256, size=(400, 2, 3, 4), dtype=np.uint8)
    out = data.RandomHorizontalFlip(0.3)(x, np.random.default_rng(3))
    same = np.all(out == x, axis=(1, 2, 3))
    mirrored = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert 0.2 < mirrored.mean() < 0.4
    np.testing.assert_array_equal(data.RandomHorizontalFlip(0.0)(x, 0), x)
    np.testing.assert_array_equal(data.RandomHorizontalFlip(1.0)(x, 0), x[..., ::-1])
    with pytest.raises(ValueError, match="p must be in"):
        data.RandomHorizontalFlip(1.5)


def test_default_augmentation_does_not_flip_digits():
    x = np.random.default_rng(0).integers(1, 256, size=(200, 1, 28, 28), dtype=np.uint8)
    digits = data.default_augmentation("mnist")(x, 0)
    padded = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
    assert all(_crop_offsets(padded[:20], digits[:20]))
    clothes = data.default_augmentation("fashion-mnist")(x, 0)
    flipped = [bool(_crop_offsets(padded[k:k + 1, :, :, ::-1], clothes[k:k + 1])[0]) for k in range(40)]
    assert any(flipped) and not all(flipped)
    assert data.augment_batch(x, 0).shape == x.shape


def test_augmentation_inside_batches_runs_before_standardisation():
    split = _split(16, c=1)
    std = data.Standardize().fit(split.images)
    flip = data.RandomHorizontalFlip(1.0)
    xs = np.concatenate([x for x, _ in data.batches(split.images, split.labels, 4, shuffle=False, augment=flip,
                                                       standardize=std)])
    np.testing.assert_allclose(xs, std(split.images[..., ::-1]), rtol=1e-6)


# --------------------------------------------------------------------------- the real Fashion-MNIST


def test_real_fashion_mnist_when_installed(monkeypatch):
    directory = REAL_SYSTEM_DIR / "fashion-mnist"
    if not (directory / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    monkeypatch.setattr(registry, "SYSTEM_DATA_DIR", REAL_SYSTEM_DIR)
    ds = data.load_dataset("fashion-mnist")
    info = data.dataset_info("fashion-mnist")
    assert ds.root == directory
    assert ds.train.images.shape == (info.train_size, *info.image_shape)
    assert ds.test.images.shape == (info.test_size, *info.image_shape)
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int64
    # the classes are balanced: 6000 train and 1000 test images each
    np.testing.assert_array_equal(np.bincount(ds.train.labels), [info.train_size // 10] * 10)
    np.testing.assert_array_equal(np.bincount(ds.test.labels), [info.test_size // 10] * 10)
    # the decompressed content matches the registry's checksums (the Debian .gz files are recompressed,
    # so their md5 differs from the published archives': only the content checksum applies)
    for spec in info.files:
        data.verify_file(directory / spec.name, replace(spec, md5=None))
    # and those checksums really are of the files' content
    content = gzip.decompress((directory / "train-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.sha256(content).hexdigest() == info.files[1].content_sha256
    subset = ds.select((1, 3))
    assert subset.classes == ("Trouser", "Dress") and len(subset.train) == 2 * info.train_size // 10
