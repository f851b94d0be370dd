"""What a trained hyper-representation is worth, measured (2022 paper Sec. 3-4, 2021 paper Sec. 4):

- reconstruction R^2 on val and test (overall and per layer);
- test accuracy of the test-split models and of the same models after encode -> decode, on the
  zoo data set's held-out test images;
- linear probes from z (and, as baselines, from raw weights W and weight statistics s(W)) for
  test accuracy, epoch and generalisation gap, fitted on train and scored on test;
- smoothness: decoded accuracy along interpolations between test embeddings and under relative
  noise on z (Figure 3) -- what sampling needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.autoencoder.data import AEData
from hyperrep_ray.autoencoder.losses import (
    reconstruction_r2,
    reconstruction_r2_paper,
    reconstruction_r2_per_layer,
    saturated_fraction,
)
from hyperrep_ray.autoencoder.probes import Probe, fit_probes, probe_targets, weight_statistics
from hyperrep_ray.autoencoder.scoring import Score, zoo_scorer
from hyperrep_ray.autoencoder.smoothness import (
    interpolation_accuracy,
    noise_accuracy,
    pairs_for_interpolation,
    plot_interpolation,
    plot_noise,
)
from hyperrep_ray.plotting import pyplot, save_figure
from hyperrep_ray.weightspace.tokens import token_layout


@dataclass
class AEEvaluation:
    """Everything :func:`evaluate_autoencoder` measured: flat metrics (for MLflow and metrics.json),
    the fitted probes (saved with the autoencoder) and the figures it drew."""

    metrics: dict[str, Any]
    probes: dict[str, Probe]
    figures: list[Path] = field(default_factory=list)


def reconstruction_metrics(
    bundle: HyperRepresentation, data: AEData, z: dict[str, np.ndarray]
) -> dict[str, float]:
    """R^2 of every non-empty split, overall and per layer, and the test embeddings' saturation."""
    layout = token_layout(data.in_channels)
    metrics: dict[str, float] = {}
    for split in ("val", "test", "train"):
        w = data.weights[split]
        if not len(w):
            continue
        recon = bundle.decode(z[split])
        metrics[f"reconstruction_r2_{split}"] = reconstruction_r2(recon, w, data.mean_params)
        # the 2022 code's R^2 (per-layer std scaling, train-mean baseline), to read ours against the paper's
        metrics[f"reconstruction_r2_paper_{split}"] = float(
            reconstruction_r2_paper(recon, w, data.weights["train"], layout.layer_of_param)
        )
        per_layer = reconstruction_r2_per_layer(recon, w, data.mean_params, layout.layer_of_param)
        for name, v in zip(layout.names, per_layer, strict=True):
            metrics[f"reconstruction_r2_{split}_{name}"] = float(v)
    metrics["z_saturated_test"] = saturated_fraction(z["test"])
    return metrics


def probe_metrics(data: AEData, z: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, Probe]]:
    """Probes from z, W and s(W): fitted on train (alpha by group k-fold over models), scored on test."""
    feats = {
        s: {"z": z[s], "W": data.weights[s], "sW": weight_statistics(data.weights[s], data.in_channels)}
        for s in ("train", "test")
    }
    targets = {
        s: probe_targets(data.meta[s]["train_acc"], data.meta[s]["test_acc"], data.meta[s]["epoch"])
        for s in ("train", "test")
    }
    return fit_probes(
        feats["train"],
        feats["test"],
        targets["train"],
        targets["test"],
        groups_train=data.meta["train"]["model_id"].to_numpy(),
    )


def smoothness_metrics(
    bundle: HyperRepresentation, z_test: np.ndarray, score: Score, out_dir: Path, n_pairs: int, seed: int
) -> tuple[dict[str, float], list[Path]]:
    """Decoded accuracy along interpolations between test embeddings and under noise on them."""
    pairs = pairs_for_interpolation(len(z_test), min(n_pairs, max(1, len(z_test) // 2)), seed)
    interp = interpolation_accuracy(z_test[pairs[:, 0]], z_test[pairs[:, 1]], bundle.decode, score)
    noise = noise_accuracy(z_test[: 4 * n_pairs], bundle.decode, score, seed=seed)
    metrics = {
        "interpolation_accuracy_min": float(interp["interpolation_accuracy_min"]),
        "interpolation_path_min_mean": float(interp["min_over_path_mean"]),
    }
    for level, acc in zip(noise["levels"], noise["mean_accuracy"], strict=True):
        metrics[f"noise_accuracy_{int(round(level * 100))}pct"] = float(acc)
    metrics["noise_accuracy"] = float(np.mean(noise["mean_accuracy"][1:]))
    figures = [
        plot_interpolation(interp, out_dir / "interpolation_accuracy.png"),
        plot_noise(noise, out_dir / "noise_accuracy.png"),
    ]
    return metrics, [Path(f) for f in figures]


def evaluate_autoencoder(
    bundle: HyperRepresentation,
    data: AEData,
    zoo: str,
    out_dir: str | Path,
    data_root: str | None = None,
    n_pairs: int = 20,
    seed: int = 0,
    score: Score | None = None,
) -> AEEvaluation:
    """Measure ``bundle`` on the zoo's splits; figures are written to ``out_dir``. Accuracies come
    from ``score`` (default: the zoo's own test images, :func:`~.scoring.zoo_scorer`)."""
    out_dir = Path(out_dir)
    metrics: dict[str, Any] = {
        "zoo": str(zoo),
        "n_train": len(data.weights["train"]),
        "n_val": len(data.weights["val"]),
        "n_test": len(data.weights["test"]),
    }
    z = {s: bundle.encode(w, aligned=True) for s, w in data.weights.items()}
    metrics.update(reconstruction_metrics(bundle, data, z))
    score = score or zoo_scorer(zoo, data.activation, data_root)
    orig_acc = score(data.weights["test"])
    rec_acc = score(bundle.decode(z["test"]))
    metrics["original_test_accuracy_mean"] = float(orig_acc.mean())
    metrics["reconstructed_test_accuracy_mean"] = float(rec_acc.mean())
    metrics["stored_test_accuracy_mean"] = float(data.meta["test"]["test_acc"].mean())
    probe_scores, probes = probe_metrics(data, z)
    metrics.update(probe_scores)
    smooth, figures = smoothness_metrics(bundle, z["test"], score, out_dir, n_pairs, seed)
    metrics.update(smooth)
    figures.append(plot_reconstruction(orig_acc, rec_acc, out_dir / "reconstruction_accuracy.png"))
    return AEEvaluation(metrics, probes, figures)


def plot_reconstruction(orig: np.ndarray, recon: np.ndarray, path: str | Path) -> Path:
    """Paper Figure 9/10 (bottom): accuracy of test models before and after encode -> decode."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(orig, bins=bins, alpha=0.6, label=f"original (mean {orig.mean():.3f})")
    ax.hist(recon, bins=bins, alpha=0.6, label=f"reconstructed (mean {recon.mean():.3f})")
    ax.set_xlabel("test accuracy")
    ax.set_ylabel("models")
    ax.legend()
    return save_figure(fig, path)
