"""Evaluating populations of initialisations with Ray Data: decode -> evaluate -> fine-tune.

The paper's protocol (2022, Section 4.1 and Appendix F): a population (sampled embeddings decoded to
weights, S_KDE30 etc.; or a baseline) is scored on the target test set as it is (epoch 0) and after
each requested number of fine-tuning epochs, with the target domain's hyperparameters. Baselines:

- B_T: training from scratch, random init with the target zoo's init method
  (:func:`baseline_from_scratch`); seeds ``10**6 * (seed + 1) + i`` never meet a zoo's 1..N seeds.
- B_F: models of a source zoo at their last recorded epoch, fine-tuned on the target
  (:func:`baseline_finetune_zoo`).
- B_KDE30: S_KDE30 samples of the baseline autoencoder without LWLN: :func:`evaluate_sampler` with that
  autoencoder's directory and ``population="B_KDE30"``.

Pipeline (:func:`evaluate_embeddings`): a Ray Dataset of rows ``{sample_id, z}`` ->
``map_batches(DecoderActor)`` (an actor pool that loads the autoencoder once per actor) -> rows
``{sample_id, weights}`` -> ``map_batches(_finetune_batch)`` (Ray tasks; each batch is fine-tuned as
one population by :func:`hyperrep_ray.evaluation.finetune.finetune_population`) -> long-format rows
``{population, sample_id, finetune_epoch, test_acc}``, optionally written as Parquet. Ray Data shows
its progress bars while it runs. A sample's fine-tuning depends only on (seed, sample_id)
(:func:`hyperrep_ray.evaluation.finetune.finetune_seeds`), not on which batch or worker it lands in.

:func:`decode_plain_loop` is the simple way (one model at a time, no Ray); tests and the benchmark
compare the pipeline against it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import HyperRepresentation, read_ae_info
from hyperrep_ray.data.images import ImageData, evaluate_accuracy
from hyperrep_ray.evaluation.finetune import (
    FinetuneHyper,
    HyperLike,
    check_hyper,
    finetune_population,
    finetune_seeds,
)
from hyperrep_ray.progress import RunRef, current_run, reporting_to
from hyperrep_ray.runtime import apply_data_settings, ensure_ray
from hyperrep_ray.sampling.generate import sample_embeddings
from hyperrep_ray.sampling.samplers import SAMPLERS
from hyperrep_ray.zoo.cnn import init_params, layer_shapes, num_params, vector_to_model

log = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "SCRATCH_SEED_BASE",
    "DecoderActor",
    "evaluate_embeddings",
    "evaluate_weights",
    "evaluate_sampler",
    "scratch_seeds",
    "scratch_weights",
    "baseline_from_scratch",
    "zoo_models",
    "baseline_finetune_zoo",
    "decode_plain_loop",
]

#: Columns of the long-format result, one row per (sample_id, finetune_epoch).
COLUMNS = ("population", "sample_id", "finetune_epoch", "test_acc")
#: B_T init seeds start here (zoo seeds are seed_offset + 1..N, the paper's 1..1000).
SCRATCH_SEED_BASE = 10**6
#: Order in which B_F takes source-zoo models: held-out test models first.
ZOO_SPLIT_PRIORITY = ("test", "val", "train")


def _device_for_worker() -> str:
    """CUDA when Ray assigned this worker a GPU, else CPU."""
    import ray

    return "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"


class DecoderActor:
    """Ray Data callable class: loads the autoencoder once per actor, decodes batches of z to weights."""

    def __init__(self, ae_dir: str):
        torch.set_num_threads(1)  # one core per actor (Ray reserves num_cpus=1)
        self.bundle = HyperRepresentation.load(ae_dir, device=_device_for_worker())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        z = np.asarray(batch["z"], dtype=np.float32)
        return {"sample_id": np.asarray(batch["sample_id"], np.int64), "weights": self.bundle.decode(z)}


def _finetune_batch(
    batch: dict[str, np.ndarray],
    data: Any,
    hyper: FinetuneHyper,
    record: list[int],
    seed: int,
    population: str,
    run: RunRef | None = None,
) -> dict[str, np.ndarray]:
    """Ray Data task: fine-tune one batch as one population, return one row per (sample, epoch); a
    progress line per batch (and ``progress/finetune_...`` in ``run``, the caller's MLflow run)."""
    import ray

    if isinstance(data, ray.ObjectRef):
        data = ray.get(data)
    torch.set_num_threads(1)
    ids = np.asarray(batch["sample_id"], np.int64)
    w = np.asarray(batch["weights"], np.float32)
    label = f"fine-tune {population} samples {ids.min()}-{ids.max()}" if len(ids) else None
    with reporting_to(run):
        acc = finetune_population(
            w,
            data,
            hyper,
            epochs=max(record),
            seeds=finetune_seeds(seed, ids),
            record=record,
            device=_device_for_worker(),
            population_size=max(1, len(ids)),
            label=label,
        )
    b, r = acc.shape
    return {
        "population": np.full(b * r, population),
        "sample_id": np.repeat(ids, r),
        "finetune_epoch": np.tile(np.asarray(record, np.int64), b),
        "test_acc": acc.reshape(-1).astype(np.float64),
    }


def _record_epochs(finetune_epochs: Sequence[int]) -> list[int]:
    epochs = sorted({0, *(int(e) for e in finetune_epochs)})
    if epochs[0] < 0:
        raise ValueError(f"fine-tuning epochs must be >= 0, got {list(finetune_epochs)}")
    return epochs


def _items(ids: np.ndarray, column: str, values: np.ndarray) -> list[dict[str, Any]]:
    return [{"sample_id": int(i), column: v} for i, v in zip(ids, values, strict=True)]


def _sample_ids(m: int, sample_ids: Sequence[int] | None) -> np.ndarray:
    ids = np.arange(m, dtype=np.int64) if sample_ids is None else np.asarray(sample_ids, np.int64).ravel()
    if len(ids) != m or len(np.unique(ids)) != m:
        raise ValueError(
            f"sample_ids must be {m} distinct integers, got {len(ids)} ({len(np.unique(ids))} distinct)"
        )
    return ids


def _run(
    ds: Any,
    data: ImageData,
    hyper: HyperLike,
    finetune_epochs: Sequence[int],
    population: str,
    seed: int,
    batch_size: int,
    num_gpus: float,
    out: str | None,
    finetune_concurrency: int | None,
) -> pd.DataFrame:
    import ray

    record = _record_epochs(finetune_epochs)
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if finetune_concurrency is not None and finetune_concurrency < 1:
        raise ValueError(f"finetune_concurrency must be >= 1 or None, got {finetune_concurrency}")
    ds = ds.map_batches(
        _finetune_batch,
        batch_size=batch_size,
        batch_format="numpy",
        fn_kwargs={
            "data": ray.put(data),
            "hyper": check_hyper(hyper),
            "record": record,
            "seed": int(seed),
            "population": str(population),
            "run": current_run(),
        },
        compute=ray.data.TaskPoolStrategy(size=finetune_concurrency),
        num_cpus=1,
        num_gpus=num_gpus or None,
    ).materialize()  # run once; both the Parquet files and the DataFrame come from these blocks
    if out is not None:
        ds.write_parquet(out, mode=ray.data.SaveMode.OVERWRITE)
    raw = ds.to_pandas()
    df = pd.DataFrame(  # plain NumPy dtypes (Ray hands back pyarrow-backed columns)
        {
            "population": raw["population"].astype(str).to_numpy(dtype=object),
            "sample_id": raw["sample_id"].to_numpy(dtype=np.int64),
            "finetune_epoch": raw["finetune_epoch"].to_numpy(dtype=np.int64),
            "test_acc": raw["test_acc"].to_numpy(dtype=np.float64),
        }
    )
    return df.sort_values(["sample_id", "finetune_epoch"], kind="stable").reset_index(drop=True)


def _ae_shape(ae_dir: str) -> tuple[int, int]:
    """(d_z, in_channels) of a saved autoencoder, from its ae.json (the weights stay on disk)."""
    info = read_ae_info(ae_dir)
    return int(info["config"]["d_z"]), int(info["in_channels"])


def empty_results_frame() -> pd.DataFrame:
    dtypes = (object, "int64", "int64", "float64")
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, dtypes, strict=True)})


