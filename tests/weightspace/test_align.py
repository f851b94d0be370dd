"""Weight matching to a reference: function-preserving, exact on permuted copies, reduces spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperrep_ray.weightspace.align import align_to_reference, fit_reference, matching_cost
from hyperrep_ray.weightspace.augment import apply_permutation, permute_hidden_neurons
from hyperrep_ray.zoo.cnn import build_model, model_to_vector, vector_to_model


def _vec(in_channels: int, seed: int, init: str = "uniform") -> torch.Tensor:
    return torch.as_tensor(model_to_vector(build_model(in_channels, "tanh", init, seed)))


def _perturbed_population(in_channels: int = 1, n: int = 40, sigma: float = 0.05, seed: int = 0):
    """Noisy copies of one base model, each in a random neuron order (the original order returned too)."""
    g = torch.Generator().manual_seed(seed)
    base = _vec(in_channels, 100)
    pop = base + sigma * torch.randn(n, base.numel(), generator=g)
    return base, pop, permute_hidden_neurons(pop, in_channels, g)


def _mean_pairwise_distance(x) -> float:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return float(torch.pdist(x).mean())


@pytest.mark.parametrize(("in_channels", "activation"), [(1, "tanh"), (3, "gelu")])
def test_alignment_preserves_logits(in_channels, activation):
    _, _, pop = _perturbed_population(in_channels, n=6)
    reference = _vec(in_channels, 7)  # an unrelated model: permutations will be non-trivial
    aligned, perms = align_to_reference(pop, reference, in_channels)
    assert isinstance(aligned, torch.Tensor) and aligned.shape == pop.shape
    assert not torch.equal(aligned, pop)
    x = torch.rand(32, in_channels, 28, 28, generator=torch.Generator().manual_seed(0))
    for a, b in zip(pop, aligned, strict=True):
        with torch.no_grad():
            la = vector_to_model(a, in_channels, activation)(x)
            lb = vector_to_model(b, in_channels, activation)(x)
        torch.testing.assert_close(lb, la, atol=1e-5, rtol=1e-5)
    # the returned permutations reproduce the aligned vectors
    assert torch.equal(apply_permutation(pop, perms, in_channels), aligned)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_permuted_reference_is_recovered_exactly(in_channels):
    reference = _vec(in_channels, 11)
    copies = permute_hidden_neurons(reference.repeat(20, 1), in_channels, torch.Generator().manual_seed(1))
    assert not torch.equal(copies, reference.repeat(20, 1))
    aligned, _ = align_to_reference(copies.numpy(), reference.numpy(), in_channels)
    assert isinstance(aligned, np.ndarray)
    np.testing.assert_array_equal(aligned, np.tile(reference.numpy(), (20, 1)))


def test_alignment_never_increases_distance_to_reference():
    rng = np.random.default_rng(0)
    pop = np.stack([_vec(1, s).numpy() for s in range(30)])
    reference = pop[0] + 0.1 * rng.standard_normal(pop.shape[1]).astype(np.float32)
    aligned, _ = align_to_reference(pop, reference, 1)
    before = ((pop - reference) ** 2).sum(1)
    after = ((aligned - reference) ** 2).sum(1)
    assert np.all(after <= before + 1e-4)
    assert after.mean() < before.mean()


def test_alignment_reduces_spread_of_permuted_population():
    base, original, pop = _perturbed_population(n=40)
    fit = fit_reference(pop.numpy(), 1, iterations=4, seed=0)
    aligned, _ = align_to_reference(pop.numpy(), fit.reference, 1)
    before, after = _mean_pairwise_distance(pop), _mean_pairwise_distance(aligned)
    assert after < 0.5 * before
    # with small noise the alignment undoes the random permutations: same spread as unpermuted copies
    assert after == pytest.approx(_mean_pairwise_distance(original), rel=1e-3)
    # the fitted reference is (a permutation of) the base model up to the noise average
    assert (
        matching_cost(align_to_reference(base, fit.reference, 1).aligned[None], fit.reference)
        < 0.05**2 * 2464
    )


def test_alignment_reduces_spread_of_independent_models():
    pop = np.stack([_vec(1, s, "default").numpy() for s in range(40)])
    fit = fit_reference(pop, 1, iterations=3)
    aligned, _ = align_to_reference(pop, fit.reference, 1)
    assert _mean_pairwise_distance(aligned) < _mean_pairwise_distance(pop)
    h = fit.history
    assert h[1]["cost"] < h[0]["cost"]  # aligning beats the unaligned distance to the starting model
    assert h[-1]["ref_norm"] > h[0]["ref_norm"]  # aligned mean no longer averages unrelated neurons


def test_fit_reference_deterministic():
    _, _, pop = _perturbed_population(n=20, sigma=0.2)
    a = fit_reference(pop.numpy(), 1, iterations=3, seed=5)
    b = fit_reference(pop.numpy(), 1, iterations=3, seed=5)
    np.testing.assert_array_equal(a.reference, b.reference)
    assert a.history == b.history
    assert a.reference.shape == (2464,) and a.reference.dtype == np.float32
    assert len(a.history) >= 2 and {"cost", "spread", "ref_norm", "changed"} <= set(a.history[0])
    m = fit_reference(pop.numpy(), 1, iterations=2, init="mean")
    assert m.reference.shape == (2464,)


def test_single_vector_and_errors():
    reference = _vec(1, 0)
    w = _vec(1, 1)
    aligned, perms = align_to_reference(w, reference, 1)
    assert aligned.shape == w.shape and perms["fc1"].shape == (20,)
    with pytest.raises(ValueError, match="2464"):
        align_to_reference(w[:-1], reference, 1)
    with pytest.raises(ValueError, match="2864"):
        align_to_reference(w, reference, 3)
    with pytest.raises(ValueError, match="init"):
        fit_reference(w[None].numpy(), 1, init="median")


def test_aligning_twice_changes_nothing():
    _, _, pop = _perturbed_population(n=20, sigma=0.2)
    fit = fit_reference(pop.numpy(), 1, iterations=3)
    once, _ = align_to_reference(pop.numpy(), fit.reference, 1)
    twice, _ = align_to_reference(once, fit.reference, 1)
    np.testing.assert_array_equal(twice, once)
