"""`hyperrep novelty`: for each given model, its nearest training checkpoint and how close it is."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.cli.common import CommandError, add_data_root
from hyperrep_ray.evaluation.novelty_inputs import NoveltyInputError, weights_from_paths
from hyperrep_ray.io import write_with
from hyperrep_ray.sampling.novelty_setup import novelty_setup
from hyperrep_ray.weightspace.novelty import NoveltySummary

NAME = "novelty"
COLUMNS = ("accuracy", "novelty", "max_wrong_iou", "iou_model_id", "iou_epoch", "nearest_l2")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="how new models are: nearest training checkpoint by errors and by weights",
        description="For each model: accuracy on the zoo's test images, novelty = 1 - the max IoU of its "
        "wrong-prediction set with any train checkpoint the autoencoder saw (and which one), and the "
        "nearest L2 distance in canonical neuron order (in units of the median distance between "
        "different train models; ~0 means a copy, permuted or not). The zoo's test-split models are "
        "printed as the reference: what an independently trained model looks like.",
    )
    p.add_argument("weights", nargs="+", help="safetensors files, samples Parquet, generate directories")
    p.add_argument("--ae", required=True, help="trained autoencoder directory")
    p.add_argument("--zoo", help="the zoo the autoencoder was trained on (default: the one ae.json records)")
    p.add_argument("--out", help="also write one row per model to this CSV")
    add_data_root(p)
    return p


def summary_line(label: str, s: NoveltySummary) -> str:
    l2 = "-" if s.nearest_l2 is None else f"{s.nearest_l2:.3f}"
    return f"{label}: accuracy {s.accuracy:.3f}, novelty {s.novelty:.3f}, nearest L2 {l2} (n {s.n})"


def run(args: argparse.Namespace) -> int:
    bundle = HyperRepresentation.load(args.ae)
    try:
        names, weights = weights_from_paths(args.weights, bundle)
    except NoveltyInputError as e:
        raise CommandError(str(e)) from None
    setup = novelty_setup(args.ae, args.zoo, args.data_root)
    scores = setup.score(weights)
    rows = pd.DataFrame(
        [{"model": n, **r.model_dump()} for n, r in zip(names, scores.records(setup.reference), strict=True)]
    )
    lo, hi = setup.epochs_window
    print(f"against {len(setup.reference.model_id)} train checkpoints (epochs {lo}-{hi}) of {setup.zoo}")
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(rows[["model", *COLUMNS]].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(summary_line("these models", scores.summary()))
    for label, ref in setup.reference_points().items():
        print(summary_line(f"reference, {label.replace('_', ' ')}", ref))
    if args.out:
        write_with(args.out, lambda tmp: rows.to_csv(tmp, index=False))
        print(f"rows: {args.out}")
    return 0
