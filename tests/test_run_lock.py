"""One writer per output directory: a live holder blocks, a killed holder's lock is taken over."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from hyperrep_ray.run_lock import (
    LOCK_NAME,
    LockHolder,
    OutputInUseError,
    OutputNotWritableError,
    acquire,
    local_output_lock,
    output_lock,
    read_holder,
    release,
)

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
    with pytest.raises(OutputNotWritableError, match="is a file"):
        acquire(f, "x")
    with pytest.raises(OutputNotWritableError, match="a parent is a file"):
        acquire(f / "sub", "x")
    assert f.read_text() == "not a directory", "nothing written over it"


def test_garbage_lock_file_counts_as_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{not json")
    t0 = time.time()
    with output_lock(tmp_path, "x") as me:
        assert me.started >= t0 - 1


def test_lock_of_a_reused_pid_is_taken_over(tmp_path):
    """A container restarts its entry point with the same pid: a lock naming this very process but not
    held by it is a previous incarnation's, not a second run of ours."""
    me = LockHolder(socket.gethostname(), os.getpid(), time.time() - 60, "before the restart", "0" * 32)
    (tmp_path / LOCK_NAME).write_text(json.dumps(dataclasses.asdict(me)))
    with output_lock(tmp_path, "after the restart") as now:
        assert read_holder(tmp_path) == now


def test_lock_naming_another_host_is_not_taken_over(tmp_path):
    other = LockHolder("another-node", 1234, time.time(), "hyperrep zoo", "f" * 32)
    (tmp_path / LOCK_NAME).write_text(json.dumps(dataclasses.asdict(other)))
    with pytest.raises(OutputInUseError, match="another-node") as err:
        acquire(tmp_path, "x")
    assert f"delete {tmp_path / LOCK_NAME}" in str(err.value)
    assert read_holder(tmp_path) == other


def test_directory_around_or_inside_a_held_one_is_in_use(tmp_path):
    """A pipeline's out dir and a stage command's --out within it: one writer for the whole tree."""
    proc = _holder_process(tmp_path / "run")
    try:
        with pytest.raises(OutputInUseError, match=f"it holds {tmp_path / 'run'}, which contains"):
            acquire(tmp_path / "run" / "zoo", "hyperrep zoo")
        assert not (tmp_path / "run" / "zoo" / LOCK_NAME).exists(), "the refused run keeps no lock"
        with pytest.raises(OutputInUseError, match="inside"):
            acquire(tmp_path, "pipeline")
    finally:
        proc.kill()
        proc.wait()
    with output_lock(tmp_path, "pipeline"):  # its holder is gone: free
        pass


def test_read_only_output_is_refused_before_anything_is_written(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: a read-only mount is the real case
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        ro.chmod(0o555)
    try:
        with pytest.raises(OutputNotWritableError, match="read-only|cannot be written"):
            acquire(ro / "out", "x")
        with pytest.raises(OutputNotWritableError, match="read-only|cannot be written"):
            acquire(ro, "x")
        assert not list(ro.iterdir())
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], check=True)
        else:
            ro.chmod(0o755)


def test_remote_outputs_are_not_locked_and_partial_writes_are_cleared(tmp_path):
    with local_output_lock("s3://bucket/run", "x") as holder:
        assert holder is None
    (tmp_path / "checkpoints").mkdir()
    orphan = tmp_path / "checkpoints" / ".tmp-0123abcd-shard-00001.parquet"
    orphan.write_bytes(b"half a shard")
    kept = tmp_path / "checkpoints" / "shard-00000.parquet"
    kept.write_bytes(b"a finished shard")
    with local_output_lock(tmp_path, "x") as holder:
        assert holder is not None and not orphan.exists() and kept.exists()
