"""Reader for the CIFAR-10 "python version" batches.

The official archive ``cifar-10-python.tar.gz`` unpacks to
``cifar-10-batches-py/`` with five training batches ``data_batch_1`` ..
``data_batch_5``, one ``test_batch`` and ``batches.meta``. Each batch is a
pickled dict (written by Python 2)::

    'data'   : uint8 array (10000, 3072); a row is 1024 red, 1024 green,
               1024 blue values of a 32 x 32 image, row-major, so
               ``data.reshape(-1, 3, 32, 32)`` is already NCHW
    'labels' : list of 10000 ints in 0..9
    batches.meta['label_names'] : the ten class names

The batches are pickles, and unpickling can run arbitrary code, so they are
read with an unpickler that only accepts the few NumPy globals an array
needs; anything else is reported as a corrupt file.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ._io import DataFileError

BATCH_DIR = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)
#: no file of the official archive is larger (its batches are 31,035,320 to 31,035,999 bytes,
#: batches.meta 158): a larger member or file is refused before it is read
MAX_BATCH_BYTES = 31_100_000
MAX_META_BYTES = 4096
#: the official archive holds 8 members (the directory, 7 files)
MAX_MEMBERS = 64

# the globals a pickled ndarray refers to, under NumPy 1 and NumPy 2 module names
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: a CIFAR batch holds only arrays")
        if module == "_codecs":
            import codecs

            return codecs.encode
        # resolve numpy.core.* through numpy._core.* on NumPy 2 (numpy.core is a deprecated alias there)
        modern = module.replace("numpy.core", "numpy._core", 1)
        try:
            return super().find_class(modern, name)
        except (ImportError, AttributeError):
            return super().find_class(module.replace("numpy._core", "numpy.core", 1), name)


def _unpickle(data: bytes, source: str) -> dict:
    try:
        # latin1 turns Python 2 str into str for the keys and keeps ndarray bytes intact
        obj = _ArrayOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # any unpickling failure means the file is not a CIFAR batch
        raise DataFileError(source, f"not a readable CIFAR-10 pickle: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DataFileError(source, f"expected a pickled dict, got {type(obj).__name__}")
    # pickles written with encoding='bytes' conventions have bytes keys
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def parse_batch(data: bytes, source) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch into uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``.

    ``source`` names the file (or archive member) in error messages.
    """
    source = os.fspath(source)
    batch = _unpickle(data, source)
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataFileError(
            source,
            f"not a CIFAR-10 batch: missing key(s) {missing}; expected 'data' and 'labels', "
            f"found {sorted(map(str, batch))}",
        )
    x = batch["data"]
    n_values = int(np.prod(IMAGE_SHAPE))
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != n_values:
        got = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataFileError(source, f"'data' must be a uint8 array of shape (N, {n_values}), got {got}")
    try:
        y = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataFileError(source, f"'labels' must be a list of ints: {exc}") from exc
    if y.shape != (x.shape[0],):
        raise DataFileError(
            source, f"counts do not match: 'data' holds {x.shape[0]} images but 'labels' has shape {y.shape}"
        )
    return x.reshape(-1, *IMAGE_SHAPE), y


def parse_meta(data: bytes, source) -> tuple[str, ...]:
    """Class names from ``batches.meta``."""
    source = os.fspath(source)
    meta = _unpickle(data, source)
    if "label_names" not in meta:
        raise DataFileError(
            source, f"not a CIFAR-10 batches.meta: no 'label_names' key, found {sorted(map(str, meta))}"
        )
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta["label_names"])


def find_batches(path) -> Path | None:
    """Where the CIFAR-10 batches are under ``path``: the archive, the batch directory, or ``path`` itself."""
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (path / BATCH_DIR, path):
        if all((candidate / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return candidate
    if (path / ARCHIVE).is_file():
        return path / ARCHIVE
    return None


def _size_cap(name: str) -> int:
    return MAX_META_BYTES if name == META else MAX_BATCH_BYTES


def _read_members(archive: Path) -> dict:
    """The batches of a ``.tar.gz``, read in one streaming pass (no extraction to disk) and parsed as they come.

    Every member's declared size is checked against the official files' sizes before
    it is read, so a crafted archive cannot make the reader inflate more than that.
    """
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    found: dict = {}
    try:
        # streaming mode: members are read in archive order without seeking back in the gzip stream
        with tarfile.open(archive, "r|gz") as tar:
            for count, member in enumerate(tar, 1):
                name = member.name.rsplit("/", 1)[-1]
                if count > MAX_MEMBERS:
                    raise DataFileError(archive, f"the archive holds more than {MAX_MEMBERS} members; the "
                                                 "official CIFAR-10 archive holds 8")
                cap = _size_cap(name) if name in wanted else MAX_BATCH_BYTES
                if member.size > cap:
                    raise DataFileError(archive, f"member {member.name!r:.120} declares {member.size} bytes; no file "
                                                 f"of the CIFAR-10 archive is larger than {cap}")
                if member.isfile() and name in wanted:
                    source = f"{archive}:{name}"
                    payload = tar.extractfile(member).read()
                    found[name] = parse_meta(payload, source) if name == META else parse_batch(payload, source)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise DataFileError(archive, f"truncated or corrupt archive: {type(exc).__name__}: {exc}") from exc
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in found]
    if missing:
        raise DataFileError(archive, f"the archive lacks the CIFAR-10 batch file(s) {missing}")
    return found


def _read_directory(location: Path) -> dict:
    """The batches of a directory, each file's size checked before it is read."""
    found = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH, META):
        path = location / name
        if not path.is_file():
            continue
        if path.stat().st_size > _size_cap(name):
            raise DataFileError(path, f"{path.stat().st_size} bytes; the official {name} is at most "
                                      f"{_size_cap(name)} bytes")
        payload = path.read_bytes()
        found[name] = parse_meta(payload, path) if name == META else parse_batch(payload, path)
    return found


def read_cifar10(path) -> dict:
    """Read CIFAR-10 from a directory of batches (or its parent) or from the official ``.tar.gz``.

    Returns ``{'train': (images, labels), 'test': (images, labels), 'classes': names or None}``
    with images uint8 ``(N, 3, 32, 32)`` (50000 train, 10000 test) and labels int64.
    """
    location = find_batches(path)
    if location is None:
        raise FileNotFoundError(
            f"no CIFAR-10 batches in {os.fspath(path)}: expected {ARCHIVE}, a {BATCH_DIR}/ directory, "
            f"or the files {', '.join((*TRAIN_BATCHES, TEST_BATCH))}"
        )
    parsed = _read_members(location) if location.is_file() else _read_directory(location)
    train = [parsed[n] for n in TRAIN_BATCHES]
    return {
        "train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        "test": parsed[TEST_BATCH],
        "classes": parsed.get(META),
    }
