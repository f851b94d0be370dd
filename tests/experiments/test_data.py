"""The derived digits transfer target and the hyperparameters a target takes."""

import numpy as np

from hyperrep_ray.data.images import load_dataset
from hyperrep_ray.evaluation.finetune import hyper_for_dataset
from hyperrep_ray.experiments.data import TRANSFER_TARGET_NAME, digits_transfer_target, target_hyper


def test_digits_transfer_target_is_mirrored_rotated_digits():
    src, tgt = load_dataset("digits"), digits_transfer_target(0)
    assert tgt.name == TRANSFER_TARGET_NAME and tgt.preprocessing["derived_from"] == "digits"
    assert tgt.train_x.shape == src.train_x.shape and tgt.test_x.shape == src.test_x.shape
    assert (tgt.train_y == src.train_y).all() and (tgt.test_y == src.test_y).all()  # same labels, same split
    # mirror left-right then rotate 90 degrees = transpose (bilinear resizing commutes with it)
    np.testing.assert_allclose(tgt.train_x, src.train_x.transpose(-1, -2), atol=1e-5)
    np.testing.assert_allclose(tgt.test_x, src.test_x.transpose(-1, -2), atol=1e-5)
    assert not np.allclose(tgt.test_x, src.test_x, atol=0.1)
    hyper, init = target_hyper(tgt)
    assert hyper["lr"] == hyper_for_dataset("digits")["lr"] and init == hyper_for_dataset("digits")["init"]


def test_zoo_data_rebuilds_the_recorded_split_and_refuses_other_images(tmp_path):
    import json

    import pytest

    from hyperrep_ray.experiments.data import zoo_data

    made = load_dataset("digits", split_seed=3, test_fraction=0.25)
    meta = {"format_version": 1, "dataset": "digits", "preprocessing": made.preprocessing}
    (tmp_path / "zoo.json").write_text(json.dumps(meta))
    got = zoo_data(str(tmp_path))
    assert (got.test_y == made.test_y).all() and np.array_equal(got.test_x, made.test_x)
    assert len(got.test_y) != len(load_dataset("digits").test_y)  # not the default split
    meta["preprocessing"] = {**made.preprocessing, "num_train": 10}
    (tmp_path / "zoo.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not the ones this zoo was trained on"):
        zoo_data(str(tmp_path))
