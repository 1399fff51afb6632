"""Atomic file writes: a file that strided writes appears complete or not at all.

The content goes to a temporary file in the destination's directory (the same
file system, so the final ``os.replace`` is atomic on POSIX and Windows); it
is flushed and fsynced, then renamed over the destination. If anything fails
in between (an exception, Ctrl-C, a full disk) the temporary file is removed
and the previous file, if there was one, is left exactly as it was. A crash
of the whole process can at worst leave a ``.<name>.*.tmp`` file next to the
destination, never a half-written destination.

Every writer in the library goes through :func:`atomic_write`.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "write_bytes_atomic", "write_json_atomic", "write_text_atomic", "TEMP_SUFFIX"]

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    try:  # Linux reports it without changing it
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # elsewhere the only way to read it is to set it; another thread creating a file in
    # this instant would get umask 0, a risk only where /proc is missing
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    # mkstemp creates 0600 files; a saved model or figure should get the
    # permissions an ordinary open() would give it (0666 minus the umask).
    return 0o666 & ~_umask()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = "utf-8", newline: str | None = None):
    """Open a temporary file for writing; on success it replaces ``path``, on any error it is removed.

    ``mode`` is ``"wb"`` (binary, the default) or ``"w"`` (text, UTF-8 unless
    ``encoding`` says otherwise). The yielded file object's ``name`` is the
    temporary path, so a caller may check the content before the block ends
    (raising inside the block keeps the old file). Missing parent directories
    are created. An existing destination keeps its permission bits.

        with atomic_write("runs/a/history.json", "w") as f:
            json.dump(history, f)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(os.fspath(path))
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    try:
        file_mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        file_mode = _default_mode()
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:   # a read-only directory: name the file the caller asked for, not mkstemp's
        _raise_naming(exc, path, exc.filename)
        raise
    try:
        os.chmod(tmp, file_mode)
        kwargs = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
        # Reopened by name rather than os.fdopen so that ``f.name`` is the temporary path.
        os.close(fd)
        fd = -1
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):   # a full disk: name the file the caller asked for
            _raise_naming(exc, path, tmp)
        raise
    _fsync_directory(directory)


# what a file system says when a file cannot be written (not, say, a network error inside the block)
_WRITE_ERRORS = {code for code, name in errno.errorcode.items()
                 if name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "EIO")}


def _raise_naming(exc: OSError, path: Path, tmp) -> None:
    """Raise ``exc`` again with ``path`` as its file if it is a write error naming no file or ``tmp``."""
    if exc.errno in _WRITE_ERRORS and exc.filename in (None, tmp):
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path, obj) -> Path:
    """Write ``obj`` (dicts, lists, numbers, strings) to ``path`` as indented JSON, atomically; returns the path."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=1)
    return Path(path)
