"""`hyperrep experiments`: every experiment of the 2022 paper on one zoo and its autoencoders.

The flags build an ``ExperimentsConfig`` from the paper preset (``experiments_preset("paper", ...)``),
so the CLI, the pipeline and the Python API share one set of defaults and bounds: a flag left out
takes the config's default, and a value out of bounds is the config's error.
"""

from __future__ import annotations

import argparse
from typing import Any

from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.cli.common import (
    INTEGER,
    INTEGER_LIST,
    NON_NEGATIVE_FLOAT,
    NUMBER,
    CommandError,
    Numbers,
    add_data_root,
    add_tracking,
    method_list,
    overrides,
    quiet_ray_data,
)
from hyperrep_ray.cli.out_lock import held_out
from hyperrep_ray.config import ExperimentsConfig, experiments_preset
from hyperrep_ray.experiments.runner import EXPERIMENTS, run_experiments
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH

NAME = "experiments"
PRESET = "paper"
#: ExperimentsConfig fields with a flag of their own (the flag's dest is the field's name).
FIELD_FLAGS = (
    "n",
    "finetune_epochs",
    "methods",
    "gan_epochs",
    "gan_steps",
    "bandwidth",
    "ensemble_sizes",
    "ensemble_repeats",
    "seed",
)


def listed(values: Any) -> str:
    return ",".join(str(v) for v in values)


def add_config_flags(p: argparse.ArgumentParser, defaults: ExperimentsConfig) -> None:
    """The ExperimentsConfig flags; their defaults (shown in the help) are the config's."""
    p.add_argument("--n", type=INTEGER, help=f"models per population (default {defaults.n})")
    p.add_argument("--finetune-epochs", type=INTEGER_LIST, help=f"default {listed(defaults.finetune_epochs)}")
    p.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    p.add_argument(
        "--methods", type=method_list, help=f"samplers for Figure 4 (default {listed(defaults.methods)})"
    )
    p.add_argument("--gan-epochs", type=INTEGER, help=f"latent GAN epochs (default {defaults.gan_epochs})")
    p.add_argument(
        "--gan-steps",
        type=INTEGER,
        help=f"cap on each latent GAN's optimiser steps (default {defaults.gan_steps})",
    )
    p.add_argument("--bandwidth", type=NUMBER, help=f"KDE bandwidth (default {DEFAULT_BANDWIDTH})")
    p.add_argument(
        # ExperimentsConfig does not bound the sizes; an ensemble needs a member
        "--ensemble-sizes",
        type=Numbers(int, 1, many=True),
        help=f"default {listed(defaults.ensemble_sizes)}",
    )
    p.add_argument(
        "--ensemble-repeats", type=INTEGER, help=f"ensembles per size (default {defaults.ensemble_repeats})"
    )
    p.add_argument(
        "--decode-on-driver",
        action="store_true",
        help="decode sampled embeddings in this process instead of Ray Data decoder actors (same numbers; "
        "faster for small populations on a CPU; default: when the cluster has no GPUs)",
    )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="the paper's experiments: samplers, Table 1, ensembles, transfer, unseen zoo",
        description="Run every experiment of the 2022 paper (Figure 4, Table 1, Figure 5, Table 2, "
        "Table 3 and the statistics of Appendix F) on one zoo and its autoencoders; writes DIR/summary.json, "
        "DIR/report.md and tables and figures per experiment, and logs to MLflow.",
    )
    p.add_argument("--ae", required=True, help="the autoencoder (with LWLN)")
    p.add_argument(
        "--baseline-ae", help="the baseline autoencoder without LWLN (B_KDE30; left out if absent)"
    )
    p.add_argument("--zoo", required=True, help="the zoo the autoencoders were trained on")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--other-zoo", help="a zoo the autoencoder never saw (unseen-zoo experiment; skipped if absent)"
    )
    add_data_root(p, "the torchvision data sets")
    add_config_flags(p, experiments_preset(PRESET))
    p.add_argument(
        "--gpus-per-task",
        type=NON_NEGATIVE_FLOAT,
        default=0.0,
        dest="num_gpus",
        help="GPUs per decoding / fine-tuning task, e.g. 0.25 (default 0: CPU only)",
    )
    add_tracking(p)
    return p


def experiments_config(args: argparse.Namespace) -> ExperimentsConfig:
    """The paper preset with the flags given (``--decode-on-driver`` absent: the config decides)."""
    values = overrides(args, FIELD_FLAGS)
    if args.decode_on_driver:
        values["decode_on_driver"] = True
    return experiments_preset(PRESET, **values)


def check_autoencoders(args: argparse.Namespace) -> None:
    """--ae and --baseline-ae must be trained autoencoders; the error names the flag."""
    for flag, path in (("--ae", args.ae), ("--baseline-ae", args.baseline_ae)):
        if path is not None:
            try:
                read_ae_info(path)
            except FileNotFoundError as e:
                raise CommandError(f"{flag}: {e}") from None


def run(args: argparse.Namespace) -> int:
    config = experiments_config(args)
    quiet_ray_data(args)
    check_autoencoders(args)
    with held_out(args.out, f"hyperrep experiments --out {args.out}"):
        summary = run_experiments(
            args.ae,
            args.baseline_ae,
            args.zoo,
            args.out,
            config,
            other_zoo=args.other_zoo,
            tracking_uri=args.tracking_uri,
            data_root=args.data_root,
            num_gpus=args.num_gpus,
        )
    done = [k for k in EXPERIMENTS if k in summary]
    print(f"experiments: {', '.join(done)} in {summary['meta']['seconds']['total']:.0f} s")
    for name, why in summary["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"\nresults: {args.out}/summary.json, {args.out}/report.md, tables and figures per experiment")
    return 0
