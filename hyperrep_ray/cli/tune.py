"""`hyperrep tune` (and ``jobs/tune_sweep.py``): the Ray Tune sweep of the autoencoder's beta, d_token,
d_hidden, d_z, lr and KDE bandwidth; writes best_config.json.

The flags build a ``SweepConfig``; a flag left out takes the config's default, and a value out of
bounds is the config's error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hyperrep_ray.cli.common import (
    INTEGER,
    NUMBER,
    NUMBER_LIST,
    add_data_root,
    add_epochs_window,
    add_tracking_uri,
)
from hyperrep_ray.cli.out_lock import held_out
from hyperrep_ray.config import PRESETS, make_config
from hyperrep_ray.tune.config import SweepConfig
from hyperrep_ray.tune.objective import OBJECTIVE
from hyperrep_ray.tune.sweep import SweepInterrupted, run_sweep

NAME = "tune"
#: Exit status of an interrupted sweep (as for Ctrl+C): rerun the same command to resume it.
INTERRUPTED = 130
#: SweepConfig fields whose flag has the field's name.
FIELD_FLAGS = (
    "zoo",
    "out",
    "preset",
    "num_samples",
    "workers_per_trial",
    "cpus_per_trial",
    "gpus_per_trial",
    "max_epochs",
    "storage",
    "search",
    "bandwidths",
    "seed",
    "max_concurrent",
    "data_root",
)


def default(field: str) -> Any:
    return SweepConfig.model_fields[field].default


def add_resource_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers-per-trial",
        type=INTEGER,
        help=f"Ray Train workers (DDP) per trial (default {default('workers_per_trial')}: in-process)",
    )
    p.add_argument(
        "--cpus-per-trial", type=NUMBER, help="CPUs per trial, split over its workers (default 1 per worker)"
    )
    p.add_argument("--gpus-per-trial", type=NUMBER, help="GPUs per trial, split over its workers")
    p.add_argument("--max-concurrent", type=INTEGER, help="at most this many trials at once")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sweep's options, shared by ``hyperrep tune`` and ``jobs/tune_sweep.py``."""
    p.add_argument("--zoo", required=True, help="weight store written by `hyperrep zoo`")
    p.add_argument("--out", required=True, help="output directory (best_config.json, trials.csv, ...)")
    p.add_argument(
        "--preset",
        choices=PRESETS,
        help=f"autoencoder preset the space is scaled to (default {default('preset')})",
    )
    p.add_argument("--num-samples", type=INTEGER, help=f"number of trials (default {default('num_samples')})")
    add_resource_flags(p)
    p.add_argument("--max-epochs", type=INTEGER, help="autoencoder epochs per trial (default: the preset's)")
    p.add_argument("--storage", help="Ray Tune storage path or URI (default OUT/ray_tune; s3://, gs:// work)")
    add_epochs_window(p)
    p.add_argument(
        "--search", choices=["optuna", "random"], help="search algorithm (default optuna if installed)"
    )
    p.add_argument(
        "--bandwidths",
        type=NUMBER_LIST,
        help="comma-separated KDE bandwidths evaluated per trial (default 7 log-spaced in 0.002..1)",
    )
    p.add_argument(
        "--samples-per-bandwidth",
        type=INTEGER,
        dest="n_samples",
        help=f"kde30 samples per bandwidth ({default('n_samples')})",
    )
    p.add_argument("--no-early-stopping", action="store_true", help="run every trial to the end (no ASHA)")
    p.add_argument("--seed", type=int)
    add_data_root(p, "the image data set")
    add_tracking_uri(p)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="Ray Tune sweep of beta, d_token, d_hidden, d_z, lr and KDE bandwidth; writes best_config.json",
        description="Sweep the autoencoder's hyperparameters on a zoo (ASHA + Optuna), scored on the zoo's "
        "val models and held-out training images. Rerunning the same command resumes an interrupted sweep.",
    )
    add_arguments(p)
    return p


def sweep_config(args: argparse.Namespace) -> SweepConfig:
    values = {k: getattr(args, k) for k in (*FIELD_FLAGS, "n_samples") if getattr(args, k) is not None}
    if args.epochs_window:
        values["epochs_window"] = tuple(args.epochs_window)
    if args.no_early_stopping:
        values["early_stopping"] = False
    config: SweepConfig = make_config(SweepConfig, values)
    return config


def format_summary(summary: Mapping[str, Any], out: str) -> str:
    """The sweep's outcome in a few lines: trials, the best one and its gain over the preset."""
    lines = [
        f"trials: {summary['trials']} ({summary['trials_failed']} failed, "
        f"{summary['trials_stopped_early']} stopped early by ASHA)"
    ]
    best = summary.get("best")
    if best:
        lines.append(
            f"best trial {best['trial_id']}: {OBJECTIVE} {best['objective']:.4f} at h={best['h']}, "
            f"R^2 val {best['reconstruction_r2_val']:.4f}"
        )
        lines.append("best config: " + ", ".join(f"{k}={v}" for k, v in summary["best_config"].items()))
        if summary.get("gain_over_default") is not None:
            lines.append(f"gain over the preset's default: {summary['gain_over_default']:+.4f}")
    lines.append(f"wall time: {summary['wall_seconds']:.0f} s")
    lines.append(f"outputs: {Path(out) / 'best_config.json'}, best_sampling.json, trials.csv, summary.json")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print its outcome; 130 when it was interrupted (rerun to resume)."""
    config = sweep_config(args)
    try:
        with held_out(config.out, f"hyperrep tune --out {config.out}"):
            summary = run_sweep(config, tracking_uri=args.tracking_uri)
    except SweepInterrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return INTERRUPTED
    print(format_summary(summary, config.out))
    return 0
