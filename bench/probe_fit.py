#!/usr/bin/env python
"""Cost of the autoencoder stage's linear probes: one grid search per probe vs shared fold SVDs.

Every autoencoder stage fits 9 ridge probes (3 targets x the feature sets z, W, s(W)) with the
penalty chosen by group 5-fold over models. The simple way is sklearn's ``GridSearchCV`` per probe
(8 alphas x 5 folds + a refit = 41 ridge fits each); ``probes.fit_probes`` instead takes one SVD per
fold and feature set and reads every alpha's and every target's error off it. This script times both
on features of the quick zoo's shape (1,750 train rows of 350 models, 375 test rows; z 256, W 2,464,
s(W) 70 columns; synthetic, with targets that depend linearly on a few columns) and checks that they
choose the same penalties and give the same test R^2.

    python bench/probe_fit.py            # the quick zoo's shape (~1 min on 1 core)
    python bench/probe_fit.py --quick    # a tenth of the rows
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import ROOT, emit, machine_lines

sys.path.insert(0, str(ROOT))

from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV, GroupKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from hyperrep_ray.autoencoder.probes import DEFAULT_ALPHAS, fit_probes, probe_key, probe_r2  # noqa: E402

WIDTHS = {"z": 256, "W": 2464, "sW": 70}
TARGETS = ("test_accuracy", "epoch", "ggap")


def features(rows: int, per_model: int, seed: int) -> tuple[dict, dict, dict, dict, np.ndarray]:
    """(train features, test features, train targets, test targets, train groups)."""
    rng = np.random.default_rng(seed)
    n_test = rows // 5
    xs = {k: rng.normal(size=(rows + n_test, f)) * rng.uniform(0.1, 3, size=f) for k, f in WIDTHS.items()}
    ys = {t: xs["z"][:, : 3 + 5 * i].sum(1) + rng.normal(size=rows + n_test) for i, t in enumerate(TARGETS)}
    groups = np.repeat(np.arange(rows // per_model + 1), per_model)[:rows]
    split = (lambda d: {k: v[:rows] for k, v in d.items()}, lambda d: {k: v[rows:] for k, v in d.items()})
    return split[0](xs), split[1](xs), split[0](ys), split[1](ys), groups


def grid_search(train: dict, test: dict, y_train: dict, y_test: dict, groups: np.ndarray) -> dict:
    """The simple way: a GridSearchCV per (feature set, target); {metric: (alpha, test R^2)}."""
    out = {}
    for fs, x in train.items():
        for t, y in y_train.items():
            search = GridSearchCV(
                Pipeline([("scale", StandardScaler()), ("ridge", Ridge())]),
                {"ridge__alpha": list(DEFAULT_ALPHAS)},
                cv=GroupKFold(n_splits=5),
                scoring="neg_mean_squared_error",
            ).fit(x, y, groups=groups)
            r2 = float(search.best_estimator_.score(test[fs], y_test[t]))
            out[(fs, t)] = (float(search.best_params_["ridge__alpha"]), r2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rows", type=int, default=1750)
    p.add_argument("--quick", action="store_true", help="175 rows")
    p.add_argument("--out", help="also write the Markdown here")
    args = p.parse_args(argv)
    rows = 175 if args.quick else args.rows
    train, test, y_train, y_test, groups = features(rows, 5, 0)
    t0 = time.perf_counter()
    simple = grid_search(train, test, y_train, y_test, groups)
    t_simple = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, probes = fit_probes(train, test, y_train, y_test, groups_train=groups)
    t_ours = time.perf_counter() - t0
    ours = {(fs, t): probes[probe_key(t, fs)] for fs, t in simple}
    same_alpha = sum(ours[k].alpha == simple[k][0] for k in simple)
    r2_diff = max(abs(probe_r2(ours[fs, t], test[fs], y_test[t]) - simple[fs, t][1]) for fs, t in simple)
    lines = ["# Linear probes of one autoencoder stage: 9 probes, group 5-fold over 8 alphas", ""]
    lines += [*machine_lines(), f"- {rows} train rows ({rows // 5} models), {rows // 5} test rows", ""]
    lines += ["| way | seconds | × simple |", "|---|---:|---:|"]
    lines += [f"| GridSearchCV per probe (the simple way) | {t_simple:.1f} | 1.00 |"]
    lines += [f"| shared fold SVDs (`fit_probes`) | {t_ours:.1f} | {t_simple / t_ours:.1f} |", ""]
    lines += [
        f"Same alpha in {same_alpha} of {len(simple)} probes; largest test-R² difference {r2_diff:.1e}."
    ]
    emit("\n".join(lines), args.out)
    return 0 if same_alpha == len(simple) else 1


if __name__ == "__main__":
    raise SystemExit(main())
