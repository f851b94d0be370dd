"""PopulationCNN computes each model's ZooCNN function, on every code path (CPU chunked, grouped).

Float32 results are compared with a float64 reference under a tolerance derived from the computation
itself (magnitudes x reduction length x float32 unit roundoff), not a fixed atol: how a CPU orders
and fuses its sums (AVX2, AVX-512, oneDNN's conv kernels) moves float32 results by amounts that
scale with the terms summed, so a fixed 1e-5 passes on one x86-64 machine and fails on another.
"""

import pytest
import torch
import torch.nn.functional as F

from hyperrep_ray.zoo import population
from hyperrep_ray.zoo.cnn import ACTIVATIONS, ZooCNN, init_params
from hyperrep_ray.zoo.population import PopulationCNN, evaluate_population, per_model_loss

PATHS = ("grouped", "chunked")
U32 = torch.finfo(torch.float32).eps / 2  # float32 unit roundoff
ACT_ULPS = 4  # tanh / gelu in float32 are within a few ulp of the exact value
LAYERS = (("conv1", True), ("conv2", True), ("conv3", True), ("fc1", False), ("fc2", False))


def gamma(n: int) -> float:
    """Bound on the relative error of a float32 sum of n products, in any order (Higham's gamma_n)."""
    return n * U32 / (1 - n * U32)


def within(got: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor) -> float:
    """Largest |got - ref| / bound (<= 1: inside the bound)."""
    return float(((got.detach().double() - ref).abs() / bound).max())


