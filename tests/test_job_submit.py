"""The pipeline as users run it on a cluster: ``ray start --head`` + ``ray job submit``.

One real local cluster (its own ports and temp dir, so the test session's Ray is untouched); the
smoke pipeline is submitted with the ``ray job`` CLI, stopped mid-run once the zoo is finished,
resubmitted (finishes without redoing the zoo), then rerun in-process (every stage skipped).
Only the processes this test started are stopped: the ``ray start --block`` process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.test_kill_resume import kill_during_experiments_and_rerun

REPO = Path(__file__).resolve().parents[1]
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _ray(*args: str, address: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # Ray >= 2.59 starts local clusters with token authentication; the CLI sends the token it finds
    # in ~/.ray/auth_token only when told that the cluster uses tokens
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token"}
    return subprocess.run([RAY, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def local_cluster():
    """``ray start --head --block`` on free ports; yields the dashboard (job API) address."""
    gcs, dash, agent, agent_grpc, rt_env, metrics, client, nm, om = _free_ports(9)
    temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths have a length limit
    cmd = [
        RAY, "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2", f"--temp-dir={temp}",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={rt_env}", f"--metrics-export-port={metrics}",
        f"--ray-client-server-port={client}", f"--node-manager-port={nm}", f"--object-manager-port={om}",
        "--disable-usage-stats",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = open(Path(temp) / "ray_start.log", "w")  # noqa: SIM115 - closed in the finally below
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 90
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited: {(Path(temp) / 'ray_start.log').read_text()[-3000:]}")
            if _ray("job", "list", address=address, timeout=30).returncode == 0:
                break
            if time.time() > deadline:
                raise RuntimeError("the local cluster's job API did not come up within 90 s")
            time.sleep(1)
        yield address
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _submit(address: str, out: str, uri: str, staging: Path, wait: bool) -> subprocess.CompletedProcess:
    excludes = ["runs/", "mlruns/", "mlartifacts/", "*.db"]  # and .gitignore'd files, .git
    env_vars = {"HYPERREP_STAGING": str(staging)}  # each job its own staging dir, as on a fresh head node
    runtime_env = {"working_dir": str(REPO), "excludes": excludes, "env_vars": env_vars}
    args = ["job", "submit", "--runtime-env-json", json.dumps(runtime_env)]
    args += [] if wait else ["--no-wait"]
    entry = [sys.executable, "jobs/full_pipeline.py", "--preset", "smoke", "--out", out]
    return _ray(*args, "--", *entry, "--tracking-uri", uri, address=address, timeout=600)


def _job_id(output: str) -> str:
    for token in output.replace("'", " ").split():
        if token.startswith("raysubmit_"):
            return token
    raise AssertionError(f"no submission id in: {output}")


@pytest.mark.slow
def test_job_submit_stop_resubmit_resume(local_cluster, ray_session, tmp_path, capsys, monkeypatch):
    """--out is a URI (file:// here, s3:// or gs:// on a cloud cluster): each job stages it in its own
    local directory, pulls what is there and pushes every finished stage."""
    address, out = local_cluster, tmp_path / "remote"
    out_uri = f"file://{out}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    # 1. submit, and stop the job once the zoo stage is finished (mid-run: the autoencoders are next)
    first = _submit(address, out_uri, uri, tmp_path / "stage1", wait=False)
    assert first.returncode == 0, first.stderr + first.stdout
    job = _job_id(first.stdout + first.stderr)
    deadline = time.time() + 300
    while not (out / "zoo" / "stage.json").exists():
        status = _ray("job", "status", job, address=address).stdout
        assert "FAILED" not in status, _ray("job", "logs", job, address=address).stdout[-3000:]
        assert "SUCCEEDED" not in status, "the job finished before it could be stopped"
        assert time.time() < deadline, "the zoo stage did not finish within 300 s"
        time.sleep(1)
    zoo_marker = (out / "zoo" / "stage.json").read_text()
    assert _ray("job", "stop", job, address=address).returncode == 0
    assert not (out / "report" / "summary.json").exists()
    first_logs = _ray("job", "logs", job, address=address).stdout
    assert "[pipeline] zoo digits: training" in first_logs

    # 2. resubmit (another staging dir: the zoo comes from --out) and wait: the finished zoo is not
    #    redone, the rest completes
    second = _submit(address, out_uri, uri, tmp_path / "stage2", wait=True)
    said = (second.stdout + second.stderr).lower()
    assert second.returncode == 0 and "succeeded" in said, second.stdout[-3000:]
    logs = second.stdout
    assert "[pipeline] zoo digits: complete, skipped" in logs
    assert "[pipeline] ae digits: training the autoencoder" in logs
    assert (out / "zoo" / "stage.json").read_text() == zoo_marker  # untouched

    summary = json.loads((out / "report" / "summary.json").read_text())
    entry = summary["zoos"]["digits"]
    assert entry["zoo"]["models_stored"] == 8
    assert entry["ae"]["n_test"] > 0 and "reconstruction_r2_test" in entry["ae-nolwln"]
    stages = {"zoo/digits", "ae/digits", "ae-nolwln/digits", "experiments/digits"}
    assert set(summary["stage_seconds"]) == stages
    ind = entry["experiments"]["in_dataset"]  # Table 1 populations at both fine-tuning epochs
    assert {"B_T", "S_U", "S_KDE30"} <= set(ind)
    assert set(ind["S_KDE30"]) == {"0", "1"} and ind["S_KDE30"]["0"]["n"] == 4
    assert all(0.0 <= v["mean"] <= 1.0 for per in ind.values() for v in per.values())
    assert "ensembles" in entry["experiments"] and "transfer" in entry["experiments"]
    report = (out / "report" / "report.md").read_text()
    assert "reconstruction R² (test)" in report and "| ae | ae-nolwln |" in report
    assert "Table 1" in report and "| S_KDE30 | 0 |" in report
    assert (out / "report" / "zoo_digits_test_accuracy.png").stat().st_size > 1000
    assert (out / "report" / "experiments_digits.md").exists()
    assert list((out / "report").glob("digits_*.png")), "the experiments' figures are in the report"

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("hyperrep_ray").experiment_id])
    parents = [r for r in runs if r.data.tags.get("stage") == "pipeline"]
    (done,) = [p for p in parents if p.info.status == "FINISHED"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == done.info.run_id]
    assert sorted(r.data.tags["stage"] for r in children) == ["ae", "ae", "experiments"]
    assert "report" in {a.path for a in client.list_artifacts(done.info.run_id)}

    # 3. an in-process rerun (jobs/full_pipeline.py's main) finds every stage complete
    import importlib.util

    spec = importlib.util.spec_from_file_location("full_pipeline", REPO / "jobs" / "full_pipeline.py")
    job_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job_module)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("HYPERREP_STAGING", str(tmp_path / "stage3"))
    assert job_module.main(["--preset", "smoke", "--out", out_uri, "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert printed.count("complete, skipped") == 4 and "report.md" in printed and "mlflow ui" in printed
    assert json.loads((out / "ae" / "metrics.json").read_text()) == entry["ae"]

    # 4. a pipeline killed (kill -9) in its experiments stage, then rerun, ends with this run's summary
    address = ray_session.get_runtime_context().gcs_address
    kill_during_experiments_and_rerun(out, tmp_path / "killed", address)
