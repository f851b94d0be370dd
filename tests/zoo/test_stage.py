"""The zoo stage writes a real MLflow run: params, per-epoch metrics, zoo.json and a plot."""

from mlflow.tracking import MlflowClient

from hyperrep_ray.config import zoo_preset
from hyperrep_ray.zoo.stage import run_zoo_stage


def test_zoo_stage_is_tracked_in_mlflow(tmp_path, mlflow_uri, ray_session, small_digits):
    cfg = zoo_preset("smoke", num_models=4, epochs=2, models_per_shard=2, population_size=2)
    result, summary = run_zoo_stage(cfg, str(tmp_path / "zoo"), mlflow_uri, progress=False, data=small_digits)

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("hyperrep_ray")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["num_models"] == "4" and run.data.params["lr"] == str(cfg.lr)
    assert run.data.tags["stage"] == "zoo"
    history = client.get_metric_history(run.info.run_id, "test_acc/median")
    assert [m.step for m in history] == [0, 1, 2]
    assert history[0].value == summary["test_acc"][0]["median"]
    assert run.data.metrics["models_stored"] == 4
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"zoo.json", "config.json", "zoo_test_accuracy.png", "zoo_summary.md"} <= artifacts
    # artifacts live beside the SQLite file, not in the current directory
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
