"""Parquet weight store: one directory per zoo, ``zoo.json`` + ``checkpoints/shard-*.parquet``.

Why Parquet: columnar, typed (weights as ``fixed_size_list<float32>[N]``), readable by pyarrow,
pandas, Ray Data and Spark alike, and row groups (one per epoch within a shard) let a reader
of one epoch skip the rest. Every file is written under a temporary name and renamed, so a
crash never leaves a half file under a real name; readers check schema, vector length, row
counts and finiteness, and name the file when something is wrong instead of dropping rows.
Paths may be local or any URI pyarrow understands (``s3://``, ``gs://``).
"""

from __future__ import annotations

import errno
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

FORMAT_VERSION = 1
SHARD_META_KEY = b"hyperrep.shard"
METRIC_COLUMNS = ("train_acc", "test_acc", "train_loss", "test_loss")
HYPERPARAMETER_COLUMNS = ("activation", "init", "lr", "weight_decay", "optimizer")
SPLITS = ("train", "val", "test")


class StoreError(ValueError):
    """The store (or one of its files) cannot be used as it is; the message says what to do."""


def checkpoint_schema(n_params: int) -> pa.Schema:
    return pa.schema(
        [
            ("model_id", pa.int32()),
            ("seed", pa.int64()),
            ("epoch", pa.int16()),
            ("split", pa.string()),
            ("weights", pa.list_(pa.float32(), n_params)),
            *[(m, pa.float32()) for m in METRIC_COLUMNS],
            ("activation", pa.string()),
            ("init", pa.string()),
            ("lr", pa.float32()),
            ("weight_decay", pa.float32()),
            ("optimizer", pa.string()),
        ]
    )


# ---------------------------------------------------------------- filesystem helpers


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or a URI such as s3://bucket/zoo."""
    if "://" in str(uri):
        return pafs.FileSystem.from_uri(str(uri))
    import os

    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(str(uri)))


def join(path: str, *parts: str) -> str:
    return "/".join([path.rstrip("/"), *parts])


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def atomic_write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    tmp = _tmp_name(path)
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    except OSError as e:
        _discard(fs, tmp)
        what, fix = _write_problem(e)
        raise StoreError(f"{what} while writing {path}; {fix} and rerun the same command") from None


def _tmp_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.tmp-{uuid.uuid4().hex[:8]}-{tail}"


def write_json(uri: str, obj: dict[str, Any]) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    atomic_write_bytes(fs, path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(uri: str) -> dict[str, Any]:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


# ---------------------------------------------------------------- zoo metadata


def zoo_json_path(root: str) -> str:
    return join(root, "zoo.json")


def read_zoo_meta(root: str) -> dict[str, Any]:
    fs, path = resolve(zoo_json_path(root))
    if not exists(fs, path):
        raise StoreError(
            f"no weight store at {root}: {path} is missing. Train a zoo there first with "
            f"`hyperrep zoo --out {root}` (or point --zoo at an existing store)."
        )
    try:
        meta = read_json(zoo_json_path(root))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(
            f"{path} is not valid JSON ({e}); restore it or retrain the zoo into a new --out"
        ) from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{path} has format_version {meta.get('format_version')!r}; "
            f"this hyperrep_ray reads {FORMAT_VERSION}"
        )
    return meta


def assign_splits(num_models: int, fractions: Sequence[float], seed: int) -> list[str]:
    """Split by *model* (never by checkpoint): a seeded permutation of model ids, first 70 %
    train, next 15 % val, rest test. Depends only on (num_models, fractions, seed) so every
    shard and every rerun agree."""
    order = np.random.default_rng(seed).permutation(num_models)
    n_train = int(round(fractions[0] * num_models))
    n_val = int(round(fractions[1] * num_models))
    splits = np.empty(num_models, dtype=object)
    splits[order[:n_train]] = "train"
    splits[order[n_train : n_train + n_val]] = "val"
    splits[order[n_train + n_val :]] = "test"
    return [str(s) for s in splits]


