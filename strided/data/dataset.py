"""The ``Dataset`` contract and ``ArrayDataset``, samples held in two arrays.

A dataset is what torch calls a map-style dataset: ``len(ds)`` samples,
``ds[i]`` one ``(image, label)`` pair. Subclass :class:`Dataset` and define
both methods to feed your own data to :class:`strided.data.DataLoader` and
``strided.fit``::

    class Noise(data.Dataset):
        def __len__(self):
            return 100

        def __getitem__(self, i):
            return np.full((1, 8, 8), i % 7, np.uint8), i % 2

:class:`ArrayDataset` is the dataset of images already in memory (what
``load_dataset`` returns as ``.train`` and ``.test``); a ``DataLoader`` over
it forms each batch with one fancy index into its arrays, never one sample
at a time.

Transforms are callables ``t(x, rng) -> x`` on a batch ``x: (N, C, H, W)``
drawing their random decisions from the ``np.random.Generator`` ``rng``
(see :mod:`strided.data.transforms`). An ``ArrayDataset``'s ``transform``
runs on the raw stored pixels of every sample it returns, batch by batch
inside a ``DataLoader`` (with the loader's generator), one image at a time
through ``ds[i]`` (with the global generator of :mod:`strided.random`).
"""
from __future__ import annotations

import abc

import numpy as np

from .. import random as _random


class Dataset(abc.ABC):
    """A map-style dataset: ``len(ds)`` samples, ``ds[i] -> (image (C, H, W), label int)`` for 0 <= i < len(ds).

    The contract ``DataLoader`` and ``fit`` rely on; subclasses define
    ``__len__`` and ``__getitem__``. Images of one dataset share a shape (they
    are stacked into batches) and may have any real dtype (uint8 pixels stay
    uint8 until a batch is formed).
    """

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of samples."""

    @abc.abstractmethod
    def __getitem__(self, index: int):
        """Sample ``index``: ``(image (C, H, W), label)``."""


def _sample_index(index, n: int) -> int:
    """``index`` (an int, negative counting from the end) as 0..n-1; TypeError or IndexError otherwise."""
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {index!r} (ArrayDataset.take gives several samples)")
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of range for {n} samples")
    return int(index) % n


def _check_transform(transform) -> None:
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be a callable (x (N, C, H, W), rng) -> x or None, got {transform!r}")


class ArrayDataset(Dataset):
    """Samples held in two arrays: ``images`` (N, ...) of any real dtype and integer ``labels`` (N,).

    Args:
        images: (N, C, H, W) as stored (uint8 pixels stay uint8; nothing is
            copied); any (N, ...) with at least two dimensions.
        labels: integer (N,); kept as int64.
        transform: optional ``t(x, rng) -> x`` applied to the raw images of a
            batch (or of one sample) before they are returned.

    ``ds[i]`` is ``(image (C, H, W), label int)``; ``ds.take(index)`` the
    samples at an index array, mask or slice, as an ``ArrayDataset`` with
    the same transform.
    """

    def __init__(self, images, labels, transform=None):
        if not isinstance(images, np.ndarray) or images.ndim < 2:
            got = f"shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise ValueError(f"images must be an array of shape (N, C, H, W) (or (N, ...)), got {got}")
        if images.dtype.kind not in "biuf":
            raise TypeError(f"images must hold real numbers, got dtype {images.dtype}")
        if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
            got = f"{labels.dtype} array of shape {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
            raise ValueError(f"labels must be an integer array of shape (N,), got {got} (integers expected)")
        if len(images) != len(labels):
            raise ValueError(f"images and labels must have the same length: labels must have shape ({len(images)},) "
                             f"to match {len(images)} images, got shape {labels.shape}")
        _check_transform(transform)
        self.images = images
        self.labels = labels if labels.dtype == np.int64 else labels.astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        """``(image, label)`` of sample ``index`` (an int, negative counting from the end)."""
        index = _sample_index(index, len(self))
        image = self.images[index:index + 1]
        if self.transform is not None:
            image = self.transform(image, _random.default_generator())
        return image[0], int(self.labels[index])

    def take(self, index) -> "ArrayDataset":
        """The samples at ``index`` (an index array, a boolean mask or a slice), with the same transform."""
        return ArrayDataset(self.images[index], self.labels[index], self.transform)

    def __repr__(self) -> str:
        transform = "" if self.transform is None else f", transform={self.transform!r}"
        return (f"ArrayDataset(images={self.images.dtype}{list(self.images.shape)}, "
                f"labels={self.labels.dtype}[{len(self)}]{transform})")
