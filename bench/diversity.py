#!/usr/bin/env python
"""Are generated models different from *each other*? Within-population novelty beside train novelty.

Novelty against the train checkpoints cannot see a generator that collapses onto one new model: every
copy of it is "new". This scores each population two ways on the zoo's test images: novelty against
the train checkpoints (as ``hyperrep novelty``) and within-population novelty = 1 − mean over models
of the max wrong-set IoU with *another member of the same population*. The reference is the same
number of the zoo's independently trained test-split models (last epoch of the window), whose
within-population novelty is what "as different as independently trained models" means.

    python bench/diversity.py --ae runs/q/ae gen_kde/ gen_flow/ samples.parquet
    python bench/diversity.py --quick     # a smoke autoencoder and kde30 samples built here
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import ROOT, emit, log, machine_lines

sys.path.insert(0, str(ROOT))

from hyperrep_ray import store  # noqa: E402
from hyperrep_ray.autoencoder.bundle import HyperRepresentation, read_ae_info  # noqa: E402
from hyperrep_ray.evaluation.novelty_inputs import weights_from_paths  # noqa: E402
from hyperrep_ray.sampling.novelty_setup import NoveltySetup, novelty_setup  # noqa: E402
from hyperrep_ray.weightspace.novelty import max_wrong_iou, score_masks, wrong_masks  # noqa: E402


def within_novelty(masks: np.ndarray) -> float:
    """1 − mean over models of the max wrong-set IoU with another model of the same set."""
    ids = np.arange(len(masks))
    return float(1.0 - np.nanmean(max_wrong_iou(masks, masks, ids, ids).value))


def row(name: str, weights: np.ndarray, setup: NoveltySetup, activation: str) -> str:
    masks = wrong_masks(weights, setup.x, setup.y, activation)  # once: for both novelties
    scores = score_masks(masks, weights, setup.reference).summary()
    acc = 1.0 - masks.mean()
    return f"| {name} | {len(weights)} | {acc:.3f} | {scores.novelty:.3f} | {within_novelty(masks):.3f} |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ae", help="trained autoencoder directory")
    p.add_argument("weights", nargs="*", help="generate directories, samples Parquet, safetensors files")
    p.add_argument("--quick", action="store_true", help="smoke autoencoder + kde30 samples when none given")
    p.add_argument("--seed", type=int, default=0, help="which test-split models form the reference")
    p.add_argument("--out", help="also write the table here")
    args = p.parse_args(argv)
    ae, paths = args.ae, [Path(w) for w in args.weights]
    if ae is None:
        if not args.quick:
            raise SystemExit("give --ae and weights, or --quick")
        from _smoke import smoke_ae  # built on demand: a smoke zoo and autoencoder

        ae = smoke_ae(tempfile.mkdtemp(prefix="diversity_"))
    if not paths:
        from hyperrep_ray.sampling.generate import generate

        out = Path(tempfile.mkdtemp(prefix="diversity_gen_"))
        generate(ae, 10, out, "kde30", 0, None, False, None)
        paths = [out]
    info = read_ae_info(ae)
    activation = str(info["activation"])
    setup = novelty_setup(ae)
    bundle = HyperRepresentation.load(ae)
    populations = [(str(path), weights_from_paths([path], bundle)[1]) for path in paths]
    sizes = [len(w) for _, w in populations]
    w_test, _ = store.load_weights(setup.zoo, epochs=[setup.epochs_window[1]], split="test")
    pick = np.random.default_rng(args.seed).choice(len(w_test), min(max(sizes), len(w_test)), replace=False)
    lines = ["# Within-population novelty", "", *machine_lines(), ""]
    lines += [f"- autoencoder {ae}; zoo {setup.zoo}; {len(setup.y)} test images", ""]
    lines += ["| population | n | accuracy | novelty vs train | within-population novelty |"]
    lines += ["|---|---:|---:|---:|---:|"]
    lines.append(row("test-split models (reference)", w_test.numpy()[pick], setup, activation))
    for name, w in populations:
        log(f"scoring {name}")
        lines.append(row(name, w, setup, activation))
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
