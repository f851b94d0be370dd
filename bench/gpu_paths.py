#!/usr/bin/env python
"""The package's CUDA paths end to end at small size, one table row each (``bench/gpu_check.sh`` runs it).

1. zoo training: a 16-model digits zoo, Ray Tasks with a quarter GPU each, into a Parquet store;
2. autoencoder: the autoencoder stage on that zoo, Ray Train with one GPU worker, bf16 autocast;
3. decode -> evaluate: 32 sampled embeddings through the Ray Data pipeline, decoder actors and
   fine-tuning tasks on the GPU, test accuracy after 0 and 1 epochs.

Without a CUDA device every row says "not measured" and the exit status is 0; any error on a GPU
machine (a CUDA error included) fails the run with a non-zero status.

    python bench/gpu_paths.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import NOT_MEASURED, ROOT, emit, machine_lines

sys.path.insert(0, str(ROOT))

PATHS = (
    "zoo training (Ray Tasks, cuda)",
    "autoencoder (Ray Train, 1 GPU, bf16)",
    "decode -> evaluate (Ray Data, cuda)",
)


def zoo_on_gpu(work: Path) -> str:
    from hyperrep_ray.config import zoo_preset
    from hyperrep_ray.store import read_zoo_meta
    from hyperrep_ray.zoo.train import train_zoo

    cfg = zoo_preset(
        "smoke", num_models=16, epochs=2, population_size=8, models_per_shard=8, num_gpus_per_task=0.25
    )
    train_zoo(cfg, str(work / "zoo"), progress=False)
    meta = read_zoo_meta(str(work / "zoo"))
    return f"{meta.get('num_models', 16)} models stored"


def ae_on_gpu(work: Path) -> str:
    from hyperrep_ray.autoencoder.stage import run_ae_stage
    from hyperrep_ray.config import ae_preset

    cfg = ae_preset("smoke", epochs=3, num_workers=1, use_gpu=True, amp=True)
    metrics = run_ae_stage(str(work / "zoo"), str(work / "ae"), cfg, f"sqlite:///{work / 'mlflow.db'}")
    r2 = metrics.get("reconstruction_r2_test", metrics.get("reconstruction_r2_val", float("nan")))
    return f"test R^2 {float(r2):.3f}"


def decode_on_gpu(work: Path) -> str:
    from hyperrep_ray.data.images import load_dataset
    from hyperrep_ray.evaluation.finetune import hyper_for_dataset
    from hyperrep_ray.evaluation.ray_pipeline import evaluate_embeddings
    from hyperrep_ray.sampling.generate import sample_embeddings

    ae = str(work / "ae")
    z = sample_embeddings(ae, 32, "kde30", 0, None)
    df = evaluate_embeddings(
        z,
        ae,
        load_dataset("digits"),
        hyper_for_dataset("digits"),
        [1],
        "S_KDE30",
        0,
        batch_size=16,
        num_gpus=0.25,
    )
    acc = df.groupby("finetune_epoch")["test_acc"].mean()
    return f"mean acc epoch 0 {acc.get(0, float('nan')):.3f}, epoch 1 {acc.get(1, float('nan')):.3f}"


def report(rows: list[str]) -> None:
    """Print the one table of CUDA paths (a row per path)."""
    head = ["# CUDA paths", "", *machine_lines(), "", "| path | result | s | numbers |", "|---|---|---:|---|"]
    emit("\n".join([*head, *rows]), None)


def main() -> int:
    import torch

    rows: list[str] = []
    if not torch.cuda.is_available():
        rows = [f"| {p} | {NOT_MEASURED} (no CUDA device) | - | - |" for p in PATHS]
        report(rows)
        return 0
    from hyperrep_ray.runtime import ensure_ray

    ensure_ray()
    steps: list[tuple[str, Callable[[Path], str]]] = list(
        zip(PATHS, (zoo_on_gpu, ae_on_gpu, decode_on_gpu), strict=True)
    )
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in steps:
            t0 = time.perf_counter()
            if failed:
                rows.append(f"| {name} | not run (an earlier path failed) | - | - |")
                continue
            try:
                numbers = fn(Path(tmp))
                rows.append(f"| {name} | ok | {time.perf_counter() - t0:.0f} | {numbers} |")
            except Exception as e:  # reported in the table, then the exit status says it failed
                failed = True
                rows.append(
                    f"| {name} | FAILED: {type(e).__name__}: {str(e).splitlines()[0][:200]} | "
                    f"{time.perf_counter() - t0:.0f} | - |"
                )
    report(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
