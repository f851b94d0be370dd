"""`hyperrep embed`: the hyper-representation z of every checkpoint of a zoo, as Parquet."""

from __future__ import annotations

import argparse
from typing import Any

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.autoencoder.embed import embed_store
from hyperrep_ray.cli.common import NON_NEGATIVE_INT, CommandError
from hyperrep_ray.zoo.cnn import num_params

NAME = "embed"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, help="write the hyper-representation z of every checkpoint of a zoo"
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory")
    p.add_argument("--zoo", required=True)
    p.add_argument("--out", required=True, help="Parquet file to write")
    p.add_argument("--epochs", type=NON_NEGATIVE_INT, nargs="*", help="only these zoo epochs (default: all)")
    return p


def check_inputs(args: argparse.Namespace) -> None:
    """The autoencoder and the zoo exist and fit each other; the epochs asked for are in the zoo."""
    info = read_ae_info(args.ae)
    meta = store.read_zoo_meta(args.zoo)
    want = num_params(int(info["in_channels"]))
    if int(meta["num_params"]) != want:
        raise CommandError(
            f"the zoo {args.zoo} holds models with {meta['num_params']} parameters, the autoencoder "
            f"{args.ae} embeds models with {want}; use an autoencoder trained on this kind of zoo"
        )
    recorded = [int(e) for e in meta.get("epochs_recorded", [])]
    missing = sorted(set(args.epochs or []) - set(recorded)) if recorded else []
    if missing:
        raise CommandError(
            f"the zoo {args.zoo} has no checkpoints of epoch(s) {missing}; it records epochs "
            f"{recorded[0]}..{recorded[-1]}"
        )


def run(args: argparse.Namespace) -> int:
    check_inputs(args)
    n = embed_store(args.ae, args.zoo, args.out, epochs=args.epochs)
    print(f"wrote {n} embeddings to {args.out}")
    return 0
