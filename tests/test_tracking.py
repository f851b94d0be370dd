"""MLflow helpers against a real SQLite store: where runs go, and what a run records."""

import math
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from hyperrep_ray import tracking


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert tracking.resolve_tracking_uri("http://server:5000") == "http://server:5000"
    assert tracking.resolve_tracking_uri() == "sqlite:///from-env.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_flatten_nests_with_dots_and_lists_as_json():
    flat = tracking.flatten({"a": {"b": 1, "c": {"d": "x"}}, "window": (21, 25), "long": list(range(400))})
    assert flat["a.b"] == 1 and flat["a.c.d"] == "x" and flat["window"] == "[21, 25]"
    assert len(flat["long"]) == 500, "MLflow caps a param's length; long lists are cut"


def test_run_records_config_params_tags_and_artifacts_beside_the_db(mlflow_uri):
    config = {"zoo": "z", "ae": {"d_z": 16, "lwln": True}, **{f"p{i}": i for i in range(150)}}
    with tracking.run("stage-x", config, mlflow_uri, tags={"stage": "train-ae"}) as r:
        tracking.log_metrics({"ok": 0.5, "nan": math.nan, "inf": math.inf, "none": None})  # type: ignore[dict-item]
        tracking.log_metrics({"loss": 2.0}, step=3)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(r.info.run_id)
    assert run.info.run_name == "stage-x" and run.data.tags["stage"] == "train-ae"
    assert run.data.params["ae.d_z"] == "16" and run.data.params["p149"] == "149", "more than 100 params"
    assert run.data.metrics == {"ok": 0.5, "loss": 2.0}, "non-finite and missing values are left out"
    assert [m.step for m in client.get_metric_history(r.info.run_id, "loss")] == [3]
    assert "config.json" in {a.path for a in client.list_artifacts(r.info.run_id)}
    exp = client.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT)
    db = Path(mlflow_uri[len("sqlite:///") :])
    assert exp.artifact_location == (db.parent / "mlartifacts" / tracking.DEFAULT_EXPERIMENT).as_uri()


def test_nested_runs_are_children_of_the_active_run_and_setup_is_idempotent(mlflow_uri):
    with tracking.run("parent", {"a": 1}, mlflow_uri) as parent:
        with tracking.run("child", {"b": 2}, mlflow_uri, nested=True) as child:
            pass
    with tracking.run("alone", None, mlflow_uri, nested=True) as alone:  # no active run: top level
        pass
    client = MlflowClient(mlflow_uri)
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in client.get_run(alone.info.run_id).data.tags
    assert mlflow.active_run() is None
    first = mlflow.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT).experiment_id
    assert tracking.setup(mlflow_uri) == mlflow_uri, "setting up an existing store changes nothing"
    assert mlflow.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT).experiment_id == first


@pytest.fixture(autouse=True)
def _no_run_left_open():
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
