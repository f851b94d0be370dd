#!/usr/bin/env python
"""How much of unseen models' weights can a k-dimensional linear code explain? (PCA bound)

The autoencoder's reconstruction R^2 on the test split is only meaningful next to what the
simplest code reaches: PCA with k components fitted on the train split's checkpoints (same epoch
window, same neuron alignment), scored on the test split with the same R^2 as ``metrics.json``
(1 - mse(w_hat, w) / mse(w_mean_train, w), raw weights). If PCA(d_z) explains little of unseen
models, no autoencoder with that bottleneck is expected to do much better on this zoo.

    python bench/linear_bound.py --zoo runs/quick/zoo --window 6 10
    python bench/linear_bound.py --quick     # on a smoke digits zoo (built if needed)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import ROOT, emit, machine_lines

sys.path.insert(0, str(ROOT))


def pca_r2(train: np.ndarray, test: np.ndarray, ks: list[int]) -> list[tuple[int, float, float]]:
    mean = train.mean(0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    base_test = ((test - mean) ** 2).mean()
    base_train = ((train - mean) ** 2).mean()
    rows = []
    for k in ks:
        v = vt[: min(k, len(vt))]
        r2_test = 1 - ((((test - mean) @ v.T) @ v + mean - test) ** 2).mean() / base_test
        r2_train = 1 - ((((train - mean) @ v.T) @ v + mean - train) ** 2).mean() / base_train
        rows.append((k, float(r2_train), float(r2_test)))
    return rows


def main(argv: list[str] | None = None) -> int:
    from hyperrep_ray.autoencoder.data import prepare_ae_data
    from hyperrep_ray.config import ae_preset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", default=None, help="a weight store (default with --quick: a smoke digits zoo)")
    p.add_argument("--quick", action="store_true", help="without --zoo: on a smoke digits zoo")
    p.add_argument("--window", type=int, nargs=2, default=(6, 10), metavar=("LO", "HI"))
    p.add_argument("--k", type=int, nargs="+", default=[16, 48, 128, 256, 512])
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    if args.zoo is None:
        if not args.quick:
            p.error("--zoo is required (or --quick, which builds a smoke zoo)")
        from _smoke import smoke_zoo

        args.zoo = smoke_zoo()

    lines = ["# Linear (PCA) bound of test-split reconstruction R^2", "", *machine_lines(), ""]
    lines += ["| neuron alignment | train checkpoints | k | train R² | test R² | s |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    for align in (False, True):
        t0 = time.perf_counter()
        data = prepare_ae_data(args.zoo, ae_preset("quick", epochs_window=tuple(args.window), align=align))
        train = data.weights["train"].astype(np.float64)
        test = data.weights["test"].astype(np.float64)
        for k, r_train, r_test in pca_r2(train, test, args.k):
            secs = time.perf_counter() - t0
            on = "on" if align else "off"
            lines.append(f"| {on} | {len(train)} | {k} | {r_train:.3f} | {r_test:.3f} | {secs:.0f} |")
    lines += [
        "",
        f"zoo {args.zoo}, epochs {args.window[0]}-{args.window[1]}. A random k-dimensional subspace would",
        "explain about k / 2464 of the test variance; the train span itself has rank <= train checkpoints.",
    ]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
