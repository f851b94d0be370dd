"""The accuracy-novelty figure: one line per sampler over its knob, the noise baselines dashed, and the
test-split models (independently trained, so new by construction) as the marked reference point."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperrep_ray.evaluation.frontier import FrontierPoint
from hyperrep_ray.plotting import pyplot, save_figure
from hyperrep_ray.sampling.noise import NOISE_BASELINES
from hyperrep_ray.weightspace.novelty import NoveltySummary

__all__ = ["frontier_figure"]


def _points(points: Sequence[FrontierPoint | Mapping[str, Any]]) -> list[FrontierPoint]:
    """Points as written to summary.json (dicts) or as objects."""
    return [p if isinstance(p, FrontierPoint) else FrontierPoint.model_validate(p) for p in points]


def _reference(
    ax: Any, ref: NoveltySummary | Mapping[str, Any] | None, label: str, marker: str, size: float
) -> None:
    if ref is None:
        return
    r = ref if isinstance(ref, NoveltySummary) else NoveltySummary.model_validate(ref)
    ax.scatter(
        [r.novelty], [r.accuracy], marker=marker, s=size, c="black", zorder=5, label=f"{label} (n={r.n})"
    )


def frontier_figure(
    frontiers: Mapping[str, Sequence[FrontierPoint | Mapping[str, Any]]],
    path: str | Path,
    test_split: NoveltySummary | Mapping[str, Any] | None = None,
    train_vs_train: NoveltySummary | Mapping[str, Any] | None = None,
    title: str = "accuracy against novelty",
) -> Path:
    """PNG of mean epoch-0 accuracy (y) against novelty = 1 - mean max_wrong_iou (x), one line per
    sampler (its first and last knob values written next to them), noise baselines dashed; the
    test-split models (a star) and train checkpoints against other train models (a diamond) as
    reference points."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, raw in frontiers.items():
        pts = sorted(_points(raw), key=lambda p: (p.value is None, p.value or 0.0))
        if not pts:
            continue
        xs, ys = [p.novelty for p in pts], [p.accuracy for p in pts]
        style = "--" if name in NOISE_BASELINES else "-"
        ax.plot(xs, ys, style, marker="o" if len(pts) > 1 else "s", ms=5, label=name)
        for p in (pts[0], pts[-1]) if len(pts) > 1 else ():  # knob values at the two ends of the curve
            if p.value is not None:
                ax.annotate(
                    f"{p.value:g}",
                    (p.novelty, p.accuracy),
                    fontsize=6,
                    alpha=0.7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    _reference(ax, test_split, "test-split models", "*", 200)
    _reference(ax, train_vs_train, "train vs other train models", "D", 60)
    ax.axhline(0.1, color="grey", ls=":", lw=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1)
    ax.set_xlabel("novelty (1 - max IoU of wrong predictions with a train checkpoint)")
    ax.set_ylabel("test accuracy (epoch 0)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)