def empty_splits(num_models: int, fractions: Sequence[float], seed: int) -> list[str]:
    """The splits that get no model although their fraction is positive (a zoo too small to split)."""
    got = set(assign_splits(num_models, fractions, seed))
    return [s for s, f in zip(SPLITS, fractions, strict=True) if f > 0 and s not in got]


def models_for_every_split(fractions: Sequence[float], seed: int) -> int:
    """The smallest zoo whose every split with a positive fraction gets a model (6 for 70/15/15)."""
    n = 1
    while empty_splits(n, fractions, seed):
        n += 1
    return n


def split_too_small(meta: dict[str, Any], needed: Sequence[str] = ("train", "val")) -> str | None:
    """Why the zoo described by ``meta`` (its zoo.json) cannot be split into ``needed``, or None."""
    rule = meta.get("split_rule") or {}
    fractions = [float(rule.get("fractions", {}).get(s, 0.0)) for s in SPLITS]
    if "num_models" not in meta or not any(fractions):
        return None
    n, seed = int(meta["num_models"]), int(rule.get("seed", 0))
    missing = [s for s in empty_splits(n, fractions, seed) if s in needed]
    if not missing:
        return None
    return (
        f"{n} model(s) leave the {' and '.join(missing)} split empty (models are split "
        f"{'/'.join(f'{round(100 * f)}' for f in fractions)} %); train a zoo of at least "
        f"{models_for_every_split(fractions, seed)} models"
    )


# ---------------------------------------------------------------- shards


def shard_path(root: str, index: int) -> str:
    return join(root, "checkpoints", f"shard-{index:05d}.parquet")


def build_shard_table(
    model_ids: Sequence[int],
    seeds: Sequence[int],
    splits: Sequence[str],
    weights: np.ndarray,
    metrics: dict[str, np.ndarray],
    hyper: dict[str, Any],
    epochs: Sequence[int] | None = None,
) -> tuple[pa.Table, list[int]]:
    """Rows sorted by (epoch, model_id) so each epoch is one row group.

    ``weights`` is (K, E, N), metrics (K, E). Models whose weights or metrics are not finite
    at any recorded epoch diverged; they are left out and returned so callers can record them.
    """
    k, n_epochs, n_params = weights.shape
    epochs = list(range(n_epochs)) if epochs is None else list(epochs)
    finite = np.isfinite(weights).all(axis=(1, 2))
    for m in metrics.values():
        finite &= np.isfinite(m).all(axis=1)
    keep = np.flatnonzero(finite)
    diverged = [int(model_ids[int(i)]) for i in np.flatnonzero(~finite)]
    rows_e = np.repeat(np.asarray(epochs, np.int16), len(keep))
    rows_k = np.tile(keep, n_epochs)
    w = weights[rows_k, np.repeat(np.arange(n_epochs), len(keep))].astype(np.float32, copy=False)
    n = len(rows_k)
    cols = {
        "model_id": pa.array(np.asarray(model_ids, np.int32)[rows_k]),
        "seed": pa.array(np.asarray(seeds, np.int64)[rows_k]),
        "epoch": pa.array(rows_e),
        "split": pa.array([splits[i] for i in rows_k], pa.string()),
        "weights": pa.FixedSizeListArray.from_arrays(pa.array(w.reshape(-1)), n_params),
    }
    e_idx = np.repeat(np.arange(n_epochs), len(keep))
    for name in METRIC_COLUMNS:
        cols[name] = pa.array(metrics[name][rows_k, e_idx].astype(np.float32))
    for name in HYPERPARAMETER_COLUMNS:
        v = hyper[name]
        cols[name] = pa.array([v] * n, pa.float32() if isinstance(v, float | int) else pa.string())
    table = pa.table(cols, schema=checkpoint_schema(n_params))
    return table, diverged


