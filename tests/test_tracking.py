"""MLflow helpers against a real SQLite store: where runs go, and what a run records."""

import math
import shutil
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
    with tracking.run("stage-x", config, mlflow_uri, tags={"stage": "ae"}) as r:
        tracking.log_metrics({"ok": 0.5, "nan": math.nan, "inf": math.inf, "none": None})  # type: ignore[dict-item]
        tracking.log_metrics({"loss": 2.0}, step=3)
    client = MlflowClient(mlflow_uri)
    run = client.get_run(r.info.run_id)
    assert run.info.run_name == "stage-x" and run.data.tags["stage"] == "ae"
    assert run.data.params["ae.d_z"] == "16" and run.data.params["p149"] == "149", "more than 100 params"
    ours = {k: v for k, v in run.data.metrics.items() if not k.startswith("system/")}
    assert ours == {"ok": 0.5, "loss": 2.0}, "non-finite and missing values are left out"
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


def test_experiment_opens_as_model_training_with_a_description(mlflow_uri):
    tracking.setup(mlflow_uri)
    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development", "not MLflow's GenAI view"
    assert "tags.stage = 'zoo' | 'ae'" in exp.tags["mlflow.note.content"]
    client.set_experiment_tag(exp.experiment_id, "mlflow.note.content", "my own words")
    tracking.setup(mlflow_uri)
    assert client.get_experiment(exp.experiment_id).tags["mlflow.note.content"] == "my own words", "kept"
    url = tracking.ui_url(exp.experiment_id, "http://host:5001/")
    assert url == f"http://host:5001/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"


def test_runs_carry_a_description_and_stage_runs_system_metrics(mlflow_uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    pytest.importorskip("psutil", reason="system metrics need psutil (the test extra installs it)")
    assert tracking.system_metrics_wanted({"stage": "zoo"}) and not tracking.system_metrics_wanted({})
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    assert not tracking.system_metrics_wanted({"stage": "zoo"}), "the MLflow switch decides when set"
    with tracking.run("s", None, mlflow_uri, tags={"stage": "zoo"}, description="training") as r:
        before = mlflow.get_run(r.info.run_id).data.tags["mlflow.note.content"]
        tracking.describe("zoo z: 4 models x 2 epochs")
    assert before == "training"
    assert (
        MlflowClient(mlflow_uri).get_run(r.info.run_id).data.tags["mlflow.note.content"].startswith("zoo z")
    )


def test_metric_names_group_by_split():
    cases = {
        "reconstruction_r2_val": "val/reconstruction_r2",
        "train_loss": "train/loss",
        "n_test": "test/n",
        "reconstruction_r2_test_conv2": "test/reconstruction_r2_conv2",
        "probe_r2_test_epoch": "test/probe_r2_epoch",
        "kept_epoch": "kept_epoch",
        "epochs_trained": "epochs_trained",
        "test": "test",
    }
    assert {k: tracking.metric_name(k) for k in cases} == cases


def test_zoo_is_a_dataset_input_with_a_digest_that_follows_the_store(tiny_zoo, tmp_path, mlflow_uri):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    digest = tracking.zoo_digest(str(zoo))
    assert digest == tracking.zoo_digest(tiny_zoo), "same files, same digest, wherever they lie"
    with tracking.run("uses-zoo", None, mlflow_uri) as r:
        tracking.log_zoo_input(str(zoo))
    (inp,) = MlflowClient(mlflow_uri).get_run(r.info.run_id).inputs.dataset_inputs
    assert inp.dataset.name == "digits-smoke" and inp.dataset.digest == digest
    assert str(zoo.resolve()) in inp.dataset.source and inp.tags[0].value == "training"
    min(zoo.glob("checkpoints/shard-*.parquet")).unlink()
    assert tracking.zoo_digest(str(zoo)) != digest, "a store with other shards has another digest"


def _summary():
    ind = {
        p: {"0": {"mean": m, "n": 4}, "1": {"mean": m + 0.2, "n": 4}}
        for p, m in (("S_KDE30", 0.407), ("B_T", 0.095), ("B_KDE30", 0.577), ("S_U", 0.3))
    }
    return {
        "preset": "smoke",
        "wall_seconds": 90.0,
        "zoos": {
            "digits": {
                "zoo": {"test_acc": {"0": {"mean": 0.1}, "2": {"mean": 0.55}}},
                "ae": {"reconstruction_r2_test": 0.24},
                "ae-nolwln": {"reconstruction_r2_test": 0.1},
                "experiments": {"in_dataset": ind},
            }
        },
    }


def test_pipeline_run_gets_headline_metrics_and_one_line(mlflow_uri):
    summary = _summary()
    line = tracking.table1_line(summary["zoos"]["digits"]["experiments"])
    assert (
        line == "Table 1, test accuracy % (n=4) - epoch 0: S_KDE30 40.7, B_T 9.5, B_KDE30 57.7; "
        "epoch 1: S_KDE30 60.7, B_T 29.5, B_KDE30 77.7"
    )
    assert "no in-dataset" in tracking.table1_line({"in_dataset": {}})
    with tracking.run("pipeline-smoke", None, mlflow_uri, tags={"stage": "pipeline"}) as r:
        tracking.log_pipeline_result(summary)
    run = MlflowClient(mlflow_uri).get_run(r.info.run_id)
    assert run.data.metrics["digits/zoo/test_acc"] == 0.55 and run.data.metrics["digits/ae/test_r2"] == 0.24
    assert run.data.metrics["digits/table1/S_KDE30/1"] == pytest.approx(0.607)
    assert "digits/table1/S_U/0" not in run.data.metrics
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("pipeline smoke (1.5 min) - digits: zoo test acc 0.550, ae test R² 0.240; Table 1")


@pytest.fixture(autouse=True)
def _no_run_left_open():
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
