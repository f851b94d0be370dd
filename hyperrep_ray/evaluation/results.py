"""What one experiment measured, and the order populations are listed in (baselines first).

Below both the experiments that fill it and the report that draws it, so data flows one way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hyperrep_ray.config import SAMPLERS

#: The experiments of a run (:func:`~.experiments.runner.run_experiments`), in the order they run and are
#: reported: the top-level keys of ``summary.json``.
EXPERIMENTS = ("in_dataset", "novelty", "ensembles", "transfer", "unseen_zoo")
#: The statistics of one population at one key, as columns of the CSV tables.
STATS = ("mean", "std", "median", "ci_low", "ci_high", "n")


@dataclass
class ExperimentResult:
    """What one experiment measured.

    ``summary``: population -> key (epoch or ensemble size, str) -> summarize(...) (fractions);
    ``frame``: the raw rows (long format: population, sample_id, finetune_epoch, test_acc; ensembles:
    population, ensemble_size, ensemble_id, members, test_acc); ``tests``: one row per (sampled population,
    baseline, key) with p_value and cles; ``files``: the tables and figures written; ``notes``: what was
    skipped and why; ``extra``: in-memory by-products (e.g. the ensembles' member weights, the sampled
    embeddings); ``sections``: top-level entries of ``summary.json`` an experiment adds besides its own
    (e.g. ``novelty_reference``, ``frontier``); ``metrics``: MLflow metrics beyond the summary's."""

    name: str
    summary: dict[str, dict[str, dict[str, float | int]]]
    frame: pd.DataFrame
    tests: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def is_baseline(population: str) -> bool:
    return population.startswith("B_")


def population_order(populations: Iterable[str]) -> list[str]:
    """Baselines first (B_T, B_F, B_KDE30, ...), then sampled populations in SAMPLERS order."""
    canon = ["B_T", "B_F", "B_KDE30", "B_Zoo", *SAMPLERS.values()]

    def key(p: str) -> tuple[int, int, str]:
        stem = next((c for c in sorted(canon, key=len, reverse=True) if p.startswith(c)), None)
        return (0 if is_baseline(p) else 1, canon.index(stem) if stem else len(canon), p)

    return sorted(set(populations), key=key)


def sorted_keys(values: Iterable[Any]) -> list[str]:
    return [str(k) for k in sorted({int(v) for v in values})]
