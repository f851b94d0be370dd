#!/usr/bin/env python
"""How large a zoo does the autoencoder need? Test R^2 and the PCA bound against training models.

For each zoo size N (random train-split models, all their checkpoints in the epoch window) this fits
PCA(k) and trains the autoencoder (the package's own loop, one process, no Ray) on those N models
only, refitting the train statistics on them, and scores both on the whole test split with the
R^2 of ``metrics.json``. The autoencoder's test R^2 is read at its best validation epoch, as the
stage keeps it. Prints a Markdown table and draws R^2 against N (PNG).

    python bench/zoo_size.py --zoo runs/quick/zoo --sizes 50 100 200 350 --ae-epochs 60
    python bench/zoo_size.py --quick      # a smoke zoo built here, PCA and a 4-epoch autoencoder
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import ROOT, emit, log, machine_lines
from linear_bound import pca_r2

sys.path.insert(0, str(ROOT))

from hyperrep_ray.autoencoder.data import AEData, prepare_ae_data, train_statistics  # noqa: E402
from hyperrep_ray.autoencoder.loop import (  # noqa: E402
    LoopConfig,
    build_losses,
    evaluate_reconstruction,
    run_training_loop,
)
from hyperrep_ray.autoencoder.session import LocalSession  # noqa: E402
from hyperrep_ray.config import AEConfig, ae_preset  # noqa: E402
from hyperrep_ray.weightspace.tokens import token_layout  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", help="zoo store (default with --quick: a smoke zoo trained here)")
    p.add_argument("--quick", action="store_true", help="small sizes, a smoke zoo when --zoo is not given")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "paper"])
    p.add_argument("--sizes", type=int, nargs="+", help="numbers of train models (default: 4 up to all)")
    p.add_argument("--k", type=int, nargs="+", default=[48, 256])
    p.add_argument("--ae-epochs", type=int, default=60, help="autoencoder epochs per size (0: PCA only)")
    p.add_argument("--every", type=int, default=5, help="epochs between validation evaluations")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="which random train models make each size")
    p.add_argument(
        "--out",
        help="write the table (Markdown) here, the figure (.png) and the measured rows (.json) next to it; "
        "a rerun with the same --out reads back the sizes already measured",
    )
    p.add_argument(
        "--full-ae",
        help="a train-ae output trained on all train models of --zoo: its metrics.json gives the "
        "autoencoder point at the full size (no retraining)",
    )
    return p.parse_args(argv)


def train_subset(data: AEData, n: int, cfg: AEConfig, seed: int) -> AEData:
    """``data`` with only ``n`` random train models (all their checkpoints) and the train-split
    statistics refitted on them; val and test splits unchanged."""
    meta = data.meta["train"]
    ids = np.unique(meta["model_id"].to_numpy())
    if n > len(ids):
        raise SystemExit(f"size {n}: the train split has only {len(ids)} models")
    keep_ids = np.random.default_rng(seed).choice(ids, n, replace=False)
    keep = meta["model_id"].isin(keep_ids).to_numpy()
    w = data.weights["train"][keep]
    log(f"training on {n} of {len(ids)} train models ({len(w)} checkpoints)")
    return dataclasses.replace(
        data,
        weights={**data.weights, "train": w},
        meta={**data.meta, "train": meta[keep].reset_index(drop=True)},
        **train_statistics(w, data.in_channels, cfg.standardize),
    )


def ae_test_r2(data: AEData, cfg: AEConfig) -> tuple[float, int]:
    """(test R^2 at the best validation epoch, that epoch) of one autoencoder trained on ``data``."""
    layout = token_layout(data.in_channels)
    test = torch.from_numpy(data.weights["test"])
    mean = torch.from_numpy(data.mean_params)
    rec_fn = build_losses(cfg, layout, torch.from_numpy(data.var_tokens))
    seen: list[tuple[float, float, int]] = []

    def hook(model: Any, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        val = metrics.get("reconstruction_r2_val")
        if val is None or not np.isfinite(val):
            return {}
        with torch.no_grad():
            was = model.training
            model.eval()
            r_test = evaluate_reconstruction(model, test, mean, layout, rec_fn)["r2"]
            model.train(was)
        seen.append((float(val), float(r_test), epoch))
        log(f"  epoch {epoch}: val R² {val:.3f}, test R² {r_test:.3f}")
        return {}

    run_training_loop(LoopConfig(cfg, data.training_payload(), epoch_hook=hook), LocalSession())
    if not seen:
        return float("nan"), 0
    _, r_test, epoch = max(seen)
    return r_test, epoch


def measure(sub: AEData, n: int, cfg: AEConfig, args: argparse.Namespace, epochs: int, total: int) -> dict:
    """One size's row: the PCA bounds, and the autoencoder trained here (or read from --full-ae)."""
    row: dict[str, Any] = {"models": n}
    train, test = sub.weights["train"].astype(np.float64), sub.weights["test"].astype(np.float64)
    for k, _, r_test in pca_r2(train, test, args.k):  # one SVD for every k
        row[f"pca{k}"] = r_test
    log(f"{n} models: PCA {[round(row[f'pca{k}'], 3) for k in args.k]}")
    if n == total and args.full_ae:
        m = json.loads(Path(args.full_ae, "metrics.json").read_text())
        row["ae"], row["epoch"] = float(m["reconstruction_r2_test"]), int(m.get("kept_epoch", 0))
    elif epochs > 0:
        row["ae"], row["epoch"] = ae_test_r2(sub, cfg)
    else:
        row["ae"], row["epoch"] = float("nan"), 0
    return row


