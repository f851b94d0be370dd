"""Tests for sampling.samplers: shapes, determinism, ranges, and the statistical claims each sampler
is built on (marginals, (in)dependence of dimensions, low density of counterfactuals).

UMAP JIT-compiles on its first call (~10-20 s on 2 busy cores), so the neighbourhood tests use few
anchors (40 x 8) and share one module-scoped fit where they can; the GAN runs 2-3 epochs.
"""

from __future__ import annotations

import numpy as np
import pytest

from hyperrep_ray.sampling import gan as G
from hyperrep_ray.sampling import samplers as S

M, D, N = 40, 8, 25


@pytest.fixture(scope="module")
def anchors() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.tanh(rng.normal(0.0, 0.8, size=(M, D)))


@pytest.fixture(scope="module")
def accuracies() -> np.ndarray:
    return np.random.default_rng(1).uniform(0.1, 0.95, size=M)


FAST_METHODS = [
    "uniform",
    "counterfactual",
    "kde",
    "kde30",
    "kde-joint",
    "kde-joint30",
    "kde30-code",
    "gan",
    "gan30",
]


def _draw(method, anchors, accuracies, seed, n=N):
    return S.sample(method, anchors, accuracies, n, seed, bandwidth=0.05, gan_epochs=2)


@pytest.mark.parametrize("method", FAST_METHODS)
def test_sampler_contract(method, anchors, accuracies):
    z = _draw(method, anchors, accuracies, seed=0)
    assert z.shape == (N, D)
    assert z.dtype == np.float32
    assert np.isfinite(z).all()
    assert z.min() >= -1.0 and z.max() <= 1.0
    assert np.array_equal(z, _draw(method, anchors, accuracies, seed=0)), "not deterministic under a seed"
    assert not np.array_equal(z, _draw(method, anchors, accuracies, seed=1)), "same samples for two seeds"


@pytest.fixture(scope="module")
def neigh_runs(anchors):
    """Three UMAP fits (seed 0 twice, seed 1 once); the first call includes numba compilation."""
    z0, timing = S.sample_neighborhood(anchors, N, seed=0, return_timing=True)
    z0b = S.sample_neighborhood(anchors, N, seed=0)
    z1 = S.sample_neighborhood(anchors, N, seed=1)
    return z0, z0b, z1, timing


def test_neigh_contract(neigh_runs, anchors):
    z0, z0b, z1, timing = neigh_runs
    print(
        f"UMAP first call in this process: fit {timing['fit_s']:.1f} s, inverse {timing['inverse_s']:.1f} s"
    )
    for z in (z0, z1):
        assert z.shape == (N, D) and z.dtype == np.float32
        assert np.isfinite(z).all() and z.min() >= -1.0 and z.max() <= 1.0
    assert np.array_equal(z0, z0b)
    assert not np.array_equal(z0, z1)
    # UMAP's inverse transform interpolates between anchors but may overshoot a little: nearly all
    # coordinates must lie in the anchors' per-dimension range widened by 10 %
    lo, hi = anchors.min(0), anchors.max(0)
    pad = 0.1 * (hi - lo)
    inside = (z0 >= lo - pad) & (z0 <= hi + pad)
    assert inside.mean() > 0.8


def test_neigh_within_hull_and_entry_point(anchors, accuracies, neigh_runs):
    z = S.sample_neighborhood(anchors, 10, seed=0, within_hull=True)
    assert z.shape == (10, D)
    z30 = S.sample("neigh30", anchors, accuracies, 10, 0)  # 12 anchors: n_neighbors capped at 11
    assert z30.shape == (10, D) and z30.min() >= -1.0 and z30.max() <= 1.0


def test_neigh_rejects_too_few_anchors(anchors):
    with pytest.raises(ValueError, match="at least"):
        S.sample_neighborhood(anchors[:4], 5, seed=0)


@pytest.mark.parametrize("m", [10, 11, 7, 100, 3])
def test_top_fraction_is_exactly_top_30_percent(m):
    rng = np.random.default_rng(m)
    acc = rng.permutation(np.linspace(0.1, 0.9, m))
    anc = np.arange(m, dtype=float)[:, None] * np.ones((1, 3)) / m  # row i identifies anchor i
    k = int(np.ceil(round(0.3 * m, 9)))
    expected = sorted(range(m), key=lambda i: -acc[i])[:k]
    sel = S.top_fraction(anc, acc)
    assert sel.shape == (k, 3)
    assert sorted(np.rint(sel[:, 0] * m).astype(int)) == sorted(expected)
    assert list(S.top_fraction_indices(acc)) == expected


def test_top_fraction_counts_and_ties():
    assert len(S.top_fraction_indices(np.arange(10.0))) == 3
    assert len(S.top_fraction_indices(np.arange(100.0), fraction=0.07)) == 7  # 0.07*100 = 7.000000000000001
    assert len(S.top_fraction_indices(np.arange(11.0))) == 4  # ceil(3.3)
    # ties broken by index: equal accuracies -> lowest indices first
    assert list(S.top_fraction_indices([0.5] * 10)) == [0, 1, 2]
    with pytest.raises(ValueError):
        S.top_fraction(np.zeros((3, 2)), [0.1, 0.2])


def test_kde_marginals_match_anchors():
    rng = np.random.default_rng(2)
    anc = rng.uniform(-0.6, 0.6, size=(60, 4))  # far enough from +-1 that clipping is negligible
    h = 0.05
    z = S.sample_kde(anc, 40_000, bandwidth=h, seed=0)
    np.testing.assert_allclose(z.mean(0), anc.mean(0), atol=0.01)
    np.testing.assert_allclose(z.std(0), np.sqrt(anc.var(0) + h**2), rtol=0.02)


