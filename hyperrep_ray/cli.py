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
