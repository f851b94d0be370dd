"""A command's --out in use, a file or read-only: one line, exit status 2, nothing written."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from hyperrep_ray.cli.main import main
from hyperrep_ray.run_lock import LOCK_NAME, read_holder

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from hyperrep_ray.run_lock import acquire
acquire(sys.argv[1], "full_pipeline --preset smoke (test holder)")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def held(tmp_path):
    """``tmp_path/run`` held by another live process, as a running pipeline holds its out dir."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield run, proc.pid
    proc.kill()
    proc.wait()


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hyperrep {command}: error: "), err
    return err


@pytest.mark.parametrize("sub", ["", "zoo"])
def test_zoo_on_a_directory_in_use_stops_naming_the_holder(held, sub, capsys):
    run, pid = held
    out = run / sub if sub else run
    assert main(["zoo", "--preset", "smoke", "--out", str(out), "--no-progress"]) == 2
    err = _one_error_line(capsys, "zoo")
    assert f"pid {pid}" in err and "full_pipeline --preset smoke (test holder)" in err
    assert not (out / "zoo.json").exists() and read_holder(run).pid == pid


def test_tune_on_a_directory_in_use_stops(held, tmp_path, capsys):
    run, pid = held
    assert main(["tune", "--zoo", str(tmp_path / "zoo"), "--out", str(run), "--num-samples", "2"]) == 2
    assert f"pid {pid}" in _one_error_line(capsys, "tune")
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]


def test_zoo_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "zoo"
    f.write_text("keep me")
    assert main(["zoo", "--preset", "smoke", "--out", str(f)]) == 2
    assert "is a file, not a directory" in _one_error_line(capsys, "zoo")
    assert f.read_text() == "keep me"


def test_pipeline_out_in_use_or_a_file_is_one_line(held, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("full_pipeline", REPO / "jobs" / "full_pipeline.py")
    assert spec is not None and spec.loader is not None
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    run, pid = held
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert job.main(["--preset", "smoke", "--out", str(run), "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {pid}" in err and err.startswith("full_pipeline: error: ")
    f = tmp_path / "file"
    f.write_text("keep me")
    assert job.main(["--preset", "smoke", "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err and f.read_text() == "keep me"
