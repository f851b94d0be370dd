"""B_NOISE: the trivial baseline a generative model of weights has to beat (Zeng et al. 2025).

Gaussian noise of standard deviation sigma added to the weights of the top-30 % train checkpoints:
``B_NOISE`` on the autoencoder's reconstructions of them (the decoded top-30 % anchors), and
``B_NOISE_ORIG`` on their original weights, without any autoencoder. sigma is absolute, in weight
units (Zeng et al. use 0.02 and 0.04 on the decoded anchors). Sample i perturbs anchor ``i mod M``,
so n = M uses every anchor once, as they do; sigma = 0 returns the anchors themselves. Raising sigma
trades accuracy for novelty, which draws the curve that a sampler's accuracy-novelty points are
compared against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hyperrep_ray import store
from hyperrep_ray.autoencoder.artifacts import load_anchors as read_anchors
from hyperrep_ray.autoencoder.bundle import HyperRepresentation, read_ae_info
from hyperrep_ray.sampling.checks import check_n
from hyperrep_ray.sampling.samplers import TOP_FRACTION, top_fraction_indices

__all__ = [
    "SIGMA_GRID",
    "NOISE_BASELINES",
    "noise_baseline",
    "decoded_top_anchors",
    "original_top_weights",
]

#: sigma grid of the baseline's curve: 0.005 ... 0.16 in factors of 2, with Zeng et al.'s 0.02 and 0.04.
SIGMA_GRID: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
#: Population names: noise on the decoded anchors, and on the original train weights.
NOISE_BASELINES = ("B_NOISE", "B_NOISE_ORIG")


def noise_baseline(weights: np.ndarray, n: int, sigma: float, seed: int = 0) -> np.ndarray:
    """``n`` noisy copies (n, N) float32 of the rows of ``weights`` (M, N): row i is
    ``weights[i mod M] + sigma * N(0, I)``, seeded; sigma = 0 gives the rows exactly."""
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or w.shape[0] < 1:
        raise ValueError(f"weights must be a non-empty (M, N) array, got shape {w.shape}")
    n = check_n(n)
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    base = w[np.arange(n) % w.shape[0]]
    if sigma == 0:
        return np.ascontiguousarray(base)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    noise = rng.standard_normal(base.shape, dtype=np.float32)
    return np.ascontiguousarray(base + np.float32(sigma) * noise)


def decoded_top_anchors(ae_dir: str | Path, fraction: float = TOP_FRACTION) -> np.ndarray:
    """The autoencoder's reconstructions (K, N) of the top-``fraction`` train checkpoints: the
    decoded anchors ``anchors.npz`` keeps, best first (what B_NOISE adds noise to)."""
    anchors = read_anchors(ae_dir)
    top = top_fraction_indices(anchors.test_acc, fraction)
    return HyperRepresentation.load(ae_dir).decode(anchors.z[top])


def original_top_weights(
    ae_dir: str | Path, zoo: str | None = None, fraction: float = TOP_FRACTION
) -> np.ndarray:
    """The original weights (K, N) of the same top-``fraction`` train checkpoints, best first, read
    from the zoo (default: the one ``ae.json`` records), in the zoo's own neuron order."""
    zoo = zoo or str(read_ae_info(ae_dir).get("zoo") or "")
    if not zoo:
        raise FileNotFoundError(
            f"{ae_dir}/ae.json records no zoo; pass the zoo the autoencoder was trained on"
        )
    anchors = read_anchors(ae_dir)
    ids, epochs, acc = anchors.model_id, anchors.epoch, anchors.test_acc
    top = top_fraction_indices(acc, fraction)
    w, meta = store.load_weights(zoo, epochs=sorted({int(e) for e in epochs[top]}), split="train")
    row = {(int(m), int(e)): i for i, (m, e) in enumerate(zip(meta["model_id"], meta["epoch"], strict=True))}
    missing = [(int(ids[k]), int(epochs[k])) for k in top if (int(ids[k]), int(epochs[k])) not in row]
    if missing:
        raise store.StoreError(
            f"{zoo} lacks {len(missing)} anchor checkpoint(s) of {ae_dir}, e.g. {missing[0]}"
        )
    return w.numpy()[[row[(int(ids[k]), int(epochs[k]))] for k in top]]
