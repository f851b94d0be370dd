#!/usr/bin/env python
"""Cost and quality of one latent-GAN fit (S_GAN) at the quick pipeline's sizes, per epoch count.

The quick pipeline fits S_GAN on every train anchor (1,750 × 256 embeddings) and S_GAN30 on the top
30 % (525). This script fits the package's GAN (``sampling.gan.train_latent_gan``, paper
Appendix E.2: batch 32, the paper's learning rates) on such anchors, one torch thread (what a Ray
task with ``num_cpus=1`` gets), and reports

- seconds and CPU seconds per epoch (in this process, and inside a Ray task as the pipeline runs it);
- after chosen epochs, the MMD² (RBF kernel, median-distance bandwidth, unbiased) between 500 GAN
  samples and held-out embeddings of the same distribution, next to two reference rows: the train
  anchors themselves (what a perfect sampler reaches) and a per-dimension Gaussian fitted to them.

Embeddings: ``--ae DIR`` uses a trained autoencoder's anchors (train split) and embeds its val/test
checkpoints as the held-out set; without it, synthetic embeddings with the shape of real ones: a
5-component Gaussian mixture in 16 dimensions, mapped linearly to 256 and squashed by tanh.

    python bench/gan_fit.py --quick                 # 3 timed epochs, MMD after 1..3 epochs (~1 min)
    python bench/gan_fit.py --epochs 300 --at 25,50,100,150,200,300   # the study (~10 min on 1 core)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import ROOT, emit, fmt, log, machine_lines

sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from hyperrep_ray.sampling.gan import derived_seed, sample_gan, train_latent_gan  # noqa: E402

N_SAMPLES = 500


def synthetic_embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    """tanh(A h + b) with h from a 5-component Gaussian mixture in 16-d: clustered, low-rank, in (-1, 1)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.35, size=(16, dim))
    centres = rng.normal(0, 1.0, size=(5, 16))
    comp = rng.integers(0, 5, size=n)
    h = centres[comp] + 0.5 * rng.normal(size=(n, 16))
    return np.tanh(h @ a + 0.05 * rng.normal(size=(n, dim))).astype(np.float32)


def ae_embeddings(ae_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(train anchors, held-out embeddings of the val/test checkpoints) of a trained autoencoder."""
    from hyperrep_ray.autoencoder.artifacts import load_anchors
    from hyperrep_ray.autoencoder.bundle import HyperRepresentation, read_ae_info
    from hyperrep_ray.store import load_weights

    anchors = load_anchors(ae_dir).z
    info = read_ae_info(ae_dir)
    w, df = load_weights(info["zoo"], epochs=[max(info["config"]["epochs_window"])])
    held = w.numpy()[df["split"].isin(["val", "test"]).to_numpy()]
    return np.asarray(anchors, np.float32), HyperRepresentation.load(ae_dir).encode(held)


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD² with an RBF kernel exp(-|a-b|² / (2 h²))."""
    xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth**2))

    m, n = len(xt), len(yt)
    kxx, kyy, kxy = k(xt, xt), k(yt, yt), k(xt, yt)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def median_bandwidth(x: np.ndarray) -> float:
    d = torch.cdist(torch.as_tensor(x), torch.as_tensor(x))
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())


def fit_row(anchors: np.ndarray, held: np.ndarray, epochs: int, at: set[int], seed: int) -> dict:
    """One fit: seconds and CPU seconds per epoch, and MMD² of 500 samples after each epoch in ``at``."""
    h = median_bandwidth(held)
    scores: dict[int, float] = {}

    def score(epoch: int, gen: torch.nn.Module) -> None:
        if epoch in at:
            scores[epoch] = mmd2(sample_gan(gen, N_SAMPLES, derived_seed(seed, 2)), held, h)  # type: ignore[arg-type]
            gen.train()

    t, c = time.perf_counter(), time.process_time()
    train_latent_gan(anchors, seed=seed, epochs=epochs, on_epoch=score)
    return {
        "s_epoch": (time.perf_counter() - t) / epochs,
        "cpu_epoch": (time.process_time() - c) / epochs,
        "mmd": scores,
        "bandwidth": h,
    }


