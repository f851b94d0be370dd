"""K zoo CNNs as one batched module, so a GPU (or a CPU core) runs many tiny models at once.

Parameters carry a leading model axis K. Each model sees its own mini-batch, and the loss is
the *sum* of the models' mean losses, so every model receives exactly the gradient it would
get alone; with an element-wise optimiser (Adam, SGD) the population therefore follows the
same trajectory as K separate training runs.

Two code paths compute the same function (tests check both against ``ZooCNN``):

- ``"grouped"`` (CUDA): grouped convolutions over channel-stacked per-model batches, NCHW,
  the whole population in one pass.
- ``"chunked"`` (CPU): the same grouped convolutions in channels-last memory format, run over
  chunks of models so that each pass touches about ``CPU_MODEL_IMAGES`` model-images. On CPU
  the NCHW max-pool kernel and NCHW grouped convolutions (oneDNN) are several times slower
  than their channels-last versions, and a whole population's activations do not fit in the
  caches; both together made the population slower per model than a one-model loop.

Both compute conv1 on an input shared by all models (evaluation) as one dense convolution with
K*8 output channels instead of a grouped convolution over K copies of the input. The linear
layers are batched matmuls.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hyperrep_ray.zoo.cnn import ACTIVATIONS, layer_shapes, normalize_activation

_CONVS = ("conv1", "conv2", "conv3")
_F = nn.functional
_CL = torch.channels_last
PATHS = ("auto", "grouped", "chunked")

# models x images per pass of the CPU path: 256 keeps a pass's conv1 output (18 KB per
# model-image) at a few MB. On a 2-core EPYC (32 MB L3, 1 MB L2 per core), K=64, batch 32:
# budgets 128 and 256 were best, 512 about 1.1x and 1024 about 1.25x slower per model-epoch.
CPU_MODEL_IMAGES = 256


class PopulationCNN(nn.Module):
    def __init__(
        self, params: list[dict[str, torch.Tensor]], in_channels: int, activation: str, path: str = "auto"
    ):
        super().__init__()
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}; choose one of {PATHS}")
        self.k = len(params)
        self.in_channels = in_channels
        self.activation = normalize_activation(activation)
        self.path = path
        self.names = [n for n, _ in layer_shapes(in_channels)]
        for name in self.names:
            stacked = torch.stack([p[name].detach().float() for p in params]).contiguous()
            self.register_parameter(name.replace(".", "_"), nn.Parameter(stacked))

    def param(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "_"))

    def path_for(self, device: torch.device) -> str:
        """The code path used for inputs on ``device``: grouped on CUDA, chunked elsewhere."""
        if self.path != "auto":
            return self.path
        return "grouped" if device.type == "cuda" else "chunked"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (K, B, C, H, W) per-model batches, or (B, C, H, W) shared by all models.

        Returns logits (K, B, 10)."""
        params = {n: self.param(n) for n in self.names}
        if self.path_for(x.device) == "grouped":
            return self._forward(x, params, channels_last=False)
        shared = x.dim() == 4
        chunk = max(1, CPU_MODEL_IMAGES // x.shape[0 if shared else 1])
        if chunk >= self.k:
            return self._forward(x, params, channels_last=True)
        # one split per parameter (not a slice per chunk): its backward is a single concatenation
        splits = {n: p.split(chunk) for n, p in params.items()}
        outs = [
            self._forward(
                x if shared else x[i * chunk : (i + 1) * chunk], {n: s[i] for n, s in splits.items()}, True
            )
            for i in range(len(splits[self.names[0]]))
        ]
        return torch.cat(outs)

    def _forward(self, x: torch.Tensor, p: dict[str, torch.Tensor], channels_last: bool) -> torch.Tensor:
        """Logits (k, B, 10) of the k models whose parameters are ``p`` (leading axis k)."""
        act = ACTIVATIONS[self.activation]
        k = p["conv1.weight"].shape[0]
        b = x.shape[0] if x.dim() == 4 else x.shape[1]
        h = x
        for i, name in enumerate(_CONVS):
            w, bias = p[f"{name}.weight"].flatten(0, 1), p[f"{name}.bias"].flatten()
            if i == 0 and x.dim() == 4:
                h = _F.conv2d(h, w, bias)  # shared input: one dense conv, K*8 output channels
            else:
                if i == 0:  # (k, B, C, H, W) -> (B, k*C, H, W), channel index model * C + c
                    if channels_last:
                        h = h.permute(1, 3, 4, 0, 2).contiguous()  # memory (B, H, W, k, C)
                        h = h.view(*h.shape[:3], -1).permute(0, 3, 1, 2)
                    else:
                        h = h.transpose(0, 1).reshape(b, -1, *h.shape[3:])
                h = _F.conv2d(h, w, bias, groups=k)
            if channels_last:
                h = h.contiguous(memory_format=_CL)  # a no-op except where oneDNN chose NCHW
            if i < 2:
                h = _F.max_pool2d(h, 2)
            h = act(h)
        # (B, k*4, 3, 3) -> (k, B, 36), per-model flatten order (c, y, x)
        hh, ww = h.shape[2:]
        h = h.reshape(b, k, -1, hh, ww).transpose(0, 1).reshape(k, b, -1)
        h = act(torch.baddbmm(p["fc1.bias"].unsqueeze(1), h, p["fc1.weight"].transpose(1, 2)))
        return torch.baddbmm(p["fc2.bias"].unsqueeze(1), h, p["fc2.weight"].transpose(1, 2))

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
    model: PopulationCNN, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean cross-entropy of every model on the same images, each (K,).

    ``batch_size`` (images per forward pass) defaults to 512 on the grouped (CUDA) path and to
    max(64, CPU_MODEL_IMAGES // K) on the chunked (CPU) path, whose passes stay cache-sized."""
    if batch_size is None:
        chunked = model.path_for(x.device) == "chunked"
        batch_size = max(64, CPU_MODEL_IMAGES // max(1, model.k)) if chunked else 512
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
