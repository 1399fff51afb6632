"""``ImageFolder``: a dataset of image files, one folder per class, as torchvision's.

    root/dress/0001.png
    root/dress/0002.png
    root/trouser/a.jpg
    ...

    ds = ImageFolder("root")               # ds.classes == ['dress', 'trouser']
    image, label = ds[0]                   # uint8 (C, H, W), int

Classes are the sub-folder names sorted (so label ``i`` is ``classes[i]``,
as in torchvision); the files of each class are found recursively, sorted,
and kept when their extension is one of ``IMG_EXTENSIONS`` (any case).
Images are read when a sample is asked for (Pillow, the ``images`` extra):
greyscale images as one channel, every other mode converted to RGB.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import _optional
from .. import random as _random
from .dataset import Dataset, _check_transform, _sample_index

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Pillow modes read as one channel; every other mode is converted to RGB
_GREY_MODES = ("1", "L", "I", "I;16", "F")


def _pillow():
    return _optional.require("PIL.Image", "ImageFolder (reading PNG/JPEG files)", extra="images", packages="pillow")


def read_image(path) -> np.ndarray:
    """The image file ``path`` (PNG or JPEG) as uint8 (C, H, W): C = 1 for greyscale, 3 otherwise (RGB)."""
    image_module = _pillow()
    with image_module.open(path) as img:
        img = img.convert("L" if img.mode in _GREY_MODES else "RGB")
        pixels = np.asarray(img, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


class ImageFolder(Dataset):
    """Image files in one folder per class under ``root``: ``ds[i] -> (image uint8 (C, H, W), label)``.

    Args:
        root: the directory holding one sub-folder per class.
        transform: optional ``t(x, rng) -> x`` applied to each image read
            (as a batch of one); batch transforms belong on the ``DataLoader``.

    Attributes: ``classes`` (sorted folder names), ``class_to_idx`` (name ->
    label), ``samples`` (list of ``(path, label)``), ``targets`` (labels).
    Raises FileNotFoundError when ``root`` has no class folder or a class
    folder holds no image file.
    """

    def __init__(self, root, transform=None):
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path (str or Path), got {type(root).__name__}")
        _check_transform(transform)
        _pillow()  # a missing Pillow is reported now, not at the first batch
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a directory")
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: no class folder in {self.root} (expected root/<class>/<image>)")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = []
        empty = []
        for name in self.classes:
            found = [(str(Path(folder) / f), self.class_to_idx[name])
                     for folder, _, files in sorted(os.walk(self.root / name, followlinks=True))
                     for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)]
            if not found:
                empty.append(name)
            self.samples += found
        if empty:
            raise FileNotFoundError(f"ImageFolder: no image file ({', '.join(IMG_EXTENSIONS)}) in the class "
                                    f"folder(s) {', '.join(empty)} of {self.root}")
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        """``(image uint8 (C, H, W) or as the transform makes it, label int)`` of sample ``index``."""
        path, label = self.samples[_sample_index(index, len(self))]
        image = read_image(path)
        if self.transform is not None:
            image = self.transform(image[None], _random.default_generator())[0]
        return image, label

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, classes={self.classes})"
