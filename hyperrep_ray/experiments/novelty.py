"""Are the sampled models new? Every in-dataset population's accuracy next to its novelty, and the
accuracy-novelty frontier of the samplers against the noise baseline.

A sampled model is only interesting if it is both good and new (Zeng et al. 2025 found that the
samples of hyper-representations have a nearly identical training checkpoint). For each population
of the in-dataset experiment at epoch 0 (B_T's initialisations, B_KDE30 and every sampler) this
measures, against every train checkpoint the autoencoder saw (:mod:`hyperrep_ray.weightspace.novelty`):
novelty = 1 - max wrong-prediction IoU on the test images, and the nearest L2 distance in canonical
neuron order. Reference points: the zoo's test-split models (new models of the same distribution) and
train checkpoints against other train models. The frontier sweeps each sampler's knob (the KDE
bandwidth; sigma of the noise baselines B_NOISE on decoded top-30 % anchors and B_NOISE_ORIG on the
original top-30 % weights); samplers without a knob are single points. A sampler earns its machinery
only where it lies above the noise baseline at equal novelty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.config import SAMPLERS
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.frontier import (
    BANDWIDTH_GRID,
    FrontierPoint,
    Score,
    compare_to_baseline,
    frontier,
    knob_for,
    noise_frontier,
    novelty_scorer,
    sampler_frontier,
)
from hyperrep_ray.evaluation.ray_pipeline import scratch_weights
from hyperrep_ray.evaluation.results import ExperimentResult, population_order
from hyperrep_ray.experiments.data import zoo_hyper
from hyperrep_ray.sampling.generate import load_anchors
from hyperrep_ray.sampling.noise import SIGMA_GRID, decoded_top_anchors, original_top_weights
from hyperrep_ray.sampling.novelty_setup import NoveltySetup, novelty_setup
from hyperrep_ray.weightspace.novelty import NoveltyScores

__all__ = ["population_weights", "sampler_frontiers", "novelty"]

Embeddings = Mapping[str, tuple[str, np.ndarray]]


def population_weights(
    embeddings: Embeddings, zoo: str, data: ImageData, n: int, seed: int
) -> dict[str, np.ndarray]:
    """Epoch-0 weights of every in-dataset population: B_T's initialisations (the same seeds as the
    experiment's B_T) and each sampled population's embeddings decoded by the autoencoder that drew
    them (decoding is deterministic, so these are the models the experiment scored)."""
    _, init = zoo_hyper(zoo)
    out = {"B_T": scratch_weights(n, data.in_channels, init, seed)[0]}
    bundles: dict[str, HyperRepresentation] = {}
    for population, (ae, z) in embeddings.items():
        if ae not in bundles:
            bundles[ae] = HyperRepresentation.load(ae)
        out[population] = bundles[ae].decode(z)
    return out


def single_point(weights: np.ndarray, score: Score) -> list[FrontierPoint]:
    """The frontier of a sampler without a knob: its population as it was drawn."""
    return frontier(None, [None], lambda _value: weights, score)


def sampler_frontiers(
    ae_dir: str,
    zoo: str,
    methods: Sequence[str],
    embeddings: Embeddings,
    score: Score,
    n: int,
    seed: int,
) -> dict[str, list[FrontierPoint]]:
    """Population name -> frontier: a bandwidth curve for each KDE sampler, the in-dataset population
    as one point for each sampler without a knob (not drawn again: a GAN costs minutes), and the two
    noise baselines' sigma curves."""
    bundle = HyperRepresentation.load(ae_dir)
    anchors, acc = load_anchors(ae_dir)
    out: dict[str, list[FrontierPoint]] = {}
    for m in methods:
        name = SAMPLERS[m]
        if knob_for(m) == "bandwidth":
            out[name] = sampler_frontier(m, anchors, acc, bundle.decode, score, n, seed, BANDWIDTH_GRID)
        elif name in embeddings:
            out[name] = single_point(bundle.decode(embeddings[name][1]), score)
    out["B_NOISE"] = noise_frontier(decoded_top_anchors(ae_dir), score, n, seed, SIGMA_GRID)
    out["B_NOISE_ORIG"] = noise_frontier(original_top_weights(ae_dir, zoo), score, n, seed, SIGMA_GRID)
    return out


