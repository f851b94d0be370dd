"""The smoke pipeline end to end through jobs/full_pipeline.py, on the session's real Ray."""

import importlib.util
import json
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]


def _job():
    spec = importlib.util.spec_from_file_location("full_pipeline", REPO / "jobs" / "full_pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_pipeline_end_to_end_and_rerun_skips(tmp_path, ray_session, capsys):
    out = tmp_path / "run"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _job().main(["--preset", "smoke", "--out", str(out), "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert "report.md" in printed and "mlflow ui" in printed

    summary = json.loads((out / "report" / "summary.json").read_text())
    entry = summary["zoos"]["digits"]
    assert entry["zoo"]["models_stored"] == 8
    assert entry["ae"]["n_test"] > 0 and "reconstruction_r2_test" in entry["ae-nolwln"]
    assert set(summary["stage_seconds"]) == {"zoo/digits", "ae/digits", "ae-nolwln/digits"}
    report = (out / "report" / "report.md").read_text()
    assert "reconstruction R² (test)" in report and "| ae | ae-nolwln |" in report
    assert (out / "report" / "zoo_digits_test_accuracy.png").stat().st_size > 1000
    for stage in ("zoo", "ae", "ae-nolwln"):
        assert (out / stage / "stage.json").exists()

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hyperrep_ray")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("stage") == "pipeline"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["stage"] for r in children) == ["train-ae", "train-ae", "zoo"]
    assert "report" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    # a rerun finds every stage complete and redoes nothing
    assert _job().main(["--preset", "smoke", "--out", str(out), "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert printed.count("complete, skipped") == 3
    assert json.loads((out / "ae" / "metrics.json").read_text()) == entry["ae"]
