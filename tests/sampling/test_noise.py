"""B_NOISE / B_NOISE_ORIG: seeded Gaussian noise on the top-30 % train checkpoints, decoded or original;
sigma = 0 gives the anchors themselves."""

from __future__ import annotations

import numpy as np
import pytest

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.sampling.generate import load_anchors
from hyperrep_ray.sampling.noise import SIGMA_GRID, decoded_top_anchors, noise_baseline, original_top_weights
from hyperrep_ray.sampling.samplers import top_fraction_indices


def test_noise_baseline_is_seeded_gaussian_noise_on_the_anchors():
    w = np.random.default_rng(0).normal(size=(7, 300)).astype(np.float32)
    np.testing.assert_array_equal(noise_baseline(w, 7, 0.0), w)
    np.testing.assert_array_equal(noise_baseline(w, 10, 0.0)[7:], w[:3])  # anchor i mod M
    a, b = noise_baseline(w, 70, 0.04, seed=1), noise_baseline(w, 70, 0.04, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, noise_baseline(w, 70, 0.04, seed=2))
    eps = a - np.tile(w, (10, 1))
    assert abs(eps.mean()) < 0.002 and eps.std() == pytest.approx(0.04, rel=0.02)
    assert a.dtype == np.float32
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            noise_baseline(w, 3, bad)


def test_sigma_grid_spans_the_published_levels():
    assert SIGMA_GRID[0] == 0.0 and min(s for s in SIGMA_GRID if s > 0) == 0.005 and max(SIGMA_GRID) == 0.16
    assert 0.02 in SIGMA_GRID and 0.04 in SIGMA_GRID


def test_b_noise_at_sigma_zero_equals_the_decoded_anchors(trained_ae, tiny_zoo):
    ae = trained_ae[0]
    z, acc = load_anchors(ae)
    top = top_fraction_indices(acc)
    decoded = decoded_top_anchors(ae)
    np.testing.assert_array_equal(decoded, HyperRepresentation.load(ae).decode(z[top]))
    np.testing.assert_array_equal(noise_baseline(decoded, len(decoded), 0.0), decoded)
    # B_NOISE_ORIG: the same checkpoints' original weights, best first
    original = original_top_weights(ae)
    assert original.shape == decoded.shape
    w, meta = store.load_weights(tiny_zoo, split="train")
    by_key = {(m, e): i for i, (m, e) in enumerate(zip(meta["model_id"], meta["epoch"], strict=True))}
    with np.load(f"{ae}/anchors.npz") as npz:
        keys = [(int(npz["model_id"][k]), int(npz["epoch"][k])) for k in top]
    np.testing.assert_array_equal(original, w.numpy()[[by_key[k] for k in keys]])
    test_acc = meta["test_acc"].to_numpy()[[by_key[k] for k in keys]]
    assert (np.diff(test_acc) <= 0).all()  # best first
