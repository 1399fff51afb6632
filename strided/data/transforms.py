"""Standardisation and training-time augmentation, vectorised over the batch.

``Standardize`` follows write-up 003: networks train best on inputs with zero
mean and unit standard deviation, and the statistics must come from the
training split only, otherwise validation and test scores are measured on
data the model has partly seen::

    std = Standardize().fit(train.images)        # per-channel mean/std of train
    x = std(batch)                               # (x - mean[c]) / (std[c] + eps)

Augmentations take a batch ``x: (N, C, H, W)`` and a seeded
``np.random.Generator`` and draw one random decision per image with a
single call to the generator, so they cost a few vectorised array
operations per batch, never a loop over images:

* :class:`RandomCrop` pads by ``padding`` pixels of ``fill`` and cuts a
  ``size`` window at a random offset per image (torchvision's
  ``RandomCrop(size, padding)``), using the zero-copy window view of
  :mod:`strided.windows`;
* :class:`RandomHorizontalFlip` mirrors each image with probability ``p``.

:func:`default_augmentation` picks the usual pair for a dataset (no flip
for digits, whose mirror image is not a digit); :func:`augment_batch` is
the crop-and-flip for any image size, as a plain ``f(x, rng)``.

Applied to uint8 pixels, before standardisation, a fill of 0 is black, as
with torchvision's transforms on images.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import _checks
from ..geometry import Window
from ..windows import pad, window_view

# values per chunk when fitting: an 8 MB float64 temporary, whatever the dataset size (and cache-friendly)
_FIT_CHUNK_VALUES = 1 << 20


def as_generator(rng, name: str = "rng") -> np.random.Generator:
    """A ``np.random.Generator`` from a generator (used as is), an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{name} must be a non-negative seed, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}: {rng!r}")


def _images(name: str, x) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    _checks.ndim(name, x, 4, "(N, C, H, W)")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x


def _check_divisor(std: np.ndarray, eps: float) -> None:
    """Refuse ``std[c] + eps == 0`` (a constant channel without eps): the standardised values would be infinite."""
    if eps == 0 and np.any(std == 0):
        raise ValueError(f"std is 0 for channel(s) {np.flatnonzero(std == 0).tolist()} and eps is 0: the standardised "
                         f"values would be infinite; expected eps > 0 (the default is 1e-7) or std > 0")


