"""Train/validation splits and mini-batches: ``DataLoader``, as torch's.

A typical pipeline, with the statistics fitted on the training part only
(write-up 003: fitting on everything would leak validation and test data into
training)::

    ds = load_dataset("fashion-mnist", classes=(1, 3))          # trouser vs dress
    train, val = train_valid_split(ds.train, validation=1000, seed=0)
    std = Standardize().fit(train.images)
    loader = DataLoader(train, batch_size=64, shuffle=True, seed=0,
                        transform=Compose([RandomCrop(28, padding=3), std]))
    for x, y in loader:
        ...                                                     # x float32 (64, 1, 28, 28), y int64 (64,)

or, the same in one call, :func:`make_loaders`. Transforms run on the raw
pixels first and standardisation last, so a crop's padding is background.

The order of epoch ``e`` (and every random draw of its transforms) is a pure
function of ``(seed, e)``: ``loader.set_epoch(e)`` before iterating makes a
run resumable exactly at any epoch boundary, in this process or another.

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
from .. import random as _random
from .dataset import ArrayDataset, Dataset, _check_transform
from .datasets import DatasetSplits
from .transforms import Compose, Standardize, as_generator


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


def train_valid_split(split: ArrayDataset, validation, *, seed=0,
                      shuffle: bool = True) -> tuple[ArrayDataset, ArrayDataset]:
    """Split ``split`` into (train, validation) parts.

    validation: number of samples (int) or fraction (float) to hold out.
    With ``shuffle`` the held-out samples are a random subset drawn from
    ``seed`` (an int or a ``np.random.Generator``), the same for the same
    seed; each part keeps the original order. Without it the last
    ``validation`` samples are held out, as write-up 003 does
    (``X_train_full[-1000:]``).
    """
    if not isinstance(split, ArrayDataset):
        raise TypeError(f"split must be an ArrayDataset (e.g. load_dataset(...).train), got {type(split).__name__}")
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
    return batch_size, _output_dtype(dtype)


def _output_dtype(dtype) -> np.dtype | None:
    """The float dtype batches are converted to, or None: float images keep theirs, integer images give float32."""
    return None if dtype is None else _checks.dtype_of("dtype", dtype)


def _as_float_batch(x: np.ndarray, source: np.ndarray | None, dtype: np.dtype | None) -> np.ndarray:
    """x as a float batch (``dtype``, else float stays float and integers give float32), never a view of ``source``."""
    if dtype is None:
        dtype = x.dtype if x.dtype in _checks.FLOAT_DTYPES else np.dtype(np.float32)
    if x.dtype == dtype:
        # a slice (or a transform returning its input) may still be a view of the dataset: callers may modify a batch
        return x.copy() if source is not None and np.may_share_memory(x, source) else x
    return x.astype(dtype)


def _batch_index(n: int, batch_size: int, order, drop_last: bool, start: int = 0):
    """``(b, index)`` for batches ``start, start + 1, ...`` of one pass: a slice (in order) or part of ``order``."""
    stop = n - n % batch_size if drop_last else n
    for b, i in enumerate(range(start * batch_size, stop, batch_size), start=start):
        yield b, slice(i, i + batch_size) if order is None else order[i:i + batch_size]


def batches(images, labels, batch_size: int, *, shuffle: bool = True, rng=None, drop_last: bool = False,
            augment=None, standardize: Standardize | None = None, dtype=None):
    """Iterate once over ``(x, y)`` mini-batches of two arrays (the loop of a hand-written training step).

    images: (N, C, H, W), any real dtype (uint8 as loaded); labels: int (N,) or None.
    Yields x: (B, C, H', W') float32 (float64 images stay float64, or as
    ``dtype`` says) and y: int64 (B,) (or None); B = ``batch_size`` except
    a smaller last batch unless ``drop_last``. Per batch, in order: gather
    (shuffled with ``rng``: a Generator, an int seed or None), ``augment(x,
    rng)`` on the raw values, conversion and ``standardize``. Each batch is
    a fresh array, never a view of ``images``. Arguments are checked when
    called, before iteration starts. :class:`DataLoader` is the same over a
    :class:`Dataset`, re-iterable and resumable.
    """
    batch_size, dtype = _check_batch_args(images, labels, batch_size, augment, standardize, dtype)
    rng = as_generator(rng)
    if labels is not None and labels.dtype != np.int64:
        labels = labels.astype(np.int64)
    order = rng.permutation(len(images)) if shuffle else None
    return _iterate(images, labels, _batch_index(len(images), batch_size, order, drop_last), rng, augment,
                    standardize, dtype)


def _iterate(images, labels, index_batches, rng, augment, standardize, dtype):
    for _, index in index_batches:
        x = images[index]
        if augment is not None:
            x = augment(x, rng)
        x = _as_float_batch(x, images, dtype) if standardize is None else standardize(x, dtype=dtype)
        y = None if labels is None else labels[index].copy() if isinstance(index, slice) else labels[index]
        yield x, y


def _seed_of(seed) -> int:
    if seed is None:
        # drawn from the global generator, so strided.manual_seed makes an unseeded loader reproducible too
        return int(_random.default_generator().integers(2**63))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed)


def _epoch_rng(seed: int, epoch: int, stream: int, shard=None) -> np.random.Generator:
    """The generator of ``stream`` (0: the order; b + 1: batch b's transforms) of epoch ``epoch``, from ``seed``
    alone; a shard ``(rank, world_size)`` of several processes draws its transforms from its own stream."""
    key = (epoch, stream) if shard is None or shard[1] == 1 else (epoch, stream, shard[0])
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def deal_shard(order: np.ndarray, rank: int, world_size: int, drop_last: bool = False) -> np.ndarray:
    """Process ``rank``'s share of an epoch's ``order`` (n,) of sample indices, dealt out like cards.

    The order is made divisible by ``world_size`` (padded by repeating its
    start, cyclically when n < world_size; or cut to a multiple with
    ``drop_last``), then process r takes positions r, r + world_size, ...:
    the shards are disjoint, of equal length (ceil or floor of n /
    world_size), and step b of every process together is positions
    ``b * world_size * B`` to ``(b + 1) * world_size * B`` of the order, one
    global batch. As torch's ``DistributedSampler``. Returns int64 (that length,).
    """
    n = len(order)
    if drop_last:
        order = order[:n - n % world_size]
    else:
        total = -(-n // world_size) * world_size
        if total > n:
            order = np.resize(order, total)  # repeats from the start, cyclically
    return np.asarray(order[rank::world_size], dtype=np.int64)


def _check_shard(shard):
    """``shard`` as ``(rank, world_size)`` ints with 0 <= rank < world_size, or None."""
    if shard is None:
        return None
    if not (isinstance(shard, tuple) and len(shard) == 2):
        raise TypeError(f"shard must be None or a pair (rank, world_size), got {shard!r}")
    world = _checks.positive_int("shard world_size", shard[1])
    rank = _checks.integer("shard rank", shard[0])
    if not 0 <= rank < world:
        raise ValueError(f"shard rank must be in [0, {world - 1}] for world_size {world}, got {rank}")
    return rank, world


class DataLoader:
    """Mini-batches of a :class:`Dataset`, one pass per ``for`` loop (an epoch), as torch's ``DataLoader``.

    Args:
        dataset: a :class:`Dataset` (an :class:`ArrayDataset`, an
            :class:`ImageFolder` or your own subclass).
        batch_size: samples per batch (the last one may be smaller).
        shuffle: a new random order every epoch (False: the dataset's order).
        drop_last: leave out the last batch when it is smaller.
        transform: optional ``t(x, rng) -> x`` applied to every batch of raw
            images (after the dataset's own transform), e.g.
            ``Compose([RandomCrop(28, padding=3), std])``.
        seed: the int every order and transform draw comes from; None draws
            one from :mod:`strided.random`'s global generator (so
            ``strided.manual_seed`` fixes it too). Read it back as ``.seed``.
        dtype: float32 or float64: each batch is converted to it as soon as
            it is gathered, so the transforms (standardisation included) run
            at that precision on the raw values. Default None: integer images
            are transformed as stored and come out float32, float images keep
            their dtype.
        shard: None (every sample), or ``(rank, world_size)``: the part of
            every epoch that process ``rank`` of a data-parallel job reads,
            as torch's ``DistributedSampler`` (drop_last=False): the epoch's
            order (the same on every process) padded by repeating its first
            samples to a multiple of ``world_size`` and dealt out like cards
            (:func:`deal_shard`); ``drop_last`` then applies to the shard's
            batches. Each process's transforms draw from a stream of their
            own, ``(seed, epoch, batch, rank)``. ``(0, 1)`` is the whole epoch,
            exactly as None.

    Shape:
        Yields ``(x, y)``: x float (B, C, H, W), y int64 (B,), fresh arrays.

    Images stay in their stored dtype (uint8) until a batch is formed. Over an
    :class:`ArrayDataset` a batch is one fancy index into its arrays, and the
    transforms run once per batch; other datasets are read one ``ds[i]`` at a
    time and stacked.

    The order of epoch ``e`` and the random draws of its transforms are a
    pure function of ``(seed, e)`` (batch ``b``'s draws of ``(seed, e, b)``).
    Each ``iter(loader)`` runs the current epoch and moves on to the next;
    :meth:`set_epoch` chooses the epoch (and batch) the next ``iter`` starts
    at, which is how ``fit`` resumes exactly. :meth:`state_dict` and
    :meth:`load_state_dict` save and restore that position and the seed.

    Examples::

        train = DataLoader(ArrayDataset(images, labels), batch_size=32, shuffle=True, seed=0,
                           transform=Compose([RandomCrop(28, padding=3), std]))
        for epoch in range(3):
            train.set_epoch(epoch)
            for x, y in train:
                ...
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 transform=None, seed=None, *, dtype=None, shard=None):
        if not isinstance(dataset, Dataset):
            hint = (" (wrap arrays as ArrayDataset(images, labels))"
                    if isinstance(dataset, np.ndarray) else "")
            raise TypeError(f"dataset must be a strided.data.Dataset{hint}, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.shuffle = _checks.boolean("shuffle", shuffle)
        self.drop_last = _checks.boolean("drop_last", drop_last)
        _check_transform(transform)
        self.transform = transform
        self.dtype = _output_dtype(dtype)
        self.seed = _seed_of(seed)
        self.shard = _check_shard(shard)
        self.epoch, self.start_batch = 0, 0

    def with_shard(self, rank: int, world_size: int) -> "DataLoader":
        """A new loader like this one (dataset, batches, transforms, seed, position) reading only the part
        ``(rank, world_size)`` of every epoch (see ``shard``)."""
        loader = DataLoader(self.dataset, self.batch_size, self.shuffle, self.drop_last, self.transform, self.seed,
                            dtype=self.dtype, shard=(rank, world_size))
        loader.epoch = self.epoch
        return loader

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next ``iter(loader)`` run epoch ``epoch`` (0-based) from batch ``start_batch`` on.

        The batches are exactly those epoch ``epoch`` yields from the start
        (same order, same transform draws), so a run stopped at any epoch
        boundary (``start_batch`` 0) or after any batch continues identically.
        """
        epoch = _checks.integer("epoch", epoch)
        start_batch = _checks.integer("start_batch", start_batch)
        if epoch < 0 or not 0 <= start_batch <= len(self):
            raise ValueError(f"set_epoch needs epoch >= 0 and start_batch in 0..{len(self)}, got epoch={epoch}, "
                             f"start_batch={start_batch}")
        self.epoch, self.start_batch = epoch, start_batch

    def state_dict(self) -> dict:
        """``{'seed': int, 'epoch': int, 'start_batch': int}``: where the next ``iter`` starts (JSON-ready)."""
        return {"seed": self.seed, "epoch": self.epoch, "start_batch": self.start_batch}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s seed and position."""
        if not isinstance(state, dict) or not {"seed", "epoch"} <= set(state):
            raise ValueError(f"state must be a dict with 'seed' and 'epoch' (from DataLoader.state_dict()), "
                             f"got {state!r}")
        seed = _seed_of(state["seed"])
        self.set_epoch(state["epoch"], state.get("start_batch", 0))
        self.seed = seed

    def order(self, epoch: int) -> np.ndarray | None:
        """The sample indices of epoch ``epoch`` in the order they are drawn (this shard's only, with
        ``shard``), or None without shuffling or shard (the dataset's order)."""
        epoch = _checks.integer("epoch", epoch)
        n = len(self.dataset)
        order = _epoch_rng(self.seed, epoch, 0).permutation(n) if self.shuffle else None
        if self.shard is None or self.shard[1] == 1:
            return order
        return deal_shard(np.arange(n, dtype=np.int64) if order is None else order, *self.shard)

    @property
    def num_samples(self) -> int:
        """The samples one epoch draws from (its shard's, padded, with ``shard``), before ``drop_last``."""
        n = len(self.dataset)
        return n if self.shard is None else -(-n // self.shard[1])

    def __iter__(self):
        epoch, start = self.epoch, self.start_batch
        self.epoch, self.start_batch = epoch + 1, 0
        index_batches = _batch_index(self.num_samples, self.batch_size, self.order(epoch), self.drop_last, start)
        return self._batches(epoch, index_batches)

    def _batches(self, epoch, index_batches):
        ds = self.dataset
        arrays = isinstance(ds, ArrayDataset)
        own = ds.transform if arrays else None
        for b, index in index_batches:
            draws = own is not None or self.transform is not None
            rng = _epoch_rng(self.seed, epoch, b + 1, self.shard) if draws else None
            if arrays:
                x, y = ds.images[index], ds.labels[index]      # one gather, in the stored dtype
                if isinstance(index, slice):
                    y = y.copy()
                if self.dtype is not None:
                    x = x.astype(self.dtype)
                if own is not None:
                    x = own(x, rng)
            else:
                x, y = _collate(ds, index)                     # fresh arrays already
                if self.dtype is not None:
                    x = x.astype(self.dtype, copy=False)
            if self.transform is not None:
                x = self.transform(x, rng)
            yield _as_float_batch(x, ds.images if arrays else None, self.dtype), y

    def __len__(self) -> int:
        """Batches per epoch (of this shard, with ``shard``)."""
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, transform={self.transform!r}, seed={self.seed}"
                + ("" if self.shard is None else f", shard={self.shard}") + ")")


def _collate(dataset: Dataset, index) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``dataset[i]`` for i in ``index`` (a slice or an index array): (x (B, C, H, W), y int64 (B,))."""
    indices = range(*index.indices(len(dataset))) if isinstance(index, slice) else index.tolist()
    images, labels = [], []
    for i in indices:
        sample = dataset[i]
        if not (isinstance(sample, tuple) and len(sample) == 2):
            raise TypeError(f"{type(dataset).__name__}[{i}] must be a pair (image, label), got {sample!r:.80}")
        image = np.asarray(sample[0])
        if images and image.shape != images[0].shape:
            raise ValueError(f"{type(dataset).__name__}[{i}] has an image of shape {image.shape} but earlier "
                             f"ones have {images[0].shape}: images must share a shape to form a batch")
        images.append(image)
        labels.append(sample[1])
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{type(dataset).__name__} labels must be integers, got {labels[:3]!r}...")
    return np.stack(images), y.astype(np.int64)


class Loaders(NamedTuple):
    """What :func:`make_loaders` returns; ``val`` is None when ``validation=0``."""

    train: DataLoader
    val: DataLoader | None
    test: DataLoader
    standardize: Standardize | None


def make_loaders(dataset: DatasetSplits, *, validation=0.1, batch_size: int = 64, seed: int = 0, augment=None,
                 standardize: bool = True, eval_batch_size: int | None = None, dtype=None) -> Loaders:
    """Split, standardise and batch a loaded dataset the leak-free way.

    Holds out ``validation`` (count or fraction) of the training split
    (drawn from ``seed``), fits :class:`Standardize` on the remaining
    training images only, and returns loaders: train shuffled from ``seed``
    with ``Compose([augment, standardize])`` (augmentation on the raw
    pixels, so crops pad with the background); validation and test in
    order, never augmented, standardised with the training statistics. The
    fitted ``standardize`` is returned to be saved with the model. No image
    is converted to float before its batch is drawn.
    """
    if not isinstance(dataset, DatasetSplits):
        raise TypeError(f"dataset must be what load_dataset returns (DatasetSplits), got {type(dataset).__name__}")
    eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    _check_transform(augment)
    train, val = train_valid_split(dataset.train, validation, seed=int(seed))
    std = Standardize().fit(train.images) if standardize else None
    train_steps = [t for t in (augment, std) if t is not None]
    train_transform = None if not train_steps else train_steps[0] if len(train_steps) == 1 else Compose(train_steps)
    return Loaders(
        train=DataLoader(train, batch_size, shuffle=True, transform=train_transform, seed=seed, dtype=dtype),
        val=DataLoader(val, eval_batch_size, transform=std, dtype=dtype) if len(val) else None,
        test=DataLoader(dataset.test, eval_batch_size, transform=std, dtype=dtype),
        standardize=std,
    )
