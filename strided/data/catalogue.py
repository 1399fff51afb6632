"""The datasets strided knows: their shapes, class names, files with checksums, mirrors and packages.

Three image classification datasets, all returned by
:func:`strided.data.load_dataset` as uint8 NCHW images and int64 labels:

=================  ===========  ==============  ================================
name               images       train / test    files
=================  ===========  ==============  ================================
``fashion-mnist``  1 x 28 x 28  60000 / 10000   four IDX files (``.gz`` or raw)
``mnist``          1 x 28 x 28  60000 / 10000   four IDX files (``.gz`` or raw)
``cifar10``        3 x 32 x 32  50000 / 10000   ``cifar-10-python.tar.gz`` or
                                                ``cifar-10-batches-py/``
=================  ===========  ==============  ================================

:data:`DATASETS` maps each name to its :class:`DatasetInfo`;
:func:`dataset_info` finds one by a forgiving spelling of its name.
Where the files are looked for is :mod:`strided.data.locate`'s business.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cifar import ARCHIVE as CIFAR_ARCHIVE
from .download import FileSpec

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
