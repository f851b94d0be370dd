"""One writer per output directory.

Two runs writing one zoo, autoencoder or experiments directory would interleave shards and
checkpoints. The first run holds ``DIR/.hyperrep.lock``: a file naming it (host, pid, start time,
command) on which it keeps an exclusive ``flock`` for as long as it runs. The kernel drops that
``flock`` when the process ends in any way, ``kill -9`` included, so a rerun takes over a killed
run's lock without a manual step and without guessing from pids (which containers reuse). A second
live run stops at once with an error naming the holder. A lock file naming a run on another host
whose ``flock`` is not visible here (a file system that does not share locks) is not taken over:
the error says how to clear it.

A directory inside a locked one, or one holding a locked directory (a pipeline's out dir and a
stage command's --out within it), counts as in use too. Remote URIs (``s3://``) are not locked:
:func:`local_output_lock` skips them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from hyperrep_ray.remote_out import is_remote

LOCK_NAME = ".hyperrep.lock"
#: Temporary files of hyperrep_ray's atomic writes (io.temporary_sibling, store's shard writes).
PARTIAL_WRITE = re.compile(r"^\.tmp-[0-9a-f]{8}-")
#: How deep below a directory a lock of another run is looked for (paper pipeline: OUT/mnist/zoo).
NESTED_DEPTH = 2
_HELD: dict[str, int] = {}  # token -> the open, flock'ed lock file of each lock this process holds


class OutputLockError(RuntimeError):
    """The output directory cannot be taken by this run; the message says why and what to do."""


class OutputInUseError(OutputLockError):
    """Another live run writes the same output directory (or one inside it or around it)."""


class OutputNotWritableError(OutputLockError):
    """The output is a file, or a directory this process cannot write."""


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


def read_holder(directory: str | Path) -> LockHolder | None:
    """The run named by ``directory``'s lock file, or None; an unreadable file names no one (pid -1)."""
    try:
        data = json.loads((Path(directory) / LOCK_NAME).read_text())
        return LockHolder(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, OSError):
        return LockHolder(host=socket.gethostname(), pid=-1, started=0.0, command="?", token="")


def writable_dir(directory: str | Path) -> Path:
    """``directory``, created if missing; :class:`OutputNotWritableError` when it is a file or
    cannot be written (permissions, a read-only file system)."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise OutputNotWritableError(f"output {d} is a file, not a directory; choose another --out")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputNotWritableError(f"cannot create {d}: a parent is a file; choose another --out") from None
    except OSError as e:
        raise OutputNotWritableError(_unwritable(d, e)) from None
    if not os.access(d, os.W_OK | os.X_OK):
        code = errno.EROFS if os.statvfs(d).f_flag & os.ST_RDONLY else errno.EACCES
        raise OutputNotWritableError(_unwritable(d, OSError(code, os.strerror(code).lower())))
    return d


def _unwritable(d: Path, e: OSError) -> str:
    why = "is on a read-only file system" if e.errno == errno.EROFS else f"cannot be written ({e.strerror})"
    return f"output {d} {why}; choose another --out or make it writable"


def _flock(fd: int, shared: bool = False) -> bool | None:
    """True when taken, False when another process holds it, None when the file system has no locks."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise


def _live(path: Path) -> bool:
    """Whether a process (here, or on another host sharing the file system's locks) holds ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _held_by_other(_flock(fd, shared=True), read_holder(path.parent))
    finally:
        os.close(fd)  # also drops the probe's shared lock


def _alive_here(holder: LockHolder | None) -> bool:
    """Without file locks: a same-host holder is live while its pid exists (other hosts: assumed live)."""
    if holder is None:
        return False
    if holder.host != socket.gethostname():
        return True
    if holder.pid <= 0:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_use(d: Path, holder: LockHolder | None, where: Path) -> OutputInUseError:
    who = holder.describe() if holder else "another run"
    if holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname():
        return OutputInUseError(f"{where} is already being written by this process ({who})")
    inside = ""
    if where != d:
        inside = f" (it holds {where}, {'which contains' if where in d.resolve().parents else 'inside'} {d})"
    return OutputInUseError(
        f"{d} is being written by another run{inside}: {who}. Wait for it to finish, or use another "
        f"--out; if that run is dead (e.g. on a lost node), delete {where / LOCK_NAME} and rerun."
    )


def _held_by_other(got: bool | None, named: LockHolder | None) -> bool:
    """Whether the lock file we opened belongs to a live run: its flock is held elsewhere, or (no
    locks on this file system, or a run on another host, whose locks may not be shared) it names one."""
    if got is False:
        return True
    other_host = named is not None and named.token != "" and named.host != socket.gethostname()
    return other_host or (got is None and _alive_here(named))


def _named_holder(d: Path) -> LockHolder | None:
    """The holder's name; a run that has just taken the lock writes it within moments."""
    for _ in range(20):
        holder = read_holder(d)
        if holder is None or holder.pid > 0:
            return holder
        time.sleep(0.05)
    return read_holder(d)


