"""Shapes, bounds, validation, gradient flow, determinism and capacity of the weight autoencoder."""

from __future__ import annotations

import pytest
import torch

from hyperrep_ray.autoencoder.model import (
    ZOO_CNN_LAYER_OF_TOKEN,
    AEArchitecture,
    HyperAutoencoder,
    PerLayerLinear,
)


def small_arch(**kw) -> AEArchitecture:
    base = dict(
        d_token=16,
        d_hidden=32,
        n_layers=1,
        n_heads=2,
        d_z=8,
        dropout=0.1,
        proj_layers=2,
        proj_width=24,
        proj_dim=6,
    )
    base.update(kw)
    return AEArchitecture(**base)


def test_default_arch_matches_zoo_cnn_tokens():
    a = AEArchitecture()
    assert a.n_tokens == 48 and a.token_dim == 201 and len(a.layer_of_token) == 48
    assert a.n_weight_layers == 5
    assert [a.layer_of_token.count(layer) for layer in range(5)] == [8, 6, 4, 20, 10]


@pytest.mark.parametrize("compression", ["linear", "mlp", "sequence"])
def test_shapes_and_bounded_latent(compression):
    torch.manual_seed(0)
    arch = small_arch(compression=compression)
    model = HyperAutoencoder(arch)
    x = torch.randn(5, 48, 201) * 10  # large inputs push tanh towards saturation
    z = model.encode(x)
    assert z.shape == (5, 8)
    assert z.abs().max() <= 1.0
    assert model.decode(z).shape == (5, 48, 201)
    assert model.project(z).shape == (5, 6)
    z2, rec, proj = model(x)
    assert z2.shape == (5, 8) and rec.shape == (5, 48, 201) and proj.shape == (5, 6)


def test_projection_head_depth_follows_paper_layout():
    model = HyperAutoencoder(small_arch(proj_layers=4, proj_width=400, proj_dim=50))
    linears = [m for m in model.projection if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 400)] + [(400, 400)] * 3 + [(400, 50)]


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(d_token=10, n_heads=3), "divisible"),
        (dict(layer_of_token=[0] * 47), "n_tokens"),
        (dict(layer_of_token=[0] * 24 + [2] * 24), "layer id"),
        (dict(compression="conv"), "compression"),
        (dict(dropout=1.0), "dropout"),
        (dict(activation="swish"), "activation"),
    ],
)
def test_invalid_architecture_raises(kw, msg):
    with pytest.raises(ValueError, match=msg):
        small_arch(**kw)


def test_wrong_token_shape_raises():
    model = HyperAutoencoder(small_arch())
    with pytest.raises(ValueError, match=r"\[B, 48, 201\]"):
        model.encode(torch.randn(2, 48, 200))
    with pytest.raises(ValueError, match="z of shape"):
        model.decode(torch.randn(2, 7))


def test_per_layer_linear_uses_each_tokens_own_layer():
    # Interleaved (non-contiguous) layer ids check the gather/scatter permutation.
    torch.manual_seed(0)
    layers = [2, 0, 1, 0, 2, 1, 1]
    mod = PerLayerLinear(layers, 5, 3)
    x = torch.randn(4, len(layers), 5)
    out = mod(x)
    for t, layer in enumerate(layers):
        torch.testing.assert_close(out[:, t], mod.linears[layer](x[:, t]))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = HyperAutoencoder(small_arch(compression="mlp"))
    x = torch.randn(4, 48, 201)
    z, rec, proj = model(x)
    (rec.square().mean() + proj.square().mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_eval_is_deterministic_and_train_uses_dropout():
    torch.manual_seed(0)
    model = HyperAutoencoder(small_arch(dropout=0.3))
    x = torch.randn(3, 48, 201)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x)[1], model(x)[1])


def test_autocast_forward_runs():
    model = HyperAutoencoder(small_arch())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, rec, proj = model(torch.randn(2, 48, 201))
    assert torch.isfinite(rec.float()).all() and z.shape == (2, 8)


def test_tiny_model_overfits_eight_sequences():
    torch.manual_seed(0)
    layers = [0, 0, 1, 1, 1, 2]
    arch = AEArchitecture(
        n_tokens=6,
        token_dim=10,
        layer_of_token=layers,
        d_token=32,
        d_hidden=64,
        n_layers=1,
        n_heads=2,
        d_z=16,
        dropout=0.0,
        proj_layers=1,
        proj_width=16,
        proj_dim=4,
    )
    model = HyperAutoencoder(arch)
    x = torch.randn(8, 6, 10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is faster and immune to a busy machine
    try:
        for _ in range(100):
            opt.zero_grad()
            loss = (model(x)[1] - x).square().mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_zoo_constant_is_48_tokens():
    assert len(ZOO_CNN_LAYER_OF_TOKEN) == 48


def test_standardisation_is_applied_saved_and_invertible():
    """Encoder sees (x - shift) / scale, decoder answers in raw units, and the buffers travel in the
    state_dict; a state saved before they existed loads as identity (HyperRepresentation.load)."""
    torch.manual_seed(0)
    arch = small_arch(n_tokens=6, token_dim=10, layer_of_token=[0, 0, 1, 1, 1, 2], dropout=0.0)
    model = HyperAutoencoder(arch).eval()
    x = torch.randn(4, 6, 10)
    shift, scale = torch.randn(6, 10), torch.rand(6, 10) + 0.5
    z_plain = model.encode((x - shift) / scale)
    raw_out = model.decode(z_plain)
    model.set_standardisation(shift, scale)
    torch.testing.assert_close(model.encode(x), z_plain)
    torch.testing.assert_close(model.decode(z_plain), raw_out * scale + shift)
    other = HyperAutoencoder(arch).eval()
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other(x)[1], model(x)[1])
    with pytest.raises(ValueError, match="positive scale"):
        model.set_standardisation(shift, torch.zeros(6, 10))
