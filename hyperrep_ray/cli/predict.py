"""`hyperrep predict`: test accuracy, epoch and generalisation gap of models from their weights alone."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.autoencoder.embed import predict_properties
from hyperrep_ray.cli.common import CommandError
from hyperrep_ray.zoo.cnn import num_params
from hyperrep_ray.zoo.weights_io import load_weights

NAME = "predict"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="predict test accuracy, epoch and generalisation gap of models from their weights alone",
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory (with its fitted probes)")
    p.add_argument("weights", nargs="+", help="zoo-CNN weight files (.safetensors or .pt state_dict)")
    p.add_argument("--json", action="store_true")
    return p


def check_inputs(ae: str, files: list[str]) -> None:
    """Each file a finite zoo CNN (the reader checks) of the autoencoder's input channels."""
    info = read_ae_info(ae)
    channels = int(info["in_channels"])
    for f in files:
        n = load_weights(f)[0].shape[0]
        if n != num_params(channels):
            raise CommandError(
                f"{f} is a zoo CNN with {n} parameters, but the autoencoder {ae} was trained on "
                f"{info.get('dataset', '?')} models ({num_params(channels)} parameters, {channels} input "
                f"channel(s)); predict with an autoencoder of that kind of zoo"
            )


def run(args: argparse.Namespace) -> int:
    check_inputs(args.ae, args.weights)
    rows = predict_properties(args.ae, args.weights)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'file':<40} {'test_accuracy':>13} {'epoch':>7} {'ggap':>7}")
    for r in rows:
        print(f"{r['file'][-40:]:<40} {r['test_accuracy']:>13.3f} {r['epoch']:>7.1f} {r['ggap']:>7.3f}")
    return 0
