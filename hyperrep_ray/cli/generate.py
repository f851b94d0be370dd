"""`hyperrep generate`: sample, decode and write new models as safetensors files."""

from __future__ import annotations

import argparse
from typing import Any

from hyperrep_ray.cli.common import add_sampler_flags
from hyperrep_ray.sampling.generate import generate

NAME = "generate"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="sample, decode and write new models as safetensors files",
        description="Write N sampled, decoded zoo-CNN models (model_000.safetensors, ...) and "
        "generated.json.",
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory (with anchors.npz)")
    p.add_argument("--out", required=True, help="output directory")
    add_sampler_flags(p, 10, "number of models")
    return p


def run(args: argparse.Namespace) -> int:
    paths = generate(args.ae, args.n, args.out, args.method, args.seed, args.bandwidth)
    print(f"wrote {len(paths)} models to {args.out} (generated.json lists them)")
    print("load one with: from hyperrep_ray.zoo.weights_io import load_zoo_cnn; model = load_zoo_cnn(path)")
    return 0
