"""The experiments' figures are written as real PNG images, whatever the populations hold."""

import numpy as np

from hyperrep_ray.report.experiment_figures import box_strip, curves

PNG = b"\x89PNG\r\n\x1a\n"


def test_box_strip_writes_a_png(tmp_path):
    groups = [("B_T", np.array([0.1, 0.12, 0.09])), ("S_KDE30", np.array([0.5, 0.7])), ("S_U", np.array([]))]
    path = box_strip(groups, tmp_path / "sub" / "figure4.png", "digits", "test accuracy")
    assert path == tmp_path / "sub" / "figure4.png"
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 1000


def test_curves_write_a_png(tmp_path):
    s = {"mean": 0.5, "std": 0.1, "median": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 3}
    summary = {"S_KDE30": {"0": s, "5": {**s, "mean": 0.8}}, "B_T": {"0": {**s, "mean": 0.1}, "5": s}}
    path = curves(summary, tmp_path / "table1.png", "digits: fine-tuning", "fine-tuning epochs")
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 1000
