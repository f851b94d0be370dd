"""The autoencoder's training data: the store's epoch window per split, aligned, with statistics
fitted on the train split only."""

import numpy as np
import pytest

from hyperrep_ray.autoencoder.data import TrainingPayload, prepare_ae_data, train_statistics
from hyperrep_ray.config import ae_preset
from hyperrep_ray.store import SPLITS, StoreError, load_weights
from hyperrep_ray.weightspace.align import align_to_reference


@pytest.fixture(scope="module")
def cfg():
    return ae_preset("smoke", epochs_window=(2, 3))


def test_splits_hold_the_window_of_every_model_once(tiny_zoo, cfg):
    data = prepare_ae_data(tiny_zoo, cfg)
    seen = set()
    for split in SPLITS:
        meta = data.meta[split]
        assert len(meta) == len(data.weights[split]) and set(meta["epoch"]) <= {2, 3}
        ids = set(meta["model_id"])
        assert not ids & seen, "a model belongs to one split only"
        seen |= ids
        raw, df = load_weights(tiny_zoo, epochs=[2, 3], split=split)
        assert len(df) == len(meta)
    assert len(seen) == 10 and data.in_channels == 1 and data.dataset == "digits"


def test_alignment_only_reorders_neurons_and_statistics_come_from_train(tiny_zoo, cfg):
    data = prepare_ae_data(tiny_zoo, cfg)
    assert data.reference is not None
    raw, _ = load_weights(tiny_zoo, epochs=[2, 3], split="val")
    again = align_to_reference(raw.numpy(), data.reference, 1).aligned
    np.testing.assert_allclose(data.weights["val"], again, atol=1e-6)
    # a permutation keeps each vector's multiset of values
    np.testing.assert_allclose(np.sort(data.weights["val"], 1), np.sort(raw.numpy(), 1), atol=1e-6)
    stats = train_statistics(data.weights["train"], 1, cfg.standardize)
    np.testing.assert_allclose(data.mean_params, data.weights["train"].mean(0), atol=1e-6)
    np.testing.assert_array_equal(data.var_tokens, stats["var_tokens"])
    # val and test never enter the statistics
    other = prepare_ae_data(tiny_zoo, cfg, reference=data.reference)
    np.testing.assert_array_equal(other.weights["train"], data.weights["train"])
    np.testing.assert_array_equal(other.mean_params, data.mean_params)


def test_without_alignment_the_store_weights_are_used_as_they_are(tiny_zoo, cfg):
    data = prepare_ae_data(tiny_zoo, cfg.model_copy(update={"align": False}))
    raw, _ = load_weights(tiny_zoo, epochs=[2, 3], split="train")
    assert data.reference is None
    np.testing.assert_array_equal(data.weights["train"], raw.numpy())


def test_payload_carries_what_the_loop_needs(tiny_zoo, cfg):
    data = prepare_ae_data(tiny_zoo, cfg)
    p = data.training_payload()
    np.testing.assert_array_equal(p.train, data.weights["train"])
    np.testing.assert_array_equal(p.token_scale, data.token_scale)
    assert TrainingPayload.from_mapping(data.training_payload().as_dict()).in_channels == 1
    ro = TrainingPayload(**{**p.as_dict(), "train": np.asarray(p.train).copy()})
    ro.train.setflags(write=False)
    assert ro.writable().train.flags.writeable, "arrays from the object store are read-only"


def test_window_outside_the_recorded_epochs_says_what_to_pass(tiny_zoo):
    with pytest.raises(StoreError, match="--epochs-window"):
        prepare_ae_data(tiny_zoo, ae_preset("smoke", epochs_window=(21, 25)))
