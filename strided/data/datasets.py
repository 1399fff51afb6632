"""The datasets strided knows, where their files are found, and ``load_dataset``.

Three image classification datasets, all returned as uint8 NCHW images and
int64 labels:

=================  ===========  ==============  ================================
name               images       train / test    files
=================  ===========  ==============  ================================
``fashion-mnist``  1 x 28 x 28  60000 / 10000   four IDX files (``.gz`` or raw)
``mnist``          1 x 28 x 28  60000 / 10000   four IDX files (``.gz`` or raw)
``cifar10``        3 x 32 x 32  50000 / 10000   ``cifar-10-python.tar.gz`` or
                                                ``cifar-10-batches-py/``
=================  ===========  ==============  ================================

Where the files are looked for, first match wins:

1. ``root`` if given: ``<root>/<name>/``, or ``root`` itself;
2. ``$STRIDED_DATA/<name>/``;
3. ``~/.cache/strided/<name>/`` (``$XDG_CACHE_HOME/strided/<name>/`` when set);
4. ``/usr/share/datasets/<name>/``, where Debian's data packages install
   (``apt-get install dataset-fashion-mnist``).

``download=True`` fetches missing files into the first writable choice of
that list (``root``, then ``$STRIDED_DATA``, then the cache); see
:mod:`strided.data.download` for the verification.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import DataFileError
from .cifar import ARCHIVE as CIFAR_ARCHIVE
from .cifar import BATCH_DIR as CIFAR_BATCH_DIR
from .cifar import find_batches, read_cifar10
from .download import DownloadError, FileSpec, download_file, print_to_stderr, verify_file
from .idx import read_idx_images, read_idx_labels

SYSTEM_DATA_DIR = Path("/usr/share/datasets")
ENV_VAR = "STRIDED_DATA"
DOWNLOAD_COMMAND = "python -m strided.data download {name}"

# (split, images file, labels file) as published for MNIST and Fashion-MNIST
IDX_SPLITS = (
    ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)


@dataclass(frozen=True)
class DatasetInfo:
    """What strided knows about one dataset: shapes, class names, files, mirrors, packages."""

    name: str
    title: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    train_size: int
    test_size: int
    format: str  # 'idx' or 'cifar'
    files: tuple[FileSpec, ...]
    mirrors: tuple[str, ...]  # base URLs, tried in order; a file's URL is base + file name
    download_mb: int
    apt_package: str | None = None
    homepage: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _idx(name, md5, sha256, size) -> FileSpec:
    return FileSpec(name, "idx", md5=md5, content_sha256=sha256, content_size=size)


# md5 values: the published archives' (the ones torchvision also checks).
# sha256 of the decompressed IDX files: computed from the released Fashion-MNIST
# data; no such value is published for MNIST, whose content is checked by size,
# magic number and counts on top of the archive md5.
_IDX_SIZES = (47040016, 60008, 7840016, 10008)
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="fashion-mnist",
            title="Fashion-MNIST (Zalando)",
            classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            image_shape=(1, 28, 28),
            train_size=60000,
            test_size=10000,
            format="idx",
            files=(
                _idx("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", _IDX_SIZES[0]),
                _idx("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", _IDX_SIZES[1]),
                _idx("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
                     "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", _IDX_SIZES[2]),
                _idx("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
                     "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", _IDX_SIZES[3]),
            ),
            mirrors=(
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ),
            download_mb=30,
            apt_package="dataset-fashion-mnist",
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        ),
        DatasetInfo(
            name="mnist",
            title="MNIST handwritten digits",
            classes=tuple("0123456789"),
            image_shape=(1, 28, 28),
            train_size=60000,
            test_size=10000,
            format="idx",
            files=(
                _idx("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", None, _IDX_SIZES[0]),
                _idx("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", None, _IDX_SIZES[1]),
                _idx("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", None, _IDX_SIZES[2]),
                _idx("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", None, _IDX_SIZES[3]),
            ),
            # the original site is often unavailable; these mirrors serve the identical files
            mirrors=(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ),
            download_mb=11,
            homepage="http://yann.lecun.com/exdb/mnist/",
        ),
        DatasetInfo(
            name="cifar10",
            title="CIFAR-10",
            classes=("airplane", "automobile", "bird", "cat", "deer",
                     "dog", "frog", "horse", "ship", "truck"),
            image_shape=(3, 32, 32),
            train_size=50000,
            test_size=10000,
            format="cifar",
            files=(
                FileSpec(
                    CIFAR_ARCHIVE, "tar.gz", md5="c58f30108f718f92721af3b95e74349a",
                    members={
                        "data_batch_1": "c99cafc152244af753f735de768cd75f",
                        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                        "data_batch_4": "634d18415352ddfa80567beed471001a",
                        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                        "test_batch": "40351d587109b95175f43aff81a1287e",
                        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
                    },
                ),
            ),
            mirrors=("https://www.cs.toronto.edu/~kriz/",),
            download_mb=163,
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        ),
    )
}

_ALIASES = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10"}


def dataset_info(name) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` (case, ``_`` and ``-`` are forgiven: ``'Fashion_MNIST'`` works)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a dataset name (str), got {type(name).__name__}: {name!r}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("-", ""), key))
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(map(repr, DATASETS))}")
    return DATASETS[key]


# --------------------------------------------------------------------------- return types


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset: ``images`` (N, C, H, W) and ``labels`` int64 (N,).

    Images are uint8 as stored (0..255) when they come from :func:`load_dataset`;
    conversion to float happens per batch (see :mod:`strided.data.loader`).
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        x, y = self.images, self.labels
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"images must be an array of shape (N, C, H, W), got {got}")
        if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
            got = f"{y.dtype} array of shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise ValueError(f"labels must be an integer array of shape (N,), got {got}")
        if len(x) != len(y):
            raise ValueError(f"images and labels must have the same length, got {len(x)} images and {len(y)} labels")
        if y.dtype != np.int64:
            object.__setattr__(self, "labels", y.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index) -> "Split":
        """The samples at ``index`` (an index array, a boolean mask or a slice)."""
        return Split(self.images[index], self.labels[index])

    def __repr__(self) -> str:
        return f"Split(images={self.images.dtype}{list(self.images.shape)}, labels={self.labels.dtype}[{len(self)}])"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: ``.train`` and ``.test`` :class:`Split`, class names, and where it was found."""

    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    root: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train.images.shape[1:])

    def select(self, classes) -> "Dataset":
        """Keep only ``classes`` (indices or names) in both splits, relabelled 0..k-1 in the given order.

        ``select((1, 3))`` on Fashion-MNIST is seed 003's trouser (0) vs dress (1)
        task; ``select(('Dress', 'Trouser'))`` gives the same images with
        dress as 0.
        """
        keep = class_indices(classes, self.classes)
        # label -> new label, -1 for dropped classes: one vectorised lookup per split
        table = np.full(len(self.classes), -1, dtype=np.int64)
        table[list(keep)] = np.arange(len(keep))

        def subset(split: Split) -> Split:
            new = table[split.labels]
            mask = new >= 0
            return Split(split.images[mask], new[mask])

        return Dataset(self.name, tuple(self.classes[i] for i in keep), subset(self.train), subset(self.test),
                       self.root)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, classes={len(self.classes)}, image_shape={self.image_shape}, "
                f"train={len(self.train)}, test={len(self.test)}, root={str(self.root)!r})")