def load_rows(out: str | None) -> dict[str, dict]:
    path = Path(out).with_suffix(".json") if out else None
    return json.loads(path.read_text()) if path and path.is_file() else {}


def save_rows(out: str | None, rows: dict[str, dict]) -> None:
    if out:
        Path(out).with_suffix(".json").write_text(json.dumps(rows, indent=1))


def smoke_zoo(work: str) -> str:
    """A 40-model, 3-epoch digits zoo trained here (Ray Tasks), for ``--quick`` without ``--zoo``."""
    from hyperrep_ray.config import zoo_preset
    from hyperrep_ray.zoo.train import train_zoo

    out = os.path.join(work, "zoo")
    cfg = zoo_preset("smoke", num_models=40, epochs=3, population_size=10, models_per_shard=10)
    train_zoo(cfg, out, progress=False)
    return out


def figure(rows: list[dict[str, Any]], ks: list[int], path: str) -> None:
    from hyperrep_ray.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    n = [r["models"] for r in rows]
    for k in ks:
        ax.plot(n, [r[f"pca{k}"] for r in rows], "o--", label=f"PCA({k}) bound")
    if any(np.isfinite(r["ae"]) for r in rows):
        ax.plot(n, [r["ae"] for r in rows], "o-", color="black", label="autoencoder (best val epoch)")
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xticks(n, [str(v) for v in n])
    ax.set_xlabel("train models in the zoo")
    ax.set_ylabel("test-split reconstruction R²")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    work = tempfile.mkdtemp(prefix="zoo_size_")
    zoo = args.zoo
    if zoo is None:
        if not args.quick:
            raise SystemExit("give --zoo, or --quick to build a smoke zoo here")
        zoo = smoke_zoo(work)
    ae_epochs = 4 if args.quick and args.ae_epochs == 60 else args.ae_epochs
    preset = "smoke" if args.quick and args.zoo is None else args.preset
    cfg = ae_preset(preset, epochs=max(ae_epochs, 1), eval_every=min(args.every, max(ae_epochs, 1)))
    data = prepare_ae_data(zoo, cfg)
    total = len(np.unique(data.meta["train"]["model_id"]))
    sizes = args.sizes or sorted({max(4, total // 8), max(4, total // 4), max(4, total // 2), total})
    lines = ["# Test R² against the number of train models", "", *machine_lines(args.threads), ""]
    lines += [f"- zoo {zoo}: {total} train models; test split {len(data.weights['test'])} checkpoints"]
    lines += [f"- autoencoder: preset {preset}, {ae_epochs} epochs, seed {cfg.seed}", ""]
    head = " | ".join(f"PCA({k})" for k in args.k)
    lines += [f"| train models | checkpoints | {head} | autoencoder | kept epoch | s |"]
    lines += ["|---:|---:|" + "---:|" * len(args.k) + "---:|---:|---:|"]
    cache = load_rows(args.out)
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        key = f"{n}/{ae_epochs}/{args.seed}/{preset}"
        sub = train_subset(data, n, cfg, args.seed)
        cached = key in cache
        row = cache[key] if cached else measure(sub, n, cfg, args, ae_epochs, total)
        cache[key] = row
        save_rows(args.out, cache)
        rows.append(row)
        pcas = " | ".join(f"{row[f'pca{k}']:.3f}" for k in args.k)
        secs = "read back" if cached else f"{time.perf_counter() - t0:.0f}"
        lines.append(
            f"| {n} | {len(sub.weights['train'])} | {pcas} | {row['ae']:.3f} | {row['epoch']} | {secs} |"
        )
    emit("\n".join(lines), args.out)
    png = (os.path.splitext(args.out)[0] if args.out else os.path.join(work, "zoo_size")) + ".png"
    figure(rows, args.k, png)
    log(f"figure: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
