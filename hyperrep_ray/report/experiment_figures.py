"""The experiments' figures: populations as boxes with every model a dot (Figure 4), and curves against
fine-tuning epoch or ensemble size (Figure 5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hyperrep_ray.evaluation.results import is_baseline, population_order
from hyperrep_ray.plotting import pyplot, save_figure


def box_strip(groups: Sequence[tuple[str, np.ndarray]], path: Path, title: str, ylabel: str) -> Path:
    """Boxes (quartiles) with every model as a jittered dot, one column per group (paper Figure 4)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(groups) + 2), 4))
    vals = [np.asarray(v, dtype=np.float64) for _, v in groups]
    ax.boxplot(vals, showfliers=False, widths=0.6)
    rng = np.random.default_rng(0)
    for i, v in enumerate(vals, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=10, alpha=0.6, zorder=3)
    ax.set_xticks(range(1, len(groups) + 1), [g for g, _ in groups], rotation=45, ha="right")
    ax.axhline(0.1, color="grey", ls="--", lw=1, label="random guessing")
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def curves(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]], path: Path, title: str, xlabel: str
) -> Path:
    """Mean ± std of each population against the key (fine-tuning epoch or ensemble size)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for p in population_order(summary):
        ks = sorted(summary[p], key=int)
        x = [int(k) for k in ks]
        m = np.array([summary[p][k]["mean"] for k in ks])
        s = np.array([summary[p][k]["std"] for k in ks])
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=p, ls="--" if is_baseline(p) else "-")
    ax.axhline(0.1, color="grey", ls=":", lw=1)
    ax.set_xticks(sorted({int(k) for per in summary.values() for k in per}))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)

