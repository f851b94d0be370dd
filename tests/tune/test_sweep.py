"""The Ray Tune sweep on real Ray Tune: tiny trials (smoke preset, 2 epochs) on the tiny digits zoo.

End to end (Ray Tune, Ray Train loops, MLflow), so marked slow."""

import csv
import json
import math
import os
import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray import tune

from hyperrep_ray.cli.main import build_parser
from hyperrep_ray.cli.train_ae import ae_config
from hyperrep_ray.config import AEConfig, ConfigError, ae_preset
from hyperrep_ray.tune.config import SweepConfig
from hyperrep_ray.tune.objective import OBJECTIVE, R2_PENALTY
from hyperrep_ray.tune.space import TUNED_FIELDS, default_point
from hyperrep_ray.tune.sweep import SweepInterrupted, run_sweep

pytestmark = pytest.mark.slow

BANDWIDTHS = (0.01, 0.1, 1.0)
# the flow sampler trains a network at every evaluation: left out to keep these trials tiny
TINY = {"preset": "smoke", "max_epochs": 2, "bandwidths": BANDWIDTHS, "n_samples": 8}
TINY["samplers"] = ("kde30", "kde-joint30")


def _constrained(row: dict[str, str], min_r2: float = 0.0) -> bool:
    """The objective is the novel accuracy (in [0, 1]), minus the penalty when R^2 misses ``min_r2``."""
    raw, r2 = float(row["novel_accuracy"]), float(row["reconstruction_r2_val"])
    expected = raw - R2_PENALTY if r2 < min_r2 else raw
    share = float(row["novel_share"])
    return (
        0.0 <= raw <= float(row["sampled_accuracy"]) <= 1.0
        and 0.0 <= share <= 1.0
        and float(row["objective"]) == pytest.approx(expected, abs=1e-12)
    )


def tiny_sweep(zoo: str, out, **values) -> SweepConfig:
    return SweepConfig(zoo=zoo, out=str(out), **TINY, **values)


def _rows(out) -> list[dict[str, str]]:
    with open(Path(out) / "trials.csv") as f:
        return list(csv.DictReader(f))


def _children(uri: str, parent_id: str) -> list:
    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )


@pytest.fixture(scope="module")
def tune_mlflow(tmp_path_factory, new_mlflow_store):
    """One MLflow store for the module; runs are told apart by their parent run."""
    return new_mlflow_store(tmp_path_factory.mktemp("tune-mlflow"))


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory, tiny_zoo, ray_session, tune_mlflow):
    """3 trials: the preset's default, one diverging (Adam at lr 1e30 overflows the weights after its
    first step), and one from Optuna."""
    uri = tune_mlflow
    out = tmp_path_factory.mktemp("tune") / "sweep"
    summary = run_sweep(smoke_config(tiny_zoo, out), tracking_uri=uri, verbose=0)
    return out, summary, uri


def smoke_config(zoo: str, out, **values) -> SweepConfig:
    """The smoke sweep's settings (``values`` change some)."""
    base = ae_preset("smoke")
    diverging = {**default_point(base), "lr": 1e30}
    return tiny_sweep(zoo, out, num_samples=3, points_to_evaluate=[default_point(base), diverging], **values)


