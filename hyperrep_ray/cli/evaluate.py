"""`hyperrep evaluate`: decode a samples file's embeddings, score them and fine-tune them (Ray Data).

Writes OUT/rows/ (one Parquet row per sample and fine-tuning epoch), OUT/summary.json (population ->
epoch -> mean, std, ...) and OUT/table.md (paper Table 1's layout), and logs them to MLflow.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from hyperrep_ray import tracking
from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.cli.common import CommandError, Numbers, add_data_root, add_tracking, quiet_ray_data
from hyperrep_ray.data.images import ImageData, load_dataset
from hyperrep_ray.evaluation.finetune import FinetuneHyper, hyper_for_dataset
from hyperrep_ray.evaluation.ray_pipeline import evaluate_embeddings
from hyperrep_ray.experiments.statistics import summarize_frame
from hyperrep_ray.io import write_json, write_text
from hyperrep_ray.report.experiment_tables import by_epoch_markdown
from hyperrep_ray.sampling.samples_io import Samples, read_samples

NAME = "evaluate"
DEFAULT_FINETUNE_EPOCHS = [0, 1, 5, 25]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="decode sampled embeddings, score them and fine-tune them (Ray Data)",
        description="Decode the embeddings of a `hyperrep sample` file with the autoencoder, score the "
        "models on the data set's test images as they are (epoch 0) and after each fine-tuning epoch given.",
    )
    p.add_argument("--samples", required=True, help="Parquet file written by `hyperrep sample`")
    p.add_argument("--ae", required=True, help="the autoencoder the samples were drawn from")
    p.add_argument("--dataset", help="digits, mnist, svhn, cifar10, stl10 (default: the autoencoder's)")
    add_data_root(p)
    p.add_argument(
        "--finetune-epochs",
        type=Numbers(int, 0, many=True),
        default=DEFAULT_FINETUNE_EPOCHS,
        help="comma-separated fine-tuning epochs to record (default 0,1,5,25)",
    )
    p.add_argument("--seed", type=int, default=0, help="fine-tuning data-order seed")
    p.add_argument(
        "--population", help="population name in the results (default: the sampler's, e.g. S_KDE30)"
    )
    p.add_argument("--out", required=True, help="output directory (rows/, summary.json, table.md)")
    add_tracking(p)
    return p


def target(args: argparse.Namespace) -> tuple[str, FinetuneHyper, ImageData]:
    """(data set, its fine-tuning hyperparameters, its images): --dataset or the autoencoder's."""
    dataset = args.dataset or read_ae_info(args.ae)["dataset"]
    try:
        hyper = hyper_for_dataset(dataset)
    except ValueError as e:
        raise CommandError(str(e)) from None
    return dataset, hyper, load_dataset(dataset, args.data_root)


def run_config(args: argparse.Namespace, samples: Samples, dataset: str, population: str) -> dict[str, Any]:
    """What the MLflow run records as its params."""
    return {
        "samples": args.samples,
        "ae": args.ae,
        "dataset": dataset,
        "finetune_epochs": args.finetune_epochs,
        "seed": args.seed,
        "population": population,
        "n": len(samples.sample_id),
        "sampler": samples.metadata,
    }


def write_summary(frame: pd.DataFrame, out: Path, dataset: str, seed: int) -> tuple[dict[str, Any], str]:
    """summary.json (statistics per population and epoch) and table.md; returns both."""
    summary = summarize_frame(frame, seed=seed)
    write_json(out / "summary.json", summary)
    table = "\n".join(by_epoch_markdown(summary, dataset))
    write_text(out / "table.md", table + "\n")
    return summary, table


def log_summary(summary: dict[str, Any], out: Path) -> None:
    import mlflow

    metrics = {
        f"{p}.{e}.{k}": v[k] for p, per in summary.items() for e, v in per.items() for k in ("mean", "std")
    }
    tracking.log_metrics(metrics)
    mlflow.log_artifacts(str(out), artifact_path="evaluate")


def run(args: argparse.Namespace) -> int:
    samples = read_samples(args.samples)
    quiet_ray_data(args)
    dataset, hyper, data = target(args)
    population = args.population or samples.metadata.get("population", "sampled")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(args, samples, dataset, population)
    with tracking.run("evaluate", config, args.tracking_uri, tags={"stage": "evaluate"}):
        try:
            frame = evaluate_embeddings(
                samples.z,
                args.ae,
                data,
                hyper,
                args.finetune_epochs,
                population,
                args.seed,
                out=str(out / "rows"),
                sample_ids=samples.sample_id.tolist(),
            )
        except ValueError as e:
            raise CommandError(str(e)) from None
        summary, table = write_summary(frame, out, dataset, args.seed)
        log_summary(summary, out)
    print(table)
    print(f"\nresults: {out} (rows/ as Parquet, summary.json, table.md)")
    return 0
