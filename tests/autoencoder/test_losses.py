"""Layer-wise normalised MSE, masked MSE, NT-Xent, the combined loss and reconstruction R^2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyperrep_ray.autoencoder.losses import (
    combined_loss,
    layerwise_normalized_mse,
    lwln_entry_weights,
    masked_mse,
    nt_xent,
    paper_layer_std,
    reconstruction_r2,
    reconstruction_r2_paper,
    reconstruction_r2_per_layer,
)

# A miniature token layout: 3 layers with different token counts and real widths, padded to D = 7.
LAYERS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
WIDTHS = [4, 4, 4, 7, 7, 3, 3, 3, 3]
D = 7
LAYER_VAR = torch.tensor([1.0, 0.01, 0.25])


def layout() -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.zeros(len(WIDTHS), D, dtype=torch.bool)
    for t, w in enumerate(WIDTHS):
        mask[t, :w] = True
    var = LAYER_VAR[LAYERS][:, None].expand(-1, D).clone()
    var[~mask] = 0.0  # padding variance is meaningless; zero must not produce inf/nan
    return mask, var


def n_real(layer: int) -> int:
    return sum(w for w, lay in zip(WIDTHS, LAYERS.tolist(), strict=True) if lay == layer)


@pytest.mark.parametrize("weighting", ["params", "layers"])
def test_lwln_zero_for_perfect_reconstruction(weighting):
    mask, var = layout()
    x = torch.randn(3, 9, D)
    assert layerwise_normalized_mse(x, x.clone(), mask, var, LAYERS, weighting=weighting).item() == 0.0
    assert masked_mse(x, x.clone(), mask).item() == 0.0


@pytest.mark.parametrize("weighting", ["params", "layers"])
def test_padding_never_contributes(weighting):
    mask, var = layout()
    torch.manual_seed(0)
    pred, target = torch.randn(3, 9, D), torch.randn(3, 9, D)
    pred2, target2 = pred.clone(), target.clone()
    pred2[:, ~mask] = 1e6
    target2[:, ~mask] = -3.0
    a = layerwise_normalized_mse(pred, target, mask, var, LAYERS, weighting=weighting)
    b = layerwise_normalized_mse(pred2, target2, mask, var, LAYERS, weighting=weighting)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(masked_mse(pred, target, mask), masked_mse(pred2, target2, mask))
    # Zero variance on padding must not leak inf/nan into gradients.
    pred.requires_grad_(True)
    layerwise_normalized_mse(pred, target, mask, var, LAYERS, weighting=weighting).backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[:, ~mask] == 0).all()


def test_lwln_weighs_small_variance_layer_up():
    mask, var = layout()
    torch.manual_seed(0)
    target = torch.randn(4, 9, D)
    pred = target.clone()
    in_layer1 = (LAYERS == 1)[:, None] & mask
    pred[:, in_layer1] += 0.05 * torch.randn(4, int(in_layer1.sum()))  # error only in the var-0.01 layer
    mse = masked_mse(pred, target, mask)
    lw_params = layerwise_normalized_mse(pred, target, mask, var, LAYERS, weighting="params")
    lw_layers = layerwise_normalized_mse(pred, target, mask, var, LAYERS, weighting="layers")
    # Eq. 2 as printed: every entry's squared error divided by its layer's variance -> ratio 1/0.01.
    torch.testing.assert_close(lw_params / mse, torch.tensor(100.0))
    # Equal layer weights: layer 1 holds n_1 of N entries and counts 1/L -> ratio N / (L n_1 var_1).
    n_total = sum(WIDTHS)
    torch.testing.assert_close(lw_layers / mse, torch.tensor(n_total / (3 * n_real(1) * 0.01)))
    # An error confined to the unit-variance layer is not weighed up in Eq. 2.
    pred0 = target.clone()
    in_layer0 = (LAYERS == 0)[:, None] & mask
    pred0[:, in_layer0] += 0.05
    torch.testing.assert_close(
        layerwise_normalized_mse(pred0, target, mask, var, LAYERS), masked_mse(pred0, target, mask)
    )


@pytest.mark.parametrize("weighting", ["params", "layers"])
def test_predicting_layer_mean_scores_one(weighting):
    mask, _ = layout()
    torch.manual_seed(0)
    means, stds = torch.tensor([0.5, -0.1, 0.0]), LAYER_VAR.sqrt()
    target = means[LAYERS][None, :, None] + stds[LAYERS][None, :, None] * torch.randn(256, 9, D)
    # Per-layer mean and (population) variance of the real entries, as tokens.py would compute.
    pred = torch.zeros_like(target)
    var = torch.zeros(9, D)
    for layer in range(3):
        sel = (LAYERS == layer)[:, None] & mask
        vals = target[:, sel]
        pred[:, sel] = vals.mean()
        var[sel] = vals.var(unbiased=False)
    lw = layerwise_normalized_mse(pred, target, mask, var, LAYERS, weighting=weighting)
    torch.testing.assert_close(lw, torch.tensor(1.0), atol=1e-4, rtol=0)
    # Plain MSE is instead dominated by the wide layer: far from 1 here.
    assert masked_mse(pred, target, mask).item() < 0.8


def test_masked_mse_is_lwln_with_unit_variance():
    mask, _ = layout()
    torch.manual_seed(1)
    pred, target = torch.randn(2, 9, D), torch.randn(2, 9, D)
    ones = torch.ones(9, D)
    torch.testing.assert_close(
        masked_mse(pred, target, mask), layerwise_normalized_mse(pred, target, mask, ones, LAYERS)
    )
    expected = ((pred - target)[:, mask] ** 2).mean()
    torch.testing.assert_close(masked_mse(pred, target, mask), expected)


def test_lwln_weights_and_validation():
    mask, var = layout()
    w = lwln_entry_weights(mask, var, LAYERS, "layers")
    for layer in range(3):  # each layer's weights sum to 1 / (L var_l)
        sel = (LAYERS == layer)[:, None] & mask
        torch.testing.assert_close(w[sel].sum(), 1.0 / (3 * LAYER_VAR[layer]))
    with pytest.raises(ValueError, match="weighting"):
        lwln_entry_weights(mask, var, LAYERS, "tokens")
    with pytest.raises(ValueError, match=r"\[B, T, D\]"):
        layerwise_normalized_mse(torch.zeros(2, 9, 6), torch.zeros(2, 9, 6), mask, var, LAYERS)


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """SimCLR loss written out with explicit loops over anchors and candidates."""
    views = [v / v.norm() for v in list(z1) + list(z2)]
    n, b = len(views), len(z1)
    total = 0.0
    for i in range(n):
        pos = (i + b) % n
        denom = sum(math.exp(float(views[i] @ views[k]) / tau) for k in range(n) if k != i)
        total += -math.log(math.exp(float(views[i] @ views[pos]) / tau) / denom)
    return total / n


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_loop_reference(tau):
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(nt_xent_reference(z1, z2, tau), rel=1e-5)
    # Symmetric in the two views.
    assert nt_xent(z2, z1, tau).item() == pytest.approx(nt_xent(z1, z2, tau).item(), rel=1e-6)


def test_nt_xent_low_for_identical_views():
    torch.manual_seed(0)
    z = torch.randn(16, 32)
    same = nt_xent(z, z.clone())
    rand = nt_xent(z, torch.randn(16, 32))
    assert same.item() < 0.5 < rand.item()
    assert rand.item() > 5 * same.item()


def test_nt_xent_edge_cases():
    z = torch.randn(1, 8, requires_grad=True)
    loss = nt_xent(z, torch.randn(1, 8))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # only the positive is a candidate
    loss.backward()
    assert torch.isfinite(z.grad).all()
    with pytest.raises(ValueError, match="must both be"):
        nt_xent(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), temperature=0.0)


def test_combined_loss():
    rec, con = torch.tensor(2.0), torch.tensor(10.0)
    torch.testing.assert_close(combined_loss(0.75, rec, con), torch.tensor(0.75 * 2 + 0.25 * 10))
    torch.testing.assert_close(combined_loss(1.0, rec, con), rec)
    torch.testing.assert_close(combined_loss(0.0, rec, con), con)
    for bad in (-0.1, 1.01):
        with pytest.raises(ValueError, match="beta"):
            combined_loss(bad, rec, con)


def test_reconstruction_r2():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(6, 10))
    mean = rng.normal(size=10) * 0.1
    assert reconstruction_r2(target, target, mean) == pytest.approx(1.0)
    assert reconstruction_r2(np.tile(mean, (6, 1)), target, mean) == pytest.approx(0.0)
    pred = target + 0.3 * rng.normal(size=(6, 10))
    expected = 1 - ((pred - target) ** 2).mean() / ((mean - target) ** 2).mean()
    got = reconstruction_r2(torch.tensor(pred), torch.tensor(target), torch.tensor(mean))
    assert got == pytest.approx(expected)


def test_reconstruction_r2_per_layer():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(4, 9))
    mean = np.zeros(9)
    layer = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
    pred = target.copy()
    pred[:, layer == 1] = mean[layer == 1]  # layer 1 left at the mean
    pred[:, layer == 2] += 0.5
    r2 = reconstruction_r2_per_layer(pred, target, mean, layer)
    assert r2[0] == pytest.approx(1.0) and r2[1] == pytest.approx(0.0)
    t2 = target[:, layer == 2]
    assert r2[2] == pytest.approx(1 - 0.25 / (t2**2).mean())
    with pytest.raises(ValueError, match="shapes"):
        reconstruction_r2_per_layer(pred, target, mean, layer[:-1])


def test_latent_penalty_is_scale_free_and_one_at_saturation():
    from hyperrep_ray.autoencoder.losses import latent_penalty

    assert float(latent_penalty(torch.ones(4, 16))) == 1.0
    assert float(latent_penalty(-torch.ones(2, 512))) == 1.0, "independent of d_z"
    assert float(latent_penalty(torch.zeros(3, 8))) == 0.0
    z = torch.full((2, 4), 0.5, requires_grad=True)
    latent_penalty(z).backward()
    assert torch.all(z.grad > 0), "the gradient pulls z toward 0"


def test_saturated_fraction_counts_entries_beyond_the_threshold():
    from hyperrep_ray.autoencoder.losses import saturated_fraction

    z = torch.tensor([[0.95, -0.91, 0.5, 0.0]])
    assert saturated_fraction(z) == 0.5
    assert saturated_fraction(z.numpy()) == 0.5, "numpy embeddings (bundle.encode) count the same"
    assert saturated_fraction(z, threshold=0.96) == 0.0


def test_reconstruction_r2_paper_equals_a_direct_computation():
    """The 2022 code's R^2 by hand, element by element: each weight divided by the (unbiased) std of
    its layer's train weights, squared errors averaged over all weights; the denominator is the same
    average for the per-coordinate train mean against the train weights."""
    rng = np.random.default_rng(3)
    layers = [0, 0, 0, 1, 1, 2]  # a narrow layer 1 (scale 0.01) and a wide layer 2 (scale 5)
    scale = np.array([1.0, 1.0, 1.0, 0.01, 0.01, 5.0])
    train = rng.normal(size=(12, 6)) * scale + 0.3
    target = rng.normal(size=(4, 6)) * scale + 0.3
    pred = target + rng.normal(size=(4, 6)) * scale * 0.5

    std = {}
    for layer in set(layers):
        vals = [train[m, j] for m in range(12) for j in range(6) if layers[j] == layer]
        mu = sum(vals) / len(vals)
        std[layer] = math.sqrt(sum((v - mu) ** 2 for v in vals) / (len(vals) - 1))
    mean = [sum(train[m, j] for m in range(12)) / 12 for j in range(6)]
    num = sum(((pred[i, j] - target[i, j]) / std[layers[j]]) ** 2 for i in range(4) for j in range(6)) / 24
    den = sum(((mean[j] - train[m, j]) / std[layers[j]]) ** 2 for m in range(12) for j in range(6)) / 72
    expected = 1 - num / den

    got = reconstruction_r2_paper(torch.tensor(pred), torch.tensor(target), train, np.array(layers))
    assert got == pytest.approx(expected, abs=1e-12)
    assert got != pytest.approx(reconstruction_r2(pred, target, train.mean(0)), abs=1e-3)  # not ours
    assert reconstruction_r2_paper(target, target, train, layers) == 1.0
    np.testing.assert_allclose(paper_layer_std(train, layers).numpy(), [std[v] for v in layers], rtol=1e-12)


def test_paper_layer_std_is_floored_for_a_constant_layer():
    train = np.array([[1.0, 2.0, 0.5], [1.0, 2.0, -0.5]])
    std = paper_layer_std(train, [0, 1, 1])
    assert std[0] == pytest.approx(1e-4) and std[1] == std[2] > 1e-4
