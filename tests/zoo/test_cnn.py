import numpy as np
import pytest
import torch

from hyperrep_ray.zoo.cnn import (
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


@pytest.mark.parametrize(
    "init", ["uniform", "normal", "kaiming_uniform", "kaiming_normal", "xavier", "default"]
)
def test_init_is_seeded_and_seed_dependent(init):
    a, b, c = init_params(1, init, 1), init_params(1, init, 1), init_params(1, init, 2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_uniform_init_is_wider_than_default():
    wide = torch.cat([t.reshape(-1) for t in init_params(1, "uniform", 1).values()])
    default = torch.cat([t.reshape(-1) for t in init_params(1, "default", 1).values()])
    assert wide.abs().max() <= 0.5 and wide.std() > 2 * default.std()


def test_unknown_activation_and_init():
    with pytest.raises(ValueError, match="unknown activation"):
        ZooCNN(1, "swish")
    with pytest.raises(ValueError, match="unknown init"):
        init_params(1, "orthogonal", 0)
