"""The experiments of the 2022 paper (Section 4.2, Appendix F), as functions that write tables and figures.

Each experiment returns an :class:`ExperimentResult`: ``summary`` maps population -> key (a fine-tuning
epoch, or an ensemble size, as a string) -> :func:`~.evaluation.stats.summarize` of the test accuracies
(fractions in [0, 1]); ``frame`` is the raw long-format DataFrame it was computed from; ``tests`` are the
Mann-Whitney U p-values and CLES of every sampled population against every baseline at every key
(:func:`~.evaluation.stats.compare`). Each writes a Markdown and a CSV table shaped like the paper's and a
PNG figure into ``out/<experiment>/``.

- :func:`in_dataset`: every sampler at epoch 0 against B_T at epoch 0 (paper Figure 4).
- :func:`table1`: B_T, B_KDE30 (the no-LWLN autoencoder), S_KDE30 (and S_KDEJ30) fine-tuned (Table 1).
- :func:`ensembles`: averaged-logit ensembles of sampled vs B_T models against ensemble size (Figure 5).
- :func:`transfer`: samples of a source zoo's autoencoder fine-tuned on a target vs B_T and B_F (Table 2).
- :func:`unseen_zoo`: the autoencoder conditioned on another zoo's models (Table 3).
- :func:`run_experiments`: all of them, ``summary.json``, ``report.md`` and MLflow (a parent run with one
  child run per experiment).

Naming: populations whose name starts with ``B_`` are baselines, every other population is sampled.

Where no second real data set is at hand (the ``quick`` preset runs on the embedded digits only), the
transfer target is :func:`digits_transfer_target`: the same digits, each image mirrored left-right and
then rotated by 90 degrees (which is the transpose of the image), with the same labels and the same
train/test split. It is a real classification task the source models were not trained on, but a derived
target, not an independent data set; the tables say so.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.experiments.result import (
    STATS,
    ExperimentResult,
    is_baseline,
    population_order,
    sorted_keys,
)
from hyperrep_ray.io import write_json
from hyperrep_ray.report.experiment_figures import box_strip, curves
from hyperrep_ray.report.experiment_tables import (
    by_epoch_markdown,
    wide_markdown,
    write_tables,
)
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH, DEFAULT_GAN_EPOCHS, SAMPLERS, TOP_FRACTION

__all__ = [
    "EXPERIMENTS",
    "PAPER_TRANSFER_PAIRS",
    "TRANSFER_TARGET_NAME",
    "ExperimentResult",
    "digits_transfer_target",
    "zoo_hyper",
    "zoo_data",
    "target_hyper",
    "population_logits",
    "train_weights",
    "ensemble_accuracy",
    "random_ensembles",
    "summarize_frame",
    "pairwise_tests",
    "in_dataset",
    "table1",
    "ensembles",
    "transfer",
    "unseen_zoo",
    "run_experiments",
]

log = logging.getLogger(__name__)

#: Experiments of :func:`run_experiments`, the top-level keys of ``summary.json``.
EXPERIMENTS = ("in_dataset", "ensembles", "transfer", "unseen_zoo")
#: Source -> target data set of the transfer experiment (paper Table 2 and Appendix F: both directions).
PAPER_TRANSFER_PAIRS = {"svhn": "mnist", "mnist": "svhn", "stl10": "cifar10", "cifar10": "stl10"}
#: Name of the derived digits transfer target (:func:`digits_transfer_target`).
TRANSFER_TARGET_NAME = "digits-transposed"
#: Size of the ensembles in the unseen-zoo experiment (paper Table 3 does not state its size).
UNSEEN_ENSEMBLE_SIZE = 5
_DERIVED_CAPTION = (
    "{name} is a derived target, not an independent data set: the same scikit-learn digits, each 8x8 "
    "image mirrored left-right and then rotated by 90 degrees (together: transposed), with the same "
    "labels and the same train/test split as the source digits."
)


# ------------------------------------------------------------------------------------------- data


def digits_transfer_target(split_seed: int = 0, test_fraction: float = 0.2) -> ImageData:
    """The digits transfer target: every digit mirrored left-right, then rotated 90 degrees
    counter-clockwise (the two together transpose the image), same labels, same split.

    Built exactly like ``load_dataset("digits", split_seed=..., test_fraction=...)`` (scale by 1/16,
    bilinear resize to 28x28, normalise with the train images' mean and std), so its train and test
    images are the transformed train and test images of that digits split. The preprocessing record says
    ``derived_from: digits`` and the transform, so fine-tuning takes the digits hyperparameters.
    """
    from hyperrep_ray.data.images import load_digits_images

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
    data.preprocessing["note"] = _DERIVED_CAPTION.format(name=TRANSFER_TARGET_NAME)
    return data


def _base_dataset(data: ImageData) -> str:
    return str(data.preprocessing.get("derived_from", data.name))


def _is_derived(data: ImageData) -> bool:
    return "derived_from" in data.preprocessing


def zoo_hyper(zoo: str) -> tuple[dict[str, Any], str]:
    """(fine-tuning hyper dict, init method) of a zoo, from its zoo.json: the zoo's own training settings."""
    from hyperrep_ray import store
    from hyperrep_ray.evaluation.finetune import check_hyper

    hp = store.read_zoo_meta(zoo)["hyperparameters"]
    return check_hyper(hp), str(hp["init"])


def target_hyper(data: ImageData) -> tuple[dict[str, Any], str]:
    """(hyper, init) of a target data set: the paper's per-data-set values (a derived target takes those
    of the data set it is derived from)."""
    from hyperrep_ray.evaluation.finetune import check_hyper, hyper_for_dataset

    h = hyper_for_dataset(_base_dataset(data))
    return check_hyper(h), str(h["init"])


def zoo_data(zoo: str, data_root: str | None = None) -> ImageData:
    """The image data set a zoo was trained on, with the split recorded in its zoo.json."""
    from hyperrep_ray import store
    from hyperrep_ray.data.images import load_dataset

    meta = store.read_zoo_meta(zoo)
    if meta["dataset"] == "digits":
        split = meta.get("preprocessing", {}).get("split", {})
        return load_dataset(
            "digits",
            split_seed=int(split.get("seed", 0)),
            test_fraction=float(split.get("test_fraction", 0.2)),
        )
    return load_dataset(meta["dataset"], data_root)


# ------------------------------------------------------------------------------- ensembles (logits)


@torch.no_grad()
def population_logits(weights: np.ndarray, data: ImageData, activation: str, chunk: int = 64) -> np.ndarray:
    """Logits (M, T, 10) float32 of M flat weight vectors on the T test images of ``data``, computed with
    :class:`~hyperrep_ray.zoo.population.PopulationCNN` in chunks of ``chunk`` models. Models whose
    weights are not finite get NaN logits."""
    from hyperrep_ray.zoo.cnn import vector_to_state_dict
    from hyperrep_ray.zoo.population import CPU_MODEL_IMAGES, PopulationCNN

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


def ensemble_accuracy(logits: np.ndarray, labels: np.ndarray | torch.Tensor, members: Sequence[int]) -> float:
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


def _train_task(w: np.ndarray, data: ImageData, hyper: dict[str, Any], epochs: int, seeds: list[int]):
    import ray

    from hyperrep_ray.evaluation.finetune import finetune_population

    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
    _, final = finetune_population(w, data, hyper, epochs, seeds, [0], device=device, return_weights=True)
    return final


def train_weights(
    weights: np.ndarray,
    data: ImageData,
    hyper: dict[str, Any],
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

    bs = _batch_size(len(w), batch_size)  # starts Ray if needed
    task = ray.remote(num_cpus=1, num_gpus=float(num_gpus))(_train_task)
    ref = ray.put(data)
    parts = [
        task.remote(w[i : i + bs], ref, hyper, int(epochs), seeds[i : i + bs]) for i in range(0, len(w), bs)
    ]
    return np.concatenate(ray.get(parts))


def _ensemble_rows(
    population: str, logits: np.ndarray, labels: torch.Tensor, members: Mapping[int, list[np.ndarray]]
) -> list[dict[str, Any]]:
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


# ------------------------------------------------------------------------------------- statistics



def summarize_frame(
    frame: pd.DataFrame, key: str = "finetune_epoch", seed: int = 0
) -> dict[str, dict[str, dict[str, float | int]]]:
    """population -> str(key value) -> summarize(test_acc) of a long-format frame."""
    from hyperrep_ray.evaluation.stats import summarize

    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for pop in population_order(frame["population"].unique()):
        sub = frame[frame["population"] == pop]
        out[pop] = {
            k: summarize(sub.loc[sub[key] == int(k), "test_acc"].to_numpy(), seed=seed)
            for k in sorted_keys(sub[key])
        }
    return out


def pairwise_tests(frame: pd.DataFrame, key: str = "finetune_epoch") -> list[dict[str, Any]]:
    """Every sampled population vs every baseline at every value of ``key`` both have
    (:func:`~.evaluation.stats.compare`): rows {population, baseline, <key label>, p_value, cles, n_a, n_b}
    with the label ``epoch`` for fine-tuning epochs and ``ensemble_size`` for ensembles."""
    from hyperrep_ray.evaluation.stats import compare

    label = "ensemble_size" if key == "ensemble_size" else "epoch"
    rows: list[dict[str, Any]] = []
    for k in sorted_keys(frame[key]):
        sub = frame[frame[key] == int(k)]
        pops = {
            p: sub.loc[sub["population"] == p, "test_acc"].to_numpy()
            for p in population_order(sub["population"].unique())
        }
        baselines = [p for p in pops if is_baseline(p)]
        if not baselines or len(baselines) == len(pops):
            continue
        rows += [{**r, label: k} for r in compare(pops, baselines)]
    return rows



# ---------------------------------------------------------------------------------------- helpers


def _batch_size(n: int, batch_size: int | None) -> int:
    """Rows per decoding batch and fine-tuning task: enough tasks to keep every CPU of the cluster busy,
    at most 64 models per task."""
    if batch_size is not None:
        return int(batch_size)
    import ray

    from hyperrep_ray.runtime import ensure_ray

    ensure_ray()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(64, math.ceil(max(1, n) / cpus)))


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n (models per population) must be >= 1, got {n}")
    return int(n)


def _check_epochs(finetune_epochs: Iterable[int]) -> list[int]:
    epochs = sorted({0, *(int(e) for e in finetune_epochs)})
    if epochs[0] < 0:
        raise ValueError(f"fine-tuning epochs must be >= 0, got {list(finetune_epochs)}")
    return epochs


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        from hyperrep_ray.evaluation.ray_pipeline import empty_results_frame

        return empty_results_frame()
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["population", "finetune_epoch", "sample_id"], kind="stable").reset_index(drop=True)


