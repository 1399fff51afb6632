"""Datasets: readers, location and download, splits, standardisation, batching, augmentation.

    from strided.data import load_dataset, make_loaders, RandomCrop, RandomHorizontalFlip, Compose

    ds = load_dataset("fashion-mnist")               # .train, .test: ArrayDataset, uint8 (N, 1, 28, 28)
    ds2 = load_dataset("fashion-mnist", classes=(1, 3))   # trouser vs dress, labels 0/1
    loaders = make_loaders(ds, validation=5000, batch_size=64, seed=0,
                           augment=Compose([RandomCrop(28, padding=2), RandomHorizontalFlip()]))
    for x, y in loaders.train:                       # x float32 standardised, y int64
        ...

As in torch: a :class:`Dataset` (``len``, ``ds[i] -> (image, label)``;
:class:`ArrayDataset`, :class:`ImageFolder`, or your own subclass) and a
:class:`DataLoader` ``(dataset, batch_size, shuffle, drop_last, transform,
seed)`` yielding float32 (B, C, H, W) and int64 (B,) batches.

``python -m strided.data`` lists the datasets and where they are found;
``python -m strided.data download NAME`` fetches one.
"""
from ._io import DataFileError
from .catalogue import DATASETS, DatasetInfo, dataset_info
from .cifar import read_cifar10
from .dataset import ArrayDataset, Dataset
from .datasets import DatasetSplits, Split, download_dataset, load_dataset, read_dataset
from .download import ChecksumError, DownloadError, FileSpec, download_file, verify_file
from .folder import IMG_EXTENSIONS, ImageFolder, read_image
from .idx import read_idx, read_idx_images, read_idx_labels
from .loader import DataLoader, Loaders, batches, make_loaders, train_valid_split
from .locate import cache_dir, dataset_table, find_dataset, format_dataset_table, how_to_get, search_path
from .transforms import (
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    Standardize,
    as_generator,
    augment_batch,
    default_augmentation,
)

__all__ = [
    "ArrayDataset", "DATASETS", "ChecksumError", "Compose", "DataFileError", "DataLoader", "Dataset", "DatasetInfo",
    "DatasetSplits", "DownloadError", "FileSpec", "IMG_EXTENSIONS", "ImageFolder", "Loaders", "RandomCrop", "RandomHorizontalFlip", "Split", "Standardize",
    "as_generator", "augment_batch", "batches", "cache_dir", "dataset_info", "dataset_table",
    "default_augmentation", "download_dataset", "download_file", "find_dataset", "format_dataset_table",
    "how_to_get", "load_dataset", "make_loaders", "read_cifar10", "read_dataset", "read_idx", "read_idx_images",
    "read_idx_labels", "read_image", "search_path", "train_valid_split", "verify_file",
]