def slope(act, z: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """|act'| bounded over [z - err, z + err] by its largest value at the ends and the middle (the
    errors are tiny next to the curvature of tanh and gelu)."""
    points = torch.stack([z - err, z, z + err]).requires_grad_(True)
    (grad,) = torch.autograd.grad(act(points).sum(), points)
    return grad.abs().amax(0)


def reference_and_bound(params, x, activation):
    """(float64 logits, elementwise bound on |float32 logits - float64 logits|) of one zoo CNN: each
    layer's sums of n terms err by at most gamma_{n+1} (|W||a| + |b|), activations add a few ulp, and
    earlier errors pass through |W|, max-pooling and the activation's slope (to first order)."""
    act = ACTIVATIONS[activation]
    a = x.double()
    err = torch.zeros_like(a)
    for name, conv in LAYERS:
        w, b = params[f"{name}.weight"].double(), params[f"{name}.bias"].double()
        op = F.conv2d if conv else F.linear
        if name == "fc1":
            a, err = a.flatten(-3), err.flatten(-3)
        z = op(a, w, b)
        err = op(err, w.abs()) + gamma(w[0].numel() + 1) * op(a.abs(), w.abs(), b.abs())
        if name in ("conv1", "conv2"):
            z, err = F.max_pool2d(z, 2), F.max_pool2d(err, 2)
        if name == "fc2":
            return z, err
        a = act(z)
        err = slope(act, z, err) * err + ACT_ULPS * U32 * a.abs()
    raise AssertionError("unreachable")


def _models(k, in_channels, activation, init="uniform"):
    params = [init_params(in_channels, init, seed) for seed in range(1, k + 1)]
    singles = []
    for p in params:
        m = ZooCNN(in_channels, activation)
        m.load_state_dict(p)
        singles.append(m)
    return params, singles


def grad_reference_and_bound(params, x, y, activation):
    """(float64 gradients of the mean cross-entropy, bounds on their float32 error). A weight's
    gradient sums n = images x output positions products delta * a; it errs by at most about
    gamma_{n + m} sum |delta| |a|, where m counts the float32 sums (forward and backward) that made
    delta and a."""
    act = ACTIVATIONS[activation]
    p = {k: v.double().requires_grad_(True) for k, v in params.items()}
    a, inputs, outputs = x.double(), {}, {}
    for name, conv in LAYERS:
        a = a.flatten(1) if name == "fc1" else a
        inputs[name] = a.detach()
        z = (F.conv2d if conv else F.linear)(a, p[f"{name}.weight"], p[f"{name}.bias"])
        z.retain_grad()
        outputs[name] = z
        a = act(F.max_pool2d(z, 2) if name in ("conv1", "conv2") else z)
    F.cross_entropy(outputs["fc2"], y).backward()
    weights = [p[f"{name}.weight"] for name, _ in LAYERS]
    m = sum(w[0].numel() + 1 for w in weights) + sum(w.shape[0] * w[0, 0].numel() for w in weights) + 10
    bounds = {}
    for name, conv in LAYERS:
        a, d = inputs[name].abs(), outputs[name].grad.abs()
        w = p[f"{name}.weight"]
        if conv:
            n = d.shape[0] * d.shape[2] * d.shape[3]
            mag_w, mag_b = torch.nn.grad.conv2d_weight(a, w.shape, d), d.sum((0, 2, 3))
        else:
            n = d.shape[0]
            mag_w, mag_b = d.T @ a, d.sum(0)
        bounds[f"{name}.weight"], bounds[f"{name}.bias"] = gamma(n + m) * mag_w, gamma(n + m) * mag_b
    return {k: v.grad for k, v in p.items()}, bounds


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
    xs = [x] * k if shared else list(x)
    for i, (p, xi) in enumerate(zip(params, xs, strict=True)):
        ref, bound = reference_and_bound(p, xi, activation)
        assert within(got[i], ref, bound) <= 1
        assert within(expected[i], ref, bound) <= 1  # the single ZooCNN obeys the same bound
        assert bound.max() < 1e-3 * ref.abs().max()  # and the bound is tight enough to catch a wrong model


@pytest.mark.parametrize("path", PATHS)
def test_gradients_equal_zoo_cnn(path, monkeypatch):
    """Sum of per-model mean losses: each model gets the gradient of its own loss. PyTorch's default
    init: under U(0, 1) weights tanh saturates and every gradient but fc2's is exactly 0 in float32."""
    monkeypatch.setattr(population, "CPU_MODEL_IMAGES", 16)
    k = 3
    params, singles = _models(k, 1, "tanh", init="default")
    pop = PopulationCNN(params, 1, "tanh", path=path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(k, 8, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (k, 8), generator=g)
    per_model_loss(pop(x), y).sum().backward()
    for i, m in enumerate(singles):
        torch.nn.functional.cross_entropy(m(x[i]), y[i]).backward()
        ref, bound = grad_reference_and_bound(params[i], x[i], y[i], "tanh")
        for name, p in m.named_parameters():
            assert within(pop.param(name).grad[i], ref[name], bound[name]) <= 1, name
            assert within(p.grad, ref[name], bound[name]) <= 1, name  # the single ZooCNN obeys it too


def test_paths_evaluate_alike(small_digits):
    """Both paths' mean losses lie within the logits' error bound of the exact loss (cross-entropy
    moves by at most 2 max|logit error|); accuracies differ only on images whose top-two logits are
    closer than that bound."""
    params, _ = _models(5, 1, "tanh")
    x, y = small_digits.test_x, small_digits.test_y
    results = [evaluate_population(PopulationCNN(params, 1, "tanh", path=p), x, y) for p in PATHS]
    (acc_a, loss_a), (acc_b, loss_b) = results
    for i, p in enumerate(params):
        ref, bound = reference_and_bound(p, x, "tanh")
        exact = F.cross_entropy(ref, y).item()
        tol = 2 * bound.max().item() + gamma(len(y)) * exact
        assert abs(loss_a[i] - exact) <= tol and abs(loss_b[i] - exact) <= tol
        top2 = ref.topk(2, dim=1).values
        ties = int((top2[:, 0] - top2[:, 1] <= 2 * bound.max(1).values).sum())
        assert abs(acc_a[i] - acc_b[i]) <= ties / len(y) + 1e-6
        assert bound.max() < 1e-3 * ref.abs().max()


def test_auto_path_by_device():
    params, _ = _models(2, 1, "tanh")
    pop = PopulationCNN(params, 1, "tanh")
    assert pop.path_for(torch.device("cpu")) == "chunked"
    assert pop.path_for(torch.device("cuda")) == "grouped"
    with pytest.raises(ValueError, match="unknown path"):
        PopulationCNN(params, 1, "tanh", path="fast")
