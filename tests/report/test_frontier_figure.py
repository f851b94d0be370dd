"""The frontier figure: a PNG from frontier points (objects or summary.json dicts) and reference points."""

from __future__ import annotations

import json

from PIL import Image

from hyperrep_ray.evaluation.frontier import FrontierPoint
from hyperrep_ray.report.frontier_figure import frontier_figure
from hyperrep_ray.weightspace.novelty import NoveltySummary


def _curve(knob: str | None, values, acc0: float) -> list[FrontierPoint]:
    return [
        FrontierPoint(
            knob=knob, value=v, accuracy=acc0 - 0.3 * i / 4, novelty=0.1 + 0.2 * i, nearest_l2=1.0, n=30
        )
        for i, v in enumerate(values)
    ]


def test_frontier_figure_writes_a_png(tmp_path):
    frontiers = {
        "S_KDE30": _curve("bandwidth", [0.001, 0.01, 0.1], 0.8),
        "B_NOISE": [
            p.model_dump() for p in _curve("sigma", [0.0, 0.02, 0.04, 0.16], 0.9)
        ],  # as in summary.json
        "S_GAN30": _curve(None, [None], 0.4),
    }
    test_split = NoveltySummary(accuracy=0.85, novelty=0.6, max_wrong_iou=0.4, nearest_l2=1.2, n=75)
    train = json.loads(test_split.model_dump_json())  # a dict, as read back from summary.json
    path = frontier_figure(frontiers, tmp_path / "figs" / "frontier.png", test_split, train, "digits")
    assert path == tmp_path / "figs" / "frontier.png"
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 300
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 20  # lines, markers and text were drawn
