"""Weight augmentations: function-preserving permutation, token erasing, noise, two views."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hyperrep_ray.weightspace.augment import (
    TwoViewAugmenter,
    apply_permutation,
    gaussian_noise,
    invert_permutations,
    permute_hidden_neurons,
    random_erase,
)
from hyperrep_ray.weightspace.tokens import token_layout, tokens_to_vectors, vectors_to_tokens
from hyperrep_ray.zoo.cnn import build_model, model_to_vector, vector_to_model, vector_to_state_dict


@functools.lru_cache(maxsize=2)
def _images(in_channels: int) -> torch.Tensor:
    """Real digits scaled to [0, 1] and resized to 28x28 (3 channels: per-channel variations)."""
    x = torch.tensor(load_digits().images[:64] / 16, dtype=torch.float32)[:, None]
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    if in_channels == 3:
        x = torch.cat([x, 1 - x, 0.5 * x.flip(-1)], dim=1)
    return x


def _population(in_channels: int, n: int = 4, init: str = "uniform") -> torch.Tensor:
    return torch.stack(
        [torch.as_tensor(model_to_vector(build_model(in_channels, "tanh", init, seed=s))) for s in range(n)]
    )


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_permutation_preserves_logits(in_channels, activation):
    w = _population(in_channels)
    g = torch.Generator().manual_seed(1)
    wp = permute_hidden_neurons(w, in_channels, g)
    x = _images(in_channels)
    for a, b in zip(w, wp, strict=True):
        with torch.no_grad():
            la = vector_to_model(a, in_channels, activation)(x)
            lb = vector_to_model(b, in_channels, activation)(x)
        assert la.abs().max() > 0.1  # non-trivial logits
        torch.testing.assert_close(lb, la, atol=1e-5, rtol=1e-5)


def test_permutation_changes_vector_and_keeps_values():
    w = _population(1, n=6)
    wp, perms = permute_hidden_neurons(w, 1, torch.Generator().manual_seed(0), return_perms=True)
    assert set(perms) == {"conv1", "conv2", "conv3", "fc1"}
    assert perms["fc1"].shape == (6, 20)
    for i in range(6):
        assert not torch.equal(wp[i], w[i])
        assert torch.equal(torch.sort(wp[i]).values, torch.sort(w[i]).values)
    # the permutations differ between samples (one per sample, not one per batch)
    assert len({tuple(p.tolist()) for p in perms["fc1"]}) == 6
    # fc2 bias (class outputs) never moves
    sd, sdp = vector_to_state_dict(w[0]), vector_to_state_dict(wp[0])
    assert torch.equal(sd["fc2.bias"], sdp["fc2.bias"])
    # inverse permutation restores the batch exactly
    assert torch.equal(apply_permutation(wp, invert_permutations(perms), 1), w)


def test_explicit_permutation_conv3_blocks():
    """Swapping conv3 channels 0 and 1 swaps conv3 rows and fc1's first two 9-column blocks."""
    w = _population(1, n=1)[0]
    perm = torch.tensor([1, 0, 2, 3])
    wp = apply_permutation(w, {"conv3": perm}, 1)
    sd, sdp = vector_to_state_dict(w), vector_to_state_dict(wp)
    assert torch.equal(sdp["conv3.weight"], sd["conv3.weight"][perm])
    assert torch.equal(sdp["conv3.bias"], sd["conv3.bias"][perm])
    assert torch.equal(sdp["fc1.weight"][:, 0:9], sd["fc1.weight"][:, 9:18])
    assert torch.equal(sdp["fc1.weight"][:, 9:18], sd["fc1.weight"][:, 0:9])
    assert torch.equal(sdp["fc1.weight"][:, 18:], sd["fc1.weight"][:, 18:])
    for name in ("conv1.weight", "conv2.weight", "fc1.bias", "fc2.weight"):
        assert torch.equal(sdp[name], sd[name])


def test_explicit_permutation_conv1_moves_conv2_inputs():
    w = _population(1, n=1)[0]
    perm = torch.roll(torch.arange(8), 3)
    sd, sdp = vector_to_state_dict(w), vector_to_state_dict(apply_permutation(w, {"conv1": perm}, 1))
    assert torch.equal(sdp["conv1.weight"], sd["conv1.weight"][perm])
    assert torch.equal(sdp["conv2.weight"], sd["conv2.weight"][:, perm])


