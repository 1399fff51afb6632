"""Reader for the IDX format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension,
then the values in C order::

    magic  = 0x00 0x00 <type> <ndim>     type 0x08 = uint8, 0x09 = int8,
                                         0x0B = int16, 0x0C = int32,
                                         0x0D = float32, 0x0E = float64
    dims   = ndim x uint32 (big-endian)  e.g. 60000, 28, 28 for images
    values = prod(dims) values, big-endian

MNIST's images are ``0x00000803`` (uint8, 3 dimensions: N x 28 x 28), its
labels ``0x00000801`` (uint8, N). Files may be gzip-compressed (as
published) or raw (as after ``gunzip``); the content decides, not the name.
"""
from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np

from ._io import DataFileError, open_maybe_gzip, read_exactly, read_into

IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


#: the most dimensions an IDX header may declare (NumPy arrays have at most 64)
MAX_DIMS = 16
#: gzip payloads up to this size are read straight into the output (MNIST's largest is 47 MB);
#: larger ones in pieces of GZIP_PIECE_BYTES, so a header that lies costs only what the stream holds
GZIP_DIRECT_BYTES = 48 << 20
GZIP_PIECE_BYTES = 16 << 20
#: a gzip payload may declare at most this many times the compressed file's size (plus GZIP_DIRECT_BYTES)
GZIP_MAX_EXPANSION = 64


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array of the shape its header declares.

    Multi-byte types are returned in native byte order. The values are read
    straight into the output array, so a 47 MB image file costs one
    allocation. Raises :class:`DataFileError` naming the file when the
    magic number is wrong, the data is shorter or longer than the header
    declares, or the gzip stream is cut off or corrupt.
    """
    path = os.fspath(path)
    with open_maybe_gzip(path) as f:
        magic = read_exactly(f, 4, path, "IDX magic number")
        code = int.from_bytes(magic, "big")
        if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_TYPES or magic[3] == 0:
            raise DataFileError(
                path,
                f"not an IDX file: magic number 0x{code:08x}; expected 0x0000TTNN with type TT in "
                f"{{{', '.join(f'0x{t:02x}' for t in IDX_TYPES)}}} and NN >= 1 dimensions "
                "(0x00000803 for images, 0x00000801 for labels)",
            )
        ndim = magic[3]
        if ndim > MAX_DIMS:
            raise DataFileError(path, f"the IDX header declares {ndim} dimensions; at most {MAX_DIMS} are read "
                                      "(images have 3, labels 1)")
        dims = struct.unpack(f">{ndim}I", read_exactly(f, 4 * ndim, path, f"IDX header ({ndim} dimension sizes)"))
        dtype = IDX_TYPES[magic[2]]
        _check_payload_size(f, path, dims, dtype, header_bytes=4 + 4 * ndim)
        if isinstance(f, gzip.GzipFile):
            out = _read_gzip_payload(f, path, dims, dtype)
        else:
            out = np.empty(dims, dtype=dtype)
            read_into(f, out.reshape(-1).view(np.uint8), path, f"IDX data of shape {dims}")
        if f.read(1):
            raise DataFileError(
                path,
                f"the file holds more data than its header declares: shape {dims} "
                f"is {out.nbytes} bytes of {dtype.name}",
            )
    return out.astype(dtype.newbyteorder("="), copy=False)


def _read_gzip_payload(f, path, dims, dtype) -> np.ndarray:
    """The values of a gzip file, read in pieces so that a header claiming more than the stream holds
    costs only what the stream holds; the output is allocated once the data is known to be there."""
    declared = math.prod(dims) * dtype.itemsize
    if declared <= GZIP_DIRECT_BYTES:
        out = np.empty(dims, dtype=dtype)
        read_into(f, out.reshape(-1).view(np.uint8), path, f"IDX data of shape {dims}")
        return out
    pieces, total = [], 0
    while total < declared:
        piece = f.read(min(GZIP_PIECE_BYTES, declared - total))
        if not piece:
            raise DataFileError(path, f"truncated IDX data of shape {dims}: the header declares {declared} bytes "
                                      f"of data but the file holds {total}")
        pieces.append(piece)
        total += len(piece)
    out = np.empty(dims, dtype=dtype)
    flat, at = out.reshape(-1).view(np.uint8), 0
    while pieces:
        piece = pieces.pop(0)
        flat[at:at + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        at += len(piece)
    return out


def _check_payload_size(f, path, dims, dtype, header_bytes: int) -> None:
    """Refuse a header whose counts cannot match the file before allocating for them.

    A raw file's size is known exactly. A gzip file's is not, but deflate
    expands at most ~1032:1, which still rules out a corrupt count asking
    for terabytes; beyond :data:`GZIP_MAX_EXPANSION` (real image and label
    files expand about 5x) the file is refused as well.
    """
    declared = int(np.prod(dims, dtype=object)) * dtype.itemsize
    size = os.path.getsize(path)
    if isinstance(f, gzip.GzipFile):
        if declared > 1032 * size + 1024:
            raise DataFileError(
                path, f"the header declares shape {dims} ({declared} bytes), impossible for a {size}-byte gzip file"
            )
        if declared > GZIP_MAX_EXPANSION * size + GZIP_DIRECT_BYTES:
            raise DataFileError(
                path, f"the header declares shape {dims} ({declared} bytes) from a {size}-byte gzip file, an "
                      f"expansion over {GZIP_MAX_EXPANSION}x (MNIST's files expand about 5x); if the file is "
                      "genuine, decompress it first (gunzip) and read the raw file"
            )
        return
    available = size - header_bytes
    if declared != available:
        what = "truncated: the" if available < declared else "counts do not match the payload: the"
        raise DataFileError(
            path, f"{what} header declares shape {dims} = {declared} bytes of {dtype.name} but {available} follow"
        )


def read_idx_images(path) -> np.ndarray:
    """Read an IDX image file as uint8 ``(N, 1, H, W)`` (a view of the ``(N, H, W)`` file content)."""
    x = read_idx(path)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataFileError(
            path, f"expected uint8 images of shape (N, H, W) (magic 0x00000803), got {x.dtype} of shape {x.shape}"
        )
    return x[:, None]


def read_idx_labels(path) -> np.ndarray:
    """Read an IDX label file as int64 ``(N,)``, the dtype loss functions index with."""
    y = read_idx(path)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataFileError(
            path, f"expected integer labels of shape (N,) (magic 0x00000801), got {y.dtype} of shape {y.shape}"
        )
    return y.astype(np.int64)