def test_smoke_sweep_writes_a_best_config_that_train_ae_accepts(smoke_sweep, tiny_zoo, tmp_path):
    out, summary, _ = smoke_sweep
    rows = _rows(out)
    assert len(rows) == 3 and summary["trials"] == 3
    best = json.loads((out / "best_config.json").read_text())
    assert AEConfig(**best).model_dump(mode="json") == best
    # `hyperrep train-ae --config best_config.json` takes it as is (parse + config building only)
    args = build_parser().parse_args(
        ["train-ae", "--zoo", tiny_zoo, "--out", str(tmp_path / "ae"), "--preset", "smoke"]
        + ["--config", str(out / "best_config.json")]
    )
    assert ae_config(args, "digits").model_dump(mode="json") == best
    # the winning values are the best trial's; everything else is the preset's
    top = max((r for r in rows if r["status"] != "failed"), key=lambda r: float(r["objective"]))
    assert best["d_token"] == int(top["d_token"]) and best["beta"] == pytest.approx(float(top["beta"]))
    assert best["epochs"] == ae_preset("smoke").epochs
    sampling = json.loads((out / "best_sampling.json").read_text())
    assert sampling["bandwidth"] in BANDWIDTHS and sampling["trial_id"] == top["trial_id"]
    assert sampling[OBJECTIVE] == pytest.approx(float(top["objective"])) and _constrained(top)
    assert sampling["method"] == top["sampler"] in TINY["samplers"]
    assert {"beta", "d_token", "h", "objective", "reconstruction_r2_val", "status", "sampler"} <= set(rows[0])
    assert {"z_penalty", "standardize", "behaviour_weight", "novel_accuracy", "required_novelty"} <= set(
        rows[0]
    )


def _finished(rows):
    return [r for r in rows if r["status"] in ("completed", "stopped_early") and r["objective"] != ""]


def test_the_reported_best_is_the_maximum_of_the_results_file(smoke_sweep):
    out, summary, uri = smoke_sweep
    finished = _finished(_rows(out))
    top = max(float(r["objective"]) for r in finished)
    assert summary["best"]["objective"] == pytest.approx(top, abs=1e-12)
    assert (
        float(next(r for r in finished if r["trial_id"] == summary["best"]["trial_id"])["objective"]) == top
    )
    parent = MlflowClient(uri).get_run(summary["mlflow_parent_run_id"])
    assert parent.data.metrics["best_objective"] == pytest.approx(top, abs=1e-12)


def test_the_default_trial_has_the_presets_values_and_the_gain_is_recomputable(smoke_sweep):
    out, summary, _ = smoke_sweep
    rows = _rows(out)
    defaults = [r for r in rows if r["is_default"] == "True"]
    assert len(defaults) == 1 and summary["default"]["trial_id"] == defaults[0]["trial_id"]
    preset = ae_preset("smoke")
    for k in TUNED_FIELDS:  # the preset's values, as the trial recorded them in trials.csv
        value = getattr(preset, k)
        if isinstance(value, str):
            assert defaults[0][k] == value, k
        else:
            assert float(defaults[0][k]) == pytest.approx(float(value), rel=1e-9), k
    assert defaults[0]["sampler"] == TINY["samplers"][0]
    best = max(float(r["objective"]) for r in _finished(rows))
    assert summary["gain_over_default"] == pytest.approx(best - float(defaults[0]["objective"]), abs=1e-12)


def test_a_diverging_trial_fails_alone(smoke_sweep):
    out, summary, _ = smoke_sweep
    rows = _rows(out)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and float(failed[0]["lr"]) == 1e30
    assert failed[0]["error"].startswith("diverged")
    others = [r for r in rows if r["status"] != "failed"]
    assert len(others) == 2 and {r["status"] for r in others} <= {"completed", "stopped_early"}
    assert all(_constrained(r) and float(r["h"]) in BANDWIDTHS for r in others)
    assert all(math.isfinite(float(r["reconstruction_r2_val"])) for r in others)
    assert summary["trials_failed"] == 1


