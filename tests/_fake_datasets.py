"""Tiny dataset files written byte by byte in the published formats, for the data tests.

The writers here do not use strided's readers or any strided code, so a
test that reads these files back checks the readers against the format
itself: IDX headers are packed with ``struct``, CIFAR-10 batches are
pickled dicts like the official (Python 2) ones.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def idx_bytes(array: np.ndarray, *, count=None, magic=None) -> bytes:
    """The IDX encoding of ``array``; ``count``/``magic`` override the header to make corrupt files."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    code = IDX_CODES[np.dtype(big.dtype.str)] if magic is None else None
    dims = list(array.shape)
    if count is not None:
        dims[0] = count
    head = struct.pack(">I", magic) if magic is not None else bytes([0, 0, code, array.ndim])
    return head + struct.pack(f">{len(dims)}I", *dims) + np.ascontiguousarray(big).tobytes()


def write(path, data: bytes, *, gz: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_idx_dataset(directory, *, n_train=12, n_test=6, shape=(28, 28), num_classes=10, seed=0, gz=True,
                     label_offset=0):
    """Write the four MNIST-named IDX files into ``directory``; return the arrays written.

    Labels cycle through all classes (shifted by ``label_offset``) so every class is present.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        labels = ((np.arange(n) + label_offset) % num_classes).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write(Path(directory) / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), gz=gz)
        write(Path(directory) / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), gz=gz)
        out[split] = (images, labels)
    return out


class _Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 ``str`` (BINSTRING opcodes), as the official batches were written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2 with NumPy 1 wrote it: str as BINSTRING, ``numpy.core`` globals."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.", b"numpy.core.")


def cifar_batch_bytes(data: np.ndarray, labels, *, style="py2", drop=(), extra=None) -> bytes:
    """A pickled CIFAR batch dict.

    style: 'py2' (like the official files: Python 2 str keys and array data),
    'bytes-keys' or 'str-keys' (Python 3 pickles of either key type).
    """
    batch = {"batch_label": "fake batch", "labels": list(map(int, labels)), "data": data,
             "filenames": [f"img_{i}.png" for i in range(len(data))]}
    batch.update(extra or {})
    for key in drop:
        batch.pop(key)
    if style == "str-keys":
        return pickle.dumps(batch, protocol=2)
    batch = {k.encode(): v for k, v in batch.items()}
    return py2_pickle(batch) if style == "py2" else pickle.dumps(batch, protocol=2)


def fake_cifar_members(n_per_batch=4, seed=0, **kw) -> tuple[dict, dict]:
    """Batch name -> pickled bytes, and the arrays: {'train': (images NCHW, labels), 'test': ...}."""
    rng = np.random.default_rng(seed)
    members, rows, labels = {}, {}, {}
    for i, name in enumerate(CIFAR_BATCHES):
        rows[name] = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels[name] = (np.arange(n_per_batch) + i) % 10
        members[name] = cifar_batch_bytes(rows[name], labels[name], **kw)
    members["batches.meta"] = py2_pickle({b"label_names": [c.encode() for c in CIFAR_CLASSES],
                                          b"num_cases_per_batch": n_per_batch})
    train = [n for n in CIFAR_BATCHES if n != "test_batch"]
    arrays = {
        "train": (np.concatenate([rows[n] for n in train]), np.concatenate([labels[n] for n in train])),
        "test": (rows["test_batch"], labels["test_batch"]),
    }
    return members, arrays


def write_cifar_dir(directory, members: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (directory / name).write_bytes(data)
    return directory


def cifar_archive_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
