#!/usr/bin/env python
"""Where the samplers put their embeddings, relative to the anchors, and what the decoder makes of it.

For a trained autoencoder directory (with ``anchors.npz``): how correlated the anchor dimensions
are (the per-dimension KDE of the paper assumes them independent), and per sampler the distance of
each sample to its nearest top-30 % anchor (in units of the anchors' own nearest-neighbour
distance and of the distance between two random anchors) next to the decoded models' test
accuracy. Explains why one sampler beats another.

    python bench/latent_geometry.py --ae runs/qp/ae --n 30
    python bench/latent_geometry.py --quick     # a smoke autoencoder (built if needed)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _common import ROOT, emit, machine_lines

sys.path.insert(0, str(ROOT))

from hyperrep_ray.autoencoder.artifacts import load_anchors  # noqa: E402
from hyperrep_ray.autoencoder.bundle import HyperRepresentation  # noqa: E402
from hyperrep_ray.autoencoder.scoring import dataset_scorer  # noqa: E402
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH, sample, top_fraction  # noqa: E402

METHODS = ("uniform", "counterfactual", "kde30", "kde-joint30")


def nearest(a: np.ndarray, b: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Distance from every row of ``a`` to its nearest row of ``b``."""
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return np.sqrt(d.min(1))


def anchor_geometry(z: np.ndarray, top: np.ndarray, seed: int) -> dict[str, float]:
    """How independent the anchor dimensions are and how far apart the top anchors lie."""
    corr = np.corrcoef(z.T)
    off = np.abs(corr[~np.eye(len(corr), dtype=bool)])
    ev = np.linalg.eigvalsh(np.cov(z.T))[::-1]
    pairs = np.random.default_rng(seed).integers(0, len(top), (2000, 2))
    return {
        "corr_mean": float(off.mean()),
        "corr_max": float(off.max()),
        "participation": float(ev.sum() ** 2 / (ev**2).sum()),
        "nn_top": float(np.median(nearest(top, top, exclude_self=True))),
        "pair_top": float(np.median(np.linalg.norm(top[pairs[:, 0]] - top[pairs[:, 1]], axis=1))),
    }


def sampler_rows(args, bundle, z, acc, top, geo: dict[str, float], h: float) -> list[dict[str, float | str]]:
    """Per sampler: median distance to the nearest top anchor (relative) and decoded accuracy."""
    score = dataset_scorer(bundle.dataset, bundle.activation)
    rows: list[dict[str, float | str]] = [
        {
            "population": "top-30 % anchors (decoded)",
            "nn_dist": 0.0,
            "pair_dist": 0.0,
            "acc": float(score(bundle.decode(top[: args.n])).mean()),
        }
    ]
    for m in METHODS:
        s = sample(m, z, acc, args.n, seed=args.seed, bandwidth=h)
        dist = float(np.median(nearest(s, top)))
        rows.append(
            {
                "population": m,
                "nn_dist": dist / geo["nn_top"],
                "pair_dist": dist / geo["pair_top"],
                "acc": float(score(bundle.decode(s)).mean()),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ae", default=None, help="an autoencoder directory (default with --quick: a smoke one)")
    p.add_argument("--quick", action="store_true", help="without --ae: a smoke autoencoder (built if needed)")
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--bandwidth", type=float, default=None, help="KDE bandwidth (default: the package's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args(argv)
    if args.ae is None:
        if not args.quick:
            p.error("--ae is required (or --quick, which builds a smoke autoencoder)")
        from _smoke import smoke_ae

        args.ae = smoke_ae()

    bundle = HyperRepresentation.load(args.ae)
    anchors = load_anchors(args.ae)
    z, acc = anchors.z, anchors.test_acc
    top = top_fraction(z, acc, 0.3)
    h = args.bandwidth or DEFAULT_BANDWIDTH
    geo = anchor_geometry(z, top, args.seed)
    rows = sampler_rows(args, bundle, z, acc, top, geo, h)
    lines = [
        *machine_lines(),
        f"autoencoder {args.ae}: d_z {z.shape[1]}, {len(z)} anchors ({len(top)} top-30 %), bandwidth {h}",
        f"anchor dims: mean |corr| {geo['corr_mean']:.3f} (max {geo['corr_max']:.3f}); participation ratio "
        f"{geo['participation']:.1f} of {z.shape[1]} dims; top-30 % anchors: median NN distance "
        f"{geo['nn_top']:.4f}, median distance between two random ones {geo['pair_top']:.4f}",
        "",
        "median distance of a sample to its nearest top-30 % anchor, in units of the anchors' NN distance "
        "and of the distance between two random anchors:",
        "",
        "| population | / NN distance | / pair distance | decoded acc |",
        "|---|---:|---:|---:|",
        *[
            f"| {r['population']} | {r['nn_dist']:.2f} | {r['pair_dist']:.2f} | {r['acc']:.3f} |"
            for r in rows
        ],
    ]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