def _check_channels(ae_dir: str, *datas: ImageData) -> None:
    c = int(read_ae_info(ae_dir)["in_channels"])
    for d in datas:
        if d.in_channels != c:
            raise ValueError(
                f"the autoencoder at {ae_dir} makes {c}-channel models, {d.name} has {d.in_channels} "
                f"channel(s); pair data sets of the same kind "
                f"(grey: digits, mnist, svhn; colour: cifar10, stl10)"
            )


def _evaluate_z(
    z: np.ndarray,
    ae_dir: str,
    data: ImageData,
    hyper: dict[str, Any],
    epochs: Sequence[int],
    population: str,
    seed: int,
    batch_size: int,
    decode_on_driver: bool,
    sample_ids: Sequence[int] | None = None,
    num_gpus: float = 0.0,
) -> pd.DataFrame:
    """Decode and evaluate embeddings: in the Ray Data pipeline's decoder actors
    (:func:`~.ray_pipeline.evaluate_embeddings`), or, with ``decode_on_driver``, here, sending the
    decoded weights through the same fine-tuning tasks (:func:`~.ray_pipeline.evaluate_weights`).
    Same numbers either way; the driver saves starting a decoder actor per population, which dominates
    for small populations on a busy CPU."""
    from hyperrep_ray.evaluation.ray_pipeline import evaluate_embeddings, evaluate_weights

    if decode_on_driver:
        from hyperrep_ray.autoencoder.bundle import HyperRepresentation

        w = HyperRepresentation.load(ae_dir).decode(np.asarray(z, dtype=np.float32))
        return evaluate_weights(
            w, data, hyper, epochs, population, seed, batch_size, num_gpus, sample_ids=sample_ids
        )
    return evaluate_embeddings(
        z, ae_dir, data, hyper, epochs, population, seed, batch_size, num_gpus=num_gpus, sample_ids=sample_ids
    )