class Standardize:
    """Per-channel standardisation ``(x - mean[c]) / (std[c] + eps)`` fitted on training images.

    mean, std: float32 (C,), the population statistics (ddof=0, as write-up 003's
    ``X_train.std(axis=0)``) of the raw values over (N, H, W); ``eps``
    (1e-7, write-up 003's) keeps a constant channel finite. Integer images come
    out float32; float images keep their dtype (float64 stays float64).
    """

    def __init__(self, mean=None, std=None, eps: float = 1e-7):
        self.eps = _checks.positive_float("eps", eps, allow_zero=True)
        self.mean = self.std = None
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (or neither, then call fit)")
        if mean is not None:
            self.load_state_dict({"mean": mean, "std": std, "eps": eps})

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    def fit(self, images) -> "Standardize":
        """Compute the per-channel mean and std of ``images: (N, C, H, W)``; returns self.

        Accumulates in float64 over chunks of images, so a uint8 dataset is
        never converted to floats as a whole.
        """
        x = _images("images", images)
        _checks.nonempty("images", x)
        n, c = x.shape[:2]
        count = x.size // c
        step = max(1, _FIT_CHUNK_VALUES // max(1, x[0].size))
        mean = x.sum(axis=(0, 2, 3), dtype=np.float64) / count
        squares = np.zeros(c)
        # two passes (mean, then squared deviations) avoid E[x^2] - E[x]^2's cancellation on float inputs
        for start in range(0, n, step):
            chunk = x[start:start + step].astype(np.float64)
            chunk -= mean[:, None, None]
            np.square(chunk, out=chunk)
            squares += chunk.sum(axis=(0, 2, 3))
        std = np.sqrt(squares / count)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError("images contain NaN or infinite values; cannot fit mean and std")
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        _check_divisor(self.std, self.eps)
        return self

    def __call__(self, x, rng=None, *, dtype=None) -> np.ndarray:
        """Standardise ``x: (N, C, H, W)`` (or one image (C, H, W)); returns a new float array.

        ``rng`` is unused (standardisation draws nothing); it is there so a
        Standardize is a transform ``t(x, rng)`` like the augmentations and
        goes last in a :class:`Compose`. ``dtype`` (float32 or float64) sets
        the output type; by default float inputs keep theirs and integer
        inputs give float32. The conversion happens inside the subtraction,
        so a uint8 batch is read once.
        """
        if not self.fitted:
            raise RuntimeError("Standardize must be fitted (fit(train_images)) or given mean and std before use")
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        _checks.ndim("x", x, (3, 4), "(N, C, H, W) or (C, H, W)")
        if x.shape[-3] != len(self.mean):
            raise ValueError(f"x has {x.shape[-3]} channels (shape {x.shape}) but the statistics were fitted "
                             f"on {len(self.mean)} channels")
        if dtype is not None:
            dtype = _checks.dtype_of("dtype", dtype)
        elif x.dtype in _checks.FLOAT_DTYPES:
            dtype = x.dtype
        else:
            dtype = np.dtype(np.float32)
        mean = self.mean.astype(dtype)[:, None, None]
        out = np.subtract(x, mean, dtype=dtype)
        out /= (self.std.astype(dtype) + dtype.type(self.eps))[:, None, None]
        return out

    transform = __call__

    def inverse(self, x) -> np.ndarray:
        """Undo the standardisation (for showing images): ``x * (std + eps) + mean``."""
        if not self.fitted:
            raise RuntimeError("Standardize must be fitted before inverse()")
        x = _checks.as_float_array("x", x)
        dtype = x.dtype
        scale = (self.std.astype(dtype) + dtype.type(self.eps))[:, None, None]
        return x * scale + self.mean.astype(dtype)[:, None, None]

    def state_dict(self) -> dict:
        """``{'mean': [C floats], 'std': [C floats], 'eps': float}``, to save with a trained model.

        Plain lists, so the statistics go into a JSON run config as they are;
        float32 values survive the round trip through Python floats exactly.
        """
        if not self.fitted:
            raise RuntimeError("Standardize has no statistics to save: call fit(train_images) first")
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "eps": self.eps}

    @classmethod
    def from_state_dict(cls, state) -> "Standardize":
        """A Standardize with the statistics of :meth:`state_dict` (lists or arrays)."""
        return cls().load_state_dict(state)

    def load_state_dict(self, state) -> "Standardize":
        """Restore statistics saved by :meth:`state_dict`; returns self."""
        if not isinstance(state, dict) or not {"mean", "std"} <= set(state):
            raise ValueError(f"state must be a dict with 'mean' and 'std' (and optionally 'eps'), got {state!r}")
        mean = np.asarray(state["mean"], dtype=np.float32).reshape(-1)
        std = np.asarray(state["std"], dtype=np.float32).reshape(-1)
        if mean.shape != std.shape or mean.size == 0:
            raise ValueError(f"mean and std must be equal-length (C,) arrays, got shapes {mean.shape} and {std.shape}")
        if np.any(std < 0) or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError(f"std must be finite and >= 0 and mean finite, got mean={mean}, std={std}")
        eps = _checks.positive_float("eps", state["eps"], allow_zero=True) if "eps" in state else self.eps
        _check_divisor(std, eps)
        self.mean, self.std, self.eps = mean, std, eps
        return self

    def __repr__(self) -> str:
        if not self.fitted:
            return f"Standardize(eps={self.eps}, not fitted)"
        return f"Standardize(mean={self.mean.tolist()}, std={self.std.tolist()}, eps={self.eps})"


