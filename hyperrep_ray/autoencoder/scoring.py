"""Accuracy of a set of flat weight vectors on a data set's images: the one way the package
scores decoded, sampled or stored models without training them.

Models are evaluated together as populations (:func:`hyperrep_ray.zoo.population.evaluate_weight_vectors`);
a non-finite vector (a decoder can produce one) scores 0 instead of poisoning its batch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hyperrep_ray import store
from hyperrep_ray.data.images import load_dataset
from hyperrep_ray.data.zoo_images import images_for_zoo
from hyperrep_ray.zoo.population import evaluate_weight_vectors

Score = Callable[[np.ndarray], np.ndarray]


def weights_accuracy(
    weights: np.ndarray | torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    activation: str,
    device: str | torch.device = "cpu",
    chunk: int = 256,
) -> np.ndarray:
    """Accuracy (M,) float32 of the weight vectors (M, N) on images ``x`` with labels ``y``."""
    return evaluate_weight_vectors(weights, x, y, activation, chunk=chunk, device=device)[0]


def accuracy_scorer(
    x: torch.Tensor, y: torch.Tensor, activation: str, device: str | torch.device = "cpu", chunk: int = 256
) -> Score:
    """``score(weights [M, N]) -> accuracy [M]`` on fixed images (:func:`weights_accuracy`)."""

    def score(weights: np.ndarray) -> np.ndarray:
        return weights_accuracy(weights, x, y, activation, device=device, chunk=chunk)

    return score


def dataset_scorer(dataset: str, activation: str, data_root: str | None = None, split: str = "test") -> Score:
    """:func:`accuracy_scorer` on a named data set's held-out test images (or its train images)."""
    images = load_dataset(dataset, data_root)
    x, y = (images.test_x, images.test_y) if split == "test" else (images.train_x, images.train_y)
    return accuracy_scorer(x, y, activation)


def zoo_scorer(zoo: str, activation: str, data_root: str | None = None) -> Score:
    """:func:`accuracy_scorer` on the held-out test images a stored zoo was tested on (rebuilt from
    its zoo.json record, so a zoo made with another split or recipe is scored on its own images)."""
    images = images_for_zoo(store.read_zoo_meta(zoo), data_root)
    return accuracy_scorer(images.test_x, images.test_y, activation)
