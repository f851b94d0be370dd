"""The accuracy-novelty frontier: how much accuracy a sampler buys per unit of novelty.

Every sampler has a knob that trades the two: the KDE samplers' bandwidth, the noise baseline's sigma.
A point of the frontier is one knob value: the population's mean accuracy on the test images (epoch
0, no fine-tuning), its novelty (1 - mean max_wrong_iou against the train checkpoints), its median
normalised nearest_l2 and its size. Samplers without such a knob (GAN, UMAP neighbourhoods) are single
points. A sampler is worth its machinery only where it lies *above* the noise baseline's curve:
higher accuracy than noisy copies of the top train checkpoints at the same novelty
(:func:`above_baseline`).

Drawing and scoring are callables, so the same code runs in-process, in the experiments (decode on
the driver, score with :func:`novelty_scorer`) or on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hyperrep_ray.config import StrictModel
from hyperrep_ray.sampling.noise import NOISE_BASELINES, SIGMA_GRID, noise_baseline
from hyperrep_ray.sampling.samplers import sample, split_method
from hyperrep_ray.weightspace.novelty import NoveltyReference, NoveltySummary, score_models

__all__ = [
    "BANDWIDTH_GRID",
    "FrontierPoint",
    "BaselineComparison",
    "knob_for",
    "novelty_scorer",
    "frontier",
    "sampler_frontier",
    "noise_frontier",
    "above_baseline",
    "compare_to_baseline",
]

#: Bandwidths of the KDE samplers' curves, around the published 0.002 (z lies in [-1, 1]).
BANDWIDTH_GRID: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)

Draw = Callable[[float], np.ndarray]
Score = Callable[[np.ndarray], NoveltySummary]


class FrontierPoint(StrictModel):
    """One knob value of a sampler (``knob``/``value`` None for a sampler without a knob)."""

    knob: str | None
    value: float | None
    accuracy: float
    novelty: float
    nearest_l2: float | None
    n: int


class BaselineComparison(StrictModel):
    """A frontier point against the baseline curve interpolated at the point's novelty.

    ``baseline_accuracy``/``margin``/``above`` are None where the point's novelty lies outside the
    novelties the baseline reached (no extrapolation)."""

    knob: str | None
    value: float | None
    novelty: float
    accuracy: float
    baseline_accuracy: float | None
    margin: float | None
    above: bool | None


def knob_for(name: str) -> str | None:
    """The novelty knob of a sampler or baseline: ``bandwidth`` for the KDE family, ``sigma`` for the
    noise baselines, None for samplers drawn as single points (GAN, UMAP, uniform, counterfactual)."""
    if name in NOISE_BASELINES:
        return "sigma"
    return "bandwidth" if split_method(name)[0].startswith("kde") else None


def novelty_scorer(
    reference: NoveltyReference, x: torch.Tensor, y: torch.Tensor, device: str | torch.device = "cpu"
) -> Score:
    """score(weights (M, N)) -> the population's :class:`NoveltySummary` against ``reference``."""

    def score(weights: np.ndarray) -> NoveltySummary:
        return score_models(weights, reference, x, y, device=device).summary()

    return score


def frontier(
    knob: str | None, values: Sequence[float | None], draw: Draw, score: Score
) -> list[FrontierPoint]:
    """One point per knob value: draw the population for the value, score it."""
    points = []
    for v in values:
        s = score(draw(float("nan") if v is None else float(v)))
        points.append(
            FrontierPoint(
                knob=knob,
                value=None if v is None else float(v),
                accuracy=s.accuracy,
                novelty=s.novelty,
                nearest_l2=s.nearest_l2,
                n=s.n,
            )
        )
    return points


def sampler_frontier(
    method: str,
    anchors: np.ndarray,
    accuracies: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    score: Score,
    n: int,
    seed: int = 0,
    values: Sequence[float] = BANDWIDTH_GRID,
    **sample_kwargs: Any,
) -> list[FrontierPoint]:
    """A sampler's curve over ``values`` of its bandwidth (a single point for a sampler without one):
    embeddings from :func:`hyperrep_ray.sampling.samplers.sample`, decoded by ``decode``, scored by
    ``score``. ``sample_kwargs`` go to ``sample`` (e.g. ``gan_epochs``)."""
    knob = knob_for(method)

    def draw(h: float) -> np.ndarray:
        kwargs = dict(sample_kwargs, bandwidth=h) if knob == "bandwidth" else sample_kwargs
        return decode(sample(method, anchors, accuracies, n, seed, **kwargs))

    return frontier(knob, list(values) if knob else [None], draw, score)


def noise_frontier(
    weights: np.ndarray, score: Score, n: int, seed: int = 0, values: Sequence[float] = SIGMA_GRID
) -> list[FrontierPoint]:
    """The noise baseline's curve: ``n`` noisy copies of ``weights`` (decoded top anchors for
    B_NOISE, original top weights for B_NOISE_ORIG) for each sigma in ``values``."""
    return frontier("sigma", list(values), lambda s: noise_baseline(weights, n, s, seed), score)


def above_baseline(
    points: Sequence[FrontierPoint], baseline_points: Sequence[FrontierPoint]
) -> list[BaselineComparison]:
    """For each point: the baseline's accuracy at the same novelty (linear interpolation between the
    baseline's points sorted by novelty; equal novelties averaged), and whether the point is above."""
    base = [(p.novelty, p.accuracy) for p in baseline_points if np.isfinite(p.novelty)]
    xs = np.array(sorted({b[0] for b in base}))
    ys = np.array([np.mean([a for nv, a in base if nv == x]) for x in xs])
    out = []
    for p in points:
        inside = xs.size > 0 and np.isfinite(p.novelty) and xs[0] <= p.novelty <= xs[-1]
        at = float(np.interp(p.novelty, xs, ys)) if inside else None
        margin = None if at is None else p.accuracy - at
        out.append(
            BaselineComparison(
                knob=p.knob,
                value=p.value,
                novelty=p.novelty,
                accuracy=p.accuracy,
                baseline_accuracy=at,
                margin=margin,
                above=None if margin is None else bool(margin > 0),
            )
        )
    return out


def compare_to_baseline(
    frontiers: Mapping[str, Sequence[FrontierPoint]], baseline: str = "B_NOISE"
) -> dict[str, list[BaselineComparison]]:
    """:func:`above_baseline` for every frontier except the baseline's own."""
    if baseline not in frontiers:
        raise KeyError(f"no frontier named {baseline!r}; have {sorted(frontiers)}")
    return {k: above_baseline(v, frontiers[baseline]) for k, v in frontiers.items() if k != baseline}
