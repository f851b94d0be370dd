"""Atomic writes: the one place that writes a temporary file and renames it into place.

A reader, a rerun or a crash then only ever sees a complete old file or a complete new one, which is
what lets every stage skip finished work and resume after a kill."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def temporary_sibling(path: str | Path) -> Path:
    """A hidden name beside ``path``, unique per call so that two writers never share one."""
    p = Path(path)
    return p.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{p.name}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(p)
    try:
        yield tmp
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """``writer(tmp)`` writes the file (e.g. ``pq.write_table(t, tmp)``), then it becomes ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, obj: Any, sort_keys: bool = False) -> Path:
    """Indented JSON; numpy scalars and other numbers are written as floats."""
    return write_text(path, json.dumps(obj, indent=2, default=float, sort_keys=sort_keys) + "\n")


def write_npz(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """Uncompressed ``.npz`` at exactly ``path`` (``np.savez`` given a name would append ``.npz``)."""

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return write_with(path, writer)
