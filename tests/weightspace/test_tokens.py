"""Token layout of the zoo CNN: sizes, exact round trip, neuron contents, layer statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperrep_ray.weightspace.tokens import layer_stats, token_layout, tokens_to_vectors, vectors_to_tokens
from hyperrep_ray.zoo.cnn import build_model, model_to_vector, num_params, vector_to_state_dict


def test_layout_sizes_one_channel():
    layout = token_layout(1)
    assert layout.names == ("conv1", "conv2", "conv3", "fc1", "fc2")
    assert layout.token_sizes == (26, 201, 25, 37, 21)
    assert layout.tokens_per_layer == (8, 6, 4, 20, 10)
    assert layout.token_offsets == (0, 8, 14, 18, 38)
    assert (layout.n_tokens, layout.token_dim, layout.n_params) == (48, 201, 2464)
    assert int(layout.mask.sum()) == num_params(1)
    assert layout.mask.shape == (48, 201)
    assert torch.bincount(layout.layer_of_token).tolist() == [8, 6, 4, 20, 10]
    assert token_layout(1) is layout  # cached: index tensors are built once


def test_layout_sizes_three_channels():
    layout = token_layout(3)
    assert layout.token_sizes == (76, 201, 25, 37, 21)
    assert (layout.n_tokens, layout.token_dim, layout.n_params) == (48, 201, 2864)
    assert int(layout.mask.sum()) == 2864


@pytest.mark.parametrize("in_channels", [1, 3])
def test_round_trip_exact(in_channels):
    layout = token_layout(in_channels)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, layout.n_params, generator=g)
    t = vectors_to_tokens(w, layout)
    assert t.shape == (5, 48, 201)
    assert torch.equal(tokens_to_vectors(t, layout), w)
    assert torch.all(t[:, ~layout.mask] == 0)  # padding is zero
    # arbitrary leading dims and dtype are kept
    w3 = torch.randn(2, 3, layout.n_params, dtype=torch.float64, generator=g)
    t3 = vectors_to_tokens(w3, in_channels=in_channels)
    assert t3.shape == (2, 3, 48, 201) and t3.dtype == torch.float64
    assert torch.equal(tokens_to_vectors(t3, in_channels=in_channels), w3)


def test_tokens_to_vectors_ignores_padding():
    layout = token_layout(1)
    w = torch.randn(2, layout.n_params)
    t = vectors_to_tokens(w, layout)
    t[:, ~layout.mask] = 123.0
    assert torch.equal(tokens_to_vectors(t, layout), w)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_token_is_neuron_weights_plus_bias(in_channels):
    model = build_model(in_channels, "tanh", "uniform", seed=3)
    sd = model.state_dict()
    w = torch.as_tensor(model_to_vector(model))
    t = vectors_to_tokens(w[None], in_channels=in_channels)[0]

    def expect(layer, o):
        return torch.cat([sd[f"{layer}.weight"][o].reshape(-1), sd[f"{layer}.bias"][o : o + 1]])

    cases = {
        0: ("conv1", 0),
        7: ("conv1", 7),
        8: ("conv2", 0),
        13: ("conv2", 5),
        14: ("conv3", 0),
        17: ("conv3", 3),
        18: ("fc1", 0),
        37: ("fc1", 19),
        38: ("fc2", 0),
        47: ("fc2", 9),
    }
    for token, (layer, o) in cases.items():
        e = expect(layer, o)
        assert torch.equal(t[token, : e.numel()], e), (token, layer, o)
        assert torch.all(t[token, e.numel() :] == 0)


def test_gradient_flows_through_tokens():
    layout = token_layout(1)
    w = torch.randn(3, layout.n_params, requires_grad=True)
    (vectors_to_tokens(w, layout) * 2).sum().backward()
    assert torch.equal(w.grad, torch.full_like(w, 2.0))
    t = torch.randn(3, 48, 201, requires_grad=True)
    tokens_to_vectors(t, layout).sum().backward()
    assert torch.equal(t.grad, layout.mask.float().expand(3, -1, -1))


@pytest.mark.parametrize("in_channels", [1, 3])
def test_layer_stats_match_numpy(in_channels):
    layout = token_layout(in_channels)
    rng = np.random.default_rng(0)
    scales = {"conv1": 0.5, "conv2": 0.1, "conv3": 2.0, "fc1": 0.05, "fc2": 1.0}
    w = rng.standard_normal((7, layout.n_params)).astype(np.float32)
    for layer in layout.layers:
        w[:, layer.param_slice] = w[:, layer.param_slice] * scales[layer.name] + 0.3
    stats = layer_stats(torch.from_numpy(w), layout)
    sds = [vector_to_state_dict(v, in_channels) for v in w]
    for li, name in enumerate(layout.names):
        vals = np.concatenate(
            [np.concatenate([sd[f"{name}.weight"].numpy().ravel(), sd[f"{name}.bias"].numpy()]) for sd in sds]
        ).astype(np.float64)
        assert stats["layers"][li] == name
        assert stats["mean"][li].item() == pytest.approx(vals.mean(), rel=1e-5)
        assert stats["std"][li].item() == pytest.approx(vals.std(), rel=1e-5)
        var = vals.var()
        rows = layout.layer_of_token == li
        real = stats["var_tokens"][rows][layout.mask[rows]]
        assert torch.allclose(real, torch.tensor(var, dtype=torch.float32), rtol=1e-5)
        assert torch.allclose(
            stats["var_params"][layout.layers[li].param_slice],
            torch.tensor(var, dtype=torch.float32),
            rtol=1e-5,
        )
    assert torch.all(stats["var_tokens"][~layout.mask] == 1.0)
    assert stats["var_params"].shape == (layout.n_params,)
    # the per-entry variance, laid out by the same gather, equals the per-parameter one
    assert torch.equal(tokens_to_vectors(stats["var_tokens"], layout), stats["var_params"])
    # numpy input and inferred layout give the same numbers
    assert torch.equal(layer_stats(w)["std"], stats["std"])


def test_wrong_lengths_raise():
    layout = token_layout(1)
    with pytest.raises(ValueError, match="2464"):
        vectors_to_tokens(torch.zeros(2, 2463), layout)
    with pytest.raises(ValueError, match="2464"):
        vectors_to_tokens(torch.zeros(2, 2864), layout)
    with pytest.raises(ValueError, match="48, 201"):
        tokens_to_vectors(torch.zeros(2, 47, 201), layout)
    with pytest.raises(ValueError, match="48, 201"):
        tokens_to_vectors(torch.zeros(2, 48, 200), layout)
    with pytest.raises(ValueError, match=r"\[M, 2464\]"):
        layer_stats(torch.zeros(3, 100), layout)
    with pytest.raises(ValueError):
        layer_stats(torch.zeros(3, 100))
    with pytest.raises(ValueError, match="positive integer"):
        token_layout(0)


@pytest.mark.parametrize("mode", ["layer", "coordinate"])
def test_standardisation_gives_z_scores_and_leaves_padding_alone(mode):
    from hyperrep_ray.weightspace.tokens import standardisation

    layout = token_layout(1)
    g = torch.Generator().manual_seed(0)
    # layers of very different scale and offset, like a real zoo
    w = torch.randn(200, layout.n_params, generator=g) * (0.01 + layout.layer_of_param.float()) + 3.0
    shift, scale = standardisation(w, layout, mode)
    assert shift.shape == scale.shape == (48, 201)
    assert torch.all(shift[~layout.mask] == 0) and torch.all(scale[~layout.mask] == 1)
    z = tokens_to_vectors((vectors_to_tokens(w, layout) - shift) / scale, layout)
    for layer in layout.layers:
        block = z[:, layer.param_slice]
        assert abs(float(block.mean())) < 1e-3
        assert float(block.std()) == pytest.approx(1.0, abs=0.02)
    if mode == "coordinate":
        assert torch.allclose(z.mean(0), torch.zeros(layout.n_params), atol=1e-4)


def test_coordinate_standardisation_floors_near_constant_weights():
    from hyperrep_ray.weightspace.tokens import standardisation

    layout = token_layout(1)
    w = torch.randn(50, layout.n_params, generator=torch.Generator().manual_seed(1))
    w[:, 0] = 0.5  # a weight every model shares
    _, scale = standardisation(w, layout, "coordinate", floor=0.1)
    conv1_std = float(w[:, layout.layers[0].param_slice].std(correction=0))
    assert float(tokens_to_vectors(scale[None], layout)[0, 0]) == pytest.approx(0.1 * conv1_std, rel=1e-3)
    with pytest.raises(ValueError, match="standardisation mode"):
        standardisation(w, layout, "global")
