"""Two runs cannot share one directory; a run killed anywhere loses nothing.

Real `hyperrep` processes on a real store: they join the test session's Ray (as a job joins a
cluster), so no process here starts a Ray instance of its own, and a killed driver's tasks are
cleaned up by Ray (their owner died).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperrep_ray import store
from hyperrep_ray.run_lock import LOCK_NAME, read_holder

ZOO = ["--preset", "smoke", "--models", "6", "--epochs", "1", "--models-per-shard", "1"]
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
    assert 1 <= len(kept) < 6, "killed mid-run"
    assert read_holder(out).pid == first.pid, "kill -9 leaves its lock behind"

    rerun = _hyperrep(["zoo", "--out", str(out), *ZOO], address, tmp_path)
    printed, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert f"({6 - len(kept)} shard(s) trained, {len(kept)} already complete)" in printed
    assert all((out / "checkpoints" / name).read_bytes() == data for name, data in kept.items())
    rows = store.read_checkpoints(str(out), columns=["model_id", "epoch"]).to_pylist()
    assert sorted((r["model_id"], r["epoch"]) for r in rows) == [(m, e) for m in range(6) for e in (0, 1)]
    assert not (out / LOCK_NAME).exists() and not list(out.rglob(".tmp-*"))
