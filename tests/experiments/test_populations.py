"""Ensemble members and averaged-logit accuracy."""

import numpy as np
import pytest

from hyperrep_ray.experiments.populations import ensemble_accuracy, random_ensembles


def test_ensemble_helpers():
    members = random_ensembles(5, (1, 2, 7), repeats=4, seed=0)
    assert set(members) == {1, 2} and [m.tolist() for m in members[1]] == [[i] for i in range(5)]
    assert all(len(set(m.tolist())) == 2 for m in members[2]) and len(members[2]) == 4
    assert [m.tolist() for m in members[2]] == [m.tolist() for m in random_ensembles(5, (2,), 4, 0)[2]]

    y = np.array([0, 1, 2])
    logits = np.zeros((3, 3, 10), np.float32)
    logits[0, np.arange(3), [0, 1, 0]] = 1.0  # 2/3 right
    logits[1, np.arange(3), [0, 0, 2]] = 3.0  # 2/3 right, more confident
    logits[2] = np.nan  # a model whose weights were not finite
    assert ensemble_accuracy(logits, y, [0]) == pytest.approx(2 / 3)
    # averaged logits: image 1 -> class 0 (3 > 1), image 2 -> class 2 (3 > 1)
    assert ensemble_accuracy(logits, y, [0, 1]) == pytest.approx(2 / 3)
    assert ensemble_accuracy(logits, y, [0, 2]) == ensemble_accuracy(logits, y, [0])
    assert ensemble_accuracy(logits, y, [2]) == 0.0
