"""The novelty experiment drawn: every population's accuracy beside its novelty, the reference points,
the frontier points with their margin over the noise baseline, and the frontier figure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hyperrep_ray.evaluation.results import ExperimentResult
from hyperrep_ray.io import write_text, write_with
from hyperrep_ray.report.frontier_figure import frontier_figure

REFERENCE_LABELS = {
    "test_split": "test-split models (independently trained: the target)",
    "train_vs_train": "train checkpoints vs other train models",
}


def fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def novelty_markdown(sections: Mapping[str, Any]) -> list[str]:
    """Population | accuracy | novelty | max IoU | nearest L2 | n, the reference points first."""
    lines = [
        "| population | accuracy (ep 0) | novelty | max wrong-IoU | nearest L2 (median, norm.) | n |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [(REFERENCE_LABELS.get(k, k), v) for k, v in sections.get("novelty_reference", {}).items()]
    rows += list(sections.get("novelty", {}).items())
    for name, s in rows:
        lines.append(
            f"| {name} | {fmt(s['accuracy'])} | {fmt(s['novelty'])} | {fmt(s['max_wrong_iou'])} | "
            f"{fmt(s['nearest_l2'])} | {s['n']} |"
        )
    return lines


def frontier_markdown(sections: Mapping[str, Any]) -> list[str]:
    """Sampler | knob = value | accuracy | novelty | nearest L2 | B_NOISE at that novelty | margin."""
    lines = [
        "| sampler | knob | accuracy | novelty | nearest L2 | B_NOISE accuracy at that novelty | margin |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    vs = sections.get("frontier_vs_noise", {})
    for name, points in sections.get("frontier", {}).items():
        comparisons = vs.get(name, [None] * len(points))
        for p, c in zip(points, comparisons, strict=True):
            knob = "–" if p["knob"] is None else f"{p['knob']} = {p['value']:g}"
            base = fmt(c["baseline_accuracy"]) if c else "(baseline)"
            margin = fmt(c["margin"]) if c else "–"
            if c and c["above"]:
                margin = f"**+{margin}**"
            lines.append(
                f"| {name} | {knob} | {fmt(p['accuracy'])} | {fmt(p['novelty'])} | {fmt(p['nearest_l2'])} | "
                f"{base} | {margin} |"
            )
    return lines


def answer(sections: Mapping[str, Any]) -> str:
    """One sentence: which samplers have frontier points above the noise baseline at equal novelty."""
    above = {
        name: max(c["margin"] for c in points if c["above"])
        for name, points in sections.get("frontier_vs_noise", {}).items()
        if any(c["above"] for c in points)
    }
    if not above:
        return "No sampler lies above the noise baseline (B_NOISE) at equal novelty."
    parts = ", ".join(f"{k} (by up to {100 * v:.1f} points)" for k, v in sorted(above.items()))
    return f"Above the noise baseline (B_NOISE) at equal novelty: {parts}."


def write_novelty(result: ExperimentResult, out: Path) -> list[Path]:
    """``novelty/novelty.md``, ``novelty_rows.csv`` (one row per model: nearest checkpoint by errors
    and by weights), ``frontier.csv`` and ``frontier.png``."""
    s, p = result.sections, result.params
    directory = out / "novelty"
    caption = (
        f"Are the sampled models new? Against the {p['reference_checkpoints']} train checkpoints of epochs "
        f"{p['epochs_window'][0]}-{p['epochs_window'][1]} on {p['dataset']}'s test images: novelty = 1 − "
        "mean over models of the max IoU of wrong-prediction sets with any train checkpoint; nearest L2 "
        "in canonical neuron order, in units of the median distance between different train models. "
        "Accuracy at epoch 0 (as sampled)."
    )
    lines = [f"## Novelty ({p['dataset']})", "", f"*{caption}*", "", *novelty_markdown(s), ""]
    lines += ["### Accuracy-novelty frontier", "", answer(s), "", *frontier_markdown(s), ""]
    md = write_text(directory / "novelty.md", "\n".join(lines))
    rows = write_with(directory / "novelty_rows.csv", lambda tmp: result.frame.to_csv(tmp, index=False))
    flat = [{"sampler": k, **pt} for k, pts in s.get("frontier", {}).items() for pt in pts]
    fcsv = write_with(directory / "frontier.csv", lambda tmp: pd.DataFrame(flat).to_csv(tmp, index=False))
    refs = s.get("novelty_reference", {})
    png = frontier_figure(
        s.get("frontier", {}),
        directory / "frontier.png",
        refs.get("test_split"),
        refs.get("train_vs_train"),
        title=f"accuracy against novelty ({p['dataset']}, n = {p['n']} per point)",
    )
    return [md, rows, fcsv, png]
