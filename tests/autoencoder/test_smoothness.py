"""Smoothness probes: interpolation and relative noise in z, scored by decoded-model accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperrep_ray.autoencoder.scoring import accuracy_scorer
from hyperrep_ray.autoencoder.smoothness import (
    interpolation_accuracy,
    noise_accuracy,
    pairs_for_interpolation,
    plot_interpolation,
    plot_noise,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Recorder:
    """An identity decoder that remembers what it was asked to decode."""

    def __init__(self, fn=lambda z: z):
        self.fn = fn
        self.calls: list[np.ndarray] = []

    def __call__(self, z: np.ndarray) -> np.ndarray:
        self.calls.append(np.array(z, copy=True))
        return self.fn(z)


@pytest.fixture(scope="module")
def real_models():
    """Three quickly trained zoo CNNs (~0.5 accuracy) and a scorer on 200 digits test images."""
    from hyperrep_ray.config import ZooConfig
    from hyperrep_ray.data.images import ImageData, load_dataset
    from hyperrep_ray.zoo.train import train_population

    d = load_dataset("digits")
    data = ImageData("digits", d.train_x[:512], d.train_y[:512], d.test_x[:200], d.test_y[:200], {})
    cfg = ZooConfig(epochs=2, init="uniform_symmetric", lr=3e-3, num_models=3)
    trained = train_population([1, 2, 3], data, cfg)
    weights = trained.weights[:, -1]  # (3, 2464) float32
    return weights, accuracy_scorer(data.test_x, data.test_y, "tanh")


def test_interpolation_endpoints_reproduce_real_models(real_models):
    weights, score = real_models
    clean = score(weights)
    assert clean.min() > 0.3  # "trained-ish", clearly above chance
    # z = one-hot coordinates of the models, decoded linearly: z @ weights
    decode = Recorder(lambda z: z.astype(np.float32) @ weights)
    eye = np.eye(3, dtype=np.float32)
    res = interpolation_accuracy(eye[[0, 1]], eye[[1, 2]], decode, score, steps=5)
    assert len(decode.calls) == 1 and decode.calls[0].shape == (2 * 5, 3)  # one batched decode
    acc = np.asarray(res["accuracy"])
    assert acc.shape == (2, 5)
    np.testing.assert_array_equal(acc[:, 0], clean[[0, 1]])
    np.testing.assert_array_equal(acc[:, -1], clean[[1, 2]])
    assert res["t"] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert ((acc >= 0) & (acc <= 1)).all()
    assert res["interpolation_accuracy_min"] == pytest.approx(min(res["mean_accuracy"]))
    assert res["min_over_path_mean"] <= res["interpolation_accuracy_min"] + 1e-12
    assert res["endpoint_mean_accuracy"] == pytest.approx(clean[[0, 1, 1, 2]].mean())


def test_interpolation_minima_with_toy_score():
    # 1-d "weights": pair 1 runs -1 -> 3 (|w| = 0 at t = 0.25), pair 2 runs 3 -> -1 (0 at t = 0.75)
    z_a, z_b = np.array([[-1.0], [3.0]]), np.array([[3.0], [-1.0]])
    res = interpolation_accuracy(z_a, z_b, lambda z: z, lambda w: np.abs(w[:, 0]), steps=5)
    np.testing.assert_allclose(res["accuracy"], [[1, 0, 1, 2, 3], [3, 2, 1, 0, 1]])
    np.testing.assert_allclose(res["mean_accuracy"], [2, 1, 1, 1, 2])
    assert res["min_over_path_mean"] == 0.0  # each pair dips to 0, at different t
    assert res["interpolation_accuracy_min"] == 1.0  # the mean curve never does
    # score = -||w - w0|| with w0 at t = 0.7 of the path: best at t = 0.7, worst at t = 0
    a, b = np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 2.0, 2.0]])  # |b - a| = 3
    w0 = 0.3 * a + 0.7 * b
    res = interpolation_accuracy(a, b, lambda z: z, lambda w: -np.linalg.norm(w - w0, axis=1), steps=11)
    path = np.asarray(res["accuracy"])[0]
    assert int(np.argmax(path)) == 7 and int(np.argmin(path)) == 0
    assert res["min_over_path_mean"] == pytest.approx(-2.1)
    with pytest.raises(ValueError, match="same shape"):
        interpolation_accuracy(a, np.zeros((2, 3)), lambda z: z, lambda w: w[:, 0])


def test_noise_level_zero_is_clean_and_draws_are_seeded(real_models):
    weights, score = real_models
    z = np.eye(3)
    decode = Recorder(lambda z: z.astype(np.float32) @ weights)
    res = noise_accuracy(z, decode, score, levels=(0.05, 0.5), seed=0)
    assert len(decode.calls) == 1 and decode.calls[0].shape == (3 * 3, 3)  # levels 0, 0.05, 0.5 at once
    assert res["levels"] == [0.0, 0.05, 0.5]
    assert res["clean_accuracy"] == pytest.approx(float(score(weights).mean()))
    assert res["mean_accuracy"][0] == res["clean_accuracy"]
    again = noise_accuracy(z, decode, score, levels=(0.05, 0.5), seed=0)
    assert again["accuracy"] == res["accuracy"]
    np.testing.assert_array_equal(decode.calls[0], decode.calls[1])
    noise_accuracy(z, decode, score, levels=(0.05, 0.5), seed=1)
    assert not np.array_equal(decode.calls[2][3:], decode.calls[0][3:])
    np.testing.assert_array_equal(decode.calls[2][:3], z)  # level 0 is z itself


def test_relative_noise_rule():
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, size=(400, 16))
    z[:, 0] = 0.0
    decode = Recorder()
    noise_accuracy(z, decode, lambda w: w[:, 0], levels=(0.1,), seed=3)
    noisy = decode.calls[0][400:]
    np.testing.assert_array_equal(noisy[:, 0], 0.0)  # element rule: no signal, no noise
    rel = (noisy[:, 1:] - z[:, 1:]) / np.abs(z[:, 1:])
    assert rel.std() == pytest.approx(0.1, rel=0.05) and abs(rel.mean()) < 0.01
    decode = Recorder()
    res = noise_accuracy(z, decode, lambda w: w[:, 0], levels=(0.1,), seed=3, rule="norm")
    assert res["rule"].startswith("norm")
    delta = decode.calls[0][400:] - z
    rms = np.linalg.norm(z, axis=1, keepdims=True) / 4.0  # sqrt(16)
    assert (delta / rms).std() == pytest.approx(0.1, rel=0.05)
    assert np.abs(delta[:, 0]).max() > 0  # isotropic: zero coordinates get noise too


def test_pairs_are_distinct_and_respect_groups():
    pairs = pairs_for_interpolation(10, 45, seed=0)  # all of them
    assert pairs.shape == (45, 2) and pairs.dtype == np.int64
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert len({tuple(p) for p in pairs.tolist()}) == 45
    np.testing.assert_array_equal(pairs_for_interpolation(50, 20, seed=4), pairs_for_interpolation(50, 20, 4))
    groups = np.repeat(np.arange(5), 4)  # 5 models x 4 epochs
    pairs = pairs_for_interpolation(20, 100, seed=1, groups=groups)
    assert (groups[pairs[:, 0]] != groups[pairs[:, 1]]).all()
    with pytest.raises(ValueError, match="only 160"):
        pairs_for_interpolation(20, 161, seed=1, groups=groups)
    big = pairs_for_interpolation(5000, 300, seed=2)  # rejection-sampling path
    assert big.shape == (300, 2) and len({tuple(p) for p in big.tolist()}) == 300
    assert (big[:, 0] < big[:, 1]).all() and big.max() < 5000


def test_plots_are_pngs(tmp_path):
    z_a, z_b = np.array([[-1.0], [3.0]]), np.array([[3.0], [-1.0]])
    score = lambda w: np.clip(np.abs(w[:, 0]) / 3, 0, 1)  # noqa: E731
    interp = interpolation_accuracy(z_a, z_b, lambda z: z, score, steps=5)
    noise = noise_accuracy(z_a, lambda z: z, score)
    paths = [
        plot_interpolation(interp, tmp_path / "interp.png"),
        plot_interpolation({"baseline": interp, "ours": interp}, tmp_path / "sub" / "both.png"),
        plot_noise(noise, tmp_path / "noise.png"),
        plot_noise({"a": noise, "b": noise}, tmp_path / "noise2.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_non_finite_decodes_score_zero():
    # a decoder that blows up mid-path must not poison the batch (evaluate_weight_vectors scores it 0)
    x = torch.zeros(4, 1, 28, 28)
    y = torch.zeros(4, dtype=torch.int64)
    score = accuracy_scorer(x, y, "tanh")
    w = np.zeros((3, 2464), np.float32)
    w[1, 0] = np.nan
    res = interpolation_accuracy(np.zeros((1, 1)), np.ones((1, 1)), lambda z: w, score, steps=3)
    assert np.asarray(res["accuracy"])[0, 1] == 0.0
