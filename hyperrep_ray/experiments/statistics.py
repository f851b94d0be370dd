"""The statistics of an experiment's raw rows: per-population summaries and the Mann-Whitney U tests
of every sampled population against every baseline (paper Appendix F)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hyperrep_ray.evaluation.results import ExperimentResult, is_baseline, population_order, sorted_keys
from hyperrep_ray.evaluation.stats import compare, summarize


def summarize_frame(
    frame: pd.DataFrame, key: str = "finetune_epoch", seed: int = 0
) -> dict[str, dict[str, dict[str, float | int]]]:
    """population -> str(key value) -> summarize(test_acc) of a long-format frame."""
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for pop in population_order(frame["population"].unique()):
        sub = frame[frame["population"] == pop]
        out[pop] = {
            k: summarize(sub.loc[sub[key] == int(k), "test_acc"].to_numpy(), seed=seed)
            for k in sorted_keys(sub[key])
        }
    return out


def pairwise_tests(frame: pd.DataFrame, key: str = "finetune_epoch") -> list[dict[str, Any]]:
    """Every sampled population vs every baseline at every value of ``key`` both have
    (:func:`~.evaluation.stats.compare`): rows {population, baseline, <key label>, p_value, cles, n_a, n_b}
    with the label ``epoch`` for fine-tuning epochs and ``ensemble_size`` for ensembles."""
    label = "ensemble_size" if key == "ensemble_size" else "epoch"
    rows: list[dict[str, Any]] = []
    for k in sorted_keys(frame[key]):
        sub = frame[frame[key] == int(k)]
        pops = {
            p: sub.loc[sub["population"] == p, "test_acc"].to_numpy()
            for p in population_order(sub["population"].unique())
        }
        baselines = [p for p in pops if is_baseline(p)]
        if not baselines or len(baselines) == len(pops):
            continue
        rows += [{**r, label: k} for r in compare(pops, baselines)]
    return rows


def summarize_result(result: ExperimentResult, key: str, seed: int) -> ExperimentResult:
    """Fill ``result.summary`` and ``result.tests`` from ``result.frame``; returns ``result``."""
    result.summary = summarize_frame(result.frame, key, seed)
    result.tests = pairwise_tests(result.frame, key)
    return result
