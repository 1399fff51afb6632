"""The two containers strided writes arrays into: ``.npz`` (default) and ``.safetensors`` (optional).

Both hold a flat dict of named arrays plus one JSON text describing them,
and neither can execute code when read: an ``.npz`` entry's ``.npy`` header
is read as a literal and only numeric and boolean dtypes are accepted (never
a pickle), and safetensors is a JSON header followed by raw bytes. In an
``.npz`` the JSON is stored as a UTF-8 byte array under :data:`META_KEY`; in
a safetensors file it is the ``"strided"`` entry of the header's metadata.

Reading never trusts a size it has not checked. :func:`open_checked` reads
every entry's header (dtype, shape, byte count) and checks it against the
archive's own record of the entry and against the file's real size;
compressed entries may expand at most :data:`MAX_EXPANSION` times (plus
:data:`FREE_EXPANSION`), JSON may nest at most :data:`MAX_JSON_DEPTH` deep and
hold at most :data:`MAX_JSON_CONTAINERS` objects and arrays.
Only then is an array allocated, at its checked size, and filled in pieces
of :data:`READ_CHUNK` bytes, so a crafted file cannot make the reader
allocate more than the file can hold.

Reading checks the file's first bytes, so a file of another kind (a
``torch.save`` archive, a single ``.npy``, text, an empty file) is named
for what it is, and any damage (truncation, a bad CRC) becomes a
:class:`FileFormatError` naming the file and the problem.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from .._optional import require
from .atomic import atomic_write

__all__ = ["FileFormatError", "META_KEY", "Container", "Header", "write", "read", "open_checked", "kind_of", "parse_json",
           "json_depth", "json_structure", "MAX_JSON_DEPTH", "MAX_JSON_CONTAINERS", "MAX_EXPANSION", "FREE_EXPANSION"]

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


# ----------------------------------------------------------------------------- limits
#: JSON deeper than this (objects and arrays inside each other) is refused before it is parsed;
#: strided's own descriptions are a few levels deep per nested container
MAX_JSON_DEPTH = 100
#: and more objects and arrays than this (each costs a few hundred bytes once parsed) are refused too;
#: a model of MAX_MODULES layers and its checkpoint need a small fraction of it
MAX_JSON_CONTAINERS = 200_000
#: compressed entries (``np.savez_compressed``) may expand to this many times their compressed
#: size, plus :data:`FREE_EXPANSION` bytes; strided itself writes uncompressed entries
MAX_EXPANSION = 8
FREE_EXPANSION = 16 << 20
#: arrays are read in pieces of this many bytes, never more than the checked size
READ_CHUNK = 1 << 20
_MAX_NPY_HEADER = 1 << 16
_KINDS = "biufc"  # numeric and boolean arrays only: no objects, strings, records or datetimes

_NOT_MARKS = bytes(c for c in range(256) if c not in b'[]{}"')


def json_depth(text: str) -> int:
    """How deeply objects and arrays nest in the JSON ``text`` (brackets inside strings skipped)."""
    return json_structure(text)[0]


def json_structure(text: str) -> tuple:
    """``(depth, containers)``: how deeply objects and arrays nest in the JSON ``text`` and how many there are
    (brackets inside strings skipped).

    Computed without recursion or a Python loop over characters: escaped
    backslashes and quotes are dropped, everything but brackets and quotes
    deleted (``bytes.translate``), and the depth is a running sum over the
    brackets outside strings (an even number of quotes before them).
    """
    marks = text.replace("\\\\", "").replace('\\"', "").encode("utf-8", "replace").translate(None, _NOT_MARKS)
    depth = deepest = containers = 0
    inside = 0  # 1 while within a string, carried from piece to piece
    for start in range(0, len(marks), READ_CHUNK):
        codes = np.frombuffer(marks, dtype=np.uint8, count=min(READ_CHUNK, len(marks) - start), offset=start)
        quotes = (codes == ord('"')).astype(np.uint8)
        within = np.bitwise_xor.accumulate(quotes) ^ inside  # 1 inside a string (a closing quote counts as 0)
        inside = int(within[-1])
        opening = (codes == ord("{")) | (codes == ord("["))
        closing = (codes == ord("}")) | (codes == ord("]"))
        steps = np.where(within == 1, 0, opening.astype(np.int8) - closing.astype(np.int8))
        containers += int(np.count_nonzero(steps == 1))
        running = np.cumsum(steps, dtype=np.int64) + depth
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest, containers


def parse_json(path, text: str, what: str = "description"):
    """Decode JSON ``text`` read from ``path``, refusing nesting deeper than :data:`MAX_JSON_DEPTH`."""
    depth, count = json_structure(text)
    if depth > MAX_JSON_DEPTH:
        raise FileFormatError(path, f"its {what} nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted")
    if count > MAX_JSON_CONTAINERS:
        raise FileFormatError(path, f"its {what} holds {count} JSON objects and arrays; at most "
                                    f"{MAX_JSON_CONTAINERS} are accepted")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an int of more digits than Python converts
        raise FileFormatError(path, f"its {what} is not valid JSON ({exc})") from exc


class Header:
    """What one stored array will be, read before its data: ``dtype``, ``shape`` and ``order`` ('C' or 'F')."""

    __slots__ = ("dtype", "shape", "order")

    def __init__(self, dtype: np.dtype, shape: tuple, order: str = "C"):
        self.dtype, self.shape, self.order = dtype, shape, order

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _check_dtype(path, name: str, dtype: np.dtype) -> None:
    if dtype.kind not in _KINDS or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise FileFormatError(path, f"entry {name!r} has dtype {dtype}; only numeric and boolean arrays are read")


def _check_shape(path, name: str, shape) -> tuple:
    if (not isinstance(shape, (tuple, list)) or len(shape) > 32
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise FileFormatError(path, f"entry {name!r} has the malformed shape {shape!r:.80}; expected at most 32 "
                                    "non-negative ints")
    return tuple(shape)


# ----------------------------------------------------------------------------- npz
def _write_npz(f, arrays: dict) -> None:
    # Uncompressed: model files are small and this keeps save/load a memcpy;
    # zip still stores a CRC per entry, so damage is detected on reading.
    np.savez(f, **arrays)


_NPZ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, zlib.error,
               NotImplementedError, RuntimeError)


_USUAL_NPY_HEADER = re.compile(r"\{'descr': '(?P<descr>[<>|=]?[biuf][1-8]|\|b1)', 'fortran_order': "
                               r"(?P<fortran>True|False), 'shape': \((?P<shape>(?:\d{1,19}, ?)*\d{0,19})\), \} *\n")


def _npy_header(path, name: str, f, entry_size: int) -> Header:
    """Read and check the ``.npy`` header at the start of an archive entry of ``entry_size`` bytes."""
    magic = f.read(8)
    if len(magic) != 8 or not magic.startswith(NPY_MAGIC) or magic[6] not in (1, 2, 3):
        raise FileFormatError(path, f"entry {name!r} is not a .npy array (it starts with {magic[:8]!r})")
    length_bytes = f.read(2 if magic[6] == 1 else 4)
    if len(length_bytes) not in (2, 4):
        raise FileFormatError(path, f"entry {name!r} ends inside its .npy header")
    length = int.from_bytes(length_bytes, "little")
    if length > _MAX_NPY_HEADER:
        raise FileFormatError(path, f"entry {name!r} has a .npy header of {length} bytes; at most "
                                    f"{_MAX_NPY_HEADER} are accepted")
    text = f.read(length)
    if len(text) != length:
        raise FileFormatError(path, f"entry {name!r} ends inside its .npy header")
    try:
        text = text.decode("utf-8" if magic[6] == 3 else "latin1")
        usual = _USUAL_NPY_HEADER.fullmatch(text)
        if usual:  # what np.save writes, read without the Python parser
            dtype = np.dtype(usual["descr"])
            shape = tuple(int(s) for s in usual["shape"].replace(",", " ").split())
            fortran = usual["fortran"] == "True"
        else:
            header = ast.literal_eval(text)
            dtype = np.lib.format.descr_to_dtype(header["descr"])
            shape, fortran = header["shape"], header["fortran_order"]
    except Exception as exc:  # literal_eval and descr_to_dtype raise many kinds of errors on bad text
        raise FileFormatError(path, f"entry {name!r} has a malformed .npy header ({type(exc).__name__}: "
                                    f"{str(exc):.120})") from exc
    _check_dtype(path, name, dtype)
    shape = _check_shape(path, name, shape)
    if not isinstance(fortran, bool):
        raise FileFormatError(path, f"entry {name!r} has a malformed .npy header (fortran_order={fortran!r:.40})")
    out = Header(dtype, shape, "F" if fortran else "C")
    expected = len(magic) + len(length_bytes) + length + out.nbytes
    if expected != entry_size:
        raise FileFormatError(path, f"entry {name!r} declares {dtype} {shape} ({out.nbytes} bytes of data), but the "
                                    f"archive says the entry holds {entry_size - expected + out.nbytes} bytes")
    return out


class _Npz:
    """An ``.npz`` opened for checked reading: the archive's directory is checked first, each entry's ``.npy``
    header when the entry is first asked for, each array read in bounded pieces on demand."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except _NPZ_ERRORS as exc:
            raise FileFormatError(path, f"truncated or corrupt .npz archive ({exc})") from exc
        try:
            self._infos = self._check_directory(size)
        except BaseException:
            self._zip.close()
            raise
        self._headers: dict = {}
        self.names = tuple(self._infos)

    def _check_directory(self, size: int) -> dict:
        path, infos = self.path, self._zip.infolist()
        if any(i.filename.endswith(".pkl") for i in infos):
            raise FileFormatError(
                path, "this is a PyTorch file (torch.save), not a strided file; load it with torch and convert "
                "with strided.io.from_torch(module) or model.load_state_dict({k: v.numpy() ...})")
        stored = compressed = expanded = 0
        by_key = {}
        for i in infos:
            if i.compress_type == zipfile.ZIP_STORED:
                if i.file_size != i.compress_size:
                    raise FileFormatError(path, f"entry {i.filename!r:.80} is stored uncompressed but declares "
                                                f"{i.file_size} bytes in {i.compress_size}")
                stored += i.compress_size
            elif i.compress_type == zipfile.ZIP_DEFLATED:
                compressed += i.compress_size
                expanded += i.file_size
            else:
                raise FileFormatError(path, f"entry {i.filename!r:.80} uses zip compression method "
                                            f"{i.compress_type}; only stored and deflated entries are read")
            key = i.filename[:-4] if i.filename.endswith(".npy") else i.filename
            if key in by_key:
                raise FileFormatError(path, f"entry {key!r:.80} appears twice in the archive")
            by_key[key] = i
        if stored + compressed > size:
            raise FileFormatError(path, f"its entries declare {stored + compressed} bytes, more than the file's "
                                        f"{size}: truncated or corrupt")
        if expanded > MAX_EXPANSION * compressed + FREE_EXPANSION:
            raise FileFormatError(
                path, f"its compressed entries declare {expanded} bytes uncompressed from {compressed} bytes; at "
                      f"most {MAX_EXPANSION}x plus {FREE_EXPANSION >> 20} MiB is accepted (re-save it uncompressed: "
                      "np.savez or strided.io.save)")
        return by_key

    def header(self, key: str) -> Header:
        """The checked ``.npy`` header of entry ``key`` (read once)."""
        if key not in self._headers:
            info = self._infos[key]
            try:
                with self._zip.open(info) as f:
                    self._headers[key] = _npy_header(self.path, key, f, info.file_size)
            except FileFormatError:
                raise
            except _NPZ_ERRORS as exc:
                raise FileFormatError(self.path, f"entry {key!r} cannot be read: truncated or corrupt "
                                                 f"({exc})") from exc
        return self._headers[key]

    def read(self, key: str) -> np.ndarray:
        """The array stored under ``key``, allocated at its checked size and filled piece by piece."""
        header, info = self.header(key), self._infos[key]
        out = np.empty(header.shape[::-1] if header.order == "F" else header.shape, dtype=header.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        try:
            with self._zip.open(info) as f:
                f.read(info.file_size - header.nbytes)  # the .npy header, checked when the file was opened
                filled = 0
                while filled < len(view):
                    got = f.readinto(view[filled:filled + READ_CHUNK])
                    if not got:
                        raise FileFormatError(self.path, f"entry {key!r} ends after {filled} of its "
                                                         f"{len(view)} bytes: truncated")
                    filled += got
                f.read(1)  # reaching the entry's end checks its CRC
        except FileFormatError:
            raise
        except _NPZ_ERRORS as exc:
            raise FileFormatError(self.path, f"entry {key!r} cannot be read: truncated or corrupt ({exc})") from exc
        return out.T if header.order == "F" else out

    def close(self) -> None:
        self._zip.close()


# ----------------------------------------------------------------------------- safetensors
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                       "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def _safetensors_bytes(arrays: dict, meta: str) -> bytes:
    st_numpy, _ = _import_safetensors()
    # np.require, not np.ascontiguousarray, which would turn 0-d arrays (a step counter) into shape (1,)
    return st_numpy.save({k: np.require(v, requirements="C") for k, v in arrays.items()}, metadata={"strided": meta})


class _Safetensors:
    """A ``.safetensors`` file opened for checked reading: its JSON header is parsed and every tensor's
    dtype, shape and byte range checked against the file's size before any tensor is read."""

    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        self._file = open(path, "rb")
        try:
            self.headers, self.meta = self._read_header(size)
        except BaseException:
            self._file.close()
            raise

    def _read_header(self, size: int):
        path, f = self.path, self._file
        head = f.read(8)
        if len(head) != 8:
            raise FileFormatError(path, f"truncated .safetensors file: {len(head)} bytes")
        (length,) = struct.unpack("<Q", head)
        if 8 + length > size:
            raise FileFormatError(path, f"truncated .safetensors file: its header alone needs {8 + length} "
                                        f"bytes but the file has {size}")
        try:
            header = parse_json(path, f.read(length).decode("utf-8"), "header")
        except UnicodeDecodeError as exc:
            raise FileFormatError(path, f"its header is not UTF-8 text ({exc})") from exc
        if not isinstance(header, dict):
            raise FileFormatError(path, "its header is not a JSON object")
        self._data_start, data_size = 8 + length, size - 8 - length
        extra = header.pop("__metadata__", None) or {}
        meta = extra.get("strided") if isinstance(extra, dict) else None
        if meta is not None and not isinstance(meta, str):
            raise FileFormatError(path, "its header's strided description is not a string")
        headers, self._offsets = {}, {}
        for name, spec in header.items():
            if not isinstance(spec, dict) or spec.get("dtype") not in _SAFETENSORS_DTYPES:
                raise FileFormatError(path, f"tensor {name!r} has the malformed or unsupported header {spec!r:.120}")
            h = Header(np.dtype(_SAFETENSORS_DTYPES[spec["dtype"]]), _check_shape(path, name, spec.get("shape")))
            offsets = spec.get("data_offsets")
            if (not isinstance(offsets, list) or len(offsets) != 2
                    or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                    or not 0 <= offsets[0] <= offsets[1] or offsets[1] - offsets[0] != h.nbytes):
                raise FileFormatError(path, f"tensor {name!r:.80} ({h.dtype} {h.shape}, {h.nbytes} bytes) has the "
                                            f"byte range {offsets!r:.80}, which does not fit it: corrupt")
            if offsets[1] > data_size:
                raise FileFormatError(path, f"truncated .safetensors file: tensor {name!r:.80} ends at byte "
                                            f"{offsets[1]} of the data but the file holds {data_size}")
            headers[name], self._offsets[name] = h, offsets[0]
        return headers, meta

    @property
    def names(self) -> tuple:
        return tuple(self.headers)

    def header(self, key: str) -> Header:
        return self.headers[key]

    def read(self, key: str) -> np.ndarray:
        header = self.headers[key]
        out = np.empty(header.shape, dtype=header.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        self._file.seek(self._data_start + self._offsets[key])
        filled = 0
        while filled < len(view):
            got = self._file.readinto(view[filled:filled + READ_CHUNK])
            if not got:
                raise FileFormatError(self.path, f"tensor {key!r} ends early: truncated")
            filled += got
        return out.astype(header.dtype.newbyteorder("="), copy=False)

    def close(self) -> None:
        self._file.close()


# ----------------------------------------------------------------------------- checked reading
class _Headers(Mapping):
    """Name -> :class:`Header` of a container's arrays, each header read and checked when first asked for."""

    def __init__(self, names, header):
        self._names, self._header = {n: None for n in names}, header

    def __getitem__(self, key: str) -> Header:
        if key not in self._names:
            raise KeyError(key)
        return self._header(key)

    def __contains__(self, key) -> bool:
        return key in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Container(Mapping):
    """A strided file opened for reading: ``headers`` (name -> :class:`Header`, each checked when first used)
    and ``meta`` (JSON text or None); ``container[name]`` reads one array (at most once, in bounded pieces).

    Use it as a context manager (``with containers.open_checked(path) as c:``).
    """

    def __init__(self, path):
        self.path = path
        self.kind = kind_of(path)
        self._reader = _Npz(path) if self.kind == "npz" else _Safetensors(path)
        self._cache: dict = {}
        try:
            self.headers = _Headers([n for n in self._reader.names if n != META_KEY or self.kind != "npz"],
                                    self._reader.header)
            self.meta = self._meta_text()
        except BaseException:
            self._reader.close()
            raise

    def _meta_text(self):
        if self.kind == "safetensors":
            return self._reader.meta
        if META_KEY not in self._reader.names:
            return None
        header = self._reader.header(META_KEY)
        if header.dtype != np.uint8 or len(header.shape) != 1:
            raise FileFormatError(self.path, f"entry {META_KEY!r} must be UTF-8 bytes, got an array {header.dtype} "
                                             f"{header.shape}")
        try:
            return self._reader.read(META_KEY).tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileFormatError(self.path, f"entry {META_KEY!r} is not UTF-8 text ({exc})") from exc

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.headers:
            raise KeyError(key)
        if key not in self._cache:
            self._cache[key] = self._reader.read(key)
        return self._cache[key]

    def __iter__(self):
        return iter(self.headers)

    def __len__(self) -> int:
        return len(self.headers)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def open_checked(path) -> Container:
    """Open a file written by :func:`write` for checked reading (headers and description first)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    return Container(path)


def read(path) -> tuple[str, dict, str | None]:
    """``(kind, arrays, meta)`` of a file written by :func:`write` (``meta`` is None for a plain npz)."""
    with open_checked(path) as c:
        return c.kind, {k: c[k] for k in c}, c.meta
