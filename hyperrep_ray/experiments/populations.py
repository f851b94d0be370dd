"""Populations of models as the experiments use them: decoded and scored (in the Ray Data pipeline or on
the driver), trained as Ray tasks, their logits on the test images, and averaged-logit ensembles."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.finetune import HyperLike, finetune_population
from hyperrep_ray.evaluation.ray_pipeline import empty_results_frame, evaluate_embeddings, evaluate_weights
from hyperrep_ray.runtime import ensure_ray
from hyperrep_ray.zoo.cnn import vector_to_state_dict
from hyperrep_ray.zoo.population import CPU_MODEL_IMAGES, PopulationCNN


@torch.no_grad()
def population_logits(weights: np.ndarray, data: ImageData, activation: str, chunk: int = 64) -> np.ndarray:
    """Logits (M, T, 10) float32 of M flat weight vectors on the T test images of ``data``, computed with
    :class:`~hyperrep_ray.zoo.population.PopulationCNN` in chunks of ``chunk`` models. Models whose
    weights are not finite get NaN logits."""
    w = np.asarray(weights, dtype=np.float32)
    c = data.in_channels
    x = data.test_x
    out = np.full((len(w), x.shape[0], 10), np.nan, np.float32)
    idx = np.flatnonzero(np.isfinite(w).all(1)) if len(w) else np.zeros(0, np.int64)
    for start in range(0, len(idx), chunk):
        sel = idx[start : start + chunk]
        model = PopulationCNN([vector_to_state_dict(v, c) for v in w[sel]], c, activation).eval()
        batch = max(64, CPU_MODEL_IMAGES // len(sel))
        for b in range(0, x.shape[0], batch):
            out[sel, b : b + batch] = model(x[b : b + batch]).numpy()
    return out


def ensemble_accuracy(
    logits: np.ndarray, labels: np.ndarray | torch.Tensor, members: Sequence[int] | np.ndarray
) -> float:
    """Accuracy of the ensemble ``members`` (indices into ``logits`` (M, T, 10)): the argmax of the
    members' averaged logits. Members with non-finite logits are left out; with none left it scores 0
    (as a non-finite model scores 0 alone)."""
    y = np.asarray(labels.numpy() if torch.is_tensor(labels) else labels)
    sel = logits[np.asarray(members, dtype=np.int64)]
    sel = sel[np.isfinite(sel).all(axis=(1, 2))]
    if len(sel) == 0:
        return 0.0
    return float((sel.mean(0).argmax(-1) == y).mean())


def random_ensembles(n: int, sizes: Iterable[int], repeats: int, seed: int) -> dict[int, list[np.ndarray]]:
    """Member indices per ensemble size: size 1 is every model once (an ensemble of one model is that
    model, so the curve starts at the population's mean accuracy); size k > 1 is ``repeats`` random
    k-subsets of ``range(n)`` (without replacement within an ensemble). Sizes larger than n are left out.
    The same subsets serve every population (common random numbers)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5]))
    out: dict[int, list[np.ndarray]] = {}
    for k in sorted({int(s) for s in sizes}):
        if k < 1:
            raise ValueError(f"ensemble sizes must be >= 1, got {k}")
        if k > n:
            continue
        if k == 1:
            out[1] = [np.array([i]) for i in range(n)]
        else:
            out[k] = [np.sort(rng.choice(n, size=k, replace=False)) for _ in range(int(repeats))]
    return out


def ensemble_rows(
    population: str, logits: np.ndarray, labels: torch.Tensor, members: Mapping[int, list[np.ndarray]]
) -> list[dict[str, Any]]:
    """One row per ensemble of ``members``: population, ensemble_size, ensemble_id, members, test_acc."""
    return [
        {
            "population": population,
            "ensemble_size": int(k),
            "ensemble_id": j,
            "members": " ".join(str(int(i)) for i in m),
            "test_acc": ensemble_accuracy(logits, labels, m),
        }
        for k, subsets in members.items()
        for j, m in enumerate(subsets)
    ]


def _train_task(
    w: np.ndarray, data: ImageData, hyper: HyperLike, epochs: int, seeds: list[int]
) -> np.ndarray:
    import ray

    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
    label = f"train {len(w)} models"
    _, final = finetune_population(
        w, data, hyper, epochs, seeds, [0], device=device, label=label, return_weights=True
    )
    return final


def train_weights(
    weights: np.ndarray,
    data: ImageData,
    hyper: HyperLike,
    epochs: int,
    seeds: Sequence[int],
    num_gpus: float = 0.0,
    batch_size: int | None = None,
) -> np.ndarray:
    """Weights (M, N) after training ``weights`` for ``epochs`` epochs on ``data`` (model i's mini-batch
    order from ``seeds[i]``, as :func:`~.evaluation.finetune.finetune_population`), as Ray tasks of up to
    ``batch_size`` models (default: spread over the cluster's CPUs), each with ``num_gpus`` GPUs."""
    w = np.asarray(weights, dtype=np.float32)
    seeds = [int(x) for x in seeds]
    if len(seeds) != len(w):
        raise ValueError(f"got {len(w)} models but {len(seeds)} seeds")
    if epochs == 0 or len(w) == 0:
        return w.copy()
    import ray

    bs = task_batch_size(len(w), batch_size)  # starts Ray if needed
    task = ray.remote(num_cpus=1, num_gpus=float(num_gpus))(_train_task)
    ref = ray.put(data)
    parts = [
        task.remote(w[i : i + bs], ref, hyper, int(epochs), seeds[i : i + bs]) for i in range(0, len(w), bs)
    ]
    return np.concatenate(ray.get(parts))


def task_batch_size(n: int, batch_size: int | None) -> int:
    """Rows per decoding batch and fine-tuning task: ``batch_size`` when given, else enough tasks to
    keep every CPU of the cluster busy, at most 64 models per task (joins or starts Ray)."""
    if batch_size is not None:
        return int(batch_size)
    import ray

    ensure_ray()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(64, math.ceil(max(1, n) / cpus)))


def evaluate_samples(
    z: np.ndarray,
    ae_dir: str,
    data: ImageData,
    hyper: HyperLike,
    epochs: Sequence[int],
    population: str,
    seed: int,
    batch_size: int,
    decode_on_driver: bool,
    num_gpus: float = 0.0,
    sample_ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Decode and evaluate embeddings: in the Ray Data pipeline's decoder actors
    (:func:`~.ray_pipeline.evaluate_embeddings`), or, with ``decode_on_driver``, here, sending the
    decoded weights through the same fine-tuning tasks (:func:`~.ray_pipeline.evaluate_weights`).
    Same numbers either way; the driver saves starting a decoder actor per population, which dominates
    for small populations on a busy CPU."""
    if decode_on_driver:
        w = HyperRepresentation.load(ae_dir).decode(np.asarray(z, dtype=np.float32))
        return evaluate_weights(
            w, data, hyper, epochs, population, seed, batch_size, num_gpus, sample_ids=sample_ids
        )
    return evaluate_embeddings(
        z, ae_dir, data, hyper, epochs, population, seed, batch_size, num_gpus=num_gpus, sample_ids=sample_ids
    )


def concat_rows(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The long-format rows of several populations as one frame, sorted by population, epoch, sample."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_results_frame()
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["population", "finetune_epoch", "sample_id"], kind="stable").reset_index(drop=True)
