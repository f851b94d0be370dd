"""Two runs cannot share one directory; a run killed anywhere loses nothing.

Real `hyperrep` processes on a real store: they join the test session's Ray (as a job joins a
cluster), so no process here starts a Ray instance of its own, and a killed driver's tasks are
cleaned up by Ray (their owner died).
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
from pathlib import Path
from typing import Any

import pytest

from hyperrep_ray import store
from hyperrep_ray.run_lock import LOCK_NAME, read_holder

REPO = Path(__file__).resolve().parents[1]
MODELS = 4  # one per shard: a kill after the first shard leaves the others to the rerun
ZOO = ["--preset", "smoke", "--models", str(MODELS), "--epochs", "1", "--models-per-shard", "1"]
ZOO += ["--population-size", "1", "--no-progress"]


def _hyperrep(args: list[str], ray_address: str, tmp: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
    cmd = [sys.executable, "-m", "hyperrep_ray.cli.main", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) before {what}: {proc.communicate()[1][-2000:]}")
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def _shards(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("shard-*.parquet"))


@pytest.mark.slow
def test_second_zoo_run_is_refused_and_a_killed_run_resumes(tmp_path, ray_session):
    address = ray_session.get_runtime_context().gcs_address
    out = tmp_path / "zoo"
    first = _hyperrep(["zoo", "--out", str(out), *ZOO], address, tmp_path)
    try:
        _wait_for(lambda: getattr(read_holder(out), "pid", None) == first.pid, first, "the lock")
        second = _hyperrep(["zoo", "--out", str(out), *ZOO], address, tmp_path)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        lines = [ln for ln in err.splitlines() if "error" in ln]
        assert len(lines) == 1 and lines[0].startswith("hyperrep zoo: error:"), err
        assert f"pid {first.pid}" in err and f"host {socket.gethostname()}" in err and "started" in err
        assert "Wait for it to finish, or use another --out" in err

        _wait_for(lambda: len(_shards(out)) >= 1, first, "a finished shard")
        os.kill(first.pid, signal.SIGKILL)  # mid-run: some shards written, others in flight
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    kept = {p.name: p.read_bytes() for p in _shards(out)}
    assert 1 <= len(kept) < MODELS, "killed mid-run"
    assert read_holder(out).pid == first.pid, "kill -9 leaves its lock behind"

    rerun = _hyperrep(["zoo", "--out", str(out), *ZOO], address, tmp_path)
    printed, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert f"({MODELS - len(kept)} shard(s) trained, {len(kept)} already complete)" in printed
    assert all((out / "checkpoints" / name).read_bytes() == data for name, data in kept.items())
    rows = store.read_checkpoints(str(out), columns=["model_id", "epoch"]).to_pylist()
    assert sorted((r["model_id"], r["epoch"]) for r in rows) == [
        (m, e) for m in range(MODELS) for e in (0, 1)
    ]
    assert not (out / LOCK_NAME).exists() and not list(out.rglob(".tmp-*"))


#: What differs between two runs of the same seeds: run ids, timings, and where they wrote.
RUN_SPECIFIC = {"mlflow_run_id", "wall_seconds", "stage_seconds", "seconds", "remote_out"}


def comparable(summary: Any) -> Any:
    """A pipeline summary without run ids, timings and paths: what two runs of the same seeds share."""
    if isinstance(summary, dict):
        return {
            k: comparable(v)
            for k, v in summary.items()
            if k not in RUN_SPECIFIC and not k.endswith("seconds")
        }
    if isinstance(summary, list):
        return [comparable(v) for v in summary]
    if isinstance(summary, str) and ("/" in summary or "://" in summary):
        return "<path>"
    return summary


def kill_during_experiments_and_rerun(done: Path, work: Path, ray_address: str) -> float:
    """The pipeline killed (kill -9) in its experiments stage, once the first experiment's tables are
    written, then rerun: its report/summary.json equals the one of ``done``, a finished smoke pipeline
    run of the same seeds. ``work`` starts with ``done``'s finished zoo and autoencoders (the
    experiments are what is killed). Returns the seconds it took."""
    t0 = time.time()
    work.mkdir(parents=True)
    for stage in ("zoo", "ae", "ae-nolwln"):
        shutil.copytree(done / stage, work / stage)
    args = ["--preset", "smoke", "--out", str(work), "--tracking-uri", f"sqlite:///{work}.mlflow.db"]
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    cmd = [sys.executable, "-u", str(REPO / "jobs" / "full_pipeline.py"), *args]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: (work / "experiments" / "table1").is_dir(), first, "the experiments' first tables")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not (work / "experiments" / "stage.json").exists() and not (work / "report").exists()
    assert read_holder(work).pid == first.pid

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "[pipeline] experiments digits: sampling" in rerun.stdout
    assert rerun.stdout.count("complete, skipped") == 3
    again = json.loads((work / "report" / "summary.json").read_text())
    reference = json.loads((done / "report" / "summary.json").read_text())
    assert comparable(again) == comparable(reference)
    assert not (work / LOCK_NAME).exists() and not list(work.rglob(".tmp-*"))
    return time.time() - t0