def write_shard(root: str, index: int, table: pa.Table, info: dict[str, Any]) -> str:
    """Atomically write one shard; ``info`` (model ids, epochs, diverged) goes into the file's
    key-value metadata so the file alone says whether it is complete."""
    fs, path = resolve(shard_path(root, index))
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    meta = dict(table.schema.metadata or {})
    meta[SHARD_META_KEY] = json.dumps({"shard": index, **info}).encode()
    table = table.replace_schema_metadata(meta)
    n_epochs = max(1, len(info.get("epochs", [])))
    tmp = _tmp_name(path)
    try:
        pq.write_table(
            table,
            tmp,
            filesystem=fs,
            row_group_size=max(1, table.num_rows // n_epochs),
            # float weights almost never repeat: a dictionary page for them made files 1.5x the
            # payload and writes 5x slower (bench/store_io.py); the small columns keep it
            use_dictionary=[c for c in table.column_names if c != "weights"],
            compression="zstd",
            compression_level=1,
        )
        fs.move(tmp, path)
    except OSError as e:
        _discard(fs, tmp)
        raise ShardWriteError(shard_write_failed(root, index, e)) from None
    return path


class ShardWriteError(StoreError):
    """A shard could not be written (disk full, no permission); the shards written before are kept."""


def shard_write_failed(root: str, index: int, error: OSError) -> str:
    """One line: what failed, why, and that a rerun keeps the finished shards."""
    what, fix = _write_problem(error)
    return (
        f"{what} while writing shard {index} of the store at {root}; {fix} and rerun the same command: "
        f"the finished shards are kept and only the missing ones are trained"
    )


def _write_problem(error: OSError) -> tuple[str, str]:
    """("disk full", "free space") or ("write error (...)", "fix the cause") for a failed write."""
    text = " ".join(str(error).split())
    full = error.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "quota" in text.lower()
    return ("disk full", "free space") if full else (f"write error ({text})", "fix the cause")


def _discard(fs: pafs.FileSystem, path: str) -> None:
    """Remove a partial file (best effort: the rerun's lock holder clears what is left)."""
    try:
        fs.delete_file(path)
    except OSError:
        pass


def _bad_file(path: str, why: str) -> StoreError:
    return StoreError(
        f"{path}: {why}. The store keeps only complete shards written by hyperrep_ray; delete this "
        f"file and rerun the same `hyperrep zoo` command to retrain just this shard."
    )


def shard_info(path: str, n_params: int, fs: pafs.FileSystem | None = None) -> dict[str, Any]:
    """Read and check one shard's footer (cheap: no data pages). Raises StoreError naming the file."""
    fs = fs or resolve(path)[0]
    try:
        with fs.open_input_file(path) as f:
            md = pq.read_metadata(f)
            schema = pq.read_schema(f)
    except (pa.ArrowInvalid, OSError) as e:
        raise _bad_file(path, f"not a readable Parquet file, it may be truncated ({e})") from None
    raw = (schema.metadata or {}).get(SHARD_META_KEY)
    if raw is None:
        raise _bad_file(path, "is a Parquet file but not a hyperrep_ray shard (no shard metadata)")
    expected = checkpoint_schema(n_params)
    for field in expected:
        if field.name not in schema.names:
            raise _bad_file(path, f"has no column {field.name!r}")
        got = schema.field(field.name).type
        if got != field.type:
            raise _bad_file(path, f"column {field.name!r} has type {got}, expected {field.type}")
    info = json.loads(raw)
    n_expected = (len(info["model_ids"]) - len(info.get("diverged", []))) * len(info["epochs"])
    if md.num_rows != n_expected:
        raise _bad_file(path, f"holds {md.num_rows} rows, its metadata promises {n_expected}")
    info["num_rows"] = md.num_rows
    return info


def list_shards(root: str) -> list[str]:
    fs, path = resolve(join(root, "checkpoints"))
    if not exists(fs, path):
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and i.base_name.startswith("shard-")
        and i.base_name.endswith(".parquet")
    )


# ---------------------------------------------------------------- readers


