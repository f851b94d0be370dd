"""The sweep's outputs: one row per trial (``trials.csv``), the best trial's ``best_config.json`` and
``best_sampling.json``, the summary, and the final status tags of the MLflow child runs.

The best trial is the one with the highest objective among trials that finished (completed or
stopped early by ASHA) with a finite objective; ties go to the better reconstruction R^2.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperrep_ray.config import AEConfig
from hyperrep_ray.io import atomic_path, write_json
from hyperrep_ray.tune.objective import OBJECTIVE, R2_METRIC, RAW_OBJECTIVE, is_finite_number
from hyperrep_ray.tune.space import DEFAULT_SAMPLER, TUNED_FIELDS, trial_ae_config, tuned_values

TRIALS_CSV = "trials.csv"
BEST_CONFIG_JSON = "best_config.json"
BEST_SAMPLING_JSON = "best_sampling.json"
SUMMARY_JSON = "summary.json"
FINISHED = ("completed", "stopped_early")


def trial_status(tune_status: str | None, metrics: Mapping[str, Any], epochs: int) -> str:
    """failed (ERROR), completed / stopped_early (by ASHA) for TERMINATED, else unfinished."""
    if tune_status == "ERROR":
        return "failed"
    epoch = metrics.get("epoch")
    if tune_status != "TERMINATED" or epoch is None:
        return "unfinished"
    return "completed" if int(epoch) >= epochs else "stopped_early"


def trial_statuses(exp_path: str) -> dict[str, str]:
    """Tune's status of every trial of the experiment (PENDING, RUNNING, TERMINATED, ERROR, ...)."""
    from ray.tune import ExperimentAnalysis

    return {t.trial_id: t.status for t in ExperimentAnalysis(exp_path).trials}


def error_text(error: BaseException | None) -> str:
    """One line for trials.csv: "diverged: ..." for a non-finite loss, else the error's last line."""
    if error is None:
        return ""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    diverged = [ln for ln in lines if "FloatingPointError" in ln]
    if diverged:
        return ("diverged: " + diverged[-1].split("FloatingPointError:")[-1].strip())[:300]
    return (lines[-1] if lines else type(error).__name__)[:300]


def trial_row(
    result: Any, statuses: Mapping[str, str], epochs: int, default: Mapping[str, Any]
) -> dict[str, Any]:
    """One Tune ``Result`` as a trials.csv row; ``_config`` (the point) and ``_start`` stay internal."""
    cfg = dict(result.config or {})
    m = result.metrics or {}
    tid = str(m.get("trial_id") or Path(str(result.path)).name.removeprefix("trial_"))
    tuned = tuned_values(cfg) if "one_minus_beta" in cfg else {}
    return {
        "trial_id": tid,
        "status": trial_status(statuses.get(tid), m, epochs),
        **{k: tuned.get(k) for k in TUNED_FIELDS},
        "sampler": cfg.get("sampler", DEFAULT_SAMPLER),
        "h": m.get("best_bandwidth"),
        "objective": m.get(OBJECTIVE),
        "novel_accuracy": m.get(RAW_OBJECTIVE),
        "novel_share": m.get("novel_share_val"),
        "sampled_accuracy": m.get("sampled_accuracy_val"),
        "required_novelty": m.get("required_novelty"),
        "reconstruction_r2_val": m.get(R2_METRIC),
        "epochs_run": m.get("epoch"),
        "is_default": all(cfg.get(k) == v for k, v in default.items()),
        "error": error_text(result.error) if statuses.get(tid) == "ERROR" else "",
        "_config": {k: cfg[k] for k in default if k in cfg},
        "_start": float(m.get("timestamp", math.inf)) - float(m.get("time_total_s", 0.0)),
    }


def trial_rows(
    results: Iterable[Any], statuses: Mapping[str, str], epochs: int, default: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Every trial's row, in the order the trials started."""
    rows = [trial_row(r, statuses, epochs, default) for r in results]
    rows.sort(key=lambda row: row.pop("_start"))
    return rows


def write_trials_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    cols = [c for c in rows[0] if not c.startswith("_")] if rows else ["trial_id"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in cols})


def is_ok(row: Mapping[str, Any]) -> bool:
    """A trial that finished with an objective (it can be the best one)."""
    return row["status"] in FINISHED and is_finite_number(row["objective"])


def best_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The finished trial with the highest objective (ties: the better reconstruction R^2)."""
    ok = [r for r in rows if is_ok(r)]
    if not ok:
        return None

    def r2(r: Mapping[str, Any]) -> float:
        return float(r[R2_METRIC]) if is_finite_number(r[R2_METRIC]) else -math.inf

    return max(ok, key=lambda r: (r["objective"], r2(r)))


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def summarize_trials(rows: Sequence[Mapping[str, Any]], epochs: int) -> dict[str, Any]:
    """Counts, the best and the default trial, and the best's gain over the default (None when the
    default trial did not finish)."""
    summary: dict[str, Any] = {
        "trials": len(rows),
        "trials_failed": sum(r["status"] == "failed" for r in rows),
        "trials_stopped_early": sum(r["status"] == "stopped_early" for r in rows),
        "epochs_per_trial": epochs,
        "objective": OBJECTIVE,
    }
    best = best_row(rows)
    if best is None:
        return summary
    default = next((r for r in rows if is_ok(r) and r["is_default"]), None)
    summary["best"] = public(best)
    summary["best_config"] = tuned_values(best["_config"])
    summary["default"] = public(default) if default else None
    summary["gain_over_default"] = (best["objective"] - default["objective"]) if default else None
    return summary


def write_best(
    out_dir: Path, best: Mapping[str, Any], preset_cfg: AEConfig, bandwidths: Sequence[float], n_samples: int
) -> AEConfig:
    """``best_config.json`` (the preset's AEConfig with the winning values) and ``best_sampling.json``."""
    cfg = trial_ae_config(preset_cfg, best["_config"])
    write_json(out_dir / BEST_CONFIG_JSON, cfg.model_dump(mode="json"))
    write_json(
        out_dir / BEST_SAMPLING_JSON,
        {
            "method": best.get("sampler", DEFAULT_SAMPLER),
            "bandwidth": best["h"],
            OBJECTIVE: best["objective"],
            "trial_id": best["trial_id"],
            "bandwidths_evaluated": list(bandwidths),
            "samples_per_bandwidth": n_samples,
            "anchors_ranked_by": "train_acc",
        },
    )
    return cfg


def tag_children(
    tracking_uri: str, parent_id: str, rows: Sequence[Mapping[str, Any]], best_id: str | None
) -> None:
    """Each child run's final status (and error), and ``best_trial=true`` on the best one."""
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri)
        children = client.search_runs(
            [client.get_run(parent_id).info.experiment_id],
            filter_string=f"tags.sweep_parent = '{parent_id}'",
            max_results=10_000,
        )
        by_trial = {run.data.tags.get("trial_id"): run.info.run_id for run in children}
        for r in rows:
            run_id = by_trial.get(r["trial_id"])
            if run_id is None:
                continue
            client.set_tag(run_id, "status", r["status"])
            if r["error"]:
                client.set_tag(run_id, "error", r["error"])
            if r["trial_id"] == best_id:
                client.set_tag(run_id, "best_trial", "true")
    except Exception as e:  # bookkeeping must not lose the sweep's results
        print(f"[tune] warning: could not tag the MLflow child runs: {e}")
