"""`hyperrep`: one subcommand per stage of the pipeline (see DESIGN.md).

hyperrep zoo --preset quick --out runs/quick/zoo       train a model zoo into a Parquet store
hyperrep zoo-info runs/quick/zoo                        summarise a store
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hyperrep_ray.config import PRESETS, ConfigError, load_json_config, zoo_preset

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def wrap(fn):
        COMMANDS[name] = fn
        return fn

    return wrap


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperrep",
        description="Hyper-representations of neural-network weights on Ray: train model zoos, learn a "
        "weight autoencoder, sample and evaluate new weights. Every stage is tracked in MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    z = sub.add_parser(
        "zoo",
        help="train a population of zoo CNNs into a Parquet weight store (Ray Tasks)",
        description="Train a model zoo (paper Tables 5-7) into a Parquet weight store. Rerunning the same "
        "command resumes: finished shards are kept, missing ones are trained.",
    )
    z.add_argument(
        "--preset", choices=PRESETS, default="quick", help="sizes: smoke (tests), quick (default), paper"
    )
    z.add_argument(
        "--dataset", default="digits", help="digits (embedded, default), mnist, svhn, cifar10, stl10"
    )
    z.add_argument("--data-root", help="directory with the torchvision data set (not needed for digits)")
    z.add_argument(
        "--download", action="store_true", help="download the data set into --data-root (needs internet)"
    )
    z.add_argument("--out", required=True, help="store directory or URI (s3://, gs://)")
    z.add_argument("--models", type=int, dest="num_models", help="number of models (overrides the preset)")
    z.add_argument("--epochs", type=int, help="training epochs; checkpoints are kept for 0..EPOCHS")
    z.add_argument("--seed-offset", type=int, help="model i uses seed SEED_OFFSET + i + 1")
    z.add_argument("--lr", type=float)
    z.add_argument("--weight-decay", type=float)
    z.add_argument("--activation", choices=["tanh", "gelu", "relu", "sigmoid"])
    z.add_argument(
        "--init", choices=["uniform", "normal", "kaiming_uniform", "kaiming_normal", "xavier", "default"]
    )
    z.add_argument("--batch-size", type=int)
    z.add_argument("--population-size", type=int, help="models trained together as one batched module")
    z.add_argument("--models-per-shard", type=int, help="models per Ray Task and per Parquet file")
    z.add_argument("--gpus-per-task", type=float, dest="num_gpus_per_task")
    z.add_argument("--config", help="JSON file with ZooConfig fields (CLI flags win)")
    _add_common(z)

    a = sub.add_parser(
        "train-ae",
        help="train the hyper-representation autoencoder on a zoo (Ray Train DDP)",
        description="Train the transformer autoencoder on the train split of a zoo (checkpoints of the "
        "epoch window), validate on val, report on test; writes the model, metrics.json and figures.",
    )
    a.add_argument("--zoo", required=True, help="weight store written by `hyperrep zoo`")
    a.add_argument("--out", required=True, help="output directory for the trained autoencoder")
    a.add_argument("--preset", choices=PRESETS, default="quick")
    a.add_argument("--config", help="JSON file with AEConfig fields (e.g. best_config.json of a sweep)")
    a.add_argument("--epochs-window", type=int, nargs=2, metavar=("LO", "HI"), help="zoo epochs to train on")
    a.add_argument("--epochs", type=int, help="autoencoder training epochs")
    a.add_argument("--no-lwln", action="store_true", help="plain MSE instead of layer-wise normalisation")
    a.add_argument("--no-align", action="store_true", help="skip the canonical neuron order")
    a.add_argument("--permute", action="store_true", help="random permutation augmentation (the paper's)")
    a.add_argument("--workers", type=int, dest="num_workers", help="Ray Train workers (DDP)")
    a.add_argument("--gpus", action="store_true", help="one GPU per worker")
    a.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    a.add_argument(
        "--data-root", help="image data set directory (for accuracy metrics; not needed for digits)"
    )
    _add_common(a)

    e = sub.add_parser("embed", help="write the hyper-representation z of every checkpoint of a zoo")
    e.add_argument("--ae", required=True, help="trained autoencoder directory")
    e.add_argument("--zoo", required=True)
    e.add_argument("--out", required=True, help="Parquet file to write")
    e.add_argument("--epochs", type=int, nargs="*", help="only these zoo epochs (default: all)")

    p = sub.add_parser(
        "predict",
        help="predict test accuracy, epoch and generalisation gap of models from their weights alone",
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory (with its fitted probes)")
    p.add_argument("weights", nargs="+", help="zoo-CNN weight files (.safetensors or .pt state_dict)")
    p.add_argument("--json", action="store_true")

    i = sub.add_parser(
        "zoo-info", help="summarise a weight store: models, epochs, splits, accuracy quantiles"
    )
    i.add_argument("store", help="store directory or URI")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _overrides(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


@command("zoo")
def _zoo(args: argparse.Namespace) -> int:
    from hyperrep_ray.report import zoo_summary_markdown
    from hyperrep_ray.zoo.stage import run_zoo_stage

    values = load_json_config(args.config) if args.config else {}
    values.update(
        _overrides(
            args,
            [
                "data_root",
                "num_models",
                "epochs",
                "seed_offset",
                "lr",
                "weight_decay",
                "activation",
                "init",
                "batch_size",
                "population_size",
                "models_per_shard",
                "num_gpus_per_task",
            ],
        )
    )
    if args.download:
        values["download"] = True
    cfg = zoo_preset(args.preset, values.pop("dataset", args.dataset), **values)
    result, summary = run_zoo_stage(cfg, args.out, args.tracking_uri, progress=not args.no_progress)
    print(zoo_summary_markdown(summary, [0, 1, 5, 10, 25, 50]))
    print(
        f"\nstore: {args.out} ({len(result.trained_shards)} shard(s) trained, "
        f"{len(result.skipped_shards)} already complete) in {result.seconds:.1f} s"
    )
    return 0


@command("zoo-info")
def _zoo_info(args: argparse.Namespace) -> int:
    from hyperrep_ray.report import zoo_summary_markdown
    from hyperrep_ray.zoo.train import zoo_summary

    summary = zoo_summary(args.store)
    print(json.dumps(summary, indent=2) if args.json else zoo_summary_markdown(summary))
    return 0


def _ae_config(args: argparse.Namespace, dataset: str):
    from hyperrep_ray.config import ae_preset

    values = load_json_config(args.config) if args.config else {}
    values.update(_overrides(args, ["epochs", "num_workers"]))
    if args.epochs_window:
        values["epochs_window"] = tuple(args.epochs_window)
    if args.no_lwln:
        values["lwln"] = False
    if args.no_align:
        values["align"] = False
    if args.permute:
        values["permute"] = True
    if args.gpus:
        values["use_gpu"] = True
    return ae_preset(args.preset, dataset, **values)


@command("train-ae")
def _train_ae(args: argparse.Namespace) -> int:
    from hyperrep_ray.ae_stage import run_ae_stage
    from hyperrep_ray.store import read_zoo_meta

    cfg = _ae_config(args, read_zoo_meta(args.zoo)["dataset"])
    metrics = run_ae_stage(
        args.zoo, args.out, cfg, args.tracking_uri, resume=args.resume, data_root=args.data_root
    )
    keys = [k for k in metrics if not k.startswith("reconstruction_r2_") or k.count("_") == 3]
    width = max(len(k) for k in keys)
    for k in keys:
        v = metrics[k]
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print(f"\nautoencoder: {args.out} (metrics.json, figures, model)")
    return 0


@command("embed")
def _embed(args: argparse.Namespace) -> int:
    from hyperrep_ray.embed import embed_store

    n = embed_store(args.ae, args.zoo, args.out, epochs=args.epochs)
    print(f"wrote {n} embeddings to {args.out}")
    return 0


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from hyperrep_ray.embed import predict_properties

    rows = predict_properties(args.ae, args.weights)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'file':<40} {'test_accuracy':>13} {'epoch':>7} {'ggap':>7}")
        for r in rows:
            print(f"{r['file'][-40:]:<40} {r['test_accuracy']:>13.3f} {r['epoch']:>7.1f} {r['ggap']:>7.3f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if not args.command:
        parser.print_help()
        return 2
    from hyperrep_ray.datasets import DatasetNotFoundError
    from hyperrep_ray.store import StoreError

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, StoreError, DatasetNotFoundError) as e:
        print(f"hyperrep {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
