"""Atomic file writes: a file that strided writes appears complete or not at all.

The content goes to a temporary file in the destination's directory (the same
file system, so the final ``os.replace`` is atomic on POSIX and Windows); it
is flushed and fsynced, then renamed over the destination. If anything fails
in between (an exception, Ctrl-C, a full disk) the temporary file is removed
and the previous file, if there was one, is left exactly as it was. A process
killed mid-write can leave its temporary file next to the destination, never
a half-written destination; the temporary file is named
``.<name>.tmp-<pid>-<16 hex digits>`` after the process that writes it, and
the next write to the same destination removes the ones whose process has
ended (:func:`remove_stale_temporaries`), so killed saves leave nothing behind
for long. A file of another name is never touched.

Every writer in the library goes through :func:`atomic_write`.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from pathlib import Path

__all__ = ["atomic_write", "write_bytes_atomic", "write_json_atomic", "write_text_atomic", "TEMP_MARK",
           "temporary_path", "remove_stale_temporaries"]

TEMP_MARK = ".tmp-"
_TEMP_TAIL = re.compile(r"(?P<pid>[1-9][0-9]{0,9})-[0-9a-f]{16}")


def temporary_path(path: Path) -> Path:
    """A fresh temporary name next to ``path``: ``.<name>.tmp-<this process id>-<16 random hex digits>``."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(8)}")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's), or we cannot tell: keep its file
    return True


def remove_stale_temporaries(path) -> list:
    """Remove the temporary files that earlier writes to ``path`` left behind when their process was killed.

    Only names of the form :func:`temporary_path` gives for ``path`` are
    considered, and only those whose process has ended are removed (a write
    under way in another process keeps its file). Returns the removed paths.
    Does nothing on Windows, where a process cannot be probed safely.
    """
    path = Path(os.fspath(path))
    if os.name == "nt":
        return []
    prefix = f".{path.name}{TEMP_MARK}"
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        tail = _TEMP_TAIL.fullmatch(entry.name[len(prefix):])
        if tail is None or _process_alive(int(tail["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


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
    # the temporary file is created 0600; a saved model or figure should get the
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
    remove_stale_temporaries(path)
    tmp = temporary_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:   # a read-only directory: name the file the caller asked for, not the temporary one
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