def novelty_rows(setup: NoveltySetup, scores: Mapping[str, NoveltyScores]) -> pd.DataFrame:
    """One row per model: population, sample_id and its :class:`ModelNovelty` fields (which train
    checkpoint is nearest by errors and by weights, and how near)."""
    rows = [
        {"population": p, "sample_id": i, **r.model_dump()}
        for p, s in scores.items()
        for i, r in enumerate(s.records(setup.reference))
    ]
    return pd.DataFrame(rows)


def novelty_sections(
    setup: NoveltySetup, scores: Mapping[str, NoveltyScores], frontiers: Mapping[str, list[FrontierPoint]]
) -> dict[str, Any]:
    """``summary.json``'s ``novelty_reference``, ``novelty``, ``frontier`` and ``frontier_vs_noise``."""
    comparisons = compare_to_baseline(frontiers, "B_NOISE")
    return {
        "novelty_reference": {k: v.model_dump() for k, v in setup.reference_points().items()},
        "novelty": {p: s.summary().model_dump() for p, s in scores.items()},
        "frontier": {k: [p.model_dump() for p in v] for k, v in frontiers.items()},
        "frontier_vs_noise": {k: [c.model_dump() for c in v] for k, v in comparisons.items()},
    }


def novelty_metrics(sections: Mapping[str, Any]) -> dict[str, float]:
    """``<population>.<measure>`` for the populations and the reference points, and per sampler how
    many frontier points lie above the noise baseline and by how much at most."""
    out = {
        f"{p}.{k}": float(v)
        for p, s in {**sections["novelty"], **sections["novelty_reference"]}.items()
        for k, v in s.items()
        if isinstance(v, int | float)
    }
    for name, points in sections["frontier_vs_noise"].items():
        margins = [c["margin"] for c in points if c["margin"] is not None]
        out[f"frontier.{name}.points_above_noise"] = float(sum(bool(c["above"]) for c in points))
        if margins:
            out[f"frontier.{name}.best_margin_over_noise"] = float(max(margins))
    return out


def novelty(
    ae_dir: str,
    zoo: str,
    data: ImageData,
    embeddings: Embeddings,
    methods: Sequence[str],
    n: int,
    seed: int = 0,
    *,
    data_root: str | None = None,
) -> ExperimentResult:
    """Novelty of the in-dataset populations (``embeddings``: population -> (autoencoder, z), as the
    in-dataset experiment drew them) and the samplers' frontiers, against ``zoo``'s train checkpoints
    in the autoencoder's epoch window, all scored on ``data``'s test images (those of the in-dataset
    tables, so a population's accuracy here is its epoch-0 mean there)."""
    setup = novelty_setup(ae_dir, zoo, data_root, data=data)
    weights = population_weights(embeddings, zoo, data, n, seed)
    scores = {p: setup.score(weights[p]) for p in population_order(weights)}
    score = novelty_scorer(setup.reference, setup.x, setup.y)
    frontiers = sampler_frontiers(ae_dir, zoo, methods, embeddings, score, n, seed)
    sections = novelty_sections(setup, scores, frontiers)
    params: dict[str, Any] = {
        "ae": str(ae_dir),
        "zoo": str(zoo),
        "dataset": data.name,
        "n": n,
        "seed": seed,
        "methods": list(methods),
        "bandwidths": list(BANDWIDTH_GRID),
        "sigmas": list(SIGMA_GRID),
        "epochs_window": list(setup.epochs_window),
        "reference_checkpoints": int(len(setup.reference.model_id)),
    }
    return ExperimentResult(
        "novelty",
        {},
        novelty_rows(setup, scores),
        [],
        params=params,
        sections=sections,
        metrics=novelty_metrics(sections),
    )