def test_permutation_deterministic_under_generator():
    w = _population(1, n=3)
    a = permute_hidden_neurons(w, 1, torch.Generator().manual_seed(7))
    b = permute_hidden_neurons(w, 1, torch.Generator().manual_seed(7))
    c = permute_hidden_neurons(w, 1, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_permutation_wrong_shapes_raise():
    w = _population(1, n=1)
    with pytest.raises(ValueError, match="2464"):
        apply_permutation(w[:, :-1], {}, 1)
    with pytest.raises(ValueError, match="conv3"):
        apply_permutation(w, {"conv3": torch.arange(5)}, 1)
    with pytest.raises(ValueError, match="not a permutation"):
        apply_permutation(w, {"conv3": torch.tensor([0, 0, 1, 2])}, 1)
    with pytest.raises(ValueError, match="unknown"):
        apply_permutation(w, {"fc2": torch.arange(10)}, 1)


def _rect_check(erased: torch.Tensor) -> tuple[int, int]:
    """Assert the erased entries form one rectangle; return its (height, width)."""
    rows = torch.nonzero(erased.any(1)).squeeze(1)
    cols = torch.nonzero(erased.any(0)).squeeze(1)
    h, w = len(rows), len(cols)
    assert rows.max() - rows.min() + 1 == h and cols.max() - cols.min() + 1 == w  # contiguous
    assert int(erased.sum()) == h * w  # full rectangle
    return h, w


def test_random_erase_within_bounds_and_scale():
    b, t, d = 300, 48, 201
    x = torch.ones(b, t, d)
    scale = (0.02, 0.33)
    out = random_erase(x, torch.Generator().manual_seed(0), p=1.0, scale=scale, value=0.0)
    assert out.shape == x.shape and torch.equal(x, torch.ones(b, t, d))  # input untouched
    fracs = []
    for i in range(b):
        erased = out[i] == 0
        assert erased.any()
        _rect_check(erased)
        fracs.append(erased.float().mean().item())
    fracs = np.array(fracs)
    assert fracs.min() >= scale[0] and fracs.max() <= scale[1]
    assert fracs.max() - fracs.min() > 0.2  # spans the range, not a constant size


def test_random_erase_small_scale_and_tall_blocks():
    x = torch.ones(200, 10, 30)
    out = random_erase(x, torch.Generator().manual_seed(3), p=1.0, scale=(0.1, 0.1), ratio=(10.0, 10.0))
    for i in range(200):
        h, w = _rect_check(out[i] == 0)
        assert 1 <= h <= 10 and 1 <= w <= 30
        assert h * w == 30  # exactly 10 % of 300 entries


def test_random_erase_p_and_determinism():
    x = torch.randn(400, 48, 201, generator=torch.Generator().manual_seed(0))
    assert torch.equal(random_erase(x, torch.Generator().manual_seed(0), p=0.0), x)
    a = random_erase(x, torch.Generator().manual_seed(5), p=0.5, value=float("nan"))
    b = random_erase(x, torch.Generator().manual_seed(5), p=0.5, value=float("nan"))
    assert torch.equal(a.isnan(), b.isnan())
    hit = a.isnan().flatten(1).any(1).float().mean().item()
    assert 0.4 < hit < 0.6


def test_random_erase_respects_mask():
    layout = token_layout(1)
    x = vectors_to_tokens(torch.ones(100, layout.n_params), layout)
    out = random_erase(x, torch.Generator().manual_seed(2), p=1.0, value=-1.0, mask=layout.mask)
    assert torch.all(out[:, ~layout.mask] == 0)  # padding stays zero
    assert (out == -1).any()


def test_gaussian_noise_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.full((200_000,), 2.0)
    y = gaussian_noise(x, 0.1, g)
    assert abs((y - x).mean().item()) < 2e-3
    assert (y - x).std().item() == pytest.approx(0.1, rel=0.02)
    r = gaussian_noise(x, 0.1, g, relative=True)
    assert (r - x).std().item() == pytest.approx(0.2, rel=0.02)  # relative: sigma * |x|
    assert torch.equal(gaussian_noise(x, 0.0, g), x)
    a = gaussian_noise(x[:100], 0.1, torch.Generator().manual_seed(4))
    b = gaussian_noise(x[:100], 0.1, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    # per-parameter sigma broadcasts
    s = torch.tensor([0.0, 1.0]).repeat(50_000)
    z = gaussian_noise(torch.zeros(100_000), s, g)
    assert torch.all(z[0::2] == 0) and z[1::2].std().item() == pytest.approx(1.0, rel=0.02)


def test_two_view_augmenter():
    layout = token_layout(1)
    w = _population(1, n=5)
    aug = TwoViewAugmenter(in_channels=1, permute=True, noise_sigma=0.01, erase_p=1.0)
    v1, v2, t1, t2 = aug(w, torch.Generator().manual_seed(0), return_targets=True)
    for v in (v1, v2, t1, t2):
        assert v.shape == (5, 48, 201)
        assert torch.all(v[:, ~layout.mask] == 0)
    assert not torch.allclose(v1, v2)
    # targets are function-preserving permutations of the inputs (same values, different order)
    for i in range(5):
        back = tokens_to_vectors(t1[i], layout)
        assert torch.equal(torch.sort(back).values, torch.sort(w[i]).values)
    # deterministic
    a1, a2 = aug(w, torch.Generator().manual_seed(0))
    assert torch.equal(a1, v1) and torch.equal(a2, v2)
    # all augmentations off: both views are the plain tokens
    plain = TwoViewAugmenter(in_channels=1, permute=False, noise_sigma=0.0, erase_p=0.0)
    p1, p2 = plain(w, torch.Generator().manual_seed(0))
    assert torch.equal(p1, vectors_to_tokens(w, layout)) and torch.equal(p2, p1)
    with pytest.raises(ValueError):
        aug(w[:, :100], torch.Generator())
