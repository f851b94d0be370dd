"""`hyperrep sample`: draw embeddings z around a trained autoencoder's anchors into a samples file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hyperrep_ray.cli.common import add_sampler_flags
from hyperrep_ray.config import SAMPLERS
from hyperrep_ray.sampling.generate import sample_embeddings
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH
from hyperrep_ray.sampling.samples_io import SamplerRecord, write_samples

NAME = "sample"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    methods = ", ".join(f"{k} ({v})" for k, v in SAMPLERS.items())
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="sample new embeddings z around a trained autoencoder's anchors (Parquet: sample_id, z)",
        description=f"Draw embeddings with one of the paper's samplers: {methods}.",
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory (with anchors.npz)")
    add_sampler_flags(p, 50, "number of samples")
    p.add_argument("--out", required=True, help="Parquet file to write (sample_id, z)")
    return p


def run(args: argparse.Namespace) -> int:
    z = sample_embeddings(args.ae, args.n, args.method, args.seed, args.bandwidth)
    record = SamplerRecord(
        method=args.method,
        population=SAMPLERS[args.method],
        seed=args.seed,
        bandwidth=DEFAULT_BANDWIDTH if args.bandwidth is None else args.bandwidth,
        ae=str(Path(args.ae).resolve()),
    )
    out = write_samples(args.out, z, record)
    print(f"wrote {len(z)} {record.population} embeddings (d_z {z.shape[1]}) to {out}")
    return 0