def class_indices(classes, names) -> tuple[int, ...]:
    """Resolve ``classes`` (ints indexing ``names``, or names, case-insensitive) to distinct indices."""
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(f"classes must be a sequence of class indices or names, got {classes!r}")
    classes = list(classes)
    if not classes:
        raise ValueError("classes must name at least one class, got an empty sequence")
    lowered = {n.lower(): i for i, n in enumerate(names)}
    out = []
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)):
            if not 0 <= c < len(names):
                raise ValueError(f"class index {c} out of range: expected 0..{len(names) - 1} ({len(names)} classes)")
            out.append(int(c))
        elif isinstance(c, str) and c.lower() in lowered:
            out.append(lowered[c.lower()])
        else:
            raise ValueError(f"unknown class {c!r} in classes={classes!r}; expected an index 0..{len(names) - 1} "
                             f"or one of: {', '.join(map(repr, names))}")
    if len(set(out)) != len(out):
        raise ValueError(f"classes must be distinct, got {classes!r}")
    return tuple(out)


# --------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/strided`` or ``~/.cache/strided``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "strided"


def _check_root(root) -> Path | None:
    if root is None:
        return None
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike) or None, got {type(root).__name__}: {root!r}")
    return Path(root).expanduser()


def search_path(name, root=None) -> list[Path]:
    """The directories searched for dataset ``name``, in order (see the module docstring)."""
    info = dataset_info(name)
    root = _check_root(root)
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
    root = _check_root(root)
    if root is not None:
        return root / info.name
    env = os.environ.get(ENV_VAR)
    return (Path(env).expanduser() if env else cache_dir()) / info.name


