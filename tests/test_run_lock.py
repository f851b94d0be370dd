"""One writer per output directory: a live holder blocks, a killed holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hyperrep_ray.run_lock import LOCK_NAME, OutputInUseError, acquire, output_lock, read_holder, release

HOLD = """
import sys, time
from hyperrep_ray.run_lock import acquire
acquire(sys.argv[1], "hyperrep zoo (test holder)")
print("held", flush=True)
time.sleep(600)
"""


def _holder_process(directory) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_run_stops_with_the_holder_named(tmp_path):
    proc = _holder_process(tmp_path / "out")
    try:
        with pytest.raises(OutputInUseError) as err:
            acquire(tmp_path / "out", "hyperrep zoo")
        msg = str(err.value)
        assert f"pid {proc.pid}" in msg and "hyperrep zoo (test holder)" in msg and "started" in msg
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
    proc = _holder_process(tmp_path / "out")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_holder(tmp_path / "out").pid == proc.pid, "kill -9 leaves the lock behind"
    with output_lock(tmp_path / "out", "rerun") as me:
        assert read_holder(tmp_path / "out") == me
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    assert not list((tmp_path / "out").glob(".stale-*")), "the moved-aside lock is cleaned up"


def test_release_keeps_a_lock_that_is_not_ours(tmp_path):
    me = acquire(tmp_path, "first")
    (tmp_path / LOCK_NAME).unlink()
    other = acquire(tmp_path, "second")
    release(tmp_path, me)
    assert read_holder(tmp_path) == other
    release(tmp_path, other)
    assert read_holder(tmp_path) is None


def test_same_process_cannot_take_it_twice_and_lock_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), output_lock(tmp_path, "a"):
        with pytest.raises(OutputInUseError, match="this process"):
            acquire(tmp_path, "b")
        raise RuntimeError("boom")
    assert read_holder(tmp_path) is None


def test_output_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "out"
    f.write_text("not a directory")
    with pytest.raises(NotADirectoryError, match="is a file"):
        acquire(f, "x")
    assert f.read_text() == "not a directory", "nothing written over it"


def test_garbage_lock_file_counts_as_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{not json")
    t0 = time.time()
    with output_lock(tmp_path, "x") as me:
        assert me.started >= t0 - 1
