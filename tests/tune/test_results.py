"""The sweep's outputs from its trial rows: best trial, default trial, gain, statuses, trials.csv."""

import csv
import math

import pytest

from hyperrep_ray.config import AEConfig, ae_preset
from hyperrep_ray.tune.results import (
    best_row,
    error_text,
    summarize_trials,
    trial_status,
    write_best,
    write_trials_csv,
)
from hyperrep_ray.tune.space import default_point


def row(tid, objective, status="completed", r2=0.5, is_default=False, **config):
    return {
        "trial_id": tid,
        "status": status,
        "h": 0.1,
        "objective": objective,
        "reconstruction_r2_val": r2,
        "is_default": is_default,
        "error": "",
        "_config": config,
    }


def test_best_is_the_highest_finished_objective_with_ties_to_reconstruction():
    rows = [
        row("a", 0.40),
        row("b", 0.90, status="failed"),
        row("c", 0.60, r2=0.1),
        row("d", 0.60, r2=0.3),
        row("e", math.nan),
        row("f", 0.70, status="unfinished"),
    ]
    assert best_row(rows)["trial_id"] == "d"
    assert best_row([row("x", 0.5, status="failed")]) is None


def test_summary_gain_is_best_minus_default():
    point = default_point(ae_preset("smoke"))
    rows = [row("a", 0.42, is_default=True, **point), row("b", 0.55, status="stopped_early", **point)]
    rows.append(row("c", 0.9, status="failed", **point))
    summary = summarize_trials(rows, epochs=4)
    assert summary["best"]["trial_id"] == "b" and summary["default"]["trial_id"] == "a"
    assert summary["gain_over_default"] == pytest.approx(0.55 - 0.42)
    assert (summary["trials"], summary["trials_failed"], summary["trials_stopped_early"]) == (3, 1, 1)
    assert "_config" not in summary["best"]
    assert summary["best_config"]["d_token"] == point["d_token"]


def test_a_default_that_did_not_finish_has_no_gain():
    point = default_point(ae_preset("smoke"))
    summary = summarize_trials(
        [row("a", 0.3, status="failed", is_default=True, **point), row("b", 0.5, **point)], 2
    )
    assert summary["default"] is None and summary["gain_over_default"] is None


def test_trial_status():
    assert trial_status("ERROR", {"epoch": 4}, 4) == "failed"
    assert trial_status("TERMINATED", {"epoch": 4}, 4) == "completed"
    assert trial_status("TERMINATED", {"epoch": 2}, 4) == "stopped_early"
    assert trial_status("RUNNING", {"epoch": 2}, 4) == "unfinished"
    assert trial_status("TERMINATED", {}, 4) == "unfinished"


def test_error_text_names_divergence():
    err = RuntimeError("Traceback ...\n  FloatingPointError: non-finite loss at epoch 1\n")
    assert error_text(err) == "diverged: non-finite loss at epoch 1"
    assert error_text(ValueError("first\nlast line")) == "last line"
    assert error_text(None) == ""


def test_trials_csv_and_best_files(tmp_path):
    base = ae_preset("smoke")
    point = {**default_point(base), "d_token": 2 * base.d_token}
    rows = [row("a", 0.5, **point), row("b", None, status="failed", r2=None)]
    write_trials_csv(tmp_path / "trials.csv", rows)
    with open(tmp_path / "trials.csv") as f:
        read = list(csv.DictReader(f))
    assert (
        [r["trial_id"] for r in read] == ["a", "b"]
        and read[1]["objective"] == ""
        and "_config" not in read[0]
    )
    cfg = write_best(tmp_path, rows[0], base, (0.01, 0.1), 8)
    assert cfg.d_token == 2 * base.d_token and cfg.epochs == base.epochs
    assert AEConfig.model_validate_json((tmp_path / "best_config.json").read_text()) == cfg
