#!/usr/bin/env python
"""Parquet weight store vs numpy.save/numpy.load: write/read throughput, size, predicate pushdown.

A synthetic store of ``--models`` x ``--epochs`` checkpoints (random float32 weights, 2464 per
row, as many rows as a real digits zoo) is written shard by shard exactly as the zoo stage does
(``store.build_shard_table`` + ``store.write_shard``, ``--models-per-shard`` models per file);
the same (rows, 2464) float32 array goes through ``numpy.save``/``numpy.load``. Reads run on a
warm page cache (best of ``--repeats``); "bytes read" is what the process read through read
syscalls (``rchar`` in /proc/self/io), so it shows how much of the file a query touches.

    python bench/store_io.py --quick      # 200 models x 11 epochs, seconds
    python bench/store_io.py              # 1000 models x 11 epochs
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import emit, log, machine_lines  # noqa: E402

from hyperrep_ray import store  # noqa: E402
from hyperrep_ray.zoo.cnn import num_params  # noqa: E402


def rchar() -> int | None:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def fs_type(path: Path) -> str:
    try:
        best = ("", "unknown")
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mnt, typ = parts[1], parts[2]
            if str(path).startswith(mnt) and len(mnt) > len(best[0]):
                best = (mnt, typ)
        return f"{best[1]} (mounted at {best[0]})"
    except OSError:
        return "unknown"


def timed(fn, repeats: int):
    """(result of the last call, best seconds, bytes read by the best call)."""
    best, best_bytes, out = float("inf"), None, None
    for _ in range(repeats):
        r0 = rchar()
        t0 = time.perf_counter()
        out = fn()
        secs = time.perf_counter() - t0
        r1 = rchar()
        if secs < best:
            best, best_bytes = secs, (r1 - r0 if r0 is not None and r1 is not None else None)
    return out, best, best_bytes


def synthetic_zoo(n_models: int, n_epochs: int, n_params: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = (0.1 * rng.standard_normal((n_models, n_epochs, n_params))).astype(np.float32)
    metrics = {m: rng.random((n_models, n_epochs)).astype(np.float32) for m in store.METRIC_COLUMNS}
    return weights, metrics


@dataclass
class Inputs:
    """One synthetic zoo, as store shards and as the same rows in one (rows, N) array."""

    zoo: str
    npy: Path
    weights: np.ndarray  # (models, epochs, N)
    metrics: dict[str, np.ndarray]
    splits: list[str]
    shards: list[list[int]]
    flat: np.ndarray  # (rows, N) in the store's order (shard, epoch, model)
    epoch_of_row: np.ndarray
    split_of_row: np.ndarray

    @property
    def n_epochs(self) -> int:
        return self.weights.shape[1]


Result = tuple[str, str, int, float, "int | None"]  # (format, operation, rows, seconds, bytes read)
HYPER = {"activation": "tanh", "init": "default", "lr": 1e-3, "weight_decay": 0.0, "optimizer": "adam"}


def make_inputs(base: Path, n_models: int, n_epochs: int, models_per_shard: int) -> Inputs:
    n_params = num_params(1)
    weights, metrics = synthetic_zoo(n_models, n_epochs, n_params)
    splits = store.assign_splits(n_models, (0.7, 0.15, 0.15), 0)
    zoo = str(base / "zoo")
    store.write_json(
        store.zoo_json_path(zoo), {"format_version": store.FORMAT_VERSION, "num_params": n_params}
    )
    shards = [
        list(range(i, min(n_models, i + models_per_shard))) for i in range(0, n_models, models_per_shard)
    ]
    return Inputs(
        zoo=zoo,
        npy=base / "weights.npy",
        weights=weights,
        metrics=metrics,
        splits=splits,
        shards=shards,
        flat=np.concatenate([weights[ids].transpose(1, 0, 2).reshape(-1, n_params) for ids in shards]),
        epoch_of_row=np.concatenate([np.repeat(np.arange(n_epochs), len(ids)) for ids in shards]),
        split_of_row=np.concatenate([np.tile(np.asarray(splits, object)[ids], n_epochs) for ids in shards]),
    )


def write_parquet(x: Inputs) -> None:
    """The zoo stage's way: one shard table per group of models, written atomically."""
    shutil.rmtree(Path(x.zoo) / "checkpoints", ignore_errors=True)
    for index, ids in enumerate(x.shards):
        table, _ = store.build_shard_table(
            ids,
            [i + 1 for i in ids],
            [x.splits[i] for i in ids],
            x.weights[ids],
            {m: v[ids] for m, v in x.metrics.items()},
            HYPER,
        )
        store.write_shard(x.zoo, index, table, {"model_ids": ids, "epochs": list(range(x.n_epochs))})


def measure_writes(x: Inputs, repeats: int) -> list[Result]:
    rows = len(x.flat)
    _, s, _ = timed(lambda: write_parquet(x), repeats)
    out: list[Result] = [
        ("Parquet", f"write: build_shard_table + write_shard ({len(x.shards)} shards)", rows, s, None)
    ]
    _, s, _ = timed(lambda: np.save(x.npy, x.flat), repeats)
    out.append(("numpy", "write: numpy.save", rows, s, None))
    return out


