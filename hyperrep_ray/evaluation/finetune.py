"""Fine-tuning populations of given initial weights (generated samples, baselines) on a target data set.

The evaluation protocol of the 2022 paper (Section 4.1): a population of initialisations is scored as
it is (epoch 0) and after each of several fine-tuning epochs, with the training hyperparameters of
the *target* domain. Models are fine-tuned as populations (``zoo/population.py``): each model has its
own mini-batch order, drawn from its own seed, and the loss is the sum of the models' mean losses, so
every model follows the trajectory it would follow alone (``tests/test_finetune.py`` checks this
against a plain one-model loop). The epoch loop is the one zoo training uses
(:func:`hyperrep_ray.zoo.train.train_population_epoch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperrep_ray.config import DATASET_HYPERPARAMETERS
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.progress import Progress
from hyperrep_ray.zoo.cnn import normalize_activation, num_params, vector_to_state_dict
from hyperrep_ray.zoo.population import (
    PopulationCNN,
    data_order_generator,
    evaluate_population,
    make_optimizer,
)
from hyperrep_ray.zoo.train import train_population_epoch

__all__ = [
    "HYPER_KEYS",
    "FinetuneHyper",
    "HyperLike",
    "hyper_for_dataset",
    "check_hyper",
    "finetune_seeds",
    "finetune_population",
]

#: Keys a fine-tuning ``hyper`` mapping must have (extra keys such as ``epochs`` are ignored).
HYPER_KEYS = ("activation", "lr", "weight_decay", "optimizer", "batch_size")
#: Zoo training's optimiser and batch size (paper Table 7: Adam; ZooConfig default batch 32).
DEFAULT_OPTIMIZER = "adam"
DEFAULT_BATCH_SIZE = 32


class FinetuneHyper(BaseModel):
    """How a population is fine-tuned on a target: the target domain's training hyperparameters.

    Crosses from the zoo record or the data set's table (paper Table 7) into the evaluation and the
    experiments, so it is validated once here. ``init`` is the target zoo's init method (what B_T
    draws from); fine-tuning itself does not use it. ``hyper["lr"]`` works as on the dict this
    model replaced, and ``model_dump()`` gives that dict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    activation: str
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    optimizer: Literal["adam", "sgd"]
    batch_size: int = Field(ge=1)
    init: str | None = None

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str) -> str:
        return normalize_activation(v)

    @field_validator("optimizer", mode="before")
    @classmethod
    def _lower_optimizer(cls, v: Any) -> Any:
        return str(v).lower()

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)


#: What the fine-tuning functions accept: the model, or a mapping with at least :data:`HYPER_KEYS`.
HyperLike = FinetuneHyper | Mapping[str, Any]


def hyper_for_dataset(dataset: str, **overrides: Any) -> FinetuneHyper:
    """The target domain's training hyperparameters (paper Table 7, digits ours): activation, init,
    lr, weight_decay, optimizer (adam), batch_size (32); ``overrides`` that are not None win."""
    if dataset not in DATASET_HYPERPARAMETERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_HYPERPARAMETERS)}")
    hyper = {
        **DATASET_HYPERPARAMETERS[dataset],
        "optimizer": DEFAULT_OPTIMIZER,
        "batch_size": DEFAULT_BATCH_SIZE,
    }
    hyper.update({k: v for k, v in overrides.items() if v is not None})
    return FinetuneHyper(**hyper)


def check_hyper(hyper: HyperLike) -> FinetuneHyper:
    """``hyper`` as a validated :class:`FinetuneHyper`; a mapping (e.g. a zoo.json's
    ``hyperparameters``) must name the five fine-tuning keys, its other keys are ignored."""
    if isinstance(hyper, FinetuneHyper):
        return hyper
    missing = [k for k in HYPER_KEYS if k not in hyper]
    if missing:
        raise ValueError(
            f"fine-tuning hyperparameters lack {missing}; need {list(HYPER_KEYS)} "
            f"(hyper_for_dataset(name) gives the paper's values)"
        )
    known = (*HYPER_KEYS, "init")
    return FinetuneHyper(**{k: hyper[k] for k in known if k in hyper})


