"""Sampling conditioned on an unseen zoo (2022 paper, Table 3): the autoencoder of one zoo encodes the
models of a zoo it never saw, and samples drawn from those embeddings are scored on that zoo's task."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.ray_pipeline import evaluate_weights, zoo_models
from hyperrep_ray.evaluation.results import ExperimentResult
from hyperrep_ray.experiments.data import zoo_hyper
from hyperrep_ray.experiments.inputs import check_channels, check_n
from hyperrep_ray.experiments.populations import (
    concat_rows,
    ensemble_accuracy,
    evaluate_samples,
    population_logits,
    random_ensembles,
    task_batch_size,
)
from hyperrep_ray.experiments.statistics import summarize_result
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH, TOP_FRACTION, sample

#: Size of the ensembles in the unseen-zoo experiment (paper Table 3 does not state its size).
UNSEEN_ENSEMBLE_SIZE = 5


def conditioned_samples(
    ae_dir: str,
    bundle: HyperRepresentation,
    other_zoo: str,
    n: int,
    seed: int,
    bandwidth: float,
    fraction: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(``n`` embeddings, what they were conditioned on): the per-dimension KDE fitted on the embeddings
    (by ``bundle``, loaded from ``ae_dir``) of the top ``fraction`` (by stored test accuracy) of
    ``other_zoo``'s train-split models at its last recorded epoch."""
    meta = store.read_zoo_meta(other_zoo)
    last = max(int(e) for e in meta["epochs_recorded"])
    w, rows = store.load_weights(other_zoo, epochs=[last], split="train")
    if len(rows) == 0:
        raise ValueError(f"the zoo at {other_zoo} has no train-split models at epoch {last}")
    if bundle.in_channels != int(meta["architecture"]["in_channels"]):
        raise ValueError(
            f"the autoencoder at {ae_dir} embeds {bundle.in_channels}-channel models, the zoo at "
            f"{other_zoo} holds {meta['architecture']['in_channels']}-channel models"
        )
    z_other = bundle.encode(w.numpy())
    z = sample("kde30", z_other, rows["test_acc"].to_numpy(), n, seed, bandwidth=bandwidth, fraction=fraction)
    condition = {"other_dataset": meta["dataset"], "other_zoo_name": meta.get("name", str(other_zoo))}
    return z, {**condition, "conditioning_models": len(rows), "conditioning_epoch": last}


def ensemble_frame(
    weights: np.ndarray, data: ImageData, activation: str, population: str, members: list[np.ndarray]
) -> pd.DataFrame:
    """One long-format row (epoch 0) per averaged-logit ensemble of ``members``."""
    logits = population_logits(weights, data, activation)
    return pd.DataFrame(
        {
            "population": population,
            "sample_id": np.arange(len(members), dtype=np.int64),
            "finetune_epoch": 0,
            "test_acc": [ensemble_accuracy(logits, data.test_y, m) for m in members],
        }
    )


def unseen_zoo(
    ae_dir: str,
    other_zoo: str,
    data: ImageData,
    n: int,
    seed: int = 0,
    *,
    ensemble_size: int = UNSEEN_ENSEMBLE_SIZE,
    repeats: int = 15,
    bandwidth: float | None = None,
    fraction: float = TOP_FRACTION,
    batch_size: int | None = None,
    decode_on_driver: bool = False,
    num_gpus: float = 0.0,
) -> ExperimentResult:
    """Paper Table 3: the autoencoder conditioned on a zoo it never saw.

    The models of ``other_zoo``'s train split at its last recorded epoch are aligned and encoded, the
    per-dimension KDE is fitted on the embeddings of the top ``fraction`` (30 %) by their stored test
    accuracy, ``n`` samples are drawn and decoded (population S_KDE30) and scored on ``data`` (the other
    zoo's data set) at epoch 0, with the other zoo's activation, next to ``n`` of the other zoo's own
    models at that epoch (B_Zoo; test split first). The paper's "Ensemble" column is
    S_KDE30_ens<ensemble_size>: ``repeats`` averaged-logit ensembles of the decoded samples.
    ``decode_on_driver``: see :func:`~.experiments.runner.resolve_decode_on_driver`."""
    n = check_n(n)
    check_channels(ae_dir, data)
    hyper, _ = zoo_hyper(other_zoo)
    bundle = HyperRepresentation.load(ae_dir)
    h = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
    z, condition = conditioned_samples(ae_dir, bundle, other_zoo, n, seed, h, fraction)
    bs = task_batch_size(n, batch_size)
    own, _ = zoo_models(other_zoo, n)
    frames = [
        evaluate_samples(
            z, ae_dir, data, hyper, [], "S_KDE30", seed, bs, decode_on_driver, num_gpus=num_gpus
        ),
        evaluate_weights(own, data, hyper, [], "B_Zoo", seed, batch_size=bs, num_gpus=num_gpus),
    ]
    notes = []
    members = random_ensembles(n, [ensemble_size], repeats, seed).get(int(ensemble_size), [])
    if members and ensemble_size > 1:
        name = f"S_KDE30_ens{ensemble_size}"
        frames.append(ensemble_frame(bundle.decode(z), data, hyper["activation"], name, members))
    else:
        notes.append(f"ensembles of {ensemble_size} left out (n={n})")
    params: dict[str, Any] = {
        "ae": str(ae_dir),
        "ae_dataset": bundle.dataset,
        "other_zoo": str(other_zoo),
        **condition,
        "dataset": data.name,
        "n": n,
        "seed": seed,
        "bandwidth": h,
        "fraction": fraction,
        "ensemble_size": ensemble_size,
        "repeats": repeats,
    }
    result = ExperimentResult("unseen_zoo", {}, concat_rows(frames), [], params=params, notes=notes)
    return summarize_result(result, "finetune_epoch", seed)
