"""The --out of a command that writes a directory, held for the command's duration.

A second command on the same directory (or one around or inside it) stops before it writes
anything, with one line naming the run that holds it; a killed run's lock is taken over and its
partial files removed (:mod:`hyperrep_ray.run_lock`). Remote URIs are not locked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hyperrep_ray.cli.common import CommandError
from hyperrep_ray.run_lock import OutputLockError, local_output_lock


@contextmanager
def held_out(out: str, command: str) -> Iterator[None]:
    """``with held_out(args.out, "hyperrep zoo --out X"):`` run the command; a directory that is
    in use, a file or read-only is a :class:`CommandError` (one line, exit status 2)."""
    lock = local_output_lock(out, command)
    try:
        lock.__enter__()
    except OutputLockError as e:
        raise CommandError(str(e)) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)
