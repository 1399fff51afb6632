"""``load_dataset`` and what it returns: a :class:`DatasetSplits` of two :class:`ArrayDataset` s.

The datasets and their files are listed in :mod:`strided.data.catalogue`;
where the files are looked for (``root``, ``$STRIDED_DATA``, the cache,
``/usr/share/datasets``) in :mod:`strided.data.locate`; how a download is
verified in :mod:`strided.data.download`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import DataFileError
from .dataset import ArrayDataset
from .catalogue import IDX_SPLITS, DatasetInfo, dataset_info
from .cifar import find_batches, read_cifar10
from .download import DownloadError, download_file, print_to_stderr, verify_file
from .idx import read_idx_images, read_idx_labels
from .locate import check_root, download_dir, find_dataset, how_to_get, idx_file, not_found_error


# --------------------------------------------------------------------------- return types


# the name the splits of a loaded dataset had first: the same class
Split = ArrayDataset


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A loaded dataset: ``.train`` and ``.test`` :class:`ArrayDataset` s, class names, and where it was found."""

    name: str
    classes: tuple[str, ...]
    train: ArrayDataset
    test: ArrayDataset
    root: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train.images.shape[1:])

    def select(self, classes) -> "DatasetSplits":
        """Keep only ``classes`` (indices or names) in both splits, relabelled 0..k-1 in the given order.

        ``select((1, 3))`` on Fashion-MNIST is seed 003's trouser (0) vs dress (1)
        task; ``select(('Dress', 'Trouser'))`` gives the same images with
        dress as 0.
        """
        keep = class_indices(classes, self.classes)
        # label -> new label, -1 for dropped classes: one vectorised lookup per split
        table = np.full(len(self.classes), -1, dtype=np.int64)
        table[list(keep)] = np.arange(len(keep))

        def subset(split: ArrayDataset) -> ArrayDataset:
            new = table[split.labels]
            mask = new >= 0
            return ArrayDataset(split.images[mask], new[mask])

        return DatasetSplits(self.name, tuple(self.classes[i] for i in keep), subset(self.train), subset(self.test),
                       self.root)

    def __repr__(self) -> str:
        return (f"DatasetSplits({self.name!r}, classes={len(self.classes)}, image_shape={self.image_shape}, "
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


# --------------------------------------------------------------------------- loading


def _read_idx_split(directory: Path, images_base: str, labels_base: str) -> ArrayDataset:
    images_path, labels_path = idx_file(directory, images_base), idx_file(directory, labels_base)
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DataFileError(
            images_path, f"counts do not match: {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return ArrayDataset(images, labels)


def _check_split(info: DatasetInfo, split: ArrayDataset, where) -> None:
    if split.images.shape[1:] != info.image_shape:
        raise DataFileError(where, f"images have shape {split.images.shape[1:]} (C, H, W) but {info.name} "
                                   f"images are {info.image_shape}")
    if len(split) and (split.labels.min() < 0 or split.labels.max() >= info.num_classes):
        raise DataFileError(where, f"labels range over {split.labels.min()}..{split.labels.max()} but {info.name} "
                                   f"has classes 0..{info.num_classes - 1}")


def read_dataset(name, directory) -> DatasetSplits:
    """Read dataset ``name`` from ``directory`` (no searching): the reader behind :func:`load_dataset`."""
    info = dataset_info(name)
    directory = Path(directory)
    if info.format == "cifar":
        parts = read_cifar10(directory)
        splits = {s: ArrayDataset(*parts[s]) for s in ("train", "test")}
        where = {s: find_batches(directory) for s in splits}
    else:
        splits = {s: _read_idx_split(directory, im, lb) for s, im, lb in IDX_SPLITS}
        where = {s: idx_file(directory, im) for s, im, _ in IDX_SPLITS}
    for s, split in splits.items():
        _check_split(info, split, where[s])
    return DatasetSplits(info.name, info.classes, splits["train"], splits["test"], directory)


def load_dataset(name, root=None, download=False, classes=None) -> DatasetSplits:
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

    Returns a :class:`DatasetSplits` with ``.train`` / ``.test`` splits
    (:class:`ArrayDataset` s: ``.images`` uint8 (N, C, H, W), ``.labels``
    int64 (N,)), ``.classes``,
    ``.name`` and ``.root`` (the directory the files came from).
    """
    info = dataset_info(name)
    check_root(root)
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"download must be True or False, got {download!r}")
    if classes is not None:
        class_indices(classes, info.classes)  # reject bad classes before reading 50 MB
    directory = find_dataset(info.name, root)
    if directory is None:
        if not download:
            raise not_found_error(info, root)
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
