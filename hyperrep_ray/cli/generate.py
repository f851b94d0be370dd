"""`hyperrep generate`: sample, decode and write new models as safetensors files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hyperrep_ray.cli.common import add_data_root, add_sampler_flags
from hyperrep_ray.sampling.generate import generate

NAME = "generate"
#: `hyperrep generate`'s default sampler.
GENERATE_METHOD = "kde-joint30"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME,
        help="sample, decode and write new models as safetensors files",
        description="Write N sampled, decoded zoo-CNN models (model_000.safetensors, ...) and "
        "generated.json.",
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory (with anchors.npz)")
    p.add_argument("--out", required=True, help="output directory")
    # the joint KDE: the most accurate sampled models on both measured autoencoders of the quick zoo
    # (README "Generating models that are new and good"); `sample` keeps the paper's kde30
    add_sampler_flags(p, 10, "number of models", method=GENERATE_METHOD)
    p.add_argument(
        "--no-novelty",
        dest="novelty",
        action="store_false",
        help="do not score the models against the zoo's train checkpoints (generated.json's novelty)",
    )
    add_data_root(p, "the zoo's data set, for the novelty scores")
    return p


def run(args: argparse.Namespace) -> int:
    paths = generate(
        args.ae, args.n, args.out, args.method, args.seed, args.bandwidth, args.novelty, args.data_root
    )
    print(f"wrote {len(paths)} models to {args.out} (generated.json lists them)")
    listing = json.loads((Path(args.out) / "generated.json").read_text())
    if listing.get("novelty"):
        s = listing["novelty"]["summary"]
        print(
            f"novelty {s['novelty']:.3f} (1 - max wrong-set IoU with a train checkpoint), accuracy "
            f"{s['accuracy']:.3f}; per model: generated.json or `hyperrep novelty --ae {args.ae} {args.out}`"
        )
    elif args.novelty:
        print(f"novelty {listing.get('novelty_note')}")
    print("load one with: from hyperrep_ray.zoo.weights_io import load_zoo_cnn; model = load_zoo_cnn(path)")
    return 0
