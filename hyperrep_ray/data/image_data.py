"""Preprocessed images of one data set: the object every stage trains and evaluates on."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from hyperrep_ray.data.preprocess import NUM_CLASSES, split_indices


@dataclass
class ImageData:
    """Preprocessed train/test images of one data set.

    ``train_x``/``test_x`` are float32 ``(N, C, 28, 28)`` and already normalised; ``train_y``/``test_y``
    are int64 class indices in ``0..9``. ``preprocessing`` is the JSON-serialisable recipe.

    Objects returned by :func:`load_dataset` share their tensors with an in-process cache: treat the
    tensors as read-only (no in-place ops); clone them first if you need to modify them.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{self.name}: {part}_x must be (N, C, H, W) and {part}_y (N,), "
                    f"got {tuple(x.shape)} and {tuple(y.shape)}"
                )

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    def split_validation(self, fraction: float, seed: int) -> tuple[ImageData, ImageData]:
        """Hold out a stratified ``fraction`` of the *training* images for validation.

        Returns ``(train_part, val_part)``:

        - ``train_part``: the remaining training images as ``train_x``; ``test_x`` is the real test
          set, unchanged.
        - ``val_part``: the same remaining training images as ``train_x``, and the held-out training
          images as ``test_x``/``test_y``. So code that trains on ``train_x`` and reports on
          ``test_x`` can be pointed at ``val_part`` for model selection without ever touching the
          real test images.

        Normalisation is left as it is (statistics of the full training set) so that both parts use
        the preprocessing recorded for the data set. The split is ``train_test_split(arange(N),
        test_size=fraction, stratify=train_y, random_state=seed)`` (unstratified if some class is too
        small to stratify); the indices are recorded in ``preprocessing["validation_split"]``.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        n = int(self.train_y.shape[0])
        keep, held = split_indices(self.train_y.numpy(), fraction, seed)
        if len(keep) == 0 or len(held) == 0:
            raise ValueError(f"validation fraction {fraction} of {n} training images leaves an empty part")
        record = {
            "rule": "sklearn.model_selection.train_test_split(arange(n_train), test_size=fraction, "
            "stratify=train_y, random_state=seed); unstratified if a class is too small",
            "fraction": float(fraction),
            "seed": int(seed),
            "n_train_before": n,
            "kept_train_indices": keep.tolist(),
            "validation_indices": held.tolist(),
        }
        keep_t, held_t = torch.from_numpy(keep), torch.from_numpy(held)
        train_x, train_y = self.train_x[keep_t], self.train_y[keep_t]
        train_part = ImageData(
            name=self.name,
            train_x=train_x,
            train_y=train_y,
            test_x=self.test_x,
            test_y=self.test_y,
            preprocessing={
                **copy.deepcopy(self.preprocessing),
                "validation_split": {**record, "role": "train"},
            },
        )
        val_part = ImageData(
            name=self.name,
            train_x=train_x,
            train_y=train_y,
            test_x=self.train_x[held_t],
            test_y=self.train_y[held_t],
            preprocessing={
                **copy.deepcopy(self.preprocessing),
                "validation_split": {**record, "role": "validation (test_x/y: held-out train images)"},
            },
        )
        return train_part, val_part
