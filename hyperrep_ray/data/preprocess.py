"""The steps every image goes through before a zoo CNN sees it, and the record that says so.

Our recipe, in this order: scale to [0, 1] -> grey conversion (SVHN only) -> resize to 28x28 with
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` -> per-channel
``(x - mean) / std`` with the mean and (population) std of the *training* images after resizing.
The authors' recipe (``authors.py``) reuses the record and the normalisation step with fixed constants.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

NUM_CLASSES = 10
IMAGE_SIZE = 28
PREPROCESSING_VERSION = 1

# ITU-R BT.601 luma weights (R, G, B); the same as PIL's "L" conversion, without its rounding.
GREY_WEIGHTS = (0.299, 0.587, 0.114)

# Images per chunk when converting/resizing, so that e.g. STL-10 (5000 x 3 x 96 x 96) never exists
# in float32 at full resolution all at once.
CHUNK = 2048


def split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of ``arange(len(labels))``; falls back to unstratified for tiny sets."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        keep, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError:  # a class with < 2 members, or fewer held-out images than classes
        keep, held = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.asarray(keep, dtype=np.int64), np.asarray(held, dtype=np.int64)


def to_28(images: np.ndarray, divide_by: float, grey: bool) -> torch.Tensor:
    """Scale, optionally grey-convert and resize ``(N, C, H, W)`` images to float32 ``(N, C', 28, 28)``."""
    n = images.shape[0]
    out = torch.empty((n, 1 if grey else images.shape[1], IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    for start in range(0, n, CHUNK):
        chunk = np.ascontiguousarray(images[start : start + CHUNK])
        x = torch.as_tensor(chunk).to(torch.float32) / divide_by
        if grey:
            r, g, b = GREY_WEIGHTS
            x = (r * x[:, 0] + g * x[:, 1] + b * x[:, 2]).unsqueeze(1)
        out[start : start + CHUNK] = F.interpolate(
            x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
        )
    return out


def fitted_statistics(train_x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and population std of the training images (a constant channel gets std 1)."""
    c = train_x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, train_x.shape[0], CHUNK):
        chunk = train_x[start : start + CHUNK].to(torch.float64)
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = train_x.shape[0] * train_x.shape[2] * train_x.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [float(v) for v in mean], [float(v) for v in std]


def normalise(xs: tuple[torch.Tensor, ...], mean: list[float], std: list[float]) -> None:
    """``(x - mean[c]) / std[c]`` in place on every tensor of ``xs``."""
    c = len(mean)
    mean_f = torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
    std_f = torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)
    for x in xs:
        x.sub_(mean_f).div_(std_f)


def normalise_fitted(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Normalise both sets in place with the per-channel train mean and population std."""
    mean, std = fitted_statistics(train_x)
    normalise((train_x, test_x), mean, std)
    return mean, std


def grey_record() -> dict[str, Any]:
    return {
        "weights_rgb": list(GREY_WEIGHTS),
        "standard": "ITU-R BT.601 luma",
        "expression": "0.299 * R + 0.587 * G + 0.114 * B on the [0, 1] scaled image",
    }


def resize_record(original_size: list[int]) -> dict[str, Any]:
    return {
        "function": "torch.nn.functional.interpolate",
        "size": [IMAGE_SIZE, IMAGE_SIZE],
        "mode": "bilinear",
        "align_corners": False,
        "antialias": False,
        "original_size": [int(s) for s in original_size],
    }


def preprocessing_record(
    name: str,
    *,
    source: dict[str, Any],
    scaling: dict[str, Any],
    grey: dict[str, Any] | None,
    resize: dict[str, Any],
    normalisation: dict[str, Any],
    split: dict[str, Any],
    n_train: int,
    n_test: int,
) -> dict[str, Any]:
    """The JSON-serialisable recipe zoo.json keeps, so anyone can rebuild the exact images."""
    return {
        "format_version": PREPROCESSING_VERSION,
        "dataset": name,
        "recipe": "ours",
        "source": source,
        "order": ["input_scaling", "grey_conversion", "resize", "normalisation"],
        "input_scaling": scaling,
        "grey_conversion": grey,
        "resize": resize,
        "normalisation": normalisation,
        "channels": len(normalisation["mean"]),
        "torch_version": torch.__version__,
        "split": split,
        "num_train": int(n_train),
        "num_test": int(n_test),
    }


def fitted_normalisation(mean: list[float], std: list[float]) -> dict[str, Any]:
    return {
        "expression": "(x - mean[c]) / std[c]",
        "mean": mean,
        "std": std,
        "computed_on": "training images after scaling, grey conversion and resize (population std)",
    }
