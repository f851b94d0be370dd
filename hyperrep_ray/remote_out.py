"""Pipeline outputs in cloud storage (``--out s3://bucket/run``, ``gs://...``, any pyarrow URI).

The stages write local files (Parquet shards, checkpoints, MLflow artifacts, figures), so a remote
``--out`` is staged in a local directory: what the URI already holds is copied down first (a
resubmitted job on a fresh head node resumes from it), and every stage's directory is copied up
as soon as the stage is finished, so an interruption loses at most the stage in progress.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pyarrow.fs as pafs


def is_remote(out: str) -> bool:
    """Any URI (``file://`` too: a mounted shared file system is used the same way)."""
    return "://" in str(out)


def staging_dir(uri: str) -> Path:
    """Where a remote ``--out`` is staged locally (``$HYPERREP_STAGING`` or ~/.cache/hyperrep)."""
    root = Path(os.environ.get("HYPERREP_STAGING", Path.home() / ".cache" / "hyperrep" / "staging"))
    return root / hashlib.sha256(uri.encode()).hexdigest()[:16]


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri)


def pull(uri: str, local: Path) -> int:
    """Copy what ``uri`` holds into ``local`` (files already there are kept); returns files copied."""
    fs, root = _fs(uri)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return 0
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    n = 0
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        target = local / os.path.relpath(info.path, root)
        if target.exists() and target.stat().st_size == info.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 16 << 20)  # streamed: shards can be larger than memory
        n += 1
    return n


def push(local: Path, uri: str, sub: str = "") -> None:
    """Copy ``local/sub`` (a finished stage, or everything) up to ``uri/sub``."""
    src = local / sub if sub else local
    if not src.exists():
        return
    fs, root = _fs(uri)
    dest = "/".join(p for p in (root.rstrip("/"), sub.strip("/")) if p)
    fs.create_dir(dest, recursive=True)
    local_fs = pafs.LocalFileSystem()
    pafs.copy_files(str(src.resolve()), dest, source_filesystem=local_fs, destination_filesystem=fs)
