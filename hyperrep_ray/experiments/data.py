"""The data and fine-tuning settings the experiments run on: a zoo's own data set and hyperparameters,
the paper's per-data-set values for a transfer target, and the derived digits transfer target.

Where no second real data set is at hand (the ``quick`` preset runs on the embedded digits only), the
transfer target is :func:`digits_transfer_target`: the same digits, each image mirrored left-right and
then rotated by 90 degrees (which is the transpose of the image), with the same labels and the same
train/test split. It is a real classification task the source models were not trained on, but a derived
target, not an independent data set; the tables say so.
"""

from __future__ import annotations

import numpy as np

from hyperrep_ray import store
from hyperrep_ray.data.images import DatasetNotFoundError, ImageData, load_dataset, load_digits_images
from hyperrep_ray.data.zoo_images import images_for_zoo
from hyperrep_ray.evaluation.finetune import FinetuneHyper, check_hyper, hyper_for_dataset

#: Source -> target data set of the transfer experiment (paper Table 2 and Appendix F: both directions).
PAPER_TRANSFER_PAIRS = {"svhn": "mnist", "mnist": "svhn", "stl10": "cifar10", "cifar10": "stl10"}
#: Name of the derived digits transfer target (:func:`digits_transfer_target`).
TRANSFER_TARGET_NAME = "digits-transposed"
#: What a derived target is, for its preprocessing record and the transfer table's caption.
DERIVED_CAPTION = (
    "{name} is a derived target, not an independent data set: the same scikit-learn digits, each 8x8 "
    "image mirrored left-right and then rotated by 90 degrees (together: transposed), with the same "
    "labels and the same train/test split as the source digits."
)


def digits_transfer_target(split_seed: int = 0, test_fraction: float = 0.2) -> ImageData:
    """The digits transfer target: every digit mirrored left-right, then rotated 90 degrees
    counter-clockwise (the two together transpose the image), same labels, same split.

    Built exactly like ``load_dataset("digits", split_seed=..., test_fraction=...)`` (scale by 1/16,
    bilinear resize to 28x28, normalise with the train images' mean and std), so its train and test
    images are the transformed train and test images of that digits split. The preprocessing record says
    ``derived_from: digits`` and the transform, so fine-tuning takes the digits hyperparameters.
    """
    data = load_digits_images(
        split_seed,
        test_fraction,
        name=TRANSFER_TARGET_NAME,
        transform=(
            lambda images: np.rot90(np.flip(images, axis=2), k=1, axes=(1, 2)),  # = transpose
            "np.rot90(np.flip(images, axis=2), k=1, axes=(1, 2)) on the 8x8 images "
            "(mirror left-right, then rotate 90 degrees counter-clockwise; equals the transpose)",
        ),
    )
    data.preprocessing["derived_from"] = "digits"
    data.preprocessing["note"] = DERIVED_CAPTION.format(name=TRANSFER_TARGET_NAME)
    return data


def is_derived(data: ImageData) -> bool:
    """Whether ``data`` is derived from another data set (and takes that one's hyperparameters)."""
    return "derived_from" in data.preprocessing


def zoo_hyper(zoo: str) -> tuple[FinetuneHyper, str]:
    """(fine-tuning hyperparameters, init method) of a zoo: its own training settings, from zoo.json."""
    hp = store.read_zoo_meta(zoo)["hyperparameters"]
    return check_hyper(hp), str(hp["init"])


def target_hyper(data: ImageData) -> tuple[FinetuneHyper, str]:
    """(hyper, init) of a target data set: the paper's per-data-set values (a derived target takes those
    of the data set it is derived from)."""
    h = hyper_for_dataset(str(data.preprocessing.get("derived_from", data.name)))
    return check_hyper(h), str(h["init"])


def zoo_data(zoo: str, data_root: str | None = None) -> ImageData:
    """The image data set a zoo was trained on, rebuilt from its zoo.json record (split, recipe) and
    checked against it."""
    return images_for_zoo(store.read_zoo_meta(zoo), data_root)


def default_transfer_target(data: ImageData, data_root: str | None) -> tuple[ImageData | None, str | None]:
    """The transfer target of a source data set: (target, None), or (None, why there is none): the
    digits transfer target for digits (same split), else the paper's pair under ``data_root``."""
    if data.name == "digits":
        split = data.preprocessing.get("split", {})
        return digits_transfer_target(int(split.get("seed", 0)), float(split.get("test_fraction", 0.2))), None
    target = PAPER_TRANSFER_PAIRS.get(data.name)
    if target is None:
        return None, f"no transfer target is defined for {data.name}"
    try:
        return load_dataset(target, data_root, recipe=str(data.preprocessing.get("recipe", "ours"))), None
    except DatasetNotFoundError as e:
        return None, f"target {target} not available: {e}"