def _dataset(column: str, values: np.ndarray, ids: np.ndarray, batch_size: int) -> Any:
    import ray

    ensure_ray()
    apply_data_settings()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # one block per batch, so every batch is its own task and batches run in parallel
    blocks = max(1, math.ceil(len(ids) / batch_size))
    return ray.data.from_items(_items(ids, column, values), override_num_blocks=blocks)


def evaluate_embeddings(
    z: np.ndarray,
    ae_dir: str,
    data: ImageData,
    hyper: HyperLike,
    finetune_epochs: Sequence[int],
    population: str,
    seed: int,
    batch_size: int = 64,
    concurrency: int = 1,
    num_gpus: float = 0.0,
    out: str | None = None,
    sample_ids: Sequence[int] | None = None,
    finetune_concurrency: int | None = None,
) -> pd.DataFrame:
    """Decode embeddings (M, d_z) with the autoencoder at ``ae_dir`` and evaluate them on ``data``.

    Returns the long-format DataFrame (:data:`COLUMNS`): test accuracy at epoch 0 and after each of
    ``finetune_epochs`` (fine-tuned with ``hyper``: activation, lr, weight_decay, optimizer,
    batch_size), for every sample. ``batch_size`` rows form one decoding batch and one fine-tuning
    population; ``concurrency`` decoder actors run at once, each (and each fine-tuning task) with
    ``num_gpus`` GPUs; at most ``finetune_concurrency`` fine-tuning tasks run at once (None: as many
    as the cluster's resources allow). ``sample_ids`` (default 0..M-1) name the rows and, with
    ``seed``, fix each sample's fine-tuning data order. ``out``: a directory to write the rows to as
    Parquet; it is replaced if it exists, so give every population its own.
    """
    zz = np.asarray(z, dtype=np.float32)
    if zz.ndim != 2:
        raise ValueError(f"z must be (M, d_z), got shape {zz.shape}")
    d_z, channels = _ae_shape(ae_dir)  # fail early, on the driver, with a clear message
    if zz.shape[1] != d_z:
        raise ValueError(f"z must be (M, {d_z}) for the autoencoder at {ae_dir}, got {zz.shape}")
    if channels != data.in_channels:
        raise ValueError(
            f"the autoencoder at {ae_dir} makes {channels}-channel models, "
            f"{data.name} has {data.in_channels} channel(s)"
        )
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    import ray

    ids = _sample_ids(len(zz), sample_ids)
    if len(ids) == 0:
        return empty_results_frame()
    ds = _dataset("z", zz, ids, batch_size).map_batches(
        DecoderActor,
        fn_constructor_kwargs={"ae_dir": str(ae_dir)},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=int(concurrency)),
        num_cpus=1,
        num_gpus=num_gpus or None,
    )
    return _run(
        ds, data, hyper, finetune_epochs, population, seed, batch_size, num_gpus, out, finetune_concurrency
    )


