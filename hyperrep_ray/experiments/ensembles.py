"""Ensembles of sampled models (2022 paper, Figure 5): accuracy of averaged-logit ensembles of sampled
and of trained models against ensemble size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hyperrep_ray.autoencoder.bundle import HyperRepresentation, read_ae_info
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.finetune import FinetuneHyper, finetune_seeds, hyper_for_dataset
from hyperrep_ray.evaluation.ray_pipeline import scratch_weights
from hyperrep_ray.evaluation.results import ExperimentResult
from hyperrep_ray.experiments.data import zoo_hyper
from hyperrep_ray.experiments.inputs import check_channels, check_n
from hyperrep_ray.experiments.populations import (
    ensemble_rows,
    population_logits,
    random_ensembles,
    train_weights,
)
from hyperrep_ray.experiments.statistics import summarize_result
from hyperrep_ray.sampling.generate import sample_embeddings

ROW_COLUMNS = ["population", "ensemble_size", "ensemble_id", "members", "test_acc"]


def autoencoder_hyper(ae_dir: str) -> tuple[FinetuneHyper, str]:
    """(hyper, init): the paper's values for the data set of the autoencoder's zoo."""
    h = hyper_for_dataset(read_ae_info(ae_dir)["dataset"])
    return h, str(h["init"])


def member_weights(
    ae_dir: str,
    data: ImageData,
    n: int,
    seed: int,
    hyper: FinetuneHyper,
    init: str,
    baseline_ae_dir: str | None,
    finetune_epoch: int,
    train_epochs: int,
    bandwidth: float | None,
    num_gpus: float,
) -> dict[str, np.ndarray]:
    """population -> the (n, N) weights its ensembles are drawn from, in this order: S_KDE30 as sampled
    and fine-tuned, B_KDE30 as sampled, B_T trained from scratch (see :func:`ensembles`)."""
    seeds = finetune_seeds(seed, range(n))
    weights: dict[str, np.ndarray] = {}
    s0 = HyperRepresentation.load(ae_dir).decode(sample_embeddings(ae_dir, n, "kde30", seed, bandwidth))
    weights["S_KDE30_ep0"] = s0
    if finetune_epoch > 0:
        w1 = train_weights(s0, data, hyper, finetune_epoch, seeds, num_gpus=num_gpus)
        weights[f"S_KDE30_ep{finetune_epoch}"] = w1
    if baseline_ae_dir is not None:
        check_channels(baseline_ae_dir, data)
        z = sample_embeddings(baseline_ae_dir, n, "kde30", seed, bandwidth)
        weights["B_KDE30_ep0"] = HyperRepresentation.load(baseline_ae_dir).decode(z)
    bt0, _ = scratch_weights(n, data.in_channels, init, seed)
    weights[f"B_T_ep{train_epochs}"] = train_weights(bt0, data, hyper, train_epochs, seeds, num_gpus=num_gpus)
    return weights


def ensembles(
    ae_dir: str,
    data: ImageData,
    n: int,
    sizes: Sequence[int] = (1, 2, 3, 5, 10),
    repeats: int = 15,
    seed: int = 0,
    *,
    zoo: str | None = None,
    baseline_ae_dir: str | None = None,
    finetune_epoch: int = 1,
    train_epochs: int = 25,
    bandwidth: float | None = None,
    num_gpus: float = 0.0,
) -> ExperimentResult:
    """Paper Figure 5: accuracy of averaged-logit ensembles against ensemble size.

    Populations (``n`` models each): S_KDE30 as sampled (``S_KDE30_ep0``) and after ``finetune_epoch``
    fine-tuning epochs (``S_KDE30_ep1``; 0 leaves it out), B_KDE30 as sampled when ``baseline_ae_dir``
    is given, and B_T trained from scratch for ``train_epochs`` (``B_T_ep25``; the paper's 25). Size 1
    is every model once, larger sizes ``repeats`` random subsets (:func:`~.populations.random_ensembles`),
    the same subsets for every population. Hyperparameters and init come from ``zoo`` (else the paper's
    values for the autoencoder's data set). Training and fine-tuning run as Ray tasks
    (:func:`~.populations.train_weights`, each with ``num_gpus``); logits come from PopulationCNN
    directly, on the driver; the member weights are kept in ``result.extra["weights"]``."""
    n = check_n(n)
    if finetune_epoch < 0 or train_epochs < 0:
        raise ValueError(
            f"epochs must be >= 0, got finetune_epoch={finetune_epoch}, train_epochs={train_epochs}"
        )
    check_channels(ae_dir, data)
    hyper, init = zoo_hyper(zoo) if zoo is not None else autoencoder_hyper(ae_dir)
    weights = member_weights(
        ae_dir, data, n, seed, hyper, init, baseline_ae_dir, finetune_epoch, train_epochs, bandwidth, num_gpus
    )
    members = random_ensembles(n, sizes, repeats, seed)
    notes = [f"ensemble size {k} left out: larger than n={n}" for k in sorted(set(sizes)) if int(k) > n]
    rows = []
    for pop, w in weights.items():
        rows += ensemble_rows(pop, population_logits(w, data, hyper["activation"]), data.test_y, members)
    params: dict[str, Any] = {
        "ae": str(ae_dir),
        "baseline_ae": str(baseline_ae_dir),
        "dataset": data.name,
        "n": n,
        "sizes": sorted({int(s) for s in sizes}),
        "repeats": int(repeats),
        "seed": seed,
        "finetune_epoch": finetune_epoch,
        "train_epochs": train_epochs,
    }
    result = ExperimentResult(
        "ensembles",
        {},
        pd.DataFrame(rows, columns=ROW_COLUMNS),
        [],
        params=params,
        notes=notes,
        extra={"weights": weights, "members": members},
    )
    return summarize_result(result, "ensemble_size", seed)
