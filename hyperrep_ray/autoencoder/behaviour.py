"""Behavioural loss: the decoded model must *compute* what the original computes, not only sit near it.

A reconstruction that is close in weight space can still be a poor model (the quick digits zoo: test
R^2 0.24, decoded models keep 0.60 of 0.88 accuracy). Meynent et al., "Structure Is Not Enough"
(ICLR 2025 WSL workshop) add a term comparing the outputs of the reconstructed and the original model
on a batch of query images; their scripts weight it against the structural loss with
beta in {0, 0.1, 1} (L = beta * structure + (1 - beta) * behaviour), use 256 query images drawn from
the zoo's training data, and compare outputs by MSE of the softmax outputs, cross entropy or a
temperature-2 distillation KL. Here the term is *added* to the autoencoder's loss with
``AEConfig.behaviour_weight`` (0 = off) and compares logits (``logits_mse``) or temperature-2 soft
labels (``kl``, scaled by T^2 as distillation does).

Weights are decoded in raw units (the model undoes its standardisation), converted from tokens to
flat vectors and run as one batched, differentiable population forward
(:class:`~hyperrep_ray.zoo.population.PopulationCNN` through ``torch.func.functional_call``). The
target logits come from the clean (possibly permuted) target weights under ``no_grad``: a neuron
permutation preserves the function, so they are the original checkpoint's logits. Query images are
the zoo's *training* images, never its test images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from hyperrep_ray.weightspace.tokens import TokenLayout, tokens_to_vectors
from hyperrep_ray.zoo.cnn import layer_shapes, num_params, vector_to_state_dict
from hyperrep_ray.zoo.population import PopulationCNN

#: Temperature of the ``kl`` loss (the distillation temperature of Meynent et al.'s scripts).
KL_TEMPERATURE = 2.0
#: At most this many training images are shipped to the workers as the query pool.
MAX_QUERY_POOL = 2048
BEHAVIOUR_LOSSES = ("logits_mse", "kl")


def query_pool(train_x: torch.Tensor | np.ndarray, seed: int = 0, limit: int = MAX_QUERY_POOL) -> np.ndarray:
    """A seeded subset (at most ``limit``) of the zoo's training images, float32 (Q, C, 28, 28)."""
    x = np.asarray(torch.as_tensor(train_x).detach().cpu().numpy(), dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"query images must be (Q, C, H, W), got {x.shape}")
    if len(x) <= limit:
        return np.array(x)
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=limit, replace=False))
    return np.array(x[idx])


def split_parameters(vectors: torch.Tensor, in_channels: int) -> dict[str, torch.Tensor]:
    """Flat weight vectors (K, N) -> PopulationCNN parameters with a leading model axis (differentiable)."""
    if vectors.dim() != 2 or vectors.shape[1] != num_params(in_channels):
        raise ValueError(
            f"vectors must be (K, {num_params(in_channels)}) for {in_channels} input channel(s), "
            f"got {tuple(vectors.shape)}"
        )
    out, i = {}, 0
    for name, shape in layer_shapes(in_channels):
        n = math.prod(shape)
        out[name.replace(".", "_")] = vectors[:, i : i + n].reshape(vectors.shape[0], *shape)
        i += n
    return out


class BatchedCNN:
    """The zoo CNN as a function of (weight vectors, images) -> logits (K, Q, 10), differentiable in
    the weights: a one-model PopulationCNN template whose parameters are swapped per call."""

    def __init__(self, in_channels: int, activation: str) -> None:
        self.in_channels = in_channels
        zeros = np.zeros(num_params(in_channels), np.float32)
        self.template = PopulationCNN([vector_to_state_dict(zeros, in_channels)], in_channels, activation)

    def __call__(self, vectors: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.template.to(vectors.device)
        params = split_parameters(vectors.float(), self.in_channels)
        logits: torch.Tensor = functional_call(self.template, params, (x.to(vectors.device),))
        return logits


def compare_logits(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``logits_mse``: mean squared logit difference; ``kl``: T^2 * KL(softmax(target/T) || softmax(pred/T)),
    averaged over models and queries. Both are exactly 0 when ``pred`` equals ``target``."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} logits differ in shape")
    if kind == "logits_mse":
        return (pred.float() - target.float()).square().mean()
    if kind == "kl":
        t = KL_TEMPERATURE
        log_p = F.log_softmax(target.float() / t, dim=-1)
        log_q = F.log_softmax(pred.float() / t, dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        return kl.mean() * t * t
    raise ValueError(f"behaviour_loss must be one of {BEHAVIOUR_LOSSES}, got {kind!r}")


class BehaviourLoss:
    """Compares decoded models with their originals on ``n_queries`` images drawn per call from the pool."""

    def __init__(
        self,
        queries: np.ndarray,
        layout: TokenLayout,
        activation: str,
        kind: str,
        n_queries: int,
        device: torch.device | str = "cpu",
    ) -> None:
        if kind not in BEHAVIOUR_LOSSES:
            raise ValueError(f"behaviour_loss must be one of {BEHAVIOUR_LOSSES}, got {kind!r}")
        if queries.ndim != 4 or len(queries) == 0:
            raise ValueError(
                "the behavioural loss needs query images (the zoo's training images) in the training "
                f"payload, got an array of shape {queries.shape}"
            )
        self.pool = torch.from_numpy(np.array(queries, np.float32)).to(device)
        self.layout, self.kind = layout, kind
        self.n_queries = min(int(n_queries), len(queries))
        self.net = BatchedCNN(layout.in_channels, activation)

    def draw(self, gen: torch.Generator | None) -> torch.Tensor:
        """``n_queries`` pool images (all of them, in order, without a generator)."""
        if gen is None:
            return self.pool[: self.n_queries]
        idx = torch.randperm(len(self.pool), generator=gen)[: self.n_queries]
        return self.pool[idx.to(self.pool.device)]

    def __call__(
        self, recon: torch.Tensor, target: torch.Tensor, gen: torch.Generator | None = None
    ) -> torch.Tensor:
        """recon/target tokens [B, T, D] (raw weight units) -> the loss (differentiable in ``recon``)."""
        x = self.draw(gen)
        with torch.no_grad():
            goal = self.net(tokens_to_vectors(target.float(), self.layout), x)
        out = self.net(tokens_to_vectors(recon.float(), self.layout), x)
        return compare_logits(out, goal, self.kind)