def evaluate_weights(
    weights: np.ndarray,
    data: ImageData,
    hyper: HyperLike,
    finetune_epochs: Sequence[int],
    population: str,
    seed: int,
    batch_size: int = 64,
    num_gpus: float = 0.0,
    out: str | None = None,
    sample_ids: Sequence[int] | None = None,
    finetune_concurrency: int | None = None,
) -> pd.DataFrame:
    """:func:`evaluate_embeddings` for weight vectors (M, N) that need no decoding (baselines)."""
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] != num_params(data.in_channels):
        raise ValueError(
            f"weights must be (M, {num_params(data.in_channels)}) for {data.name}, got shape {w.shape}"
        )
    ids = _sample_ids(len(w), sample_ids)
    if len(ids) == 0:
        return empty_results_frame()
    ds = _dataset("weights", w, ids, batch_size)
    return _run(
        ds, data, hyper, finetune_epochs, population, seed, batch_size, num_gpus, out, finetune_concurrency
    )


def evaluate_sampler(
    ae_dir: str,
    method: str,
    n: int,
    data: ImageData,
    hyper: HyperLike,
    finetune_epochs: Sequence[int],
    seed: int,
    population: str | None = None,
    bandwidth: float | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Sample ``n`` embeddings with ``method`` around the autoencoder's anchors and evaluate them.

    ``population`` defaults to the paper's name (``sampling.SAMPLERS[method]``, e.g. S_KDE30); pass
    ``"B_KDE30"`` with the no-LWLN autoencoder for that baseline. ``kwargs`` go to
    :func:`evaluate_embeddings`."""
    z = sample_embeddings(ae_dir, n, method, seed, bandwidth)
    name = population or SAMPLERS[method]
    return evaluate_embeddings(z, ae_dir, data, hyper, finetune_epochs, name, seed, **kwargs)


# ---------------------------------------------------------------------------------------- baselines


def scratch_seeds(n: int, seed: int = 0) -> list[int]:
    """B_T init seeds: ``10**6 * (seed + 1) + i``, i < n < 10**6. Disjoint from a zoo's seeds 1..N
    (N < 10**6) and, for different ``seed``, from each other."""
    if not 0 <= n < SCRATCH_SEED_BASE or seed < 0:
        raise ValueError(f"need 0 <= n < {SCRATCH_SEED_BASE} and seed >= 0, got n={n}, seed={seed}")
    return [SCRATCH_SEED_BASE * (int(seed) + 1) + i for i in range(int(n))]


def scratch_weights(n: int, in_channels: int, init: str, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """(weights (n, N), init seeds) of n freshly initialised zoo CNNs, as zoo training initialises."""
    seeds = scratch_seeds(n, seed)
    names = [name for name, _ in layer_shapes(in_channels)]
    w = np.zeros((n, num_params(in_channels)), np.float32)
    for i, s in enumerate(seeds):
        p = init_params(in_channels, init, s)
        w[i] = torch.cat([p[name].reshape(-1) for name in names]).numpy()
    return w, seeds


def baseline_from_scratch(
    n: int,
    data: ImageData,
    hyper: HyperLike,
    init: str,
    finetune_epochs: Sequence[int],
    seed: int,
    **kwargs: Any,
) -> pd.DataFrame:
    """B_T: ``n`` random initialisations (``init``: the target zoo's init method) trained on ``data``.
    ``kwargs`` go to :func:`evaluate_weights`."""
    w, _ = scratch_weights(n, data.in_channels, init, seed)
    return evaluate_weights(w, data, hyper, finetune_epochs, "B_T", seed, **kwargs)


def zoo_models(zoo: str, n: int) -> tuple[np.ndarray, pd.DataFrame]:
    """(weights (n', N), their rows) of up to ``n`` models of the zoo at its last recorded epoch:
    test split first, then val, then train; by model_id within a split."""
    meta = store.read_zoo_meta(zoo)
    last = max(int(e) for e in meta["epochs_recorded"])
    w, df = store.load_weights(zoo, epochs=[last])
    rank = df["split"].map({s: i for i, s in enumerate(ZOO_SPLIT_PRIORITY)})
    order = np.lexsort((df["model_id"].to_numpy(), rank.to_numpy()))[: int(n)]
    if len(order) < n:
        log.warning(
            "zoo %s has %d models at epoch %d; B_F uses all of them (asked for %d)", zoo, len(order), last, n
        )
    return w.numpy()[order], df.iloc[order].reset_index(drop=True)


def baseline_finetune_zoo(
    zoo: str,
    n: int,
    data: ImageData,
    hyper: HyperLike,
    finetune_epochs: Sequence[int],
    seed: int,
    **kwargs: Any,
) -> pd.DataFrame:
    """B_F: the source zoo's models at their last recorded epoch (:func:`zoo_models`), fine-tuned on
    ``data``. ``kwargs`` go to :func:`evaluate_weights`."""
    w, _ = zoo_models(zoo, n)
    return evaluate_weights(w, data, hyper, finetune_epochs, "B_F", seed, **kwargs)


# ------------------------------------------------------------------------------- the simple way


def decode_plain_loop(z: np.ndarray, ae_dir: str, data: ImageData, activation: str) -> np.ndarray:
    """Test accuracy (M,) of decoded embeddings, the simple way: a plain Python loop that decodes one
    embedding at a time and scores it as one ``ZooCNN`` with ``datasets.evaluate_accuracy``
    (non-finite weights score 0). The reference for the Ray Data pipeline, and its benchmark."""
    bundle = HyperRepresentation.load(ae_dir)
    zz = np.asarray(z, dtype=np.float32)
    acc = np.zeros(len(zz), np.float32)
    for i in range(len(zz)):
        w = bundle.decode(zz[i : i + 1])[0]
        if np.isfinite(w).all():
            model = vector_to_model(w, data.in_channels, activation)
            acc[i] = evaluate_accuracy(model, data.test_x, data.test_y)[0]
    return acc