def _idx_file(directory: Path, base: str) -> Path | None:
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
    return [f"{base}[.gz]" for _, *bases in IDX_SPLITS for base in bases if _idx_file(directory, base) is None]


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
        command += f" --root {_check_root(root)}"
    commands.append(command)
    return commands


def _not_found(info: DatasetInfo, root) -> FileNotFoundError:
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


# --------------------------------------------------------------------------- loading


def _read_idx_split(directory: Path, images_base: str, labels_base: str) -> Split:
    images_path, labels_path = _idx_file(directory, images_base), _idx_file(directory, labels_base)
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DataFileError(
            images_path, f"counts do not match: {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return Split(images, labels)


def _check_split(info: DatasetInfo, split: Split, where) -> None:
    if split.images.shape[1:] != info.image_shape:
        raise DataFileError(where, f"images have shape {split.images.shape[1:]} (C, H, W) but {info.name} "
                                   f"images are {info.image_shape}")
    if len(split) and (split.labels.min() < 0 or split.labels.max() >= info.num_classes):
        raise DataFileError(where, f"labels range over {split.labels.min()}..{split.labels.max()} but {info.name} "
                                   f"has classes 0..{info.num_classes - 1}")


def read_dataset(name, directory) -> Dataset:
    """Read dataset ``name`` from ``directory`` (no searching): the reader behind :func:`load_dataset`."""
    info = dataset_info(name)
    directory = Path(directory)
    if info.format == "cifar":
        parts = read_cifar10(directory)
        splits = {s: Split(*parts[s]) for s in ("train", "test")}
        where = {s: find_batches(directory) for s in splits}
    else:
        splits = {s: _read_idx_split(directory, im, lb) for s, im, lb in IDX_SPLITS}
        where = {s: _idx_file(directory, im) for s, im, _ in IDX_SPLITS}
    for s, split in splits.items():
        _check_split(info, split, where[s])
    return Dataset(info.name, info.classes, splits["train"], splits["test"], directory)


def load_dataset(name, root=None, download=False, classes=None) -> Dataset:
    """Load ``fashion-mnist``, ``mnist`` or ``cifar10`` as uint8 NCHW images and int64 labels.

    Parameters
    ----------
    name : dataset name; ``DATASETS`` lists them.
    root : a data directory holding ``<name>/`` (or the dataset directory
        itself); searched before ``$STRIDED_DATA``, the cache and
        ``/usr/share/datasets`` (see the module docstring).
    download : fetch the files from the official sources when they are not
        found anywhere, verifying their checksums.
    classes : keep only these classes (indices or names), relabelled
        0..k-1 in the given order, e.g. ``classes=(1, 3)`` for trouser vs dress.

    Returns a :class:`Dataset` with ``.train`` / ``.test`` splits
    (``.images`` uint8 (N, C, H, W), ``.labels`` int64 (N,)), ``.classes``,
    ``.name`` and ``.root`` (the directory the files came from).
    """
    info = dataset_info(name)
    _check_root(root)
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be True or False, got {download!r}")
    if classes is not None:
        class_indices(classes, info.classes)  # reject bad classes before reading 50 MB
    directory = find_dataset(info.name, root)
    if directory is None:
        if not download:
            raise _not_found(info, root)
        directory = download_dataset(info.name, root)
    dataset = read_dataset(info.name, directory)
    return dataset if classes is None else dataset.select(classes)


def download_dataset(name, root=None, *, force=False, timeout: float = 60.0, verbose=True) -> Path:
    """Download ``name``'s files into :func:`download_dir` and return that directory.

    Files already there that pass verification are kept (unless ``force``);
    others are fetched from ``DATASETS[name].mirrors`` in order, verified
    (see :mod:`strided.data.download`) and written atomically. ``verbose``
    prints one line per file fetched to stderr.
    """
    info = dataset_info(name)
    target = download_dir(info.name, root)
    log = print_to_stderr if verbose else None
    for spec in info.files:
        dest = target / spec.name
        if dest.is_file() and not force:
            try:
                verify_file(dest, spec)
                continue
            except (DataFileError, OSError) as exc:
                if log:
                    log(f"{dest} fails verification ({exc}); downloading it again")
        try:
            download_file([base + spec.name for base in info.mirrors], dest, spec, timeout=timeout, log=log)
        except DownloadError as exc:
            others = [c for c in how_to_get(info.name) if c.startswith("apt-get")]
            hint = f"\nAlternatively: {others[0]}" if others else ""
            raise DownloadError(f"{exc}{hint}") from None
    return target


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
