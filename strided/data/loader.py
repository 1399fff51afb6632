"""Train/validation splits and mini-batches.

A typical pipeline, with the statistics fitted on the training part only
(write-up 003: fitting on everything would leak validation and test data into
training)::

    ds = load_dataset("fashion-mnist", classes=(1, 3))          # trouser vs dress
    train, val = train_valid_split(ds.train, validation=1000, seed=0)
    std = Standardize().fit(train.images)
    for x, y in batches(train.images, train.labels, 64, rng=0, standardize=std):
        ...                                                     # x float32 (64, 1, 28, 28), y int64 (64,)

or, the same in one call, :func:`make_loaders`.

Images stay uint8 in memory and each batch is converted to float32 (and
standardised, and augmented) when it is drawn. Converting the whole
dataset once up-front would hold 4x the memory (600 MB instead of 150 MB
for CIFAR-10's training set) for no speed gain: per batch, the conversion
is one pass over ``B x C x H x W`` values, negligible next to a
convolution over the same batch, and augmentation has to run per batch
anyway. Per epoch the data is read exactly once: a shuffled batch is one
fancy-index gather (a copy of just that batch), an unshuffled one a slice.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .. import _checks
from .datasets import Dataset, Split
from .transforms import Standardize, as_generator


def _validation_count(validation, n: int) -> int:
    if isinstance(validation, (bool, np.bool_)) or not isinstance(validation, numbers.Real):
        raise TypeError(f"validation must be a count (int) or a fraction (float in [0, 1)), got {validation!r}")
    if isinstance(validation, numbers.Integral):
        count = int(validation)
        if not 0 <= count < n:
            raise ValueError(f"validation must be a count in 0..{n - 1} for {n} samples, got {validation}")
        return count
    if not 0.0 <= validation < 1.0:
        raise ValueError(f"validation as a fraction must be in [0, 1), got {validation}")
    return int(round(validation * n))


def train_valid_split(split: Split, validation, *, seed=0, shuffle: bool = True) -> tuple[Split, Split]:
    """Split ``split`` into (train, validation) parts.

    validation: number of samples (int) or fraction (float) to hold out.
    With ``shuffle`` the held-out samples are a random subset drawn from
    ``seed`` (an int or a ``np.random.Generator``), the same for the same
    seed; each part keeps the original order. Without it the last
    ``validation`` samples are held out, as write-up 003 does
    (``X_train_full[-1000:]``).
    """
    if not isinstance(split, Split):
        raise TypeError(f"split must be a Split (e.g. load_dataset(...).train), got {type(split).__name__}")
    n = len(split)
    count = _validation_count(validation, n)
    if shuffle:
        order = as_generator(seed, "seed").permutation(n)
        # sorted, so each part keeps the dataset's order (and reads memory in order)
        train_idx, val_idx = np.sort(order[:n - count]), np.sort(order[n - count:])
        return split.take(train_idx), split.take(val_idx)
    return split.take(slice(0, n - count)), split.take(slice(n - count, n))


def _check_batch_args(images, labels, batch_size, augment, standardize, dtype):
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array (N, C, H, W), got {type(images).__name__}")
    _checks.ndim("images", images, 4, "(N, C, H, W)")
    if images.dtype.kind not in "biuf":
        raise TypeError(f"images must hold real numbers, got dtype {images.dtype}")
    if labels is not None:
        if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
            got = f"{labels.dtype} array of shape {labels.shape}" if isinstance(labels, np.ndarray) else labels
            raise ValueError(f"labels must be an integer array of shape (N,) or None, got {got}")
        if len(labels) != len(images):
            raise ValueError(f"images and labels must have the same length, got {len(images)} and {len(labels)}")
    batch_size = _checks.positive_int("batch_size", batch_size)
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a callable (x, rng) -> x or None, got {augment!r}")
    if standardize is not None:
        if not isinstance(standardize, Standardize):
            raise TypeError(f"standardize must be a fitted Standardize or None, got {type(standardize).__name__}")
        if not standardize.fitted:
            raise ValueError("standardize must be fitted first: Standardize().fit(train_images)")
        if len(standardize.mean) != images.shape[1]:
            raise ValueError(f"standardize was fitted on {len(standardize.mean)} channels but images have "
                             f"{images.shape[1]} (shape {images.shape})")
    if dtype is not None:
        return batch_size, _checks.dtype_of("dtype", dtype)
    return batch_size, images.dtype if images.dtype in _checks.FLOAT_DTYPES else np.dtype(np.float32)


def batches(images, labels, batch_size: int, *, shuffle: bool = True, rng=None, drop_last: bool = False,
            augment=None, standardize: Standardize | None = None, dtype=None):
    """Iterate once over ``(x, y)`` mini-batches.

    images: (N, C, H, W), any real dtype (uint8 as loaded); labels: int (N,) or None.
    Yields x: (B, C, H', W') float32 (float64 images stay float64, or as
    ``dtype`` says) and y: int64 (B,) (or None); B = ``batch_size`` except
    a smaller last batch unless ``drop_last``. Per batch, in order: gather
    (shuffled with ``rng``: a Generator, an int seed or None), ``augment(x,
    rng)`` on the raw values, conversion and ``standardize``. Each batch is
    a fresh array, never a view of ``images``. Arguments are checked when
    called, before iteration starts.
    """
    batch_size, dtype = _check_batch_args(images, labels, batch_size, augment, standardize, dtype)
    rng = as_generator(rng)
    if labels is not None and labels.dtype != np.int64:
        labels = labels.astype(np.int64)
    n = len(images)
    stop = n - n % batch_size if drop_last else n
    order = rng.permutation(n) if shuffle else None
    return _iterate(images, labels, batch_size, order, stop, rng, augment, standardize, dtype)


def _iterate(images, labels, batch_size, order, stop, rng, augment, standardize, dtype):
    for start in range(0, stop, batch_size):
        index = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
        x = images[index]
        if augment is not None:
            x = augment(x, rng)
        if standardize is not None:
            x = standardize(x, dtype=dtype)
        else:
            # a slice is a view of the dataset: copy so callers may modify the batch
            x = x.astype(dtype, copy=order is None and augment is None)
        y = None
        if labels is not None:
            y = labels[index] if order is not None else labels[index].copy()
        yield x, y


class DataLoader:
    """Re-iterable mini-batches over a dataset, one pass per ``for`` loop (an epoch).

    Same arguments as :func:`batches`; ``seed`` seeds one generator that
    drives shuffling and augmentation across epochs, so a run is
    reproducible and every epoch still sees a new order. ``shuffle``
    defaults to False as in torch.
    """

    def __init__(self, images, labels, batch_size: int = 64, *, shuffle: bool = False, seed=None,
                 drop_last: bool = False, augment=None, standardize: Standardize | None = None, dtype=None):
        self.batch_size, self.dtype = _check_batch_args(images, labels, batch_size, augment, standardize, dtype)
        self.images, self.labels = images, labels
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.augment, self.standardize = augment, standardize
        self.rng = as_generator(seed, "seed")

    def __iter__(self):
        return batches(self.images, self.labels, self.batch_size, shuffle=self.shuffle, rng=self.rng,
                       drop_last=self.drop_last, augment=self.augment, standardize=self.standardize,
                       dtype=self.dtype)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"DataLoader({self.num_samples} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, augment={self.augment!r}, standardize={self.standardize!r})")


class Loaders(NamedTuple):
    """What :func:`make_loaders` returns; ``val`` is None when ``validation=0``."""

    train: DataLoader
    val: DataLoader | None
    test: DataLoader
    standardize: Standardize | None


def make_loaders(dataset: Dataset, *, validation=0.1, batch_size: int = 64, seed=0, augment=None,
                 standardize: bool = True, eval_batch_size: int | None = None, dtype=None) -> Loaders:
    """Split, standardise and batch a :class:`Dataset` the leak-free way.

    Holds out ``validation`` (count or fraction) of the training split
    (seeded), fits :class:`Standardize` on the remaining training images
    only, and returns loaders: train shuffled (and augmented) from
    ``seed``; validation and test in order, never augmented, standardised
    with the training statistics. The fitted ``standardize`` is returned to
    be saved with the model.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a Dataset (from load_dataset), got {type(dataset).__name__}")
    eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
    generator = as_generator(seed, "seed")
    train, val = train_valid_split(dataset.train, validation, seed=generator)
    std = Standardize().fit(train.images) if standardize else None
    common = dict(standardize=std, dtype=dtype)
    return Loaders(
        train=DataLoader(train.images, train.labels, batch_size, shuffle=True, seed=generator, augment=augment,
                         **common),
        val=DataLoader(val.images, val.labels, eval_batch_size, **common) if len(val) else None,
        test=DataLoader(dataset.test.images, dataset.test.labels, eval_batch_size, **common),
        standardize=std,
    )
