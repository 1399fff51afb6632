"""The two containers strided writes arrays into: ``.npz`` (default) and ``.safetensors`` (optional).

Both hold a flat dict of named arrays plus one JSON text describing them,
and neither can execute code when read: ``.npz`` is read with
``allow_pickle=False``, and safetensors is a JSON header followed by raw
bytes. In an ``.npz`` the JSON is stored as a UTF-8 byte array under
:data:`META_KEY`; in a safetensors file it is the ``"strided"`` entry of
the header's metadata.

Reading checks the file's first bytes, so a file of another kind (a
``torch.save`` archive, a single ``.npy``, text, an empty file) is named
for what it is, and any damage (truncation, a bad CRC) becomes a
:class:`FileFormatError` naming the file and the problem.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib

import numpy as np

from .._optional import require
from .atomic import atomic_write

__all__ = ["FileFormatError", "META_KEY", "write", "read", "kind_of"]

META_KEY = "__strided__"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"


class FileFormatError(ValueError):
    """A file that exists but is not a readable strided file; the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _import_safetensors():
    st_numpy = require("safetensors.numpy", "the .safetensors format", extra="safetensors")
    return st_numpy, require("safetensors", "the .safetensors format", extra="safetensors").safe_open


def kind_of(path) -> str:
    """``'npz'`` or ``'safetensors'``, from the file's first bytes; a FileFormatError for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except IsADirectoryError:
        raise FileFormatError(path, "is a directory, not a model file") from None
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if not head:
        problem = "the file is empty (0 bytes): it was never written completely"
    elif head.startswith(NPY_MAGIC):
        problem = "this is a single .npy array, not an .npz archive written by strided.save"
    elif head[:1] == b"\x80":
        problem = "this is a Python pickle, which strided never loads (it can run arbitrary code)"
    elif head.lstrip()[:1] in (b"{", b"["):
        problem = "this is a JSON/text file, not a model file (.npz or .safetensors)"
    else:
        problem = (f"not an .npz archive or a .safetensors file (it starts with {head[:8]!r}; "
                   "an .npz starts with b'PK\\x03\\x04')")
    raise FileFormatError(path, problem)


# ----------------------------------------------------------------------------- npz
def _write_npz(f, arrays: dict) -> None:
    # Uncompressed: model files are small and this keeps save/load a memcpy;
    # zip still stores a CRC per entry, so damage is detected on reading.
    np.savez(f, **arrays)


def _read_npz(path) -> tuple[dict, str | None]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise FileFormatError(path, f"truncated or corrupt .npz archive ({exc})") from exc
    with archive:
        names = list(archive.files)
        if any(n.endswith(".pkl") for n in names):
            raise FileFormatError(
                path, "this is a PyTorch file (torch.save), not a strided file; load it with torch and convert "
                "with strided.io.from_torch(module) or model.load_state_dict({k: v.numpy() ...})")
        arrays = {}
        for name in names:
            try:
                arrays[name] = archive[name]
            except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error, KeyError) as exc:
                raise FileFormatError(path, f"entry {name!r} cannot be read: truncated or corrupt ({exc})") from exc
    meta = arrays.pop(META_KEY, None)
    if meta is None:
        return arrays, None
    if meta.dtype != np.uint8 or meta.ndim != 1:
        raise FileFormatError(path, f"entry {META_KEY!r} must be UTF-8 bytes, got an array {meta.dtype} {meta.shape}")
    try:
        return arrays, meta.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(path, f"entry {META_KEY!r} is not UTF-8 text ({exc})") from exc


# ----------------------------------------------------------------------------- safetensors
def _safetensors_bytes(arrays: dict, meta: str) -> bytes:
    st_numpy, _ = _import_safetensors()
    # np.require, not np.ascontiguousarray, which would turn 0-d arrays (a step counter) into shape (1,)
    return st_numpy.save({k: np.require(v, requirements="C") for k, v in arrays.items()}, metadata={"strided": meta})


def _read_safetensors(path) -> tuple[dict, str | None]:
    _, safe_open = _import_safetensors()
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) == 8:
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            raise FileFormatError(path, f"truncated .safetensors file: its header alone needs {8 + header_len} "
                                        f"bytes but the file has {size}")
    try:
        with safe_open(os.fspath(path), framework="numpy") as f:
            meta = (f.metadata() or {}).get("strided")
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError (not exported stably)
        raise FileFormatError(path, f"truncated or corrupt .safetensors file ({type(exc).__name__}: {exc})") from exc
    return arrays, meta


# ----------------------------------------------------------------------------- entry points
def write(path, arrays: dict, meta: str, kind: str = "npz") -> None:
    """Write ``arrays`` (name -> ndarray) and the JSON text ``meta`` to ``path`` atomically."""
    if META_KEY in arrays:
        raise ValueError(f"{META_KEY!r} is reserved and cannot be an array name")
    if kind == "safetensors":
        data = _safetensors_bytes(arrays, meta)  # built before the file is opened: a failure writes nothing
        with atomic_write(path) as f:
            f.write(data)
        return
    blob = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        _write_npz(f, {**arrays, META_KEY: blob})


def read(path) -> tuple[str, dict, str | None]:
    """``(kind, arrays, meta)`` of a file written by :func:`write` (``meta`` is None for a plain npz)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    kind = kind_of(path)
    arrays, meta = _read_npz(path) if kind == "npz" else _read_safetensors(path)
    return kind, arrays, meta
