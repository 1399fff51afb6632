"""Use a trained classifier: class probabilities for new images, preprocessed exactly as in training.

A trained model file (``RUN_DIR/model.npz``, written by ``strided train``)
records what prediction needs besides the weights: the input shape (C, H, W),
the class names and the standardisation statistics of the training split
(``strided.data.Standardize``). :class:`Classifier` reads them, and
:func:`predict` applies them to images given as arrays of raw pixel values
(uint8 0..255, as the datasets store them) or as files:

- PNG/JPEG (read with Pillow, the ``images`` extra) or ``.npy`` arrays
  (H, W) or (C, H, W) of raw pixel values;
- a grayscale image for an RGB model is repeated over the three channels,
  an RGB image for a grayscale model becomes its luminance
  ``0.299 R + 0.587 G + 0.114 B`` (ITU-R 601-2, the weights of Pillow's ``convert('L')``);
- no resizing: an image of another height and width is an error naming it.

The output of a multi-class model is read as logits (softmax gives the
probabilities); a model with one output (``two_class_net``, ending in a
sigmoid) gives the probability of the second class.

Examples::

    >>> clf = strided.Classifier.load("runs/lenet5")                    # doctest: +SKIP
    >>> p = clf.predict(["boot.png", "shirt.npy"])                      # doctest: +SKIP
    >>> p.class_names[p.labels[0]], p.probabilities[0].max()            # doctest: +SKIP
    ('Ankle boot', 0.97)
    >>> print(p.format(top_k=3))                                        # doctest: +SKIP
    boot.png: Ankle boot 0.970, Sneaker 0.021, Sandal 0.008
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _checks
from . import io
from ._optional import require
from .data import Standardize
from .functional import softmax
from .nn import Module

#: the file a run directory keeps its trained model in (``strided.runs.MODEL``)
MODEL_FILE = "model.npz"
EVAL_BATCH = 256
_LUMINANCE = np.array([0.299, 0.587, 0.114])


@dataclass
class Predictions:
    """probabilities: (N, K) per image and class; ``labels`` (N,) the most probable classes.

    ``sources`` names the images (file names, or ``image 0``, ``image 1``...).
    """
    probabilities: np.ndarray
    class_names: list
    sources: list

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64: the class of highest probability of each image."""
        return self.probabilities.argmax(axis=1)

    def top(self, k: int = 1) -> list:
        """Per image, the ``k`` most probable ``(class name, probability)`` pairs, most probable first."""
        k = min(_checks.positive_int("k", k), self.probabilities.shape[1])
        order = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        return [[(self.class_names[j], float(row[j])) for j in idx] for row, idx in zip(self.probabilities, order)]

    def format(self, top_k: int = 1) -> str:
        """One line per image: ``source: name p, name p, ...`` with the ``top_k`` most probable classes."""
        return "\n".join(f"{src}: " + ", ".join(f"{name} {p:.3f}" for name, p in pairs)
                         for src, pairs in zip(self.sources, self.top(top_k)))

    def __str__(self) -> str:
        return self.format()