def test_kde_breaks_correlations_joint_keeps_them():
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.8, 0.8, size=200)
    anc = np.stack([x, x, rng.uniform(-0.8, 0.8, size=200)], axis=1)  # dims 0 and 1 identical
    z_ind = S.sample_kde(anc, 20_000, bandwidth=0.01, seed=0)
    z_joint = S.sample_kde_joint(anc, 20_000, bandwidth=0.01, seed=0)
    assert abs(np.corrcoef(z_ind[:, 0], z_ind[:, 1])[0, 1]) < 0.05
    assert np.corrcoef(z_joint[:, 0], z_joint[:, 1])[0, 1] > 0.99


def test_counterfactual_lands_in_low_density():
    rng = np.random.default_rng(4)
    anc = np.tanh(rng.normal(0.0, 0.5, size=(50, 6)))
    h = 0.05
    dens_kde = S.kde_density(anc, S.sample_kde(anc, 3000, bandwidth=h, seed=0), bandwidth=h)
    dens_cf = S.kde_density(anc, S.sample_counterfactual(anc, 3000, bandwidth=h, seed=0), bandwidth=h)
    assert dens_cf.mean() < 0.5 * dens_kde.mean()
    assert (dens_cf.mean(0) < dens_kde.mean(0)).all()  # in every dimension
    # and it is not just uniform: counterfactuals avoid dense regions more than S_U does
    dens_u = S.kde_density(anc, S.sample_uniform(3000, 6, seed=0), bandwidth=h)
    assert dens_cf.mean() < dens_u.mean()


def test_kde_density_matches_scipy_gaussian_kde():
    from scipy.stats import gaussian_kde

    rng = np.random.default_rng(5)
    anc = rng.uniform(-1, 1, size=(30, 2))
    pts = rng.uniform(-1, 1, size=(7, 2))
    h = 0.1
    ours = S.kde_density(anc, pts, bandwidth=h)
    for j in range(2):
        ref = gaussian_kde(anc[:, j], bw_method=h / anc[:, j].std(ddof=1))(pts[:, j])
        np.testing.assert_allclose(ours[:, j], ref, rtol=1e-10)


def test_gan_trains_and_samples(anchors):
    gen = G.train_latent_gan(anchors, seed=0, epochs=3, batch_size=32)
    assert len(gen.loss_history) == 3 and np.isfinite(gen.loss_history).all()
    z = G.sample_gan(gen, 17, seed=0)
    assert z.shape == (17, D) and z.dtype == np.float32
    assert np.array_equal(z, G.sample_gan(gen, 17, seed=0))
    assert not np.array_equal(z, G.sample_gan(gen, 17, seed=1))
    again = G.train_latent_gan(anchors, seed=0, epochs=3, batch_size=32)
    assert np.array_equal(z, G.sample_gan(again, 17, seed=0)), "GAN training not reproducible"


def test_registry_and_unknown_method(anchors, accuracies):
    assert S.SAMPLERS["kde30"] == "S_KDE30" and S.SAMPLERS["counterfactual"] == "S_C"
    assert S.SAMPLERS["kde30-code"] == "S_KDE30code"
    assert S.SAMPLERS["flow"] == "S_FLOW" and S.SAMPLERS["flow-top10"] == "S_FLOWtop10"
    assert S.SAMPLERS["mix"] == "S_MIX" and S.SAMPLERS["mix30"] == "S_MIX30"
    assert len(S.SAMPLERS) == 15
    with pytest.raises(ValueError, match="valid methods: uniform, counterfactual"):
        S.sample("vae", anchors, accuracies, 5, 0)
    with pytest.raises(ValueError, match="accuracies"):
        S.sample("kde30", anchors, None, 5, 0)


def test_30_variants_use_only_top_anchors(anchors, accuracies):
    top = S.top_fraction(anchors, accuracies)
    z = S.sample("kde-joint30", anchors, accuracies, 200, 0, bandwidth=1e-6)
    # with a tiny bandwidth every joint-KDE sample is (numerically) one of the top anchors
    dist = np.abs(z[:, None, :] - top[None, :, :].astype(np.float32)).max(-1).min(1)
    assert dist.max() < 1e-4


def test_mix_lies_between_two_different_anchors_within_its_range():
    """Three anchors far apart on the axes: every S_MIX sample is (1 - t) a + t b for two different
    anchors a, b and t in MIX_RANGE, seeded; the *30 variant mixes only top anchors."""
    anchors = np.eye(3, dtype=np.float32) * 0.9
    z = S.sample_mix(anchors, 400, seed=0)
    assert np.array_equal(z, S.sample_mix(anchors, 400, seed=0))
    assert not np.array_equal(z, S.sample_mix(anchors, 400, seed=1))
    assert np.allclose(z.sum(1), 0.9, atol=1e-6)  # on a segment between two anchors
    assert ((z > 1e-6).sum(1) == 2).all()  # always two *different* anchors
    t = z.max(1) / 0.9
    lo, hi = S.MIX_RANGE
    assert (np.minimum(t, 1 - t) >= min(lo, 1 - hi) - 1e-6).all() and (t <= max(hi, 1 - lo) + 1e-6).all()
    acc = np.array([0.1, 0.2, 0.9, 0.95, 0.3, 0.99, 0.05, 0.5, 0.6, 0.7])
    many = np.eye(10, dtype=np.float32)
    top = S.sample("mix30", many, acc, 200, 0)
    assert set(np.flatnonzero(top.sum(0))) == {2, 3, 5}  # the top 30 % of 10
    with pytest.raises(ValueError, match="at least 2"):
        S.sample_mix(anchors[:1], 5)
