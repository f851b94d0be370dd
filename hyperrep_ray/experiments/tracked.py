"""One experiment as a child MLflow run of the experiments' run: its parameters, its summary numbers and
test statistics as metrics, its tables and figures as artifacts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from hyperrep_ray import tracking
from hyperrep_ray.evaluation.results import STATS, ExperimentResult


def result_metrics(result: ExperimentResult) -> dict[str, float]:
    """``<population>.<key>.<stat>`` of the summary (every stat but n), and ``p_value.<pair>.<key>`` and
    ``cles.<pair>.<key>`` of the tests, ``<pair>`` = ``<population>_vs_<baseline>``."""
    out = {
        f"{p}.{k}.{s}": float(v[s])
        for p, per in result.summary.items()
        for k, v in per.items()
        for s in STATS
        if s != "n"
    }
    out.update(result.metrics)
    key = "ensemble_size" if result.name == "ensembles" else "epoch"
    for r in result.tests:
        pair = f"{r['population']}_vs_{r['baseline']}.{r[key]}"
        out[f"p_value.{pair}"] = float(r["p_value"])
        out[f"cles.{pair}"] = float(r["cles"])
    return out


def log_params(params: Mapping[str, Any]) -> None:
    """Flattened params, each value cut to MLflow's 500 characters."""
    import mlflow

    flat = tracking.flatten(params)
    mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})


def log_result(result: ExperimentResult, seconds: float) -> None:
    """Metrics (with ``seconds``), every folder ``result.files`` lie in, and ``summary.json`` (summary,
    tests and notes) into the active run."""
    import mlflow

    tracking.log_metrics({**result_metrics(result), "seconds": seconds})
    for d in dict.fromkeys(f.parent for f in result.files):
        if d.is_dir():
            mlflow.log_artifacts(str(d), artifact_path=d.name)
    mlflow.log_dict(
        {"summary": result.summary, "tests": result.tests, "notes": result.notes, **result.sections},
        "summary.json",
    )


def tracked_child(
    name: str, compute: Callable[[], ExperimentResult], tracking_uri: str | None
) -> tuple[ExperimentResult, float]:
    """(result, seconds) of ``compute`` run inside a nested MLflow run ``name`` (tag ``experiment``), its
    params, metrics and files logged there; the seconds count the computation and the drawing."""
    t0 = time.perf_counter()
    with tracking.run(name, None, tracking_uri, nested=True, tags={"experiment": name}):
        result = compute()
        log_params(result.params)
        seconds = time.perf_counter() - t0
        log_result(result, seconds)
    return result, seconds