class Classifier:
    """A model with what its inputs need: ``input_shape`` (C, H, W), ``class_names``, ``standardize``.

    Args:
        model: the trained Module (run in evaluation mode).
        class_names: one name per output class (default ``'0'``, ``'1'``...).
        standardize: a fitted ``strided.data.Standardize``, its ``state_dict()``, or None (images go in as they are).
        input_shape: (C, H, W) the model takes; None skips the size check and keeps the images' channels.
    """

    def __init__(self, model: Module, class_names=None, standardize=None, input_shape=None):
        if not isinstance(model, Module):
            raise TypeError(f"model must be a strided Module, got {type(model).__name__}")
        self.model = model
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        if isinstance(standardize, dict):
            standardize = Standardize.from_state_dict(standardize)
        if standardize is not None and not isinstance(standardize, Standardize):
            raise TypeError(f"standardize must be a Standardize, its state_dict() or None, "
                            f"got {type(standardize).__name__}")
        self.standardize = standardize
        if input_shape is not None:
            input_shape = tuple(input_shape)
            if len(input_shape) != 3 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in input_shape):
                raise ValueError(f"input_shape must be (C, H, W), three positive ints, got {input_shape!r}")
        self.input_shape = None if input_shape is None else tuple(int(v) for v in input_shape)

    @classmethod
    def load(cls, source) -> "Classifier":
        """The classifier saved in a run directory (its ``model.npz``) or in a model file written by ``strided.save``."""
        path = Path(os.fspath(source))
        if path.is_dir():
            path = path / MODEL_FILE
            if not path.exists():
                raise FileNotFoundError(f"{source} is not a finished run directory: {MODEL_FILE} is missing")
        elif not path.exists():
            raise FileNotFoundError(f"no run directory or model file {source}")
        info = io.info(path)
        meta = info.get("metadata") if isinstance(info.get("metadata"), dict) else {}
        return cls(io.load(path), meta.get("class_names"), meta.get("standardize"), info.get("input_shape"))

    def metadata(self) -> dict:
        """What a consumer of an exported model needs: ``class_names``, ``mean``, ``std``, ``eps`` where known."""
        out = {}
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        if self.standardize is not None:
            out.update(self.standardize.state_dict())
        return out

    def predict(self, images, batch_size: int = EVAL_BATCH) -> Predictions:
        """Class probabilities of ``images``: a list of files, an array (N, C, H, W) or one image (C, H, W).

        Arrays hold raw pixel values, as the dataset stores them; they are
        standardised with the training statistics here.
        """
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        if isinstance(images, (list, tuple)) and images and all(isinstance(f, (str, os.PathLike)) for f in images):
            sources = [os.fspath(f) for f in images]
            x = np.stack([self.prepare(read_image(f), f) for f in sources])
        else:
            x = np.asarray(images)
            if x.ndim == 3:
                x = x[None]
            _checks.ndim("images", x, 4, "(N, C, H, W), (C, H, W) or a list of image files")
            if x.dtype.kind not in "biuf":
                raise TypeError(f"images must hold pixel values (numbers), got dtype {x.dtype}")
            sources = [f"image {i}" for i in range(len(x))]
            x = self.prepare(x, "images") if len(x) else x
        batch_size = _checks.positive_int("batch_size", batch_size)
        probabilities = []
        was_training = self.model.training
        self.model.eval()
        try:
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size]
                xb = self.standardize(xb, self.model.dtype) if self.standardize is not None \
                    else xb.astype(self.model.dtype)
                probabilities.append(_probabilities(self.model(xb)))
        finally:
            self.model.train(was_training)
        p = np.concatenate(probabilities) if probabilities else np.zeros((0, len(self.class_names or ())))
        names = self.class_names or [str(i) for i in range(p.shape[1])]
        if len(names) != p.shape[1]:
            raise ValueError(f"the model gives {p.shape[1]} class probabilities but has {len(names)} class names")
        return Predictions(p, names, sources)

    def prepare(self, x: np.ndarray, source: str) -> np.ndarray:
        """x: (C, H, W) or (N, C, H, W) raw pixels with the model's channels (1 <-> 3 converted); sizes checked."""
        if self.input_shape is None:
            return x
        channels, h, w = self.input_shape
        if x.shape[-2:] != (h, w):
            raise ValueError(f"{source}: the image is {x.shape[-2]}x{x.shape[-1]} pixels but the model takes "
                             f"{h}x{w} images; resize it to {h}x{w} first")
        axis = x.ndim - 3
        c = x.shape[axis]
        if c == channels:
            return x
        if c == 1 and channels == 3:
            return np.repeat(x, 3, axis=axis)
        if c == 3 and channels == 1:
            gray = np.tensordot(x, _LUMINANCE, axes=([axis], [0]))
            return np.expand_dims(gray, axis).astype(np.result_type(x.dtype, np.float32))
        raise ValueError(f"{source}: the image has {c} channels but the model takes {channels}; "
                         "only grayscale (1) and RGB (3) images are converted")


def _probabilities(out) -> np.ndarray:
    """(N, K) class probabilities from a network's output: softmax of logits (N, K), or [1 - p, p] for (N, 1)."""
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 2 and out.shape[1] > 1:
        return softmax(out, axis=1)
    p = out.reshape(len(out), 1)
    return np.concatenate([1 - p, p], axis=1)


def read_image(path) -> np.ndarray:
    """One image file as raw pixels (C, H, W): PNG/JPEG (and other formats Pillow reads) or ``.npy``.

    Pillow images come as uint8 grayscale (1, H, W) or RGB (3, H, W) (alpha
    and palettes dropped); a ``.npy`` holds (H, W) or (C, H, W) numbers.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"no image file {name}")
    if name.lower().endswith(".npy"):
        try:
            x = np.load(name, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{name}: not a NumPy array file ({exc})") from exc
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected an array of pixel values (H, W) or (C, H, W), "
                             f"got shape {x.shape} and dtype {x.dtype}")
        return x
    Image = require("PIL.Image", "reading PNG/JPEG images", extra="images", packages="Pillow")
    try:
        with Image.open(name) as img:
            if img.mode in ("1", "L", "LA"):
                img = img.convert("L")
            elif img.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
                img = img.convert("RGB")
            else:
                raise ValueError(f"{name}: 8-bit grayscale or RGB images are read, got Pillow mode {img.mode!r}")
            x = np.asarray(img)
    except OSError as exc:
        raise ValueError(f"{name}: not an image Pillow can read ({exc})") from exc
    return x[None] if x.ndim == 2 else x.transpose(2, 0, 1)


def predict(source, images, *, top_k: int | None = None, batch_size: int = EVAL_BATCH) -> Predictions:
    """Class probabilities of ``images`` for a run directory, a model file, a :class:`Classifier` or a Module.

    Args:
        source: ``RUN_DIR``, a model file, a Classifier, or a bare Module
            (then no standardisation, class names ``'0'``, ``'1'``...).
        images: image files (PNG/JPEG/.npy), an array (N, C, H, W) or one image (C, H, W) of raw pixels.
        top_k: when given, the table of the ``top_k`` most probable classes per image is printed too.

    Returns:
        Predictions: ``probabilities`` (N, K), ``labels`` (N,), ``class_names``, ``sources``.
    """
    if isinstance(source, Classifier):
        clf = source
    elif isinstance(source, Module):
        clf = Classifier(source)
    else:
        clf = Classifier.load(source)
    result = clf.predict(images, batch_size)
    if top_k is not None:
        print(result.format(top_k))
    return result