def _finish(result: ExperimentResult, key: str, seed: int) -> ExperimentResult:
    result.summary = summarize_frame(result.frame, key, seed)
    result.tests = pairwise_tests(result.frame, key)
    return result


# ------------------------------------------------------------------------------------ experiments


def in_dataset(
    ae_dir: str,
    zoo: str,
    data: ImageData,
    n: int,
    seed: int = 0,
    methods: Sequence[str] = tuple(SAMPLERS),
    *,
    out: str | Path = "out",
    bandwidth: float | None = None,
    gan_epochs: int = DEFAULT_GAN_EPOCHS,
    reference: pd.DataFrame | None = None,
    batch_size: int | None = None,
    decode_on_driver: bool = False,
    num_gpus: float = 0.0,
) -> ExperimentResult:
    """Paper Figure 4: ``n`` models of every sampler in ``methods`` (default: all of SAMPLERS), decoded
    and scored without fine-tuning (epoch 0), next to ``n`` random initialisations B_T (the zoo's init
    method, epoch 0). ``reference`` (long-format rows, e.g. B_T after 25 epochs from :func:`table1`) is
    drawn and tabulated too, as the paper's Figure 4 shows B_T trained for 25 epochs.

    All samplers are decoded and scored in one Ray Data pipeline (epoch 0 needs no per-sample training
    order, so their sample ids are only offset there and renumbered 0..n-1 afterwards). A sampler that
    cannot run on these anchors (e.g. UMAP with too few) is left out with a note, not faked.
    ``decode_on_driver``: see :func:`run_experiments`."""
    from hyperrep_ray.evaluation.ray_pipeline import baseline_from_scratch
    from hyperrep_ray.sampling.generate import load_anchors
    from hyperrep_ray.sampling.samplers import sample

    n = _check_n(n)
    unknown = [m for m in methods if m not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampling method(s) {unknown}; valid methods: {', '.join(SAMPLERS)}")
    _check_channels(ae_dir, data)
    hyper, init = zoo_hyper(zoo)
    h = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
    anchors, acc = load_anchors(ae_dir)
    notes: list[str] = []
    zs, names = [], []
    # One Ray task per sampler: the two GANs (minutes each on a CPU) train side by side instead of
    # one after the other in the driver; the KDE/uniform samplers take milliseconds either way.
    import ray

    from hyperrep_ray.runtime import ensure_ray

    ensure_ray()
    task = ray.remote(num_cpus=1, max_retries=1)(sample)
    anchors_ref, acc_ref = ray.put(anchors), ray.put(acc)
    refs = {
        m: task.remote(m, anchors_ref, acc_ref, n, seed, bandwidth=h, gan_epochs=gan_epochs) for m in methods
    }
    for m in methods:
        try:
            z = ray.get(refs[m])
        except (ValueError, RuntimeError) as e:  # a RayTaskError is also an instance of its cause's type
            why = getattr(e, "cause", None) or e
            notes.append(f"{SAMPLERS[m]} ({m}) skipped: {why}")
            log.warning("in_dataset: %s skipped: %s", m, why)
            continue
        zs.append(z)
        names.append(SAMPLERS[m])
    bs = _batch_size(n * max(1, len(zs)), batch_size)
    frames = []
    if zs:
        ids = np.arange(len(zs) * n, dtype=np.int64)
        df = _evaluate_z(
            np.concatenate(zs), ae_dir, data, hyper, [], "sampled", seed, bs, decode_on_driver, ids, num_gpus
        )
        df["population"] = np.asarray(names, dtype=object)[df["sample_id"].to_numpy() // n]
        df["sample_id"] = df["sample_id"] % n
        frames.append(df)
    frames.append(
        baseline_from_scratch(
            n, data, hyper, init, [], seed, batch_size=_batch_size(n, batch_size), num_gpus=num_gpus
        )
    )
    if reference is not None and len(reference):
        frames.append(reference)
    frame = _concat(frames).drop_duplicates(["population", "finetune_epoch", "sample_id"], keep="first")
    result = ExperimentResult(
        "in_dataset",
        {},
        frame.reset_index(drop=True),
        [],
        params={
            "ae": str(ae_dir),
            "zoo": str(zoo),
            "dataset": data.name,
            "n": n,
            "seed": seed,
            "methods": list(methods),
            "bandwidth": h,
            "gan_epochs": gan_epochs,
            "decode_on_driver": decode_on_driver,
        },
        notes=notes,
    )
    _finish(result, "finetune_epoch", seed)
    directory = Path(out) / "in_dataset"
    result.files = _in_dataset_outputs(result, directory, data.name)
    return result


def _in_dataset_outputs(result: ExperimentResult, directory: Path, dataset: str) -> list[Path]:
    caption = (
        f"In-dataset sampling on {dataset} (paper Figure 4, Table 1): test accuracy (%) of sampled "
        "populations and baselines, mean ± std; epoch = fine-tuning epochs (0 = the weights as sampled)."
    )
    files = write_tables(
        directory,
        "in_dataset",
        f"In-dataset sampling ({dataset})",
        caption,
        by_epoch_markdown(result.summary, dataset),
        result,
        "finetune_epoch",
        "Ep.",
    )
    df = result.frame
    groups = []
    for p in population_order(df["population"].unique()):
        for e in sorted(df.loc[df["population"] == p, "finetune_epoch"].unique()):
            if e == 0 or p == "B_T":
                acc = df.loc[(df["population"] == p) & (df["finetune_epoch"] == e), "test_acc"].to_numpy()
                groups.append((p if e == 0 else f"{p} (ep {e})", acc))
    files.append(
        box_strip(
            groups,
            directory / "figure4.png",
            f"{dataset}: sampled weights (no fine-tuning) vs B_T",
            "test accuracy",
        )
    )
    return files


def table1(
    ae_dir: str,
    baseline_ae_dir: str | None,
    zoo: str,
    data: ImageData,
    n: int,
    finetune_epochs: Sequence[int] = (0, 1, 5, 25),
    seed: int = 0,
    *,
    out: str | Path = "out",
    bandwidth: float | None = None,
    joint: bool = True,
    batch_size: int | None = None,
    decode_on_driver: bool = False,
    num_gpus: float = 0.0,
) -> ExperimentResult:
    """Paper Table 1: B_T (random init, the zoo's hyperparameters), B_KDE30 (S_KDE30 of the autoencoder
    without LWLN at ``baseline_ae_dir``; left out with a note when None), S_KDE30 and, with ``joint``,
    S_KDEJ30, each ``n`` models scored at epoch 0 and after each of ``finetune_epochs``. Sample i of
    every population sees the same mini-batch order (its fine-tuning seed depends on (seed, i) only).
    ``decode_on_driver``: see :func:`run_experiments`."""
    from hyperrep_ray.evaluation.ray_pipeline import baseline_from_scratch
    from hyperrep_ray.sampling.generate import sample_embeddings

    n = _check_n(n)
    epochs = _check_epochs(finetune_epochs)
    _check_channels(ae_dir, data)
    hyper, init = zoo_hyper(zoo)
    bs = _batch_size(n, batch_size)

    def sampled(ae: str, method: str, population: str) -> pd.DataFrame:
        z = sample_embeddings(ae, n, method, seed, bandwidth)
        return _evaluate_z(
            z, ae, data, hyper, epochs, population, seed, bs, decode_on_driver, num_gpus=num_gpus
        )

    notes = []
    frames = [baseline_from_scratch(n, data, hyper, init, epochs, seed, batch_size=bs, num_gpus=num_gpus)]
    if baseline_ae_dir is not None:
        _check_channels(baseline_ae_dir, data)
        frames.append(sampled(baseline_ae_dir, "kde30", "B_KDE30"))
    else:
        notes.append("B_KDE30 left out: no baseline (no-LWLN) autoencoder given")
    frames.append(sampled(ae_dir, "kde30", "S_KDE30"))
    if joint:
        frames.append(sampled(ae_dir, "kde-joint30", "S_KDEJ30"))
    result = ExperimentResult(
        "table1",
        {},
        _concat(frames),
        [],
        params={
            "ae": str(ae_dir),
            "baseline_ae": str(baseline_ae_dir),
            "zoo": str(zoo),
            "dataset": data.name,
            "n": n,
            "finetune_epochs": epochs,
            "seed": seed,
            "bandwidth": DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth),
        },
        notes=notes,
    )
    _finish(result, "finetune_epoch", seed)
    directory = Path(out) / "table1"
    caption = (
        f"Mean and std of test accuracy (%) on {data.name} of sampled populations with LWLN (S_KDE30; "
        "S_KDEJ30: joint KDE, ours) and without (B_KDE30) compared to models trained from scratch (B_T); "
        "Ep. = fine-tuning epochs with the zoo's hyperparameters. Best mean per epoch in bold."
    )
    result.files = write_tables(
        directory,
        "table1",
        f"Table 1 ({data.name})",
        caption,
        by_epoch_markdown(result.summary, data.name),
        result,
        "finetune_epoch",
        "Ep.",
    )
    result.files.append(
        curves(result.summary, directory / "table1.png", f"{data.name}: fine-tuning", "fine-tuning epochs")
    )
    return result


def ensembles(
    ae_dir: str,
    data: ImageData,
    n: int,
    sizes: Sequence[int] = (1, 2, 3, 5, 10),
    repeats: int = 15,
    seed: int = 0,
    *,
    out: str | Path = "out",
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
    is every model once, larger sizes ``repeats`` random subsets (:func:`random_ensembles`), the same
    subsets for every population. Hyperparameters and init come from ``zoo`` (else the paper's values
    for the autoencoder's data set). Training and fine-tuning run as Ray tasks (:func:`train_weights`, each
    with ``num_gpus``); logits come from PopulationCNN directly, on the driver; the member weights are kept
    in ``result.extra["weights"]``."""
    from hyperrep_ray.autoencoder.bundle import HyperRepresentation
    from hyperrep_ray.evaluation.finetune import finetune_seeds, hyper_for_dataset
    from hyperrep_ray.evaluation.ray_pipeline import scratch_weights
    from hyperrep_ray.sampling.generate import sample_embeddings

    n = _check_n(n)
    if finetune_epoch < 0 or train_epochs < 0:
        raise ValueError(
            f"epochs must be >= 0, got finetune_epoch={finetune_epoch}, train_epochs={train_epochs}"
        )
    _check_channels(ae_dir, data)
    if zoo is not None:
        hyper, init = zoo_hyper(zoo)
    else:
        h = hyper_for_dataset(read_ae_info(ae_dir)["dataset"])
        hyper, init = h, str(h["init"])
    seeds = finetune_seeds(seed, range(n))
    weights: dict[str, np.ndarray] = {}
    s0 = HyperRepresentation.load(ae_dir).decode(sample_embeddings(ae_dir, n, "kde30", seed, bandwidth))
    weights["S_KDE30_ep0"] = s0
    if finetune_epoch > 0:
        w1 = train_weights(s0, data, hyper, finetune_epoch, seeds, num_gpus=num_gpus)
        weights[f"S_KDE30_ep{finetune_epoch}"] = w1
    if baseline_ae_dir is not None:
        _check_channels(baseline_ae_dir, data)
        z = sample_embeddings(baseline_ae_dir, n, "kde30", seed, bandwidth)
        weights["B_KDE30_ep0"] = HyperRepresentation.load(baseline_ae_dir).decode(z)
    bt0, _ = scratch_weights(n, data.in_channels, init, seed)
    bt = train_weights(bt0, data, hyper, train_epochs, seeds, num_gpus=num_gpus)
    weights[f"B_T_ep{train_epochs}"] = bt

    members = random_ensembles(n, sizes, repeats, seed)
    notes = [f"ensemble size {k} left out: larger than n={n}" for k in sorted(set(sizes)) if int(k) > n]
    rows = []
    for pop, w in weights.items():
        rows += _ensemble_rows(pop, population_logits(w, data, hyper["activation"]), data.test_y, members)
    frame = pd.DataFrame(rows, columns=["population", "ensemble_size", "ensemble_id", "members", "test_acc"])
    result = ExperimentResult(
        "ensembles",
        {},
        frame,
        [],
        params={
            "ae": str(ae_dir),
            "baseline_ae": str(baseline_ae_dir),
            "dataset": data.name,
            "n": n,
            "sizes": sorted({int(s) for s in sizes}),
            "repeats": int(repeats),
            "seed": seed,
            "finetune_epoch": finetune_epoch,
            "train_epochs": train_epochs,
        },
        notes=notes,
        extra={"weights": weights, "members": members},
    )
    _finish(result, "ensemble_size", seed)
    directory = Path(out) / "ensembles"
    caption = (
        f"Ensembles evaluated on {data.name} (paper Figure 5): test accuracy (%) of averaged-logit "
        f"ensembles, mean ± std over {repeats} random ensembles per size (size 1: every model once). "
        "_epK = after K epochs of training/fine-tuning."
    )
    result.files = write_tables(
        directory,
        "ensembles",
        f"Ensembles ({data.name})",
        caption,
        wide_markdown(result.summary, "size", "Population"),
        result,
        "ensemble_size",
        "size",
    )
    result.files.append(
        curves(
            result.summary, directory / "figure5.png", f"{data.name}: generated ensembles", "ensemble size"
        )
    )
    return result


def transfer(
    ae_dir: str,
    zoo: str,
    source_data: ImageData,
    target_data: ImageData,
    n: int,
    finetune_epochs: Sequence[int] = (0, 1, 5, 25),
    seed: int = 0,
    *,
    out: str | Path = "out",
    methods: Sequence[str] = ("kde30",),
    hyper: dict[str, Any] | None = None,
    init: str | None = None,
    bandwidth: float | None = None,
    batch_size: int | None = None,
    decode_on_driver: bool = False,
    num_gpus: float = 0.0,
) -> ExperimentResult:
    """Paper Table 2: transfer from the source zoo (its autoencoder ``ae_dir``, its models ``zoo``,
    trained on ``source_data``) to ``target_data``. Populations of ``n`` models, fine-tuned on the target
    with the target's hyperparameters (``hyper``/``init``; default :func:`target_hyper`): B_T (random init,
    trained from scratch), B_F (the source zoo's models at their last epoch, test split first) and the
    samplers of ``methods`` (default S_KDE30; the paper also has neigh30, gan30).
    ``decode_on_driver``: see :func:`run_experiments`."""
    from hyperrep_ray.evaluation.ray_pipeline import baseline_finetune_zoo, baseline_from_scratch
    from hyperrep_ray.sampling.generate import sample_embeddings

    n = _check_n(n)
    epochs = _check_epochs(finetune_epochs)
    unknown = [m for m in methods if m not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampling method(s) {unknown}; valid methods: {', '.join(SAMPLERS)}")
    _check_channels(ae_dir, source_data, target_data)
    th, tinit = target_hyper(target_data)
    hyper = th if hyper is None else hyper
    init = tinit if init is None else init
    bs = _batch_size(n, batch_size)
    frames = [
        baseline_from_scratch(n, target_data, hyper, init, epochs, seed, batch_size=bs, num_gpus=num_gpus),
        baseline_finetune_zoo(zoo, n, target_data, hyper, epochs, seed, batch_size=bs, num_gpus=num_gpus),
    ]
    for m in methods:
        z = sample_embeddings(ae_dir, n, m, seed, bandwidth)
        frames.append(
            _evaluate_z(
                z,
                ae_dir,
                target_data,
                hyper,
                epochs,
                SAMPLERS[m],
                seed,
                bs,
                decode_on_driver,
                num_gpus=num_gpus,
            )
        )
    notes = []
    if len(frames[1]) < n * len(epochs):
        notes.append(f"B_F has {len(frames[1]) // len(epochs)} models: the source zoo has no more")
    result = ExperimentResult(
        "transfer",
        {},
        _concat(frames),
        [],
        params={
            "ae": str(ae_dir),
            "zoo": str(zoo),
            "source": source_data.name,
            "target": target_data.name,
            "target_derived_from": target_data.preprocessing.get("derived_from"),
            "n": n,
            "finetune_epochs": epochs,
            "seed": seed,
            "methods": list(methods),
            "hyper": dict(hyper),
            "init": init,
        },
        notes=notes,
    )
    _finish(result, "finetune_epoch", seed)
    caption = (
        f"Transfer learning {source_data.name} to {target_data.name} (paper Table 2): mean and std of the "
        f"test accuracy (%) on {target_data.name} after fine-tuning for Ep. epochs with the target's "
        "hyperparameters. B_T: trained from scratch on the target; B_F: the source zoo's models fine-tuned."
    )
    if _is_derived(target_data):
        caption += " " + _DERIVED_CAPTION.format(name=target_data.name)
    directory = Path(out) / "transfer"
    result.files = write_tables(
        directory,
        "table2",
        f"Table 2 ({source_data.name} to {target_data.name})",
        caption,
        wide_markdown(result.summary, "Ep."),
        result,
        "finetune_epoch",
        "Ep.",
    )
    result.files.append(
        curves(
            result.summary,
            directory / "transfer.png",
            f"{source_data.name} to {target_data.name}",
            "fine-tuning epochs",
        )
    )
    return result


def unseen_zoo(
    ae_dir: str,
    other_zoo: str,
    data: ImageData,
    n: int,
    seed: int = 0,
    *,
    out: str | Path = "out",
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
    ``decode_on_driver``: see :func:`run_experiments`."""
    from hyperrep_ray import store
    from hyperrep_ray.autoencoder.bundle import HyperRepresentation
    from hyperrep_ray.evaluation.ray_pipeline import evaluate_weights, zoo_models
    from hyperrep_ray.sampling.samplers import sample

    n = _check_n(n)
    _check_channels(ae_dir, data)
    meta = store.read_zoo_meta(other_zoo)
    last = max(int(e) for e in meta["epochs_recorded"])
    w, rows = store.load_weights(other_zoo, epochs=[last], split="train")
    if len(rows) == 0:
        raise ValueError(f"the zoo at {other_zoo} has no train-split models at epoch {last}")
    hyper, _ = zoo_hyper(other_zoo)
    bundle = HyperRepresentation.load(ae_dir)
    if bundle.in_channels != int(meta["architecture"]["in_channels"]):
        raise ValueError(
            f"the autoencoder at {ae_dir} embeds {bundle.in_channels}-channel models, the zoo at "
            f"{other_zoo} holds {meta['architecture']['in_channels']}-channel models"
        )
    h = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
    z_other = bundle.encode(w.numpy())
    z = sample("kde30", z_other, rows["test_acc"].to_numpy(), n, seed, bandwidth=h, fraction=fraction)
    bs = _batch_size(n, batch_size)
    own, _ = zoo_models(other_zoo, n)
    frames = [
        _evaluate_z(z, ae_dir, data, hyper, [], "S_KDE30", seed, bs, decode_on_driver, num_gpus=num_gpus),
        evaluate_weights(own, data, hyper, [], "B_Zoo", seed, batch_size=bs, num_gpus=num_gpus),
    ]
    notes = []
    members = random_ensembles(n, [ensemble_size], repeats, seed).get(int(ensemble_size), [])
    if members and ensemble_size > 1:
        logits = population_logits(bundle.decode(z), data, hyper["activation"])
        ens = pd.DataFrame(
            {
                "population": f"S_KDE30_ens{ensemble_size}",
                "sample_id": np.arange(len(members), dtype=np.int64),
                "finetune_epoch": 0,
                "test_acc": [ensemble_accuracy(logits, data.test_y, m) for m in members],
            }
        )
        frames.append(ens)
    else:
        notes.append(f"ensembles of {ensemble_size} left out (n={n})")
    result = ExperimentResult(
        "unseen_zoo",
        {},
        _concat(frames),
        [],
        params={
            "ae": str(ae_dir),
            "ae_dataset": bundle.dataset,
            "other_zoo": str(other_zoo),
            "other_dataset": meta["dataset"],
            "dataset": data.name,
            "conditioning_models": len(rows),
            "conditioning_epoch": last,
            "n": n,
            "seed": seed,
            "bandwidth": h,
            "ensemble_size": ensemble_size,
            "repeats": repeats,
        },
        notes=notes,
    )
    _finish(result, "finetune_epoch", seed)
    df = result.frame

    def mean_max(pop: str) -> str:
        acc = df.loc[df["population"] == pop, "test_acc"].to_numpy()
        return f"{100 * acc.mean():.1f} / **{100 * acc.max():.1f}**" if len(acc) else "-"

    ens_name = f"S_KDE30_ens{ensemble_size}"
    main = [
        "| Training zoo | Conditioning (unseen) | One model | Ensemble | Unseen zoo's own models |",
        "|---|---|---:|---:|---:|",
        f"| {bundle.dataset} ({Path(str(ae_dir)).name}) | "
        f"{meta['dataset']} ({meta.get('name', other_zoo)}) | "
        f"{mean_max('S_KDE30')} | {mean_max(ens_name)} | {mean_max('B_Zoo')} |",
    ]
    caption = (
        f"Test accuracy (%) on {data.name} of models generated conditioned on the models of an unseen zoo "
        f"(paper Table 3), mean / max (bold): {len(rows)} train-split models of epoch {last} encoded, "
        f"per-dimension KDE on the top {fraction:.0%}, {n} samples decoded, no fine-tuning; ensembles of "
        f"{ensemble_size} averaged logits, {repeats} random ensembles."
    )
    directory = Path(out) / "unseen_zoo"
    result.files = write_tables(
        directory, "table3", "Table 3 (unseen zoo)", caption, main, result, "finetune_epoch", "Ep."
    )
    groups = [
        (p, df.loc[df["population"] == p, "test_acc"].to_numpy())
        for p in population_order(df["population"].unique())
    ]
    result.files.append(
        box_strip(
            groups, directory / "unseen_zoo.png", f"conditioned on unseen zoo ({data.name})", "test accuracy"
        )
    )
    return result


# ------------------------------------------------------------------------------------ all of them


def _default_transfer_target(data: ImageData, data_root: str | None) -> tuple[ImageData | None, str | None]:
    """(target, None) or (None, why it is skipped)."""
    from hyperrep_ray.data.images import DatasetNotFoundError, load_dataset

    if data.name == "digits":
        split = data.preprocessing.get("split", {})
        return digits_transfer_target(int(split.get("seed", 0)), float(split.get("test_fraction", 0.2))), None
    target = PAPER_TRANSFER_PAIRS.get(data.name)
    if target is None:
        return None, f"no transfer target is defined for {data.name}"
    try:
        return load_dataset(target, data_root), None
    except DatasetNotFoundError as e:
        return None, f"target {target} not available: {e}"


def _metrics(result: ExperimentResult) -> dict[str, float]:
    out = {
        f"{p}.{k}.{s}": float(v[s])
        for p, per in result.summary.items()
        for k, v in per.items()
        for s in STATS
        if s != "n"
    }
    key = "ensemble_size" if result.name == "ensembles" else "epoch"
    for r in result.tests:
        pair = f"{r['population']}_vs_{r['baseline']}.{r[key]}"
        out[f"p_value.{pair}"] = float(r["p_value"])
        out[f"cles.{pair}"] = float(r["cles"])
    return out


def _log_child(result: ExperimentResult, directories: Sequence[Path], seconds: float) -> None:
    import mlflow

    from hyperrep_ray import tracking

    tracking.log_metrics({**_metrics(result), "seconds": seconds})
    for d in directories:
        if d.is_dir():
            mlflow.log_artifacts(str(d), artifact_path=d.name)
    mlflow.log_dict({"summary": result.summary, "tests": result.tests, "notes": result.notes}, "summary.json")


def _merge_in_dataset(t1: ExperimentResult, ind: ExperimentResult, seed: int, out: Path) -> ExperimentResult:
    """Figure 4 and Table 1 populations as one experiment. Rows both measured (B_T and S_KDE30 at epoch
    0, the same models) are taken from Table 1."""
    frame = _concat([t1.frame, ind.frame]).drop_duplicates(
        ["population", "finetune_epoch", "sample_id"], keep="first"
    )
    merged = ExperimentResult(
        "in_dataset",
        {},
        frame.reset_index(drop=True),
        [],
        params={**ind.params, **t1.params, "methods": ind.params.get("methods")},
        notes=[*t1.notes, *ind.notes],
    )
    _finish(merged, "finetune_epoch", seed)
    merged.files = [*t1.files, *_in_dataset_outputs(merged, out / "in_dataset", ind.params["dataset"])]
    return merged


def _report(summary: dict[str, Any], files: Mapping[str, Sequence[Path]], out: Path) -> Path:
    lines = ["# Experiments", ""]
    for name in EXPERIMENTS:
        if name in summary.get("skipped", {}):
            lines += [f"## {name}: skipped", "", summary["skipped"][name], ""]
            continue
        for f in files.get(name, []):
            if f.suffix == ".md":
                lines += [f.read_text(), ""]
            elif f.suffix == ".png":
                lines += [f"![{f.stem}]({f.relative_to(out).as_posix()})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def run_experiments(
    ae_dir: str,
    baseline_ae_dir: str | None,
    zoo: str,
    out: str | Path,
    n: int = 50,
    finetune_epochs: Sequence[int] = (0, 1, 5, 25),
    seed: int = 0,
    other_zoo: str | None = None,
    tracking_uri: str | None = None,
    *,
    data: ImageData | None = None,
    data_root: str | None = None,
    transfer_target: ImageData | None = None,
    other_data: ImageData | None = None,
    methods: Sequence[str] = tuple(SAMPLERS),
    gan_epochs: int = DEFAULT_GAN_EPOCHS,
    bandwidth: float | None = None,
    ensemble_sizes: Sequence[int] = (1, 2, 3, 5, 10),
    ensemble_repeats: int = 15,
    transfer_methods: Sequence[str] = ("kde30",),
    decode_on_driver: bool = False,
    num_gpus: float = 0.0,
    nested: bool = False,
) -> dict[str, Any]:
    """Run every experiment on one zoo and its autoencoders; write ``out/summary.json``,
    ``out/report.md`` and each experiment's tables and figures under ``out/<experiment>/``.

    ``summary.json``: experiment -> population -> key (str) -> {mean, std, median, ci_low, ci_high, n}
    (fractions) for ``in_dataset`` (Figure 4 and Table 1 populations together; key = fine-tuning
    epoch), ``ensembles`` (key = ensemble size), ``transfer`` and ``unseen_zoo``; plus ``tests``
    (experiment -> list of {population, baseline, epoch | ensemble_size, p_value, cles, n_a, n_b}),
    ``skipped`` (experiment -> why; e.g. unseen_zoo without ``other_zoo``), ``notes`` and ``meta``.

    ``data`` defaults to the zoo's data set (split as its zoo.json records), ``transfer_target`` to
    :func:`digits_transfer_target` for digits and to :data:`PAPER_TRANSFER_PAIRS` otherwise (skipped with a
    note when that data set is not under ``data_root``), ``other_data`` to ``other_zoo``'s data set.
    B_T in the ensembles is trained for ``max(finetune_epochs)`` epochs. MLflow: a run
    ``experiments`` with one child run per experiment (params, the summary numbers and test statistics
    as metrics, tables and figures as artifacts).

    Sampled embeddings are decoded by the Ray Data pipeline's decoder actors (one actor pool per
    population, where GPUs are used when the cluster has them); ``decode_on_driver`` decodes them in this
    process instead and sends the weights through the same fine-tuning tasks: the same numbers, without
    starting a decoder actor per population (which dominates the run time of small populations on a CPU).
    ``num_gpus``: GPUs per decoding, fine-tuning and training task (e.g. 0.25; 0 = CPU only).
    """
    from hyperrep_ray import tracking

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = _check_n(n)
    epochs = _check_epochs(finetune_epochs)
    data = zoo_data(zoo, data_root) if data is None else data
    config = {
        "ae": str(ae_dir),
        "baseline_ae": str(baseline_ae_dir),
        "zoo": str(zoo),
        "other_zoo": str(other_zoo),
        "out": str(out),
        "n": n,
        "finetune_epochs": epochs,
        "seed": seed,
        "dataset": data.name,
        "methods": list(methods),
        "gan_epochs": gan_epochs,
        "bandwidth": DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth),
        "ensemble_sizes": list(ensemble_sizes),
        "ensemble_repeats": ensemble_repeats,
        "transfer_methods": list(transfer_methods),
        "decode_on_driver": decode_on_driver,
        "num_gpus": num_gpus,
    }
    summary: dict[str, Any] = {
        "tests": {},
        "skipped": {},
        "notes": {},
        "meta": {"config": config, "seconds": {}},
    }
    files: dict[str, list[Path]] = {}
    t_all = time.perf_counter()

    def record(result: ExperimentResult, seconds: float) -> None:
        summary[result.name] = result.summary
        summary["tests"][result.name] = result.tests
        if result.notes:
            summary["notes"][result.name] = result.notes
        summary["meta"]["seconds"][result.name] = round(seconds, 2)
        files[result.name] = result.files

    with tracking.run("experiments", config, tracking_uri, nested=nested, tags={"stage": "experiments"}):
        t0 = time.perf_counter()
        with tracking.run("in_dataset", None, tracking_uri, nested=True, tags={"experiment": "in_dataset"}):
            t1 = table1(
                ae_dir,
                baseline_ae_dir,
                zoo,
                data,
                n,
                epochs,
                seed,
                out=out,
                bandwidth=bandwidth,
                decode_on_driver=decode_on_driver,
                num_gpus=num_gpus,
            )
            bt = t1.frame[t1.frame["population"] == "B_T"]
            reference = bt[bt["finetune_epoch"] == max(epochs)] if max(epochs) > 0 else None
            ind = in_dataset(
                ae_dir,
                zoo,
                data,
                n,
                seed,
                methods,
                out=out,
                bandwidth=bandwidth,
                gan_epochs=gan_epochs,
                reference=reference,
                decode_on_driver=decode_on_driver,
                num_gpus=num_gpus,
            )
            merged = _merge_in_dataset(t1, ind, seed, out)
            _log_params(merged.params)
            dt = time.perf_counter() - t0
            _log_child(merged, [out / "in_dataset", out / "table1"], dt)
        record(merged, dt)

        t0 = time.perf_counter()
        with tracking.run("ensembles", None, tracking_uri, nested=True, tags={"experiment": "ensembles"}):
            ens = ensembles(
                ae_dir,
                data,
                n,
                ensemble_sizes,
                ensemble_repeats,
                seed,
                out=out,
                zoo=zoo,
                baseline_ae_dir=baseline_ae_dir,
                train_epochs=max(epochs),
                bandwidth=bandwidth,
                num_gpus=num_gpus,
            )
            _log_params(ens.params)
            dt = time.perf_counter() - t0
            _log_child(ens, [out / "ensembles"], dt)
        record(ens, dt)

        target, why = (
            (transfer_target, None)
            if transfer_target is not None
            else _default_transfer_target(data, data_root)
        )
        if target is None:
            summary["skipped"]["transfer"] = why
        else:
            t0 = time.perf_counter()
            with tracking.run("transfer", None, tracking_uri, nested=True, tags={"experiment": "transfer"}):
                tr = transfer(
                    ae_dir,
                    zoo,
                    data,
                    target,
                    n,
                    epochs,
                    seed,
                    out=out,
                    methods=transfer_methods,
                    bandwidth=bandwidth,
                    decode_on_driver=decode_on_driver,
                    num_gpus=num_gpus,
                )
                _log_params(tr.params)
                dt = time.perf_counter() - t0
                _log_child(tr, [out / "transfer"], dt)
            record(tr, dt)

        if other_zoo is None:
            summary["skipped"]["unseen_zoo"] = (
                "no other zoo given (other_zoo / --other-zoo): nothing to condition on, so no numbers"
            )
        else:
            t0 = time.perf_counter()
            with tracking.run(
                "unseen_zoo", None, tracking_uri, nested=True, tags={"experiment": "unseen_zoo"}
            ):
                od = zoo_data(other_zoo, data_root) if other_data is None else other_data
                un = unseen_zoo(
                    ae_dir,
                    other_zoo,
                    od,
                    n,
                    seed,
                    out=out,
                    bandwidth=bandwidth,
                    repeats=ensemble_repeats,
                    decode_on_driver=decode_on_driver,
                    num_gpus=num_gpus,
                )
                _log_params(un.params)
                dt = time.perf_counter() - t0
                _log_child(un, [out / "unseen_zoo"], dt)
            record(un, dt)

        import mlflow

        summary["meta"]["seconds"]["total"] = round(time.perf_counter() - t_all, 2)
        summary["meta"]["files"] = {k: [str(p.relative_to(out)) for p in v] for k, v in files.items()}
        path = out / "summary.json"
        write_json(path, summary)
        report = _report(summary, files, out)
        mlflow.log_artifact(str(path))
        mlflow.log_artifact(str(report))
        tracking.log_metrics({"seconds": summary["meta"]["seconds"]["total"]})
        for name, why in summary["skipped"].items():
            mlflow.set_tag(f"skipped.{name}", why[:500])
    return summary


def _log_params(params: Mapping[str, Any]) -> None:
    import mlflow

    from hyperrep_ray import tracking

    flat = tracking.flatten(params)
    mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
