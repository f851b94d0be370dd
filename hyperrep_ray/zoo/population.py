"""K zoo CNNs as one batched module, so a GPU (or a CPU core) runs many tiny models at once.

Parameters carry a leading model axis K. Convolutions run as grouped convolutions over
channel-stacked inputs and the linear layers as batched matmuls. Each model sees its own
mini-batch, and the loss is the *sum* of the models' mean losses, so every model receives
exactly the gradient it would get alone; with an element-wise optimiser (Adam, SGD) the
population therefore follows the same trajectory as K separate training runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hyperrep_ray.zoo.cnn import ACTIVATIONS, layer_shapes, normalize_activation

_CONVS = ("conv1", "conv2", "conv3")


class PopulationCNN(nn.Module):
    def __init__(self, params: list[dict[str, torch.Tensor]], in_channels: int, activation: str):
        super().__init__()
        self.k = len(params)
        self.in_channels = in_channels
        self.activation = normalize_activation(activation)
        self.names = [n for n, _ in layer_shapes(in_channels)]
        for name in self.names:
            stacked = torch.stack([p[name].detach().float() for p in params]).contiguous()
            self.register_parameter(name.replace(".", "_"), nn.Parameter(stacked))

    def param(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "_"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (K, B, C, 28, 28) per-model batches, or (B, C, 28, 28) shared by all models.

        Returns logits (K, B, 10)."""
        k = self.k
        if x.dim() == 4:
            b = x.shape[0]
            h = x.repeat(1, k, 1, 1)
        else:
            b = x.shape[1]
            h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])
        act = ACTIVATIONS[self.activation]
        for i, name in enumerate(_CONVS):
            w = self.param(f"{name}.weight")
            w = w.reshape(k * w.shape[1], *w.shape[2:])
            h = nn.functional.conv2d(h, w, self.param(f"{name}.bias").reshape(-1), groups=k)
            if i < 2:
                h = nn.functional.max_pool2d(h, 2)
            h = act(h)
        h = h.reshape(b, k, -1).transpose(0, 1)  # (K, B, 36), per-model flatten order (c, y, x)
        h = act(
            torch.baddbmm(self.param("fc1.bias").unsqueeze(1), h, self.param("fc1.weight").transpose(1, 2))
        )
        return torch.baddbmm(self.param("fc2.bias").unsqueeze(1), h, self.param("fc2.weight").transpose(1, 2))

    def vectors(self) -> np.ndarray:
        """(K, N) float32 flat weight vectors in the zoo CNN's state_dict order."""
        with torch.no_grad():
            parts = [self.param(n).detach().reshape(self.k, -1) for n in self.names]
            return torch.cat(parts, dim=1).cpu().numpy().astype(np.float32)


def per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each model, (K,), for logits (K, B, 10) and labels (K, B) or (B,)."""
    k, b, c = logits.shape
    if y.dim() == 1:
        y = y.expand(k, b)
    return (
        nn.functional.cross_entropy(logits.reshape(k * b, c), y.reshape(-1), reduction="none")
        .view(k, b)
        .mean(1)
    )


@torch.no_grad()
def evaluate_population(
    model: PopulationCNN, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean cross-entropy of every model on the same images, each (K,)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(model.k, device=x.device)
    loss_sum = torch.zeros(model.k, device=x.device)
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = model(xb)
        correct += (logits.argmax(-1) == yb).sum(1)
        loss_sum += per_model_loss(logits, yb) * xb.shape[0]
    model.train(was_training)
    n = max(1, x.shape[0])
    return (correct / n).cpu().numpy().astype(np.float32), (loss_sum / n).cpu().numpy().astype(np.float32)


def make_optimizer(params, optimizer: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam or SGD with L2 weight decay (as torch.optim applies it: added to the gradient)."""
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9)
    raise ValueError(f"unknown optimizer {optimizer!r}; choose adam or sgd")


def data_order_generator(seed: int) -> torch.Generator:
    """A model's mini-batch order comes from its seed alone, so it does not depend on which
    population or shard the model lands in."""
    return torch.Generator().manual_seed(10_000_019 * int(seed) + 7)


@torch.no_grad()
def evaluate_weight_vectors(
    weights: np.ndarray | torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    activation: str,
    chunk: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and loss of many flat weight vectors (M, N) on the same images, as populations.

    Non-finite vectors (a decoder can produce them) score accuracy 0 and loss inf instead of
    poisoning the batch."""
    from hyperrep_ray.zoo.cnn import in_channels_for_length, vector_to_state_dict

    w = torch.as_tensor(np.asarray(weights, dtype=np.float32)) if not torch.is_tensor(weights) else weights
    w = w.detach().float().cpu()
    if w.ndim != 2:
        raise ValueError(f"weights must be (M, N), got {tuple(w.shape)}")
    c = in_channels_for_length(w.shape[1])
    finite = torch.isfinite(w).all(1)
    accs = np.zeros(w.shape[0], np.float32)
    losses = np.full(w.shape[0], np.inf, np.float32)
    xs, ys = x.to(device), y.to(device)
    idx = torch.nonzero(finite).flatten()
    for i in range(0, len(idx), chunk):
        sel = idx[i : i + chunk]
        model = PopulationCNN([vector_to_state_dict(v, c) for v in w[sel]], c, activation).to(device)
        a, lo = evaluate_population(model, xs, ys)
        accs[sel.numpy()] = a
        losses[sel.numpy()] = lo
    return accs, losses
