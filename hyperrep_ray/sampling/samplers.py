"""Samplers of new hyper-representation embeddings z (Schürholt et al. 2022, Section 3.2, Appendix E.2).

Anchors are the train-split embeddings ``anchors[M, D]`` (tanh-bounded, so in [-1, 1]) with the
accuracy of each anchored model. Every sampler is seeded and deterministic (on one device type) and
returns ``np.ndarray[n, D]`` float32 in [-1, 1], ready for the decoder.

Population names follow the paper: S_U (uniform), S_C (counterfactual), S_KDE (per-dimension KDE),
S_Neigh (UMAP neighbourhood), S_GAN (latent GAN, in :mod:`hyperrep_ray.sampling.gan`); S_FLOW and
S_FLOWtop10 (ours: a rectified flow on all anchors, unconditioned or asked for models like the top 10 %
by accuracy, in :mod:`hyperrep_ray.sampling.flow`); the ``*30``
variants use only the anchors of the top 30 % models. S_KDEJ (joint, full-dimensional KDE) is ours: it
keeps the correlations between the coordinates of z that the per-dimension KDE deliberately discards
(see DESIGN.md: on small zoos those correlations are what makes decoded samples work). S_KDE30code
(``kde30-code``) is the per-dimension KDE as the authors' code runs it, which is not what the paper's
text describes (see :mod:`hyperrep_ray.sampling.published_kde`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hyperrep_ray.config import SAMPLERS
from hyperrep_ray.sampling.checks import check_anchors, check_bandwidth, check_n, finish
from hyperrep_ray.sampling.flow import FlowConfig, fit_flow, sample_flow
from hyperrep_ray.sampling.gan import DEFAULT_GAN_EPOCHS, derived_seed, sample_gan, train_latent_gan
from hyperrep_ray.sampling.published_kde import PUBLISHED_BANDWIDTH, sample_kde_code

__all__ = [
    "DEFAULT_BANDWIDTH",
    "DEFAULT_GAN_EPOCHS",
    "TOP_FRACTION",
    "MIX_RANGE",
    "SAMPLERS",
    "top_fraction",
    "top_fraction_indices",
    "kde_density",
    "sample_uniform",
    "sample_kde",
    "sample_kde_joint",
    "sample_mix",
    "sample_counterfactual",
    "sample_neighborhood",
    "box_points",
    "sample",
    "split_method",
]

#: KDE bandwidth h. The paper leaves h unstated ("a bandwidth hyperparameter", Section 3.2.2); 0.002 is
#: the value in the 2022 authors' code (``sample_finetune_auxiliaries.py``). It is small relative to
#: the anchors' spread (z in [-1, 1]), so S_KDE draws stay close to anchor coordinates.
DEFAULT_BANDWIDTH = PUBLISHED_BANDWIDTH
#: Fraction of best anchors kept by the ``*30`` samplers (paper Section 3.2: "top 30 %").
TOP_FRACTION = 0.3
#: Range of the weight t of the second anchor in S_MIX: away from both ends, where a mixture is a copy.
MIX_RANGE = (0.3, 0.7)

# Largest number of float64 values a density evaluation materialises at once (32 MiB).
_CHUNK_ELEMENTS = 4_000_000
_SQRT_2PI = math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------------------------------
# anchor selection


def top_fraction_indices(
    accuracies: Sequence[float] | np.ndarray, fraction: float = TOP_FRACTION
) -> np.ndarray:
    """Indices of the best ``ceil(fraction * M)`` models, best first.

    ceil (not round) so that a small population never drops to zero anchors and "top 30 %" of 10 is 3,
    of 11 is 4. Ties are broken by the lower index (stable sort), so the selection is deterministic.
    """
    acc = np.asarray(accuracies, dtype=np.float64).ravel()
    if acc.size == 0:
        raise ValueError("accuracies is empty")
    if not np.isfinite(acc).all():
        raise ValueError("accuracies contain NaN or infinite values")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    # round first so that float error (0.07 * 100 = 7.000000000000001) does not add an anchor
    k = min(acc.size, max(1, math.ceil(round(fraction * acc.size, 9))))
    order = np.argsort(-acc, kind="stable")
    return order[:k]


def top_fraction(
    anchors: np.ndarray, accuracies: Sequence[float] | np.ndarray, fraction: float = TOP_FRACTION
) -> np.ndarray:
    """Anchors of the top ``fraction`` models by accuracy (paper's ``*30`` variants), best first.

    See :func:`top_fraction_indices` for the count (ceil) and tie rule.
    """
    arr = check_anchors(anchors)
    acc = np.asarray(accuracies).ravel()
    if acc.shape[0] != arr.shape[0]:
        raise ValueError(f"got {arr.shape[0]} anchors but {acc.shape[0]} accuracies")
    return arr[top_fraction_indices(acc, fraction)]


# --------------------------------------------------------------------------------------------------
# per-dimension KDE


def _density_at(anchors: np.ndarray, values: np.ndarray, cols: np.ndarray, bandwidth: float) -> np.ndarray:
    """Per-dimension Gaussian KDE of dimension ``cols[i]`` at ``values[i]`` (vectorised, chunked)."""
    m = anchors.shape[0]
    out = np.empty(values.shape[0], dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // m)
    norm = 1.0 / (m * bandwidth * _SQRT_2PI)
    for start in range(0, values.shape[0], chunk):
        sl = slice(start, start + chunk)
        diff = (values[sl][None, :] - anchors[:, cols[sl]]) / bandwidth  # [M, chunk]
        out[sl] = np.exp(-0.5 * diff * diff).sum(axis=0) * norm
    return out


def kde_density(anchors: np.ndarray, points: np.ndarray, bandwidth: float = DEFAULT_BANDWIDTH) -> np.ndarray:
    """Per-dimension KDE density p_j(points[:, j]) fitted on the anchors' dimension j, shape [n, D].

    This is the density S_KDE samples from and S_C avoids (paper Section 3.2.2); exposed so that the
    two can be checked against each other.
    """
    arr = check_anchors(anchors)
    h = check_bandwidth(bandwidth)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != arr.shape[1]:
        raise ValueError(f"points must have shape [n, {arr.shape[1]}], got {pts.shape}")
    cols = np.broadcast_to(np.arange(arr.shape[1]), pts.shape).ravel()
    return _density_at(arr, pts.ravel(), cols, h).reshape(pts.shape)


def sample_uniform(n: int, dim: int, seed: int) -> np.ndarray:
    """S_U: uniform in the tanh box [-1, 1]^D, the naive baseline / sanity check of Section 3.2.1."""
    n = check_n(n)
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    rng = np.random.default_rng(seed)
    return finish(rng.uniform(-1.0, 1.0, size=(n, int(dim))))


def sample_kde(
    anchors: np.ndarray, n: int, bandwidth: float = DEFAULT_BANDWIDTH, seed: int = 0
) -> np.ndarray:
    """S_KDE: independent per-dimension Gaussian KDEs (conditional independence of Section 3.2.2).

    Sampling from p_j is "pick a random anchor's coordinate j, add N(0, h^2)"; the anchor is picked
    independently for every dimension, which is what makes the dimensions independent. Draws are
    clipped to [-1, 1] (the encoder's tanh range) rather than renormalising the KDE's tails; with the
    default h = 0.002 this moves only draws of anchors within a few h of the boundary.
    """
    arr = check_anchors(anchors)
    n = check_n(n)
    h = check_bandwidth(bandwidth)
    m, d = arr.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(n, d))
    z = arr[idx, np.arange(d)[None, :]] + h * rng.standard_normal((n, d))
    return finish(z)


def sample_kde_joint(
    anchors: np.ndarray, n: int, bandwidth: float = DEFAULT_BANDWIDTH, seed: int = 0
) -> np.ndarray:
    """S_KDEJ: full-dimensional Gaussian KDE, one anchor per sample plus isotropic N(0, h^2 I).

    Unlike S_KDE this keeps the correlations between coordinates (samples are noisy anchors). Clipped
    to [-1, 1] like S_KDE.
    """
    arr = check_anchors(anchors)
    n = check_n(n)
    h = check_bandwidth(bandwidth)
    m, d = arr.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=n)
    z = arr[idx] + h * rng.standard_normal((n, d))
    return finish(z)


def sample_mix(
    anchors: np.ndarray, n: int, seed: int = 0, low: float = MIX_RANGE[0], high: float = MIX_RANGE[1]
) -> np.ndarray:
    """S_MIX (ours): a point between two different anchors, ``(1 - t) z_a + t z_b`` with t ~ U(low, high).

    Why: the function between two independently trained models is neither of them, and our decoders
    keep accuracy along such lines (the autoencoder stage's interpolation check: 0.61 at worst on the
    quick autoencoder, 0.89 on the behavioural one), so a mixture bets on novelty at the anchors'
    accuracy. Pairs are drawn without regard to the model an anchor comes from: epochs of one model
    are near-duplicates, but with the 105 models of 525 top anchors only ~1 % of pairs share one."""
    arr = check_anchors(anchors)
    n = check_n(n)
    m = arr.shape[0]
    if m < 2:
        raise ValueError(f"S_MIX mixes two different anchors and needs at least 2, got {m}")
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"mixing range must satisfy 0 <= low <= high <= 1, got ({low}, {high})")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, m, size=n)
    b = (a + rng.integers(1, m, size=n)) % m  # never a itself
    t = rng.uniform(low, high, size=(n, 1))
    return finish((1.0 - t) * arr[a] + t * arr[b])


def sample_counterfactual(
    anchors: np.ndarray,
    n: int,
    bandwidth: float = DEFAULT_BANDWIDTH,
    seed: int = 0,
    low: float = -1.0,
    high: float = 1.0,
    max_rounds: int = 10_000,
) -> np.ndarray:
    """S_C: the "inverted" S_KDE (Section 3.2.2) - draws from regions the anchors do not populate.

    Rule, per dimension j independently: sample u in [low, high] with density proportional to
    ``max(p_max_j - p_j(u), 0)``, where p_j is S_KDE's per-dimension KDE (same anchors, same h) and
    p_max_j its peak, estimated at the anchors and at midpoints of neighbouring anchors. So the
    probability of a value is highest where the KDE is ~0 and zero at the KDE's peak. We use
    ``p_max - p`` instead of ``1/p`` because ``1/p`` is unbounded (p underflows to 0 a few h away from
    the anchors) and would not define a proper density. Drawn exactly by rejection sampling: propose
    u ~ U(low, high), accept with probability ``(p_max_j - p_j(u)) / p_max_j``.
    """
    arr = check_anchors(anchors)
    n = check_n(n)
    h = check_bandwidth(bandwidth)
    if not -1.0 <= low < high <= 1.0:
        raise ValueError(f"need -1 <= low < high <= 1, got low={low}, high={high}")
    m, d = arr.shape
    # peak of each per-dimension KDE: evaluate at anchors and midpoints of sorted neighbours
    srt = np.sort(arr, axis=0)
    cand = np.concatenate([srt, 0.5 * (srt[1:] + srt[:-1])], axis=0)  # [2M-1, D]
    cand_cols = np.broadcast_to(np.arange(d), cand.shape).ravel()
    p_max = _density_at(arr, cand.ravel(), cand_cols, h).reshape(cand.shape).max(axis=0)  # [D]

    # own stream: with the same seed, S_C must not reuse S_U's uniform draws as its proposals
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 3]))
    out = np.empty((n, d), dtype=np.float64)
    rows, cols = np.nonzero(np.ones((n, d), dtype=bool))
    for _ in range(max_rounds):
        if rows.size == 0:
            break
        u = rng.uniform(low, high, size=rows.size)
        p = _density_at(arr, u, cols, h)
        accept = rng.uniform(0.0, 1.0, size=rows.size) * p_max[cols] < p_max[cols] - p
        out[rows[accept], cols[accept]] = u[accept]
        rows, cols = rows[~accept], cols[~accept]
    else:
        if rows.size:
            raise RuntimeError(f"counterfactual rejection sampling did not finish in {max_rounds} rounds")
    return finish(out)


# --------------------------------------------------------------------------------------------------
# neighbourhood sampling (UMAP)


def sample_neighborhood(
    anchors: np.ndarray,
    n: int,
    seed: int = 0,
    n_components: int = 3,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    within_hull: bool = False,
    return_timing: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, float]]:
    """S_Neigh (Section 3.2.3): UMAP to ``n_components`` (paper: 3) dims, uniform in the box, back.

    UMAP is fitted on the anchors (``n_neighbors`` capped at M-1, since small zoos have 50-500
    anchors); samples are uniform in the bounding box of the low-dimensional embedding and mapped back
    with ``UMAP.inverse_transform``. The inverse can overshoot the anchors' range, so the result is
    clipped to [-1, 1].

    umap-learn maps box points outside the convex hull of the embedding through an arbitrary (the
    last) Delaunay simplex; in 3-d most of the box lies outside the hull. The paper samples the whole
    box, so that is the default; ``within_hull=True`` rejects box points outside the hull instead.
    The first call in a process JIT-compiles UMAP's numba code (~10 s on a laptop CPU);
    ``return_timing=True`` also returns {"fit_s", "inverse_s"}.
    """
    arr = check_anchors(anchors, min_rows=n_components + 2)
    n = check_n(n)
    m, d = arr.shape
    with warnings.catch_warnings():  # slow import (numba); umap warns that TensorFlow is absent
        warnings.simplefilter("ignore", ImportWarning)
        import umap

    rng = np.random.default_rng(seed)
    reducer = umap.UMAP(
        n_components=n_components,
        n_neighbors=max(2, min(n_neighbors, m - 1)),
        min_dist=min_dist,
        metric="euclidean",
        random_state=seed,
        transform_seed=seed,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        reducer.fit(arr.astype(np.float32))
    t1 = time.perf_counter()
    emb = np.asarray(reducer.embedding_, dtype=np.float64)
    if n == 0:
        z = np.empty((0, d))
    else:
        z = reducer.inverse_transform(box_points(emb, n, rng, within_hull).astype(np.float32))
    t2 = time.perf_counter()
    result = finish(z)
    if return_timing:
        return result, {"fit_s": t1 - t0, "inverse_s": t2 - t1}
    return result


def box_points(emb: np.ndarray, n: int, rng: np.random.Generator, within_hull: bool = False) -> np.ndarray:
    """``n`` points uniform in the bounding box of the low-dimensional embedding ``emb`` [M, k];
    ``within_hull`` rejects those outside the embedding's convex hull (Delaunay simplices)."""
    lo, hi = emb.min(axis=0), emb.max(axis=0)
    if not within_hull:
        return rng.uniform(lo, hi, size=(n, emb.shape[1]))
    from scipy.spatial import Delaunay

    tri = Delaunay(emb)
    kept: list[np.ndarray] = []
    have = 0
    for _ in range(10_000):
        cand = rng.uniform(lo, hi, size=(max(n, 64), emb.shape[1]))
        cand = cand[tri.find_simplex(cand) >= 0]
        kept.append(cand)
        have += cand.shape[0]
        if have >= n:
            return np.concatenate(kept)[:n]
    raise RuntimeError("could not draw enough points inside the embedding's convex hull")


# --------------------------------------------------------------------------------------------------
# one entry point


def sample(
    method: str,
    anchors: np.ndarray,
    accuracies: Sequence[float] | np.ndarray | None,
    n: int,
    seed: int,
    bandwidth: float = DEFAULT_BANDWIDTH,
    gan_epochs: int = DEFAULT_GAN_EPOCHS,
    gan_steps: int | None = None,
    fraction: float = TOP_FRACTION,
    device: str | torch.device = "cpu",
    neigh_kwargs: dict[str, Any] | None = None,
    flow: FlowConfig | None = None,
    tracking_uri: str | None = None,
) -> np.ndarray:
    """Draw ``n`` embeddings with the CLI ``method`` (a key of :data:`SAMPLERS`).

    The ``*30`` methods first keep the top ``fraction`` anchors by accuracy (``accuracies`` is then
    required); S_C and S_U ignore accuracies. ``bandwidth`` is used by the KDE family and S_C,
    ``gan_epochs``, ``gan_steps`` (a cap on its optimiser steps) and ``device`` by the GAN,
    ``neigh_kwargs`` go to :func:`sample_neighborhood`. The flows
    train on all anchors with ``flow`` (default :class:`FlowConfig`; ``flow-top10`` makes it conditional
    and needs ``accuracies``) and log an MLflow run when ``tracking_uri`` is given.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampling method {method!r}; valid methods: {', '.join(SAMPLERS)}")
    arr = check_anchors(anchors)
    base, top = split_method(method)
    if top:
        if accuracies is None:
            raise ValueError(f"method {method!r} selects the top {fraction:.0%} anchors and needs accuracies")
        arr = top_fraction(arr, accuracies, fraction)
    if base == "uniform":
        return sample_uniform(n, arr.shape[1], seed)
    if base == "counterfactual":
        return sample_counterfactual(arr, n, bandwidth=bandwidth, seed=seed)
    if base == "kde":
        return sample_kde(arr, n, bandwidth=bandwidth, seed=seed)
    if base == "kde-joint":
        return sample_kde_joint(arr, n, bandwidth=bandwidth, seed=seed)
    if base == "kde-code":
        return sample_kde_code(arr, n, bandwidth=bandwidth, seed=seed)
    if base == "mix":
        return sample_mix(arr, n, seed=seed)
    if base == "neigh":
        out = sample_neighborhood(arr, n, seed=seed, **(neigh_kwargs or {}))
        return out[0] if isinstance(out, tuple) else out
    if base == "gan":
        gen = train_latent_gan(arr, seed=seed, epochs=gan_epochs, device=device, max_steps=gan_steps)
        return sample_gan(gen, n, seed=derived_seed(seed, 2))
    if base in ("flow", "flow-top10"):
        cfg = (flow or FlowConfig.model_validate({})).model_copy(update={"conditional": base == "flow-top10"})
        if cfg.conditional and accuracies is None:
            raise ValueError(f"method {method!r} conditions on accuracy and needs accuracies")
        acc = None if accuracies is None else np.asarray(accuracies, dtype=np.float64)
        model = fit_flow(
            arr, cfg, seed=seed, accuracies=acc if cfg.conditional else None, tracking_uri=tracking_uri
        )
        return sample_flow(model, cfg, n, seed=derived_seed(seed, 3))
    raise AssertionError(f"unhandled method {method!r}")  # pragma: no cover - SAMPLERS and dispatch agree


def split_method(method: str) -> tuple[str, bool]:
    """(base sampler, whether it keeps only the top anchors) of a method name: the "30" in
    ``kde-joint30`` or ``kde30-code`` marks the top-30 % variant."""
    base = method.replace("30", "", 1)
    return base, base != method
