"""The accuracy-novelty frontier: points per knob value, and the comparison with the baseline curve.

Drawing and scoring are plain callables here (constructed numbers), plus one end-to-end curve of the
noise baseline against a small in-process zoo: more noise, more novelty, less accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from hyperrep_ray.config import zoo_preset
from hyperrep_ray.evaluation import frontier as F
from hyperrep_ray.weightspace import novelty as nv
from hyperrep_ray.weightspace.novelty import NoveltySummary
from hyperrep_ray.zoo.train import train_models

POINT_KEYS = {"knob", "value", "accuracy", "novelty", "nearest_l2", "n"}


def _summary(acc: float, nov: float, n: int = 10) -> NoveltySummary:
    return NoveltySummary(accuracy=acc, novelty=nov, max_wrong_iou=1 - nov, nearest_l2=nov * 2, n=n)


def test_frontier_points_follow_the_knob():
    seen = []

    def draw(v: float) -> np.ndarray:
        seen.append(v)
        return np.full((3, 2), v)

    points = F.frontier("sigma", [0.0, 0.5, 1.0], draw, lambda w: _summary(1 - w[0, 0] / 2, w[0, 0], len(w)))
    assert seen == [0.0, 0.5, 1.0]
    assert [set(p.model_dump()) for p in points] == [POINT_KEYS] * 3
    assert [(p.knob, p.value, p.accuracy, p.novelty, p.n) for p in points] == [
        ("sigma", 0.0, 1.0, 0.0, 3),
        ("sigma", 0.5, 0.75, 0.5, 3),
        ("sigma", 1.0, 0.5, 1.0, 3),
    ]


def test_above_baseline_interpolates_at_equal_novelty():
    baseline = [
        F.FrontierPoint(knob="sigma", value=s, accuracy=a, novelty=nov, nearest_l2=None, n=10)
        for s, a, nov in [(0.04, 0.6, 0.5), (0.0, 0.9, 0.1), (0.02, 0.8, 0.3)]  # unsorted on purpose
    ]
    points = [
        F.FrontierPoint(knob="bandwidth", value=0.01, accuracy=0.75, novelty=0.2, nearest_l2=1.0, n=10),
        F.FrontierPoint(knob="bandwidth", value=0.05, accuracy=0.75, novelty=0.4, nearest_l2=1.0, n=10),
        F.FrontierPoint(knob="bandwidth", value=0.2, accuracy=0.5, novelty=0.9, nearest_l2=1.0, n=10),
    ]
    got = F.above_baseline(points, baseline)
    # novelty 0.2: baseline 0.85 (between 0.9 at 0.1 and 0.8 at 0.3) -> below by 0.10
    assert got[0].baseline_accuracy == pytest.approx(0.85) and got[0].margin == pytest.approx(-0.10)
    assert got[0].above is False
    # novelty 0.4: baseline 0.7 -> above by 0.05
    assert got[1].baseline_accuracy == pytest.approx(0.7) and got[1].above is True
    assert got[1].margin == pytest.approx(0.05)
    # novelty 0.9 lies beyond the baseline's reach: not compared, not extrapolated
    assert got[2].baseline_accuracy is None and got[2].above is None
    both = F.compare_to_baseline({"B_NOISE": baseline, "S_KDE30": points})
    assert list(both) == ["S_KDE30"] and both["S_KDE30"] == got


def test_knobs():
    assert [F.knob_for(m) for m in ("kde30", "kde-joint30", "kde30-code", "B_NOISE", "B_NOISE_ORIG")] == [
        "bandwidth",
        "bandwidth",
        "bandwidth",
        "sigma",
        "sigma",
    ]
    assert F.knob_for("gan30") is None and F.knob_for("neigh30") is None


def test_sampler_frontier_draws_with_each_bandwidth():
    rng = np.random.default_rng(0)
    anchors, acc = rng.uniform(-0.5, 0.5, (20, 4)), rng.uniform(0, 1, 20)
    top = anchors[np.argsort(-acc)[:6]]
    offsets: list[float] = []

    def score(z: np.ndarray) -> NoveltySummary:  # how far the joint KDE's draws sit from their anchor
        offsets.append(float(np.abs(z[:, None] - top[None]).max(-1).min(1).mean()))
        return _summary(0.5, 0.5, len(z))

    pts = F.sampler_frontier("kde-joint30", anchors, acc, lambda z: z, score, n=200, values=(0.001, 0.1))
    assert [(p.knob, p.value, p.n) for p in pts] == [("bandwidth", 0.001, 200), ("bandwidth", 0.1, 200)]
    assert offsets[0] < 0.005 < 0.05 < offsets[1]
    single = F.sampler_frontier("uniform", anchors, acc, lambda z: z, score, n=5)
    assert len(single) == 1 and single[0].knob is None and single[0].value is None


def test_noise_curve_trades_accuracy_for_novelty(small_digits):
    cfg = zoo_preset("smoke", num_models=6, epochs=4, population_size=6)
    trained = train_models(cfg.seeds, small_digits, cfg)
    w = trained.weights[:, 2:].reshape(-1, trained.weights.shape[-1])
    ids, epochs = np.repeat(np.arange(6), 3), np.tile([2, 3, 4], 6)
    ref = nv.build_reference(w, ids, epochs, small_digits.test_x, small_digits.test_y, "tanh")
    score = F.novelty_scorer(ref, small_digits.test_x, small_digits.test_y)
    pts = F.noise_frontier(w, score, n=18, values=(0.0, 0.02, 0.3))
    assert pts[0].novelty == 0.0 and pts[0].nearest_l2 == pytest.approx(0.0, abs=1e-6)  # the anchors
    assert pts[0].accuracy == pytest.approx(float(trained.test_acc[:, 2:].mean()), abs=1e-6)
    assert pts[0].novelty < pts[1].novelty < pts[2].novelty
    assert pts[2].accuracy < pts[0].accuracy
    assert pts[0].nearest_l2 < pts[1].nearest_l2 < pts[2].nearest_l2
