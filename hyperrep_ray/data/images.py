"""Image data sets for the model zoos, preprocessed once into 28x28 normalised tensors.

Every zoo CNN sees 28x28 inputs (DESIGN.md, "Contracts"), so every data set is brought to that
size in this package, and the exact recipe is returned as a JSON-serialisable ``preprocessing``
record. The weight store writes that record into ``zoo.json`` so that anyone can re-evaluate a
stored model on exactly the images it was trained and tested on (``zoo_images.images_for_zoo``).

Two recipes: ``ours`` (``preprocess.py``: fitted normalisation, the whole official training set) and
``authors`` (``authors.py``: the zoo generators' fixed normalisation and train/validation split).
``digits`` (``digits.py``) needs no files or network and is the default for quick runs. The other
data sets are read from ``data_root`` in the layouts torchvision uses (``readers.py``); nothing is
downloaded unless ``download=True`` is passed.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch

from hyperrep_ray.data import readers
from hyperrep_ray.data.accuracy import evaluate_accuracy
from hyperrep_ray.data.authors import authors_images
from hyperrep_ray.data.digits import load_digits_images
from hyperrep_ray.data.image_data import ImageData
from hyperrep_ray.data.preprocess import (
    GREY_WEIGHTS,
    IMAGE_SIZE,
    NUM_CLASSES,
    PREPROCESSING_VERSION,
    fitted_normalisation,
    grey_record,
    normalise_fitted,
    preprocessing_record,
    resize_record,
    to_28,
)
from hyperrep_ray.data.readers import DatasetNotFoundError, RawImages

# Re-exported: callers import these from here.
__all__ = [
    "DATASETS",
    "GREY_WEIGHTS",
    "IMAGE_SIZE",
    "NUM_CLASSES",
    "PREPROCESSING_VERSION",
    "RECIPES",
    "DatasetNotFoundError",
    "ImageData",
    "clear_dataset_cache",
    "evaluate_accuracy",
    "in_channels",
    "load_dataset",
    "load_digits_images",
]

DATASETS = ("digits", "mnist", "svhn", "cifar10", "stl10")
RECIPES = ("ours", "authors")

_CHANNELS = {"digits": 1, "mnist": 1, "svhn": 1, "cifar10": 3, "stl10": 3}


def in_channels(name: str) -> int:
    """Input channels the zoo CNN needs for data set ``name`` (SVHN is converted to grey)."""
    _check_name(name)
    return _CHANNELS[name]


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    download: bool = False,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    recipe: str = "ours",
) -> ImageData:
    """Load data set ``name`` as 28x28 normalised tensors plus its preprocessing record.

    ``digits`` ignores ``data_root``/``download`` and splits its 1797 images into train/test with a
    seeded stratified split (``split_seed``, ``test_fraction``; 0.2 gives 1437/360). The other data
    sets use their official test split (``split_seed``/``test_fraction`` are ignored) and are read
    from ``data_root``; a missing data set raises :class:`DatasetNotFoundError` unless
    ``download=True``, in which case torchvision downloads it into ``data_root``. ``recipe="authors"``
    prepares them as the authors' zoo generators do (``authors.py``).

    Results are cached per process; the returned object is fresh but its tensors are shared with the
    cache (do not modify them in place). :func:`clear_dataset_cache` frees the memory.
    """
    _check_name(name)
    if recipe not in RECIPES:
        raise ValueError(f"unknown image recipe {recipe!r}; choose one of {RECIPES}")
    if name == "digits":
        if recipe != "ours":
            raise ValueError("the authors made no digits zoo: digits only has the 'ours' recipe")
        data = _load_cached("digits", None, int(split_seed), float(test_fraction), recipe)
    else:
        root = readers.resolve_root(name, data_root)
        missing = readers.missing_files(name, root)
        if missing and download:
            readers.download(name, root)
            missing = readers.missing_files(name, root)
        if missing:
            raise DatasetNotFoundError(readers.not_found_message(name, root, missing))
        data = _load_cached(name, str(root), 0, 0.0, recipe)
    return ImageData(
        name=data.name,
        train_x=data.train_x,
        train_y=data.train_y,
        test_x=data.test_x,
        test_y=data.test_y,
        preprocessing=copy.deepcopy(data.preprocessing),
    )


def clear_dataset_cache() -> None:
    """Drop the in-process cache of loaded data sets (e.g. in a long-lived worker)."""
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=4)
def _load_cached(
    name: str, root: str | None, split_seed: int, test_fraction: float, recipe: str
) -> ImageData:
    if name == "digits" or root is None:
        return load_digits_images(split_seed, test_fraction)
    raw = readers.read_raw(name, Path(root))
    return authors_images(name, raw) if recipe == "authors" else _our_images(name, raw)


def _our_images(name: str, raw: RawImages) -> ImageData:
    """Our recipe on the whole official training set: scale, grey (SVHN), resize, fitted normalisation."""
    grey = name == "svhn"
    train_x = to_28(raw.train_x, 255.0, grey)
    test_x = to_28(raw.test_x, 255.0, grey)
    mean, std = normalise_fitted(train_x, test_x)
    record = preprocessing_record(
        name,
        source=raw.source,
        scaling={"divide_by": 255.0, "expression": "uint8 pixels .to(float32) / 255"},
        grey=grey_record() if grey else None,
        resize=resize_record(list(raw.train_x.shape[-2:])),
        normalisation=fitted_normalisation(mean, std),
        split={"rule": "official train/test split of the data set"},
        n_train=len(raw.train_y),
        n_test=len(raw.test_y),
    )
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=torch.as_tensor(raw.train_y, dtype=torch.int64),
        test_x=test_x,
        test_y=torch.as_tensor(raw.test_y, dtype=torch.int64),
        preprocessing=record,
    )
