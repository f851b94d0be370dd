import math

import numpy as np
import pytest
import torch

from hyperrep_ray.zoo.cnn import (
    INITS,
    ZooCNN,
    build_model,
    in_channels_for_length,
    init_params,
    layer_shapes,
    model_to_vector,
    num_params,
    vector_to_model,
    vector_to_state_dict,
)


@pytest.mark.parametrize("c,n", [(1, 2464), (3, 2864)])
def test_parameter_counts_match_table_6(c, n):
    assert num_params(c) == n
    assert sum(p.numel() for p in ZooCNN(c).parameters()) == n
    assert [k for k in ZooCNN(c).state_dict()] == [name for name, _ in layer_shapes(c)]


@pytest.mark.parametrize("c", [1, 3])
def test_forward_on_28x28(c):
    out = ZooCNN(c)(torch.randn(5, c, 28, 28))
    assert out.shape == (5, 10)


@pytest.mark.parametrize("c", [1, 3])
def test_vector_round_trip_is_exact(c):
    model = build_model(c, "gelu", "kaiming_uniform", seed=3)
    vec = model_to_vector(model)
    assert vec.dtype == np.float32 and vec.shape == (num_params(c),)
    back = vector_to_model(vec, c, "gelu")
    for (k1, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(a, b)
    assert np.array_equal(model_to_vector(back), vec)
    # state_dict order, row-major: the first 25 entries are conv1's first filter
    assert np.array_equal(vec[:25], model.conv1.weight[0].detach().numpy().reshape(-1)) if c == 1 else True
    x = torch.randn(4, c, 28, 28)
    assert torch.equal(model(x), back(x))


def test_wrong_vector_length_is_a_clear_error():
    with pytest.raises(ValueError, match="expected \\(2464,\\)"):
        vector_to_state_dict(np.zeros(100, np.float32), 1)
    with pytest.raises(ValueError, match="no zoo CNN has 100 parameters"):
        in_channels_for_length(100)
    assert in_channels_for_length(2864) == 3


@pytest.mark.parametrize("init", INITS)
def test_init_is_seeded_and_seed_dependent(init):
    a, b, c = init_params(1, init, 1), init_params(1, init, 1), init_params(1, init, 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


@pytest.mark.parametrize(
    "init,torch_init",
    [
        ("uniform", torch.nn.init.uniform_),
        ("normal", torch.nn.init.normal_),
        ("kaiming_uniform", torch.nn.init.kaiming_uniform_),
        ("kaiming_normal", torch.nn.init.kaiming_normal_),
        ("xavier", torch.nn.init.xavier_uniform_),
    ],
)
@pytest.mark.parametrize("c", [1, 3])
def test_authors_inits_are_torch_defaults_with_bias_0_01(init, torch_init, c):
    """The authors' def_net.py: torch.nn.init.<init>_(m.weight) with its defaults, then
    m.bias.data.fill_(0.01), for every conv and linear layer."""
    ours = init_params(c, init, seed=7)
    g = torch.Generator().manual_seed(7)
    for name, shape in layer_shapes(c):
        if name.endswith("bias"):
            assert torch.equal(ours[name], torch.full(shape, 0.01)), name
        else:
            assert torch.equal(ours[name], torch_init(torch.empty(shape), generator=g)), name


def test_uniform_is_u01_and_uniform_symmetric_keeps_the_old_range():
    w = init_params(1, "uniform", 3)
    weights = torch.cat([t.reshape(-1) for n, t in w.items() if n.endswith("weight")])
    assert weights.min() >= 0.0 and weights.max() <= 1.0 and abs(float(weights.mean()) - 0.5) < 0.02
    sym = init_params(1, "uniform_symmetric", 3)
    sw = torch.cat([t.reshape(-1) for n, t in sym.items() if n.endswith("weight")])
    sb = torch.cat([t.reshape(-1) for n, t in sym.items() if n.endswith("bias")])
    assert sw.abs().max() <= 0.5 and sw.min() < -0.4 and sb.abs().max() <= 0.1 and sb.min() < 0


def test_default_init_is_pytorchs_layer_default():
    p = init_params(1, "default", 0)
    for name, shape in layer_shapes(1):
        fan_in = (
            math.prod(shape[1:]) if name.endswith("weight") else math.prod(p[name[:-4] + "weight"].shape[1:])
        )
        assert p[name].abs().max() <= 1 / math.sqrt(fan_in) + 1e-7, name


def test_unknown_activation_and_init():
    with pytest.raises(ValueError, match="unknown activation"):
        ZooCNN(1, "swish")
    with pytest.raises(ValueError, match="unknown init"):
        init_params(1, "orthogonal", 0)