def read_checkpoints(
    root: str,
    epochs: Iterable[int] | None = None,
    split: str | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    check_finite: bool = True,
) -> pa.Table:
    """Rows of the store, filtered by epoch and split, validated file by file.

    The epoch filter is pushed down to Parquet row groups, so one epoch of one split reads a
    fraction of the store."""
    meta = read_zoo_meta(root)
    n_params = int(meta["num_params"])
    files = list_shards(root)
    if not files:
        raise StoreError(f"the store at {root} has no checkpoint shards yet; run `hyperrep zoo --out {root}`")
    fs, _ = resolve(root)
    for f in files:
        shard_info(f, n_params, fs)
    flt = _filter(epochs, split)
    ds = pds.dataset(files, filesystem=fs, format="parquet", schema=checkpoint_schema(n_params))
    try:
        table = ds.to_table(columns=list(columns) if columns else None, filter=flt)
    except (pa.ArrowInvalid, OSError) as e:
        raise StoreError(f"reading the store at {root} failed: {e}") from None
    if check_finite and "weights" in table.column_names and table.num_rows:
        flat = table.column("weights").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        if not np.isfinite(flat).all():
            bad = table.num_rows - int(np.isfinite(flat.reshape(table.num_rows, n_params)).all(1).sum())
            raise StoreError(
                f"the store at {root} holds {bad} rows with NaN/inf weights; retrain the affected shard"
            )
    return table


def _selection(
    epochs: Iterable[int] | None, split: str | Sequence[str] | None
) -> tuple[list[int] | None, list[str] | None]:
    ep = None if epochs is None else sorted({int(e) for e in epochs})
    sp = None if split is None else ([split] if isinstance(split, str) else list(split))
    for s in sp or []:
        if s not in SPLITS:
            raise StoreError(f"unknown split {s!r}; choose from {list(SPLITS)}")
    return ep, sp


def _filter(epochs: Iterable[int] | None, split: str | Sequence[str] | None) -> pc.Expression | None:
    ep, sp = _selection(epochs, split)
    parts = []
    if ep is not None:
        parts.append(pc.field("epoch").isin(pa.array(ep, pa.int16())))
    if sp is not None:
        parts.append(pc.field("split").isin(pa.array(sp, pa.string())))
    return parts[0] & parts[1] if len(parts) == 2 else (parts[0] if parts else None)


def _ray_filter(epochs: Iterable[int] | None, split: str | Sequence[str] | None) -> Any:
    from ray.data.expressions import col

    ep, sp = _selection(epochs, split)
    parts = ([col("epoch").is_in(ep)] if ep is not None else []) + (
        [col("split").is_in(sp)] if sp is not None else []
    )
    return parts[0] & parts[1] if len(parts) == 2 else (parts[0] if parts else None)


def weights_matrix(table: pa.Table) -> np.ndarray:
    """(rows, N) float32 view of the weights column."""
    col = table.column("weights").combine_chunks()
    n = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), n).astype(np.float32, copy=False)


def load_weights(
    root: str, epochs: Iterable[int] | None = None, split: str | Sequence[str] | None = None
) -> tuple[Any, Any]:
    """(weights as a torch tensor (rows, N), the other columns as a pandas DataFrame), rows
    sorted by (model_id, epoch)."""
    import torch

    table = read_checkpoints(root, epochs, split).sort_by([("model_id", "ascending"), ("epoch", "ascending")])
    w = torch.from_numpy(weights_matrix(table).copy())
    return w, table.drop_columns(["weights"]).to_pandas()


def to_ray_dataset(root: str, epochs: Iterable[int] | None = None, split: str | Sequence[str] | None = None):
    """The store as a Ray Dataset (for decoding/evaluation and DDP sharding), validated first."""
    import ray.data

    meta = read_zoo_meta(root)
    fs, _ = resolve(root)
    files = list_shards(root)
    if not files:
        raise StoreError(f"the store at {root} has no checkpoint shards yet; run `hyperrep zoo --out {root}`")
    for f in files:
        shard_info(f, int(meta["num_params"]), fs)
    ds = ray.data.read_parquet(files, filesystem=fs)
    flt = _ray_filter(epochs, split)
    if flt is not None:
        ds = ds.filter(expr=flt)
    return ds
