"""`hyperrep train-ae`: train the hyper-representation autoencoder on a zoo (Ray Train DDP)."""

from __future__ import annotations

import argparse
from typing import Any

from hyperrep_ray.autoencoder.stage import run_ae_stage
from hyperrep_ray.cli.common import CommandError, add_epochs_window, add_tracking, overrides
from hyperrep_ray.cli.out_lock import held_out
from hyperrep_ray.config import PRESETS, AEConfig, ae_preset, load_json_config
from hyperrep_ray.store import read_zoo_meta, split_too_small

NAME = "train-ae"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="train the hyper-representation autoencoder on a zoo (Ray Train DDP)",
        description="Train the transformer autoencoder on the train split of a zoo (checkpoints of the "
        "epoch window), validate on val, report on test; writes the model, metrics.json and figures.",
    )
    p.add_argument("--zoo", required=True, help="weight store written by `hyperrep zoo`")
    p.add_argument("--out", required=True, help="output directory for the trained autoencoder")
    p.add_argument("--preset", choices=PRESETS, default="quick")
    p.add_argument("--config", help="JSON file with AEConfig fields (e.g. best_config.json of a sweep)")
    add_epochs_window(p)
    p.add_argument("--epochs", type=int, help="autoencoder training epochs")
    p.add_argument("--no-lwln", action="store_true", help="plain MSE instead of layer-wise normalisation")
    p.add_argument("--no-align", action="store_true", help="skip the canonical neuron order")
    p.add_argument("--permute", action="store_true", help="random permutation augmentation (the paper's)")
    p.add_argument("--workers", type=int, dest="num_workers", help="Ray Train workers (DDP)")
    p.add_argument("--gpus", action="store_true", help="one GPU per worker")
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    p.add_argument(
        "--data-root", help="image data set directory (for accuracy metrics; not needed for digits)"
    )
    add_tracking(p)
    return p


def ae_config(args: argparse.Namespace, dataset: str) -> AEConfig:
    """The preset for the zoo's data set, then the --config file, then the flags."""
    values = load_json_config(args.config) if args.config else {}
    values.update(overrides(args, ["epochs", "num_workers"]))
    if args.epochs_window:
        values["epochs_window"] = tuple(args.epochs_window)
    switches = {"no_lwln": ("lwln", False), "no_align": ("align", False), "permute": ("permute", True)}
    switches["gpus"] = ("use_gpu", True)
    for flag, (field, value) in switches.items():
        if getattr(args, flag):
            values[field] = value
    return ae_preset(args.preset, dataset, **values)


def print_metrics(metrics: dict[str, Any]) -> None:
    """One metric per line; of the per-epoch R^2 keys only the summary ones."""
    keys = [k for k in metrics if not k.startswith("reconstruction_r2_") or k.count("_") == 3]
    width = max(len(k) for k in keys)
    for k in keys:
        v = metrics[k]
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def run(args: argparse.Namespace) -> int:
    meta = read_zoo_meta(args.zoo)
    too_small = split_too_small(meta)
    if too_small:  # before Ray starts: the autoencoder trains on train models, keeps the best on val
        raise CommandError(f"the zoo at {args.zoo} is too small for the autoencoder: {too_small}")
    cfg = ae_config(args, meta["dataset"])
    with held_out(args.out, f"hyperrep train-ae --out {args.out}"):
        metrics = run_ae_stage(
            args.zoo, args.out, cfg, args.tracking_uri, resume=args.resume, data_root=args.data_root
        )
    print_metrics(metrics)
    print(f"\nautoencoder: {args.out} (metrics.json, figures, model)")
    return 0
