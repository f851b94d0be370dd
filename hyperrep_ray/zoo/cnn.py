"""The zoo CNN of the 2022 paper (Table 6) and exact conversion to/from flat weight vectors.

The flat vector is the contract every later stage relies on (tokens, store, decoding):
parameters in ``state_dict()`` order, each flattened row-major, float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from hyperrep_ray.config import INIT_RULES

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "gelu": nn.functional.gelu,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
}
INITS: tuple[str, ...] = tuple(INIT_RULES)

# The authors' inits (``def_net.py``) fill every bias with this value; ``uniform_symmetric`` keeps the
# range this package used to call "uniform".
AUTHORS_BIAS = 0.01
SYMMETRIC_WEIGHT_RANGE = 0.5
SYMMETRIC_BIAS_RANGE = 0.1

LAYER_NAMES = ("conv1", "conv2", "conv3", "fc1", "fc2")


def layer_shapes(in_channels: int = 1) -> list[tuple[str, tuple[int, ...]]]:
    """(parameter name, shape) in ``state_dict()`` order for the zoo CNN."""
    return [
        ("conv1.weight", (8, in_channels, 5, 5)),
        ("conv1.bias", (8,)),
        ("conv2.weight", (6, 8, 5, 5)),
        ("conv2.bias", (6,)),
        ("conv3.weight", (4, 6, 2, 2)),
        ("conv3.bias", (4,)),
        ("fc1.weight", (20, 36)),
        ("fc1.bias", (20,)),
        ("fc2.weight", (10, 20)),
        ("fc2.bias", (10,)),
    ]


def num_params(in_channels: int = 1) -> int:
    return sum(math.prod(s) for _, s in layer_shapes(in_channels))


def normalize_activation(name: str) -> str:
    key = name.lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return key


def normalize_init(name: str) -> str:
    key = name.lower().replace("-", "_")
    if key not in INITS:
        raise ValueError(f"unknown init {name!r}; choose one of {list(INITS)}")
    return key


class ZooCNN(nn.Module):
    """Conv(c->8,k5) MaxPool2 act Conv(8->6,k5) MaxPool2 act Conv(6->4,k2) act Flatten(36)
    Linear(36->20) act Linear(20->10), on 28x28 inputs."""

    def __init__(self, in_channels: int = 1, activation: str = "tanh", dropout: float = 0.0):
        super().__init__()
        self.in_channels = in_channels
        self.activation = normalize_activation(activation)
        self.conv1 = nn.Conv2d(in_channels, 8, 5)
        self.conv2 = nn.Conv2d(8, 6, 5)
        self.conv3 = nn.Conv2d(6, 4, 2)
        self.fc1 = nn.Linear(36, 20)
        self.fc2 = nn.Linear(20, 10)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = ACTIVATIONS[self.activation]
        x = act(nn.functional.max_pool2d(self.conv1(x), 2))
        x = act(nn.functional.max_pool2d(self.conv2(x), 2))
        x = act(self.conv3(x))
        x = x.flatten(1)
        x = act(self.fc1(x))
        if self.dropout:
            x = nn.functional.dropout(x, self.dropout, self.training)
        return self.fc2(x)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def init_params(in_channels: int, init: str, seed: int) -> dict[str, torch.Tensor]:
    """Fresh parameters of one zoo model, as a name -> tensor dict, determined by ``seed`` alone.

    Generated on the CPU with a private generator so that a seed gives the same initial model on
    every device and whatever else the process does with the global RNG. ``INIT_RULES`` says what each
    name draws (the authors' names as their ``def_net.py`` means them: biases 0.01)."""
    init = normalize_init(init)
    g = torch.Generator().manual_seed(int(seed))
    params: dict[str, torch.Tensor] = {}
    for name, shape in layer_shapes(in_channels):
        weight_shape = params[name[:-4] + "weight"].shape if name.endswith("bias") else shape
        params[name] = _draw(init, name.endswith("bias"), torch.empty(shape), _fans(weight_shape), g)
    return params


def _draw(
    init: str, is_bias: bool, t: torch.Tensor, fans: tuple[int, int], g: torch.Generator
) -> torch.Tensor:
    """Fill ``t`` (one weight or bias tensor) in place by the rule of ``init``."""
    fan_in, fan_out = fans
    if init == "default":
        bound = 1.0 / math.sqrt(fan_in)
        return t.uniform_(-bound, bound, generator=g)
    if init == "uniform_symmetric":
        r = SYMMETRIC_BIAS_RANGE if is_bias else SYMMETRIC_WEIGHT_RANGE
        return t.uniform_(-r, r, generator=g)
    if is_bias:
        return t.fill_(AUTHORS_BIAS)
    if init == "uniform":
        return t.uniform_(0.0, 1.0, generator=g)
    if init == "normal":
        return t.normal_(0.0, 1.0, generator=g)
    if init == "kaiming_uniform":
        bound = math.sqrt(6.0 / fan_in)
        return t.uniform_(-bound, bound, generator=g)
    if init == "kaiming_normal":
        return t.normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)
    bound = math.sqrt(6.0 / (fan_in + fan_out))  # xavier (Glorot uniform)
    return t.uniform_(-bound, bound, generator=g)


def build_model(
    in_channels: int = 1, activation: str = "tanh", init: str = "uniform", seed: int = 0
) -> ZooCNN:
    model = ZooCNN(in_channels, activation)
    model.load_state_dict(init_params(in_channels, init, seed))
    return model


def model_to_vector(model: nn.Module) -> np.ndarray:
    """Flat float32 weight vector in ``state_dict()`` order."""
    return np.concatenate(
        [t.detach().cpu().reshape(-1).numpy().astype(np.float32) for t in model.state_dict().values()]
    )


def vector_to_state_dict(vec: np.ndarray | torch.Tensor, in_channels: int = 1) -> dict[str, torch.Tensor]:
    """Inverse of :func:`model_to_vector`; raises if the length does not match the architecture."""
    v = torch.as_tensor(np.asarray(vec, dtype=np.float32))
    expected = num_params(in_channels)
    if v.ndim != 1 or v.numel() != expected:
        raise ValueError(
            f"weight vector has shape {tuple(v.shape)}, expected ({expected},) for the zoo CNN "
            f"with {in_channels} input channel(s)"
        )
    out: dict[str, torch.Tensor] = {}
    i = 0
    for name, shape in layer_shapes(in_channels):
        n = math.prod(shape)
        out[name] = v[i : i + n].reshape(shape).clone()
        i += n
    return out


def vector_to_model(vec: np.ndarray | torch.Tensor, in_channels: int = 1, activation: str = "tanh") -> ZooCNN:
    model = ZooCNN(in_channels, activation)
    model.load_state_dict(vector_to_state_dict(vec, in_channels))
    return model


def in_channels_for_length(n: int) -> int:
    for c in (1, 3):
        if num_params(c) == n:
            return c
    raise ValueError(f"no zoo CNN has {n} parameters (1 channel: {num_params(1)}, 3: {num_params(3)})")
