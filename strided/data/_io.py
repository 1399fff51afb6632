"""File helpers shared by the dataset readers and the downloader.

Two promises hold for every data file strided touches:

* a file that cannot be read (wrong format, truncated, corrupt compression)
  raises :class:`DataFileError` naming the file and what is wrong with it,
  never a bare ``EOFError`` or ``zlib.error`` from deep inside the stack;
* a file that strided writes appears complete or not at all: it is written
  to a temporary file in the same directory and moved into place with
  ``os.replace`` (atomic on POSIX and Windows), so an interrupted download
  never leaves a half-written file that a later run would trust.
"""
from __future__ import annotations

import contextlib
import gzip
import zlib

from ..io import FileFormatError

GZIP_MAGIC = b"\x1f\x8b"


class DataFileError(FileFormatError):
    """A data file exists but its content is not what its format requires (a :class:`~strided.io.FileFormatError`)."""


def is_gzip(path) -> bool:
    """True when the file starts with the gzip magic bytes (the content decides, not the name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


@contextlib.contextmanager
def open_maybe_gzip(path):
    """Open ``path`` for binary reading, decompressing on the fly when it is gzip.

    Errors of the gzip layer (a cut-off stream, a bad CRC, corrupt deflate
    data) are re-raised as :class:`DataFileError` naming the file.
    """
    compressed = is_gzip(path)
    f = gzip.open(path, "rb") if compressed else open(path, "rb")
    try:
        with f:
            yield f
    except EOFError as exc:
        raise DataFileError(path, f"truncated gzip file: the compressed stream ends early ({exc})") from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataFileError(path, f"corrupt gzip file: {exc}") from exc


def read_exactly(f, n: int, path, what: str) -> bytes:
    """Read exactly ``n`` bytes or fail naming what was being read."""
    data = f.read(n)
    if len(data) != n:
        raise DataFileError(path, f"file ends inside the {what}: expected {n} bytes, found {len(data)}")
    return data


def read_into(f, buffer, path, what: str) -> None:
    """Fill a writable uint8 ``buffer`` from ``f`` (no intermediate copy) or fail naming the shortfall."""
    view = memoryview(buffer).cast("B")
    total = 0
    while total < len(view):
        got = f.readinto(view[total:])
        if not got:
            break
        total += got
    if total != len(view):
        raise DataFileError(
            path, f"truncated {what}: the header declares {len(view)} bytes of data but the file holds {total}"
        )