def finetune_seeds(seed: int, sample_ids: Sequence[int] | np.ndarray) -> list[int]:
    """Data-order seed of each sample: a function of (seed, sample_id) only, so a sample is fine-tuned
    the same way whatever batch or worker it lands in, and sample i of every population (S_KDE30,
    B_T, B_F, ...) sees the same sequence of mini-batches (common random numbers)."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return [
        int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1, dtype=np.uint32)[0])
        for i in np.asarray(sample_ids, dtype=np.int64).ravel()
    ]


@overload
def finetune_population(
    init_weights: np.ndarray,
    data: ImageData,
    hyper: HyperLike,
    epochs: int,
    seeds: Sequence[int],
    record: Sequence[int],
    device: str | torch.device = ...,
    population_size: int = ...,
    label: str | None = ...,
    return_weights: Literal[False] = ...,
) -> np.ndarray: ...


@overload
def finetune_population(
    init_weights: np.ndarray,
    data: ImageData,
    hyper: HyperLike,
    epochs: int,
    seeds: Sequence[int],
    record: Sequence[int],
    device: str | torch.device = ...,
    population_size: int = ...,
    label: str | None = ...,
    *,
    return_weights: Literal[True],
) -> tuple[np.ndarray, np.ndarray]: ...


def finetune_population(
    init_weights: np.ndarray,
    data: ImageData,
    hyper: HyperLike,
    epochs: int,
    seeds: Sequence[int],
    record: Sequence[int],
    device: str | torch.device = "cpu",
    population_size: int = 64,
    label: str | None = None,
    return_weights: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Test accuracy (M, len(record)) of M initial weight vectors after each recorded epoch.

    ``record`` lists epochs in 0..``epochs`` (0 = the initial weights, before any training); the
    columns follow its order. ``seeds[i]`` fixes model i's mini-batch order
    (:func:`~hyperrep_ray.zoo.population.data_order_generator`). Models are trained in populations of
    ``population_size``; the result does not depend on it beyond float rounding. Training stops at the
    last recorded epoch unless ``return_weights``, which trains all ``epochs`` and also returns the
    final weights (M, N). Models whose initial weights are not finite are left out of training and
    score 0 at every epoch (their returned weights are the inputs); a model that turns non-finite
    during fine-tuning scores 0 from then on. ``label``: show a progress line with the time left
    (:class:`~hyperrep_ray.progress.Progress`, counted in epochs over all populations) under this name.
    """
    w = np.asarray(init_weights, dtype=np.float32)
    n_params = num_params(data.in_channels)
    if w.ndim != 2 or w.shape[1] != n_params:
        raise ValueError(
            f"init_weights must be (M, {n_params}) for {data.name} ({data.in_channels} channel(s)), "
            f"got {w.shape}"
        )
    seeds = [int(s) for s in seeds]
    if len(seeds) != w.shape[0]:
        raise ValueError(f"got {w.shape[0]} models but {len(seeds)} seeds")
    recorded = [int(e) for e in record]
    if int(epochs) < 0 or any(not 0 <= e <= int(epochs) for e in recorded):
        raise ValueError(f"record epochs {recorded} must lie in 0..epochs={epochs}")
    if population_size < 1:
        raise ValueError(f"population_size must be >= 1, got {population_size}")
    h = check_hyper(hyper)
    last = int(epochs) if return_weights else max(recorded, default=0)

    acc = np.zeros((w.shape[0], len(recorded)), np.float32)
    final = w.copy()
    todo = np.flatnonzero(np.isfinite(w).all(1))
    chunks = [todo[i : i + population_size] for i in range(0, len(todo), population_size)]
    progress = Progress(last * len(chunks), label) if label and last else None
    for sel in chunks:
        acc[sel], final[sel] = _finetune_chunk(
            w[sel], data, h, last, [seeds[i] for i in sel], recorded, torch.device(device), progress
        )
    return (acc, final) if return_weights else acc


def _finetune_chunk(
    w: np.ndarray,
    data: ImageData,
    h: FinetuneHyper,
    epochs: int,
    seeds: list[int],
    record: list[int],
    dev: torch.device,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    c = data.in_channels
    model = PopulationCNN([vector_to_state_dict(v, c) for v in w], c, h.activation).to(dev)
    opt = make_optimizer(model.parameters(), h.optimizer, h.lr, h.weight_decay)
    tx, ty = data.train_x.to(dev), data.train_y.to(dev)
    ex, ey = data.test_x.to(dev), data.test_y.to(dev)
    gens = [data_order_generator(s) for s in seeds]
    acc = np.zeros((len(w), len(record)), np.float32)

    def score(epoch: int) -> None:
        cols = [j for j, e in enumerate(record) if e == epoch]
        if not cols:
            return
        a, _ = evaluate_population(model, ex, ey)
        a[~np.isfinite(model.vectors()).all(1)] = 0.0  # diverged: NaN logits must not count
        acc[:, cols] = a[:, None]

    score(0)
    model.train()
    for epoch in range(1, epochs + 1):
        train_population_epoch(model, opt, tx, ty, gens, h.batch_size)
        score(epoch)
        if progress is not None:
            progress.advance()
    return acc, model.vectors()