class RandomCrop:
    """Pad each image by ``padding`` pixels of ``fill``, then cut a ``size`` window at a random offset.

    x: (N, C, H, W) -> (N, C, size_h, size_w). The offsets ``(i, j)`` are
    uniform over the ``(H + 2p - size_h + 1) x (W + 2p - size_w + 1)``
    positions, drawn for all images at once; the crop of image ``n`` is
    ``window_view(padded)[n, :, i[n], j[n]]``, gathered in one fancy index.
    """

    def __init__(self, size, padding=0, fill=0):
        self.size = _checks.pair("size", size)
        self.padding = _checks.pair("padding", padding, allow_zero=True)
        if isinstance(fill, (bool, np.bool_)) or not isinstance(fill, numbers.Real):
            raise TypeError(f"fill must be a number, got {fill!r}")
        self.fill = fill

    def __call__(self, x, rng=None) -> np.ndarray:
        x = _images("x", x)
        rng = as_generator(rng)
        n, _, h, w = x.shape
        (ph, pw), (sh, sw) = self.padding, self.size
        oh, ow = h + 2 * ph - sh + 1, w + 2 * pw - sw + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"crop size {self.size} is larger than the padded image {(h + 2 * ph, w + 2 * pw)} "
                             f"(x shape {x.shape}, padding {self.padding})")
        window = Window(h, w, (sh, sw), (1, 1), (ph, ph, pw, pw), (1, 1), oh, ow)
        views = window_view(pad(x, window.padding, self.fill), window)  # (N, C, oh, ow, sh, sw)
        i = rng.integers(0, oh, size=n)
        j = rng.integers(0, ow, size=n)
        return views[np.arange(n), :, i, j]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill})"


class RandomHorizontalFlip:
    """Mirror each image of x: (N, C, H, W) left-right with probability ``p`` (one draw per image)."""

    def __init__(self, p: float = 0.5):
        self.p = _checks.probability("p", p)

    def __call__(self, x, rng=None) -> np.ndarray:
        x = _images("x", x)
        flip = as_generator(rng).random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order, sharing one generator.

    Args:
        transforms: callables ``t(x, rng) -> x`` on a batch (N, C, H, W).

    Augmentation goes first, on the raw pixels, and :class:`Standardize`
    last, so that padding is the background (0, black) and not the mean::

        Compose([RandomCrop(28, padding=2), RandomHorizontalFlip(), std])
    """

    def __init__(self, transforms):
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, (list, tuple)):
            raise TypeError(f"transforms must be a list of callables (x, rng) -> x, got {transforms!r}")
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"transforms must be callables (x, rng) -> x, got {t!r}")
        self.transforms = transforms

    def __call__(self, x, rng=None) -> np.ndarray:
        rng = as_generator(rng)
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def _crop_and_flip(shape, flip: bool) -> Compose:
    h, w = shape
    crop = RandomCrop((h, w), padding=(max(1, h // 8), max(1, w // 8)))
    return Compose([crop, RandomHorizontalFlip()] if flip else [crop])


def default_augmentation(name) -> Compose:
    """The standard training augmentation for dataset ``name``.

    Random crop of the original size after padding by 1/8 of it (4 pixels
    for CIFAR-10's 32, 3 for 28 x 28 images), plus a horizontal flip for
    ``fashion-mnist`` and ``cifar10`` but not for ``mnist`` digits.
    """
    from .catalogue import dataset_info

    info = dataset_info(name)
    return _crop_and_flip(info.image_shape[1:], flip=info.name != "mnist")


def augment_batch(x, rng=None) -> np.ndarray:
    """Random crop (same size, padding 1/8 of it) and horizontal flip of x: (N, C, H, W).

    A plain ``f(x, rng)`` for training loops that take one; for digits use
    ``default_augmentation('mnist')``, which does not flip.
    """
    x = _images("x", x)
    return _crop_and_flip(x.shape[2:], flip=True)(x, rng)
