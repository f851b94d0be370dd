"""In-dataset sampling (2022 paper, Figure 4 and Table 1): models sampled from the autoencoder of a zoo,
scored on that zoo's data set as sampled and after fine-tuning, next to models trained from scratch.

- :func:`in_dataset`: every sampler at epoch 0 against B_T at epoch 0 (Figure 4).
- :func:`table1`: B_T, B_KDE30 (the no-LWLN autoencoder), S_KDE30 and S_KDEJ30 fine-tuned (Table 1).
- :func:`merge_in_dataset`: both as the one ``in_dataset`` experiment of the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.ray_pipeline import baseline_from_scratch
from hyperrep_ray.evaluation.results import ExperimentResult
from hyperrep_ray.experiments.data import zoo_hyper
from hyperrep_ray.experiments.inputs import check_channels, check_epochs, check_methods, check_n
from hyperrep_ray.experiments.populations import concat_rows, evaluate_samples, task_batch_size
from hyperrep_ray.experiments.statistics import summarize_result
from hyperrep_ray.progress import RunRef, current_run, reporting_to
from hyperrep_ray.runtime import ensure_ray
from hyperrep_ray.sampling.generate import load_anchors, sample_embeddings
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH, DEFAULT_GAN_EPOCHS, SAMPLERS, sample

log = logging.getLogger(__name__)

ROW_KEY = ["population", "finetune_epoch", "sample_id"]


def sample_in_task(run: RunRef | None, method: str, *args: Any, **kwargs: Any) -> np.ndarray:
    """:func:`~hyperrep_ray.sampling.samplers.sample` as a Ray task: one torch thread (the task holds
    one CPU; two GANs side by side must not fight over cores) and progress lines into ``run``."""
    torch.set_num_threads(1)
    with reporting_to(run):
        return sample(method, *args, **kwargs)


def draw_samples(
    ae_dir: str,
    methods: Sequence[str],
    n: int,
    seed: int,
    bandwidth: float,
    gan_epochs: int,
    gan_steps: int | None = None,
) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(embeddings, population names, notes): ``n`` samples of each sampler in ``methods``, one Ray task
    per sampler, so the two GANs (minutes each on a CPU) train side by side instead of one after the
    other in the driver. A sampler that cannot run on these anchors (e.g. UMAP with too few) is left
    out with a note, not faked."""
    import ray

    anchors, acc = load_anchors(ae_dir)
    ensure_ray()
    task = ray.remote(num_cpus=1, max_retries=1)(sample_in_task)
    anchors_ref, acc_ref, run = ray.put(anchors), ray.put(acc), current_run()
    # the GANs (minutes) first, so that the samplers of seconds fill the other cores meanwhile
    # instead of holding the GANs back; the results keep the order of ``methods``
    longest_first = sorted(methods, key=lambda m: not m.startswith("gan"))
    refs = {
        m: task.remote(
            run,
            m,
            anchors_ref,
            acc_ref,
            n,
            seed,
            bandwidth=bandwidth,
            gan_epochs=gan_epochs,
            gan_steps=gan_steps,
        )
        for m in longest_first
    }
    zs, names, notes = [], [], []
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
    return zs, names, notes


