"""Anchors written with an autoencoder read back as they were; a missing file says what to do."""

import numpy as np
import pytest

from hyperrep_ray.autoencoder.artifacts import Anchors, load_anchors, save_anchors


def test_anchors_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a = Anchors(
        z=rng.uniform(-1, 1, (7, 16)).astype(np.float32),
        test_acc=rng.uniform(0, 1, 7),
        train_acc=rng.uniform(0, 1, 7),
        model_id=np.arange(7, dtype=np.int32),
        epoch=np.full(7, 3, np.int16),
    )
    save_anchors(tmp_path, a)
    b = load_anchors(tmp_path)
    for field in ("z", "test_acc", "train_acc", "model_id", "epoch"):
        np.testing.assert_array_equal(getattr(b, field), getattr(a, field))
    assert b.z.dtype == np.float32 and b.model_id.dtype == np.int64
    assert [p.name for p in tmp_path.iterdir()] == ["anchors.npz"]


def test_missing_anchors_say_to_retrain(tmp_path):
    with pytest.raises(FileNotFoundError, match="anchors.npz.*retrain"):
        load_anchors(tmp_path)
