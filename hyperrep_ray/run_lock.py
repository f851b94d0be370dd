"""One writer per output directory.

Two runs writing one zoo, autoencoder or experiments directory would interleave shards and
checkpoints. The first run holds ``DIR/.hyperrep.lock`` (created with O_EXCL, so exactly one process
wins); a second run stops at once with an error naming the holder. A lock left by a run that was
killed (same host, process gone) is taken over, so a rerun after ``kill -9`` resumes without a manual
step. A lock held on another host cannot be checked from here: the error says how to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

LOCK_NAME = ".hyperrep.lock"


class OutputInUseError(RuntimeError):
    """Another live run writes the same output directory."""


@dataclass(frozen=True)
class LockHolder:
    host: str
    pid: int
    started: float
    command: str
    token: str

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"{self.command!r} (host {self.host}, pid {self.pid}, started {when})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_holder(directory: str | Path) -> LockHolder | None:
    """The run holding ``directory``'s lock, or None; an unreadable lock file counts as stale."""
    try:
        data = json.loads((Path(directory) / LOCK_NAME).read_text())
        return LockHolder(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return LockHolder(host=socket.gethostname(), pid=-1, started=0.0, command="?", token="")


def _is_stale(holder: LockHolder) -> bool:
    return holder.host == socket.gethostname() and (holder.pid <= 0 or not _alive(holder.pid))


def _try_create(path: Path, holder: LockHolder) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(holder), f)
    return True


def acquire(directory: str | Path, command: str) -> LockHolder:
    """Take ``directory``'s lock for this process (creating the directory), or raise
    :class:`OutputInUseError` naming the live run that holds it."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise NotADirectoryError(f"output {d} is a file, not a directory; choose another --out")
    d.mkdir(parents=True, exist_ok=True)
    me = LockHolder(socket.gethostname(), os.getpid(), time.time(), command, uuid.uuid4().hex)
    path = d / LOCK_NAME
    for _ in range(3):
        if _try_create(path, me):
            return me
        other = read_holder(d)
        if other is None:
            continue  # released between our two calls
        if other.pid == me.pid and other.host == me.host:
            raise OutputInUseError(f"{d} is already being written by this process ({other.describe()})")
        if not _is_stale(other):
            raise OutputInUseError(
                f"{d} is being written by another run: {other.describe()}. Wait for it, use another "
                f"--out, or, if that run is dead (e.g. on a lost node), delete {path} and rerun."
            )
        # a killed run's lock: move it aside atomically so that only one taker wins
        try:
            os.replace(path, d / f".stale-{uuid.uuid4().hex[:8]}{LOCK_NAME}")
        except FileNotFoundError:
            pass
    raise OutputInUseError(f"could not take the lock {path}; another run keeps taking it")


def release(directory: str | Path, holder: LockHolder) -> None:
    """Remove the lock if it is still ours (a run that took over a stale lock keeps its own)."""
    current = read_holder(directory)
    if current is not None and current.token == holder.token:
        (Path(directory) / LOCK_NAME).unlink(missing_ok=True)
    for stale in Path(directory).glob(f".stale-*{LOCK_NAME}"):
        stale.unlink(missing_ok=True)


@contextmanager
def output_lock(directory: str | Path, command: str) -> Iterator[LockHolder]:
    """``with output_lock(out, "hyperrep zoo"):`` — hold ``out`` for the duration of a run."""
    holder = acquire(directory, command)
    try:
        yield holder
    finally:
        release(directory, holder)
