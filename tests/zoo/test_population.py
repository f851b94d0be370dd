"""PopulationCNN computes each model's ZooCNN function, on every code path (CPU chunked, grouped)."""

import pytest
import torch

from hyperrep_ray.zoo import population
from hyperrep_ray.zoo.cnn import ZooCNN, init_params
from hyperrep_ray.zoo.population import PopulationCNN, evaluate_population, per_model_loss

PATHS = ("grouped", "chunked")


def _models(k, in_channels, activation, init="uniform"):
    params = [init_params(in_channels, init, seed) for seed in range(1, k + 1)]
    singles = []
    for p in params:
        m = ZooCNN(in_channels, activation)
        m.load_state_dict(p)
        singles.append(m)
    return params, singles


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("in_channels,activation", [(1, "tanh"), (3, "gelu")])
def test_forward_equals_zoo_cnn(path, k, shared, in_channels, activation, monkeypatch):
    # 16 model-images per CPU pass: batch 8 runs the chunked path in chunks of 2 models (3 = 2 + 1)
    monkeypatch.setattr(population, "CPU_MODEL_IMAGES", 16)
    params, singles = _models(k, in_channels, activation)
    pop = PopulationCNN(params, in_channels, activation, path=path)
    g = torch.Generator().manual_seed(0)
    if shared:
        x = torch.randn(8, in_channels, 28, 28, generator=g)
        expected = torch.stack([m(x) for m in singles])
    else:
        x = torch.randn(k, 8, in_channels, 28, 28, generator=g)
        expected = torch.stack([m(x[i]) for i, m in enumerate(singles)])
    got = pop(x)
    assert got.shape == (k, 8, 10)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_gradients_equal_zoo_cnn(path, monkeypatch):
    """Sum of per-model mean losses: each model gets the gradient of its own loss."""
    monkeypatch.setattr(population, "CPU_MODEL_IMAGES", 16)
    k = 3
    params, singles = _models(k, 1, "tanh")
    pop = PopulationCNN(params, 1, "tanh", path=path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(k, 8, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (k, 8), generator=g)
    per_model_loss(pop(x), y).sum().backward()
    for i, m in enumerate(singles):
        torch.nn.functional.cross_entropy(m(x[i]), y[i]).backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(pop.param(name).grad[i], p.grad, atol=1e-5, rtol=1e-4)


def test_paths_evaluate_alike(small_digits):
    params, _ = _models(5, 1, "tanh")
    x, y = small_digits.test_x, small_digits.test_y
    results = [evaluate_population(PopulationCNN(params, 1, "tanh", path=p), x, y) for p in PATHS]
    (acc_a, loss_a), (acc_b, loss_b) = results
    assert (acc_a == acc_b).all()
    torch.testing.assert_close(torch.from_numpy(loss_a), torch.from_numpy(loss_b), atol=1e-5, rtol=1e-5)


def test_auto_path_by_device():
    params, _ = _models(2, 1, "tanh")
    pop = PopulationCNN(params, 1, "tanh")
    assert pop.path_for(torch.device("cpu")) == "chunked"
    assert pop.path_for(torch.device("cuda")) == "grouped"
    with pytest.raises(ValueError, match="unknown path"):
        PopulationCNN(params, 1, "tanh", path="fast")