def test_mlflow_has_the_parent_and_one_child_per_trial(smoke_sweep):
    out, summary, uri = smoke_sweep
    client = MlflowClient(uri)
    parent = client.get_run(summary["mlflow_parent_run_id"])
    assert parent.data.tags["stage"] == "tune" and parent.info.status == "FINISHED"
    assert parent.data.tags["best_trial_id"] == summary["best"]["trial_id"]
    assert "best_objective" in parent.data.metrics
    children = _children(uri, parent.info.run_id)
    by_trial = {c.data.tags["trial_id"]: c for c in children}
    assert len(children) == 3 and set(by_trial) == {r["trial_id"] for r in _rows(out)}
    best = [c for c in children if c.data.tags.get("best_trial") == "true"]
    assert [c.data.tags["trial_id"] for c in best] == [summary["best"]["trial_id"]]
    for c in children:
        if c.data.tags["status"] == "failed":
            assert c.info.status == "FAILED" and c.data.tags["error"].startswith("diverged")
        else:
            assert c.info.status == "FINISHED" and "final_" + OBJECTIVE in c.data.metrics
            assert {"one_minus_beta", "beta", "d_token", "lr"} <= set(c.data.params)
            steps = [m.step for m in client.get_metric_history(c.info.run_id, "train_loss")]
            assert steps[:2] == [1, 2], "per-epoch metrics"


class _InterruptOnce(tune.Callback):
    """Like Ctrl+C: sends Tune's stop signal (SIGUSR1) to this process after the first finished
    trial, once (the flag file), since Tune keeps its callbacks with the experiment for a restore."""

    def __init__(self, flag: Path):
        self.flag = str(flag)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if os.path.exists(self.flag):
            os.remove(self.flag)
            os.kill(os.getpid(), signal.SIGUSR1)


def test_an_interrupted_sweep_resumes_to_the_requested_trials(tmp_path, tiny_zoo, ray_session, tune_mlflow):
    uri = tune_mlflow
    out = tmp_path / "sweep"
    flag = tmp_path / "interrupt-once"
    flag.touch()
    config = tiny_sweep(tiny_zoo, out, num_samples=3)
    with pytest.raises(SweepInterrupted, match="run the same command again"):
        run_sweep(config, tracking_uri=uri, callbacks=[_InterruptOnce(flag)], verbose=0)
    assert not flag.exists()
    first = _rows(out)
    assert 1 <= len([r for r in first if r["status"] == "completed"]) and len(first) < 4
    assert tune.Tuner.can_restore(str(out / "ray_tune" / "sweep"))
    assert not (out / "best_config.json").exists()

    summary = run_sweep(config, tracking_uri=uri, verbose=0)  # the same call continues the sweep
    rows = _rows(out)
    assert len(rows) == 3 and summary["trials"] == 3
    assert {r["trial_id"] for r in first} <= {r["trial_id"] for r in rows}
    assert all(r["status"] in ("completed", "stopped_early") for r in rows)
    AEConfig(**json.loads((out / "best_config.json").read_text()))
    children = _children(uri, summary["mlflow_parent_run_id"])
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(r["trial_id"] for r in rows)
    state = json.loads((out / "sweep.json").read_text())
    assert state["mlflow_parent_run_id"] == summary["mlflow_parent_run_id"], "one parent run for both"


def test_a_sweep_with_other_settings_is_not_resumed(smoke_sweep, tiny_zoo):
    """Refused before anything runs: the finished sweep's files stay as they were."""
    out, _, uri = smoke_sweep
    before = {p: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"other settings \(seed\)"):
        run_sweep(smoke_config(tiny_zoo, out, seed=1), tracking_uri=uri)
    assert {p: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_multi_worker_trial_trains_with_ray_train(tmp_path, tiny_zoo, ray_session, tune_mlflow):
    """workers_per_trial 2: the trial drives a 2-worker DDP TorchTrainer whose rank 0 reports to Tune."""
    config = tiny_sweep(
        tiny_zoo, tmp_path / "sweep", num_samples=1, workers_per_trial=2, early_stopping=False
    )
    summary = run_sweep(config, tracking_uri=tune_mlflow, verbose=0)
    (row,) = _rows(tmp_path / "sweep")
    assert row["status"] == "completed" and int(row["epochs_run"]) == 2, row["error"]
    assert _constrained(row) and summary["best"]["trial_id"] == row["trial_id"]
