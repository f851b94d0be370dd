"""`hyperrep zoo`: train a model zoo into a Parquet weight store (Ray Tasks); reruns resume."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hyperrep_ray.cli.common import add_tracking, overrides
from hyperrep_ray.cli.out_lock import held_out
from hyperrep_ray.config import PRESETS, ZooConfig, load_json_config, zoo_preset
from hyperrep_ray.store import empty_splits, models_for_every_split
from hyperrep_ray.zoo.cnn import INITS
from hyperrep_ray.zoo.figures import zoo_summary_markdown
from hyperrep_ray.zoo.stage import run_zoo_stage

NAME = "zoo"
#: ZooConfig fields with a flag of their own (the flag's dest is the field's name).
FIELD_FLAGS = (
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
)
#: Zoo epochs shown in the printed accuracy table (and the last one).
SHOWN_EPOCHS = [0, 1, 5, 10, 25, 50]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="train a population of zoo CNNs into a Parquet weight store (Ray Tasks)",
        description="Train a model zoo (paper Tables 5-7) into a Parquet weight store. Rerunning the same "
        "command resumes: finished shards are kept, missing ones are trained.",
    )
    p.add_argument(
        "--preset", choices=PRESETS, default="quick", help="sizes: smoke (tests), quick (default), paper"
    )
    p.add_argument(
        "--dataset", default="digits", help="digits (embedded, default), mnist, svhn, cifar10, stl10"
    )
    p.add_argument("--data-root", help="directory with the torchvision data set (not needed for digits)")
    p.add_argument(
        "--download", action="store_true", help="download the data set into --data-root (needs internet)"
    )
    p.add_argument("--out", required=True, help="store directory or URI (s3://, gs://)")
    p.add_argument("--models", type=int, dest="num_models", help="number of models (overrides the preset)")
    p.add_argument("--epochs", type=int, help="training epochs; checkpoints are kept for 0..EPOCHS")
    p.add_argument("--seed-offset", type=int, help="model i uses seed SEED_OFFSET + i + 1")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--activation", choices=["tanh", "gelu", "relu", "sigmoid"])
    p.add_argument("--init", choices=list(INITS), help="uniform: U(0,1), biases 0.01 (authors)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--population-size", type=int, help="models trained together as one batched module")
    p.add_argument("--models-per-shard", type=int, help="models per Ray Task and per Parquet file")
    p.add_argument("--gpus-per-task", type=float, dest="num_gpus_per_task")
    p.add_argument("--config", help="JSON file with ZooConfig fields (CLI flags win)")
    add_tracking(p)
    return p


def zoo_config(args: argparse.Namespace) -> ZooConfig:
    """The preset, then the --config file, then the flags."""
    values = load_json_config(args.config) if args.config else {}
    values.update(overrides(args, FIELD_FLAGS))
    if args.download:
        values["download"] = True
    return zoo_preset(args.preset, values.pop("dataset", args.dataset), **values)


def warn_small_zoo(cfg: ZooConfig) -> None:
    """A zoo too small for its split trains, but `hyperrep train-ae` will refuse it: say so first."""
    empty = empty_splits(cfg.num_models, cfg.split_fractions, cfg.split_seed)
    if empty:
        need = models_for_every_split(cfg.split_fractions, cfg.split_seed)
        print(
            f"hyperrep zoo: warning: {cfg.num_models} model(s) leave the {' and '.join(empty)} split "
            f"empty; the autoencoder needs train and val models (--models {need} or more fills every split)",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    cfg = zoo_config(args)
    warn_small_zoo(cfg)
    with held_out(args.out, f"hyperrep zoo --out {args.out}"):
        result, summary = run_zoo_stage(cfg, args.out, args.tracking_uri, progress=not args.no_progress)
    print(zoo_summary_markdown(summary, SHOWN_EPOCHS))
    print(
        f"\nstore: {args.out} ({len(result.trained_shards)} shard(s) trained, "
        f"{len(result.skipped_shards)} already complete) in {result.seconds:.1f} s"
    )
    return 0
