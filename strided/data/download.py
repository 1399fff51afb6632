"""Downloading data files: mirrors tried in order, checksums verified, atomic writes.

A file is fetched into a temporary file next to its destination, verified,
and only then moved into place with ``os.replace``: an interrupted or
corrupt download leaves nothing behind that a later run could mistake for
data. Every checksum that is known for a file must match:

* ``md5`` of the file as published (the official ``.gz`` or ``.tar.gz``);
* ``content_sha256`` / ``content_size`` of the *decompressed* content, which
  identifies the data even when a mirror or a distribution recompresses the
  archive (Debian's Fashion-MNIST ``.gz`` files differ byte-wise from the
  official ones but decompress to the same IDX files);
* ``members``: md5 of files inside a ``.tar.gz`` (the CIFAR-10 batches).

Structural checks (IDX magic number and counts) run on top, so a file whose
content checksum is not published is still verified as far as possible.
Any URL that ``urllib`` opens works, including ``file://`` for offline
mirrors. The networking modules are imported by :func:`download_file`, when
a download starts: reading and verifying files needs none of them.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..io.atomic import atomic_write
from ._io import DataFileError, open_maybe_gzip
from .idx import read_idx

CHUNK = 1 << 20


class ChecksumError(DataFileError):
    """A file's content does not match its published checksum or size."""


class DownloadError(OSError):
    """No mirror delivered a file that passed verification."""


@dataclass(frozen=True)
class FileSpec:
    """One published file and everything known to verify it.

    ``name`` is the file name on the mirrors and on disk. ``kind`` selects the
    structural check: ``'idx'`` (parsed with :func:`read_idx`) or ``'tar.gz'``.
    """

    name: str
    kind: str
    md5: str | None = None
    content_sha256: str | None = None
    content_size: int | None = None
    members: dict = field(default_factory=dict)  # member base name -> md5 (tar.gz only)


def file_digest(path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(path, what: str, expected, got) -> ChecksumError:
    return ChecksumError(path, f"{what} mismatch: expected {expected}, got {got}")


def verify_file(path, spec: FileSpec) -> None:
    """Check ``path`` against every checksum and structural rule ``spec`` knows; raise on the first failure."""
    path = os.fspath(path)
    if spec.md5 is not None:
        got = file_digest(path, "md5")
        if got != spec.md5:
            raise _mismatch(path, "md5 of the published file", spec.md5, got)
    if spec.content_sha256 is not None or spec.content_size is not None:
        h, size = hashlib.sha256(), 0
        with open_maybe_gzip(path) as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
                size += len(chunk)
        if spec.content_size is not None and size != spec.content_size:
            raise _mismatch(path, "decompressed size", f"{spec.content_size} bytes", f"{size} bytes")
        if spec.content_sha256 is not None and h.hexdigest() != spec.content_sha256:
            raise _mismatch(path, "sha256 of the decompressed content", spec.content_sha256, h.hexdigest())
    if spec.kind == "idx":
        read_idx(path)  # magic number and counts against the payload
    elif spec.kind == "tar.gz":
        _verify_members(path, spec.members)
    else:
        raise ValueError(f"FileSpec.kind must be 'idx' or 'tar.gz', got {spec.kind!r}")


def _verify_members(path, members: dict) -> None:
    seen = {}
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in members:
                    h = hashlib.md5()
                    f = tar.extractfile(member)
                    for chunk in iter(lambda: f.read(CHUNK), b""):
                        h.update(chunk)
                    seen[name] = h.hexdigest()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFileError(path, f"truncated or corrupt archive: {type(exc).__name__}: {exc}") from exc
    for name, expected in members.items():
        if name not in seen:
            raise ChecksumError(path, f"the archive lacks {name}")
        if seen[name] != expected:
            raise _mismatch(path, f"md5 of archive member {name}", expected, seen[name])


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def download_file(urls, dest, spec: FileSpec, *, timeout: float = 60.0, log=print_to_stderr) -> Path:
    """Fetch ``spec.name`` from the first of ``urls`` that delivers a verified file; write ``dest`` atomically.

    ``urls`` are full URLs tried in order. ``log`` receives one line per
    attempt (pass ``None`` for silence). Raises :class:`DownloadError`
    listing why each URL failed; ``dest`` is then untouched.
    """
    # imported here, not with the module: ``import strided`` loads no networking code
    import http.client
    import urllib.request

    dest = Path(dest)
    failures = []
    for url in urls:
        if log:
            log(f"downloading {url} -> {dest}")
        try:
            with atomic_write(dest) as out:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                out.flush()
                verify_file(out.name, spec)
            return dest
        except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
            # OSError covers URLError and timeouts; ValueError covers DataFileError/ChecksumError and
            # malformed URLs; HTTPException a connection cut mid-body. All mean: try the next mirror
            failures.append(f"  {url}: {type(exc).__name__}: {exc}")
    raise DownloadError(f"could not download {spec.name} to {dest}:\n" + "\n".join(failures))
