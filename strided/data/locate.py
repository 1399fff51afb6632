"""Where dataset files are looked for, what a directory lacks, and how to get a missing dataset.

Where the files are looked for, first match wins:

1. ``root`` if given: ``<root>/<name>/``, or ``root`` itself;
2. ``$STRIDED_DATA/<name>/``;
3. ``~/.cache/strided/<name>/`` (``$XDG_CACHE_HOME/strided/<name>/`` when set);
4. ``/usr/share/datasets/<name>/``, where Debian's data packages install
   (``apt-get install dataset-fashion-mnist``).


``download=True`` fetches missing files into the first writable choice of
that list (``root``, then ``$STRIDED_DATA``, then the cache):
:func:`download_dir`. When a dataset is nowhere, :func:`not_found_error`
lists each place searched with what it lacks, and the commands that
provide it (:func:`how_to_get`); :func:`format_dataset_table` is the
listing of ``strided datasets``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .catalogue import DATASETS, IDX_SPLITS, DatasetInfo, dataset_info
from .cifar import ARCHIVE as CIFAR_ARCHIVE
from .cifar import BATCH_DIR as CIFAR_BATCH_DIR
from .cifar import find_batches

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
ENV_VAR = "STRIDED_DATA"
DOWNLOAD_COMMAND = "python -m strided.data download {name}"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/strided`` or ``~/.cache/strided``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "strided"


def check_root(root) -> Path | None:
    """``root`` as a Path (``~`` expanded), None for None; a TypeError for anything but a path."""
    if root is None:
        return None
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike) or None, got {type(root).__name__}: {root!r}")
    return Path(root).expanduser()


def search_path(name, root=None) -> list[Path]:
    """The directories searched for dataset ``name``, in order (see the module docstring)."""
    info = dataset_info(name)
    root = check_root(root)
    dirs = []
    if root is not None:
        dirs += [root / info.name, root]
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser() / info.name)
    dirs += [cache_dir() / info.name, SYSTEM_DATA_DIR / info.name]
    return dirs


def download_dir(name, root=None) -> Path:
    """Where ``download=True`` writes ``name``: ``<root>/<name>``, else ``$STRIDED_DATA/<name>``, else the cache."""
    info = dataset_info(name)
    root = check_root(root)
    if root is not None:
        return root / info.name
    env = os.environ.get(ENV_VAR)
    return (Path(env).expanduser() if env else cache_dir()) / info.name


def idx_file(directory: Path, base: str) -> Path | None:
    """``directory/base`` or ``directory/base.gz``, whichever is a file (the raw one first), or None."""
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing(info: DatasetInfo, directory: Path) -> list[str]:
    """What ``directory`` lacks to hold ``info``'s dataset (empty when complete)."""
    if not directory.is_dir():
        return ["(directory does not exist)"]
    if info.format == "cifar":
        return [] if find_batches(directory) else [f"{CIFAR_ARCHIVE} or {CIFAR_BATCH_DIR}/"]
    return [f"{base}[.gz]" for _, *bases in IDX_SPLITS for base in bases if idx_file(directory, base) is None]


def find_dataset(name, root=None) -> Path | None:
    """The first directory of :func:`search_path` holding all of ``name``'s files, or None."""
    info = dataset_info(name)
    for directory in search_path(info.name, root):
        if not _missing(info, directory):
            return directory
    return None


def how_to_get(name, root=None) -> list[str]:
    """Shell commands that would provide dataset ``name`` (the apt one first when a package exists)."""
    info = dataset_info(name)
    commands = []
    if info.apt_package:  # the system directory is searched whatever root says
        commands.append(f"apt-get install {info.apt_package}")
    command = DOWNLOAD_COMMAND.format(name=info.name)
    if root is not None:
        command += f" --root {check_root(root)}"
    commands.append(command)
    return commands


def not_found_error(info: DatasetInfo, root) -> FileNotFoundError:
    """The error of a dataset found nowhere: each directory searched with what it lacks, and how to get it."""
    lines = [f"dataset {info.name!r} not found. Looked in:"]
    for directory in search_path(info.name, root):
        lines.append(f"  {directory}: missing {', '.join(_missing(info, directory))}")
    lines.append("To get it, run:")
    for command in how_to_get(info.name, root):
        if command.startswith("apt-get"):
            note = f"Debian package, installs into {SYSTEM_DATA_DIR / info.name}"
        else:
            note = f"downloads about {info.download_mb} MB into {download_dir(info.name, root)}"
        lines.append(f"  {command}    # {note}")
    lines.append(f"or call load_dataset({info.name!r}, download=True).")
    return FileNotFoundError("\n".join(lines))


# --------------------------------------------------------------------------- listing


def dataset_table(root=None) -> list[dict]:
    """One row per dataset for a listing: name, title, classes, image_shape, sizes, location or how to get it."""
    rows = []
    for info in DATASETS.values():
        found = find_dataset(info.name, root)
        rows.append({
            "name": info.name,
            "title": info.title,
            "classes": info.classes,
            "image_shape": info.image_shape,
            "train_size": info.train_size,
            "test_size": info.test_size,
            "location": None if found is None else str(found),
            "get": None if found is not None else how_to_get(info.name, root),
        })
    return rows


def format_dataset_table(root=None) -> str:
    """The :func:`dataset_table` as text, one block per dataset."""
    lines = []
    for row in dataset_table(root):
        shape = "x".join(map(str, row["image_shape"]))
        lines.append(f"{row['name']:<14} {row['title']}: {len(row['classes'])} classes, {shape} images, "
                     f"{row['train_size']} train / {row['test_size']} test")
        lines.append(f"{'':<14} classes: {', '.join(row['classes'])}")
        if row["location"]:
            lines.append(f"{'':<14} found in {row['location']}")
        else:
            lines.append(f"{'':<14} not found; get it with: {' or '.join(f'`{c}`' for c in row['get'])}")
    return "\n".join(lines)
