"""Reviewing a run the way users do: ``mlflow server`` over a pipeline's store, its pages in headless
Chromium. The store holds a real pipeline run: the zoo stage (on the session's tiny zoo, whose shards
are complete, so nothing retrains), the autoencoder stage's record of the session's trained
autoencoder (metrics per epoch, figures, the registered version with the pipeline's alias), the
pipeline's headline metrics and its report. Screenshots land in the test's tmp dir (and in
``$HYPERREP_SCREENS`` when set) for a person to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hyperrep_ray import tracking
from hyperrep_ray.autoencoder.bundle import BUNDLE_FILES
from hyperrep_ray.autoencoder.stage import record_outputs
from hyperrep_ray.config import zoo_preset
from hyperrep_ray.pipeline import write_report
from hyperrep_ray.zoo.stage import run_zoo_stage

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed: apt-get install -y chromium (.ci/run does)"
)
NAME = "hyperrep-digits-smoke"


@pytest.fixture(scope="module")
def pipeline_store(tmp_path_factory, tiny_zoo, trained_ae, small_digits, new_mlflow_store):
    """(tracking URI, {run name: run id}, experiment id) of a pipeline run with its stage runs."""
    root = tmp_path_factory.mktemp("ui")
    uri = new_mlflow_store(root)
    zoo, ae = root / "zoo", root / "ae"
    shutil.copytree(tiny_zoo, zoo)
    ae.mkdir()
    for f in [*BUNDLE_FILES, "metrics.json", "history.json"] + [
        p.name for p in Path(trained_ae[0]).glob("*.png")
    ]:
        shutil.copy2(Path(trained_ae[0]) / f, ae / f)
    metrics = json.loads((ae / "metrics.json").read_text())
    cfg = zoo_preset("smoke", num_models=10, epochs=3, population_size=5, models_per_shard=5)  # tiny_zoo's
    with tracking.run("pipeline-smoke", {"preset": "smoke"}, uri, tags={"stage": "pipeline"}) as parent:
        _, zoo_summary = run_zoo_stage(cfg, str(zoo), uri, nested=True, progress=False, data=small_digits)
        with tracking.run("ae-digits", {"zoo": str(zoo)}, uri, nested=True, tags={"stage": "ae"}) as ae_run:
            tracking.log_zoo_input(str(zoo))
            for h in json.loads((ae / "history.json").read_text()):  # what the Ray Train callback logs
                tracking.log_metrics({k: v for k, v in h.items() if k != "epoch"}, h["epoch"], True)
            record_outputs(ae, str(zoo), "ae-digits", metrics, sorted(ae.glob("*.png")), alias="pipeline")
        summary = {"preset": "smoke", "out": str(root), "wall_seconds": 60.0, "stage_seconds": {}}
        summary["zoos"] = {"digits": {"zoo": zoo_summary, "ae": metrics}}
        write_report(summary, root / "report")
        import mlflow

        mlflow.log_artifacts(str(root / "report"), "report")
        tracking.log_pipeline_result(summary)
    runs = {"pipeline": parent.info.run_id, "ae": ae_run.info.run_id}
    return uri, runs, parent.info.experiment_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_ui(pipeline_store, tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 with one web worker and no job-queue consumers; yields its URL."""
    uri = pipeline_store[0]
    port = _free_port()
    log = open(tmp_path_factory.mktemp("server") / "mlflow_server.log", "w")  # noqa: SIM115 - closed below
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, Path(log.name).read_text()[-3000:]
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                pass
            assert time.time() < deadline, "mlflow server did not answer /health within 120 s"
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _page(url: str, shot: Path, budget_ms: int = 20000) -> str:
    """The page's DOM after the UI rendered it, and a screenshot at ``shot``."""
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    args += ["--window-size=1500,1100", f"--virtual-time-budget={budget_ms}", f"--screenshot={shot}"]
    args += [f"--user-data-dir={shot.with_suffix('.profile')}", "--dump-dom", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=180)
    shot.with_suffix(".html").write_text(out.stdout)
    return out.stdout


def _pages(base: str, pages: dict[str, str], out: Path, expect: dict[str, list[str]]) -> dict[str, str]:
    """Every page rendered (two Chromiums at a time); a page missing what it should show is rendered
    once more with more time (a loaded machine answers slowly)."""

    def render(name: str) -> tuple[str, str]:
        dom = _page(base + pages[name], out / f"{name}.png")
        if not all(e in dom for e in expect[name]):
            dom = _page(base + pages[name], out / f"{name}.png", budget_ms=60000)
        return name, dom

    with ThreadPoolExecutor(2) as pool:
        doms = dict(pool.map(render, pages))
    screens = os.environ.get("HYPERREP_SCREENS")
    if screens:
        Path(screens).mkdir(parents=True, exist_ok=True)
        for name in pages:
            shutil.copy2(out / f"{name}.png", Path(screens) / f"{name}.png")
    return doms


def test_a_pipeline_reads_in_the_mlflow_ui(pipeline_store, mlflow_ui, tmp_path):
    _, runs, exp_id = pipeline_store
    ml = "workflowType=machine_learning"
    pages = {
        "landing": tracking.ui_url(exp_id, mlflow_ui).removeprefix(mlflow_ui),
        "pipeline_run": f"/#/experiments/{exp_id}/runs/{runs['pipeline']}?{ml}",
        "ae_run": f"/#/experiments/{exp_id}/runs/{runs['ae']}?{ml}",
        "ae_charts": f"/#/experiments/{exp_id}/runs/{runs['ae']}/model-metrics?{ml}",
        "ae_figure": f"/#/experiments/{exp_id}/runs/{runs['ae']}/artifacts/interpolation_accuracy.png?{ml}",
        "registered_model": f"/#/models/{NAME}?{ml}",
    }
    expect = {
        "landing": ["pipeline-smoke", "Hyper-representations of CNN weights"],
        "pipeline_run": ["ae-digits", "zoo-digits-smoke", "ae test R²", "digits/ae/test_r2"],
        "ae_run": ["test R²", "test/reconstruction_r2", "digits-smoke", NAME],
        "ae_charts": [">train<", ">val<", ">test<"],  # chart sections: one per split
        "ae_figure": ['alt="interpolation_accuracy.png"'],
        "registered_model": [NAME, "Version 1", "pipeline"],
    }
    doms = _pages(mlflow_ui, pages, tmp_path, expect)
    for name, wanted in expect.items():
        missing = [w for w in wanted if w not in doms[name]]
        assert not missing, (
            f"{name} ({pages[name]}) does not show {missing}; screenshot {tmp_path / name}.png"
        )
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, f"{name}: no screenshot"
    assert "matching runs" in doms["landing"] and "Detect Issues" not in doms["landing"], "runs, not GenAI"
