"""Novelty measures on constructed cases: copies are found as copies (also when their neurons are
permuted), disjoint errors give IoU 0, and the vectorised code agrees with a plain per-pair loop.

The reference is a small zoo trained in-process (8 models, epochs 1-3 on 256 digits images, about
2 s): no Ray, no autoencoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperrep_ray.config import zoo_preset
from hyperrep_ray.weightspace import novelty as nv
from hyperrep_ray.weightspace.augment import permute_hidden_neurons
from hyperrep_ray.zoo.cnn import vector_to_model
from hyperrep_ray.zoo.train import train_models

SUMMARY_KEYS = {"accuracy", "novelty", "max_wrong_iou", "nearest_l2", "n"}


@pytest.fixture(scope="module")
def zoo(small_digits):
    cfg = zoo_preset("smoke", num_models=8, epochs=3, population_size=8)
    trained = train_models(cfg.seeds, small_digits, cfg)
    w = trained.weights[:, 1:].reshape(-1, trained.weights.shape[-1])  # epochs 1..3 of each model
    ids, epochs = np.repeat(np.arange(8), 3), np.tile([1, 2, 3], 8)
    return w, ids, epochs


@pytest.fixture(scope="module")
def reference(zoo, small_digits):
    w, ids, epochs = zoo
    return nv.build_reference(w, ids, epochs, small_digits.test_x, small_digits.test_y, "tanh")


def test_a_model_against_itself(zoo, reference, small_digits):
    w, ids, epochs = zoo
    rows = [0, 7, 23]
    scores = nv.score_models(w[rows], reference, small_digits.test_x, small_digits.test_y)
    np.testing.assert_array_equal(scores.max_wrong_iou, 1.0)
    np.testing.assert_allclose(scores.nearest_l2_raw, 0.0, atol=1e-6)
    for r, rec in zip(rows, scores.records(reference), strict=True):
        assert (rec.nearest_model_id, rec.nearest_epoch) == (ids[r], epochs[r])
        assert (rec.iou_model_id, rec.iou_epoch) == (ids[r], epochs[r])
        assert rec.novelty == 0.0 and rec.nearest_l2 == pytest.approx(0.0, abs=1e-6)
    summary = scores.summary()
    assert set(summary.model_dump()) == SUMMARY_KEYS
    assert summary.novelty == 0.0 and summary.n == 3


def test_neuron_permuted_copy_is_found_as_that_checkpoint(zoo, reference, small_digits):
    w, ids, epochs = zoo
    rows = [4, 10, 17]
    copies = permute_hidden_neurons(torch.from_numpy(w[rows].copy()), 1, torch.Generator().manual_seed(0))
    copies_np = copies.numpy()
    raw = np.linalg.norm(copies_np - w[rows], axis=1)
    assert (raw > 0.2 * reference.scale).all(), "the permutation must move the weights"
    scores = nv.score_models(copies_np, reference, small_digits.test_x, small_digits.test_y)
    np.testing.assert_array_equal(scores.nearest_index, rows)
    assert scores.nearest_l2.max() < 1e-5  # in units of the typical train-to-other-model distance
    np.testing.assert_array_equal(scores.max_wrong_iou, 1.0)  # same function, same errors
    # the same through the plain entry point, with its own canonical reference
    found = nv.nearest_l2(copies_np, w)
    np.testing.assert_array_equal(found.row, rows)
    assert found.value.max() < 1e-4


def test_wrong_set_iou_on_constructed_masks():
    a = np.zeros((4, 8), dtype=bool)
    a[0, :2] = True  # {0, 1}
    a[1, 2:4] = True  # {2, 3}
    a[2, :3] = True  # {0, 1, 2}
    refs = np.zeros((2, 8), dtype=bool)
    refs[0, 4:6] = True  # {4, 5}: disjoint from every query
    refs[1, 1:3] = True  # {1, 2}
    got = nv.max_wrong_iou(a, refs)
    # query 0: IoU 0 and 1/3 -> 1/3 (row 1); query 1: 0 and 1/3; query 2: 0 and 2/3; query 3 (no
    # errors) against sets that have errors: 0 everywhere
    np.testing.assert_allclose(got.value, [1 / 3, 1 / 3, 2 / 3, 0.0])
    np.testing.assert_array_equal(got.row, [1, 1, 1, 0])
    disjoint = nv.max_wrong_iou(a[:2], refs[:1])
    np.testing.assert_array_equal(disjoint.value, [0.0, 0.0])
    both_perfect = nv.max_wrong_iou(np.zeros((1, 8), bool), np.zeros((3, 8), bool))
    assert both_perfect.value[0] == 1.0  # identical (empty) error sets
    # excluding references of the query's own id: query 2 may not use row 1 any more
    excl = nv.max_wrong_iou(a[2:3], refs, query_ids=[7], ref_ids=[3, 7])
    assert excl.value[0] == 0.0 and excl.row[0] == 0
    none_left = nv.max_wrong_iou(a[2:3], refs, query_ids=[7], ref_ids=[7, 7])
    assert np.isnan(none_left.value[0]) and none_left.row[0] == -1


def test_vectorised_measures_equal_a_per_pair_loop():
    rng = np.random.default_rng(0)
    masks, refs = rng.random((37, 300)) < 0.2, rng.random((53, 300)) < 0.3
    ids, ref_ids = rng.integers(0, 10, 37), rng.integers(0, 10, 53)
    got = nv.max_wrong_iou(masks, refs, ids, ref_ids)
    for i in range(37):
        ious = [
            (masks[i] & refs[j]).sum() / (masks[i] | refs[j]).sum() if ids[i] != ref_ids[j] else -1.0
            for j in range(53)
        ]
        assert got.value[i] == pytest.approx(max(ious), abs=1e-12)
    w, r = rng.normal(size=(37, 64)).astype(np.float32), rng.normal(size=(53, 64)).astype(np.float32)
    near = nv.nearest_pairs(w, r)
    loop = np.array([[np.linalg.norm(w[i].astype(float) - r[j]) for j in range(53)] for i in range(37)])
    np.testing.assert_array_equal(near.row, loop.argmin(1))
    np.testing.assert_allclose(near.value, loop.min(1), rtol=1e-12)


def test_wrong_masks_match_single_models(zoo, small_digits):
    w, _, _ = zoo
    masks = nv.wrong_masks(w[:5], small_digits.test_x, small_digits.test_y, "tanh")
    for i in range(5):
        with torch.no_grad():
            pred = vector_to_model(w[i], 1, "tanh")(small_digits.test_x).argmax(1)
        np.testing.assert_array_equal(masks[i], (pred != small_digits.test_y).numpy())


def test_train_vs_train_uses_other_models_only(reference):
    scores = nv.train_vs_train(reference)
    records = scores.records(reference)
    assert all(r.nearest_model_id != m for r, m in zip(records, reference.model_id, strict=True))
    assert all(r.iou_model_id != m for r, m in zip(records, reference.model_id, strict=True))
    summary = scores.summary()
    assert summary.n == reference.model_id.size == 24
    assert summary.nearest_l2 == pytest.approx(1.0)  # the median is the scale by definition
    assert 0.0 < summary.novelty < 1.0


def test_non_finite_models_are_all_wrong_and_have_no_nearest(zoo, reference, small_digits):
    w, _, _ = zoo
    bad = w[:2].copy()
    bad[1, 5] = np.nan
    scores = nv.score_models(bad, reference, small_digits.test_x, small_digits.test_y)
    assert scores.accuracy[1] == 0.0 and scores.accuracy[0] > 0.0
    rec = scores.records(reference)[1]
    assert rec.nearest_l2 is None and rec.nearest_model_id is None
    assert scores.summary().nearest_l2 == pytest.approx(0.0, abs=1e-6)  # median over the finite one
