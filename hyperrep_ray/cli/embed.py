"""`hyperrep embed`: the hyper-representation z of every checkpoint of a zoo, as Parquet."""

from __future__ import annotations

import argparse
from typing import Any

from hyperrep_ray.autoencoder.embed import embed_store

NAME = "embed"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, help="write the hyper-representation z of every checkpoint of a zoo"
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory")
    p.add_argument("--zoo", required=True)
    p.add_argument("--out", required=True, help="Parquet file to write")
    p.add_argument("--epochs", type=int, nargs="*", help="only these zoo epochs (default: all)")
    return p


def run(args: argparse.Namespace) -> int:
    n = embed_store(args.ae, args.zoo, args.out, epochs=args.epochs)
    print(f"wrote {n} embeddings to {args.out}")
    return 0