def measure_whole_reads(x: Inputs, repeats: int) -> list[Result]:
    rows, n_params = x.flat.shape
    t, s, b = timed(lambda: store.read_checkpoints(x.zoo), repeats)
    out: list[Result] = [("Parquet", "read_checkpoints: whole store (Arrow table)", t.num_rows, s, b)]
    (w, _), s, b = timed(lambda: store.load_weights(x.zoo), repeats)
    assert w.shape == (rows, n_params)
    out.append(("Parquet", "load_weights: whole store (torch + pandas)", rows, s, b))
    a, s, b = timed(lambda: np.load(x.npy), repeats)
    assert a.shape == (rows, n_params)
    out.append(("numpy", "numpy.load: whole array", rows, s, b))
    cols = ["model_id", "epoch", "split", "test_acc"]
    t, s, b = timed(lambda: store.read_checkpoints(x.zoo, columns=cols), repeats)
    out.append(("Parquet", "read_checkpoints: metric columns only, whole store", t.num_rows, s, b))
    return out


def measure_selective_reads(x: Inputs, repeats: int) -> list[Result]:
    """One epoch of one split: what predicate pushdown saves over reading everything."""
    epoch, split = x.n_epochs // 2, "train"
    sel = f"epoch {epoch}, split {split}"
    t, s, b = timed(lambda: store.read_checkpoints(x.zoo, epochs=[epoch], split=split), repeats)
    n_sel = t.num_rows
    out: list[Result] = [("Parquet", f"read_checkpoints: {sel}", n_sel, s, b)]
    (w, _), s, b = timed(lambda: store.load_weights(x.zoo, epochs=[epoch], split=split), repeats)
    out.append(("Parquet", f"load_weights: {sel}", w.shape[0], s, b))
    mask = (x.epoch_of_row == epoch) & (x.split_of_row == split)
    assert int(mask.sum()) == n_sel
    a, s, b = timed(lambda: np.load(x.npy)[mask], repeats)
    out.append(("numpy", f"numpy.load + row mask: {sel}", a.shape[0], s, b))
    a, s, _ = timed(lambda: np.array(np.load(x.npy, mmap_mode="r")[mask]), repeats)
    out.append(("numpy", f"numpy.load(mmap_mode='r') + row mask: {sel}", a.shape[0], s, None))
    return out


def report(args, results: list[Result], sizes: dict[str, int], where: str, n_models: int) -> str:
    n_params = num_params(1)
    rows = n_models * args.epochs
    payload = rows * n_params * 4
    lines = [
        "# Weight store I/O: Parquet store vs numpy",
        "",
        *machine_lines(load_when="at end"),
        f"- filesystem: {where}",
        f"- store: {n_models} models x {args.epochs} epochs = {rows} rows of {n_params} float32 "
        f"({payload / 1e6:.1f} MB of weights), {-(-n_models // args.models_per_shard)} shards of "
        f"{args.models_per_shard} models, zstd level 1, one row group per epoch (as the zoo stage writes); "
        "random N(0, 0.1) weights (trained weights compress about as badly: float mantissas)",
        "- size on disk: "
        + ", ".join(f"{k} {v / 1e6:.1f} MB ({v / payload:.3f} x payload)" for k, v in sizes.items()),
        f"- best of {args.repeats}, warm page cache; MB/s = weight rows touched x {n_params * 4} bytes / s; "
        "bytes read = rchar from /proc/self/io (read syscalls; mmap page-ins are not counted)",
        "",
        "| format | operation | rows | seconds | MB/s | bytes read | of the file(s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for fmt_, op, n, s, b in results:
        rate = n * n_params * 4 / 1e6 / s
        read, frac = ("-", "-") if b is None else (f"{b / 1e6:.2f} MB", f"{b / sizes[fmt_]:.3f}")
        lines.append(f"| {fmt_} | {op} | {n} | {s:.3f} | {rate:,.0f} | {read} | {frac} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 models instead of 1000")
    p.add_argument("--models", type=int, default=None)
    p.add_argument("--epochs", type=int, default=11, help="checkpoints per model (epochs 0..E-1)")
    p.add_argument("--models-per-shard", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    n_models = args.models or (200 if args.quick else 1000)
    base = Path(tempfile.mkdtemp(prefix="store_io_", dir=args.dir))
    try:
        mb = n_models * args.epochs * num_params(1) * 4 / 1e6
        log(f"generating {n_models} x {args.epochs} checkpoints ({mb:.0f} MB of float32 weights) in {base}")
        x = make_inputs(base, n_models, args.epochs, args.models_per_shard)
        results = measure_writes(x, args.repeats)
        sizes = {"Parquet": dir_size(Path(x.zoo) / "checkpoints"), "numpy": x.npy.stat().st_size}
        log("reading")
        results += measure_whole_reads(x, args.repeats) + measure_selective_reads(x, args.repeats)
    finally:
        where = fs_type(base)
        shutil.rmtree(base, ignore_errors=True)
    emit(report(args, results, sizes, where, n_models), args.out)


if __name__ == "__main__":
    main()