def _nested_holder(d: Path) -> Path | None:
    """A directory around ``d`` or up to NESTED_DEPTH below it that a live run holds."""
    around = [p for p in d.resolve().parents if (p / LOCK_NAME).exists()]
    below = [p.parent for i in range(1, NESTED_DEPTH + 1) for p in d.glob("/".join(["*"] * i + [LOCK_NAME]))]
    for p in [*around, *below]:
        if _live(p / LOCK_NAME):
            return p
    return None


def _take(path: Path) -> tuple[int, bool | None] | None:
    """Open ``path`` and try to lock it: (fd, locked or None) for the file now at ``path``, or None
    when a releasing holder removed it meanwhile (try again)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    got = _flock(fd)
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same = False
    if got is False or not same:
        os.close(fd)
        return (-1, False) if same else None
    return fd, got


def acquire(directory: str | Path, command: str) -> LockHolder:
    """Take ``directory``'s lock for this process (creating the directory), or raise
    :class:`OutputInUseError` naming the live run that holds it (or a directory around or inside it)."""
    d = writable_dir(directory)
    path = d / LOCK_NAME
    me = LockHolder(socket.gethostname(), os.getpid(), time.time(), command, uuid.uuid4().hex)
    for _ in range(5):
        try:
            taken = _take(path)
        except OSError as e:
            raise OutputNotWritableError(_unwritable(d, e)) from None
        if taken is None:
            continue
        fd, got = taken
        if _held_by_other(got, read_holder(d)):
            if fd >= 0:
                os.close(fd)
            raise _in_use(d, _named_holder(d), d)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(asdict(me)).encode())
        _HELD[me.token] = fd
        nested = _nested_holder(d)
        if nested is not None:
            release(d, me)
            raise _in_use(d, _named_holder(nested), nested)
        return me
    raise OutputInUseError(f"could not take the lock {path}; other runs keep taking and releasing it")


def release(directory: str | Path, holder: LockHolder) -> None:
    """Remove the lock if it is still ours (a run that took over a killed run's lock keeps its own)."""
    current = read_holder(directory)
    if current is not None and current.token == holder.token:
        (Path(directory) / LOCK_NAME).unlink(missing_ok=True)
    fd = _HELD.pop(holder.token, None)
    if fd is not None:
        os.close(fd)  # drops the flock


@contextmanager
def output_lock(directory: str | Path, command: str) -> Iterator[LockHolder]:
    """``with output_lock(out, "hyperrep zoo"):`` — hold ``out`` for the duration of a run."""
    holder = acquire(directory, command)
    try:
        yield holder
    finally:
        release(directory, holder)


@contextmanager
def local_output_lock(out: str | Path, command: str) -> Iterator[LockHolder | None]:
    """:func:`output_lock` for a local ``out``, and after taking it the partial files of a killed
    run removed; a remote URI (``s3://``...) is not locked (yields None)."""
    if is_remote(str(out)):
        yield None
        return
    with output_lock(out, command) as holder:
        remove_partial_writes(out)
        yield holder


def remove_partial_writes(directory: str | Path) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed run left under ``directory``: only
    safe while holding its lock (no other writer can be half-way through one)."""
    removed = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if PARTIAL_WRITE.match(name):
                p = Path(root) / name
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