def ray_seconds_per_epoch(anchors: np.ndarray, epochs: int) -> tuple[float, int]:
    """(seconds per epoch, torch threads) of a fit in a Ray task with num_cpus=1, as in_dataset runs it."""
    import ray

    from hyperrep_ray.runtime import ensure_ray

    def task(a: np.ndarray) -> tuple[float, int]:
        t = time.perf_counter()
        train_latent_gan(a, seed=0, epochs=epochs)
        return (time.perf_counter() - t) / epochs, torch.get_num_threads()

    ensure_ray(num_cpus=2)
    out = ray.get(ray.remote(num_cpus=1)(task).remote(anchors))
    ray.shutdown()
    return out


def references(anchors: np.ndarray, held: np.ndarray, h: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    gauss = rng.normal(anchors.mean(0), anchors.std(0), size=(N_SAMPLES, anchors.shape[1]))
    pick = rng.choice(len(anchors), size=min(N_SAMPLES, len(anchors)), replace=False)
    return {"train anchors": mmd2(anchors[pick], held, h), "per-dimension Gaussian": mmd2(gauss, held, h)}


def report(
    args: argparse.Namespace,
    rows: dict[str, dict],
    refs: dict[str, dict[str, float]],
    ray_row: tuple[float, int] | None,
) -> str:
    lines = ["# Latent GAN fit: cost and sample quality", "", *machine_lines(threads=1), ""]
    lines += [f"- embeddings: {args.source}; held-out {args.held} rows; {N_SAMPLES} samples per score", ""]
    lines += ["| anchors | s/epoch | CPU s/epoch | steps/epoch | est. 300 epochs |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        m = int(name.split()[0])
        steps = -(-m // 32)
        lines.append(
            f"| {name} | {fmt(r['s_epoch'])} | {fmt(r['cpu_epoch'])} | {steps} | "
            f"{fmt(r['s_epoch'] * 300 / 60, 1)} min |"
        )
    if ray_row is not None:
        lines.append(
            f"| 1750 (Ray task, num_cpus=1, torch threads {ray_row[1]}) | {fmt(ray_row[0])} | - | 55 | "
            f"{fmt(ray_row[0] * 300 / 60, 1)} min |"
        )
    lines += ["", "MMD² to the held-out embeddings (lower is closer; x1e3):", ""]
    epochs = sorted({e for r in rows.values() for e in r["mmd"]})
    lines += [
        "| anchors | " + " | ".join(f"epoch {e}" for e in epochs) + " | train anchors | Gaussian |",
        "|---" * (len(epochs) + 3) + "|",
    ]
    for name, r in rows.items():
        cells = [fmt(r["mmd"].get(e, float("nan")) * 1e3, 3) for e in epochs]
        ref = refs[name]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {fmt(ref['train anchors'] * 1e3, 3)} | {fmt(ref['per-dimension Gaussian'] * 1e3, 3)} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 epochs, scored after each (about a minute)")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per fit (default 3 with --quick, else 300)"
    )
    p.add_argument(
        "--at", default=None, help="comma list of epochs to score (default: 1,2,3 / 25,50,...,300)"
    )
    p.add_argument(
        "--ae", default=None, help="a trained autoencoder directory (default: synthetic embeddings)"
    )
    p.add_argument("--top30-only", action="store_true", help="only the 525-anchor fit (S_GAN30)")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray-task timing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args()
    epochs = args.epochs or (3 if args.quick else 300)
    default_at = "1,2,3" if args.quick else "25,50,100,150,200,300"
    at = {int(e) for e in (args.at or default_at).split(",") if int(e) <= epochs}
    torch.set_num_threads(1)
    if args.ae:
        anchors, held = ae_embeddings(args.ae)
        args.source = f"autoencoder {args.ae}"
    else:
        data = synthetic_embeddings(1750 + 375, 256, args.seed)
        anchors, held = data[:1750], data[1750:]
        args.source = "synthetic (16-d Gaussian mixture -> 256-d tanh)"
    args.held = len(held)
    sets = (
        {"525 (S_GAN30 size)": anchors[:525]}
        if args.top30_only
        else {"1750 (S_GAN size)": anchors, "525 (S_GAN30 size)": anchors[:525]}
    )
    rows, refs = {}, {}
    for name, a in sets.items():
        log(f"fitting {name} for {epochs} epochs")
        rows[name] = fit_row(a, held, epochs, at, args.seed)
        refs[name] = references(a, held, rows[name]["bandwidth"], args.seed)
    ray_row = None if args.no_ray else ray_seconds_per_epoch(anchors, min(epochs, 3))
    emit(report(args, rows, refs, ray_row), args.out)


if __name__ == "__main__":
    main()
