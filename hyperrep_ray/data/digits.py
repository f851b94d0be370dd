"""The embedded digits (scikit-learn's bundled 8x8 handwritten digits): no files, no network.

The default data set of quick runs. Its 1797 images are split into train/test with a seeded,
stratified split whose indices are recorded, then go through our recipe (``preprocess.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hyperrep_ray.data.image_data import ImageData
from hyperrep_ray.data.preprocess import (
    fitted_normalisation,
    normalise_fitted,
    preprocessing_record,
    resize_record,
    split_indices,
    to_28,
)


def load_digits_images(
    split_seed: int,
    test_fraction: float,
    name: str = "digits",
    transform: tuple[Callable[[np.ndarray], np.ndarray], str] | None = None,
) -> ImageData:
    """The embedded digits, optionally with ``transform = (fn, description)`` applied to the 8x8
    images (N, 8, 8) before the usual preprocessing: a derived data set with the same labels, split
    and preprocessing (the digits transfer target of the experiments)."""
    import sklearn
    from sklearn.datasets import load_digits

    digits = load_digits()
    source = {"loader": "sklearn.datasets.load_digits()", "sklearn_version": sklearn.__version__}
    raw = digits.images
    if transform is not None:
        raw = np.ascontiguousarray(transform[0](raw))
        source["transform"] = transform[1]
    labels = np.asarray(digits.target, dtype=np.int64)
    train_idx, test_idx = split_indices(labels, test_fraction, split_seed)
    x = to_28(raw[:, None, :, :], 16.0, grey=False)  # (1797, 1, 8, 8) float64 in 0..16
    train_x, test_x = x[torch.from_numpy(train_idx)], x[torch.from_numpy(test_idx)]
    mean, std = normalise_fitted(train_x, test_x)
    record = preprocessing_record(
        name,
        source=source,
        scaling={
            "divide_by": 16.0,
            "expression": ("transformed " if transform else "") + "load_digits().images / 16",
        },
        grey=None,
        resize=resize_record([8, 8]),
        normalisation=fitted_normalisation(mean, std),
        split={
            "rule": "sklearn.model_selection.train_test_split(arange(1797), test_size=test_fraction, "
            "stratify=load_digits().target, random_state=seed); indices index load_digits() order",
            "seed": int(split_seed),
            "test_fraction": float(test_fraction),
            "train_indices": train_idx.tolist(),
            "test_indices": test_idx.tolist(),
        },
        n_train=len(train_idx),
        n_test=len(test_idx),
    )
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=torch.from_numpy(labels[train_idx]),
        test_x=test_x,
        test_y=torch.from_numpy(labels[test_idx]),
        preprocessing=record,
    )