def in_dataset(
    ae_dir: str,
    zoo: str,
    data: ImageData,
    n: int,
    seed: int = 0,
    methods: Sequence[str] = tuple(SAMPLERS),
    *,
    bandwidth: float | None = None,
    gan_epochs: int = DEFAULT_GAN_EPOCHS,
    gan_steps: int | None = None,
    reference: pd.DataFrame | None = None,
    batch_size: int | None = None,
    decode_on_driver: bool = False,
    num_gpus: float = 0.0,
) -> ExperimentResult:
    """Paper Figure 4: ``n`` models of every sampler in ``methods`` (default: all of SAMPLERS), decoded
    and scored without fine-tuning (epoch 0), next to ``n`` random initialisations B_T (the zoo's init
    method, epoch 0). ``reference`` (long-format rows, e.g. B_T after 25 epochs from :func:`table1`) is
    tabulated too, as the paper's Figure 4 shows B_T trained for 25 epochs.

    All samplers are decoded and scored in one Ray Data pipeline (epoch 0 needs no per-sample training
    order, so their sample ids are only offset there and renumbered 0..n-1 afterwards).
    ``decode_on_driver``: see :func:`~.experiments.runner.resolve_decode_on_driver`."""
    n = check_n(n)
    check_methods(methods)
    check_channels(ae_dir, data)
    hyper, init = zoo_hyper(zoo)
    h = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
    zs, names, notes = draw_samples(ae_dir, methods, n, seed, h, gan_epochs, gan_steps)
    bs = task_batch_size(n * max(1, len(zs)), batch_size)
    frames = []
    if zs:
        ids = list(range(len(zs) * n))
        df = evaluate_samples(
            np.concatenate(zs), ae_dir, data, hyper, [], "sampled", seed, bs, decode_on_driver, num_gpus, ids
        )
        df["population"] = np.asarray(names, dtype=object)[df["sample_id"].to_numpy() // n]
        df["sample_id"] = df["sample_id"] % n
        frames.append(df)
    frames.append(
        baseline_from_scratch(
            n, data, hyper, init, [], seed, batch_size=task_batch_size(n, batch_size), num_gpus=num_gpus
        )
    )
    if reference is not None and len(reference):
        frames.append(reference)
    frame = concat_rows(frames).drop_duplicates(ROW_KEY, keep="first")
    params: dict[str, Any] = {
        "ae": str(ae_dir),
        "zoo": str(zoo),
        "dataset": data.name,
        "n": n,
        "seed": seed,
        "methods": list(methods),
        "bandwidth": h,
        "gan_epochs": gan_epochs,
        "gan_steps": gan_steps,
        "decode_on_driver": decode_on_driver,
    }
    result = ExperimentResult("in_dataset", {}, frame.reset_index(drop=True), [], params=params, notes=notes)
    result.extra["embeddings"] = {name: (ae_dir, z) for name, z in zip(names, zs, strict=True)}
    return summarize_result(result, "finetune_epoch", seed)


def table1(
    ae_dir: str,
    baseline_ae_dir: str | None,
    zoo: str,
    data: ImageData,
    n: int,
    finetune_epochs: Sequence[int] = (0, 1, 5, 25),
    seed: int = 0,
    *,
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
    ``decode_on_driver``: see :func:`~.experiments.runner.resolve_decode_on_driver`."""
    n = check_n(n)
    epochs = check_epochs(finetune_epochs)
    check_channels(ae_dir, data)
    hyper, init = zoo_hyper(zoo)
    bs = task_batch_size(n, batch_size)
    embeddings: dict[str, tuple[str, np.ndarray]] = {}

    def sampled(ae: str, method: str, population: str) -> pd.DataFrame:
        z = sample_embeddings(ae, n, method, seed, bandwidth)
        embeddings[population] = (ae, z)
        return evaluate_samples(
            z, ae, data, hyper, epochs, population, seed, bs, decode_on_driver, num_gpus=num_gpus
        )

    notes = []
    frames = [baseline_from_scratch(n, data, hyper, init, epochs, seed, batch_size=bs, num_gpus=num_gpus)]
    if baseline_ae_dir is not None:
        check_channels(baseline_ae_dir, data)
        frames.append(sampled(baseline_ae_dir, "kde30", "B_KDE30"))
    else:
        notes.append("B_KDE30 left out: no baseline (no-LWLN) autoencoder given")
    frames.append(sampled(ae_dir, "kde30", "S_KDE30"))
    if joint:
        frames.append(sampled(ae_dir, "kde-joint30", "S_KDEJ30"))
    params: dict[str, Any] = {
        "ae": str(ae_dir),
        "baseline_ae": str(baseline_ae_dir),
        "zoo": str(zoo),
        "dataset": data.name,
        "n": n,
        "finetune_epochs": epochs,
        "seed": seed,
        "bandwidth": DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth),
    }
    result = ExperimentResult("table1", {}, concat_rows(frames), [], params=params, notes=notes)
    result.extra["embeddings"] = embeddings
    return summarize_result(result, "finetune_epoch", seed)


def trained_reference(t1: ExperimentResult) -> pd.DataFrame | None:
    """Table 1's B_T rows after its longest fine-tuning, drawn next to Figure 4's populations (the
    paper's Figure 4 shows B_T trained for 25 epochs); None when Table 1 did not fine-tune."""
    epochs = t1.params["finetune_epochs"]
    bt = t1.frame[t1.frame["population"] == "B_T"]
    return bt[bt["finetune_epoch"] == max(epochs)] if max(epochs) > 0 else None


def merge_in_dataset(t1: ExperimentResult, ind: ExperimentResult, seed: int) -> ExperimentResult:
    """Figure 4 and Table 1 populations as one experiment. Rows both measured (B_T and S_KDE30 at epoch
    0, the same models) are taken from Table 1."""
    frame = concat_rows([t1.frame, ind.frame]).drop_duplicates(ROW_KEY, keep="first")
    merged = ExperimentResult(
        "in_dataset",
        {},
        frame.reset_index(drop=True),
        [],
        params={**ind.params, **t1.params, "methods": ind.params.get("methods")},
        notes=[*t1.notes, *ind.notes],
        extra={"embeddings": {**ind.extra.get("embeddings", {}), **t1.extra.get("embeddings", {})}},
    )
    return summarize_result(merged, "finetune_epoch", seed)
