"""S_GAN: a latent GAN trained on the anchors' embeddings (Schürholt et al. 2022, Appendix E.2).

A small generator maps 16-d Gaussian noise to embeddings z; a spectrally normalised discriminator
tells them from the anchors. Seeded without touching the global torch RNG, so a run is bitwise
reproducible on CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from hyperrep_ray.progress import Progress
from hyperrep_ray.sampling.checks import check_anchors, check_n, finish

__all__ = [
    "DEFAULT_GAN_EPOCHS",
    "GAN_NOISE_DIM",
    "LatentGenerator",
    "LatentDiscriminator",
    "capped_epochs",
    "derived_seed",
    "train_latent_gan",
    "sample_gan",
]

#: GAN schedule and noise size from paper Appendix E.2.
DEFAULT_GAN_EPOCHS = 1000
GAN_NOISE_DIM = 16
GAN_BATCH_SIZE = 32
GAN_LR_GENERATOR = 1e-4
GAN_LR_DISCRIMINATOR = 2e-4
#: Adam betas: not stated in the paper; (0.5, 0.999) is the usual GAN choice.
GAN_ADAM_BETAS = (0.5, 0.999)


class LatentGenerator(nn.Module):
    """Generator 16 -> 128 -> 256 -> 512 -> D with ReLU (Appendix E.2).

    The tanh on the output is ours: it keeps samples in the encoder's tanh range [-1, 1] by construction.
    """

    def __init__(self, dim: int, noise_dim: int = GAN_NOISE_DIM) -> None:
        super().__init__()
        self.dim = int(dim)
        self.noise_dim = int(noise_dim)
        self.net = nn.Sequential(
            nn.Linear(noise_dim, 128),
            nn.ReLU(),
            nn.Linear(128, 256),
            nn.ReLU(),
            nn.Linear(256, 512),
            nn.ReLU(),
            nn.Linear(512, dim),
            nn.Tanh(),
        )
        self.loss_history: list[tuple[float, float]] = []  # (discriminator, generator) per epoch

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise)


class LatentDiscriminator(nn.Module):
    """Discriminator D -> 1024 -> 512 -> 256 -> 1 logit, ReLU (as in the paper), spectral norm everywhere."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Linear(dim, 1024)),
            nn.ReLU(),
            sn(nn.Linear(1024, 512)),
            nn.ReLU(),
            sn(nn.Linear(512, 256)),
            nn.ReLU(),
            sn(nn.Linear(256, 1)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def derived_seed(seed: int, stream: int) -> int:
    """Independent sub-seeds from one user seed (init / shuffling / noise must not share a stream)."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def capped_epochs(epochs: int, m: int, batch_size: int, max_steps: int | None) -> int:
    """``epochs``, or fewer whole epochs (at least one) when ``max_steps`` optimiser steps are reached
    sooner on ``m`` anchors in batches of ``batch_size``."""
    if max_steps is None:
        return epochs
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    per_epoch = -(-m // batch_size)
    return min(epochs, max(1, max_steps // per_epoch))


def gan_step(
    gen: LatentGenerator,
    disc: LatentDiscriminator,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    real: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[float, float]:
    """One discriminator step, then one generator step, on a batch of anchors and generator noise;
    (discriminator loss, generator loss). Non-saturating loss: the generator maximises log D(G(n))."""
    opt_g, opt_d = optimizers
    bce = nn.functional.binary_cross_entropy_with_logits
    ones = torch.ones(real.shape[0], 1, device=real.device)
    zeros = torch.zeros(real.shape[0], 1, device=real.device)
    fake = gen(noise)
    loss_d = bce(disc(real), ones) + bce(disc(fake.detach()), zeros)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    loss_g = bce(disc(fake), ones)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return float(loss_d.detach()), float(loss_g.detach())


def train_latent_gan(
    anchors: np.ndarray,
    seed: int,
    epochs: int = DEFAULT_GAN_EPOCHS,
    batch_size: int = GAN_BATCH_SIZE,
    noise_dim: int = GAN_NOISE_DIM,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, LatentGenerator], None] | None = None,
    max_steps: int | None = None,
) -> LatentGenerator:
    """Train S_GAN's generator on the anchors (Appendix E.2) and return it in eval mode.

    Non-saturating GAN loss with BCE-on-logits; Adam with the two time-scale rule (lr 1e-4 generator,
    2e-4 discriminator), one discriminator and one generator step per batch. An epoch is one shuffled
    pass over the anchors (last partial batch kept, so fewer than 32 anchors still train). Seeded
    without touching the global torch RNG; bitwise reproducible on CPU. A progress line with the time
    left (:class:`~hyperrep_ray.progress.Progress`, metric ``progress/gan_epoch_<m>anchors``) every
    20 s; ``on_epoch(epoch, generator)`` after every epoch (benchmarks score the generator there).

    ``max_steps`` caps the optimiser steps (whole epochs, at least one): the cost of a fit is its
    steps, and an epoch over all anchors costs 3.3x one over the top 30 %, so a budget in steps
    gives S_GAN and S_GAN30 the same cost where a budget in epochs does not.
    """
    arr = check_anchors(anchors)
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    m, d = arr.shape
    epochs = capped_epochs(epochs, m, batch_size, max_steps)
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, 0))
        gen = LatentGenerator(d, noise_dim).to(dev)
        disc = LatentDiscriminator(d).to(dev)
    g_cpu = torch.Generator().manual_seed(derived_seed(seed, 1))
    opt_g = torch.optim.Adam(gen.parameters(), lr=GAN_LR_GENERATOR, betas=GAN_ADAM_BETAS)
    opt_d = torch.optim.Adam(disc.parameters(), lr=GAN_LR_DISCRIMINATOR, betas=GAN_ADAM_BETAS)
    data = torch.as_tensor(arr, dtype=torch.float32, device=dev)
    gen.train()
    disc.train()
    progress = Progress(epochs, f"latent GAN ({m} anchors)", key=f"gan_epoch_{m}anchors")
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(m, generator=g_cpu).to(dev)
        d_sum = g_sum = 0.0
        n_batches = 0
        for start in range(0, m, batch_size):
            real = data[perm[start : start + batch_size]]
            noise = torch.randn(real.shape[0], noise_dim, generator=g_cpu).to(dev)
            loss_d, loss_g = gan_step(gen, disc, (opt_g, opt_d), real, noise)
            d_sum += loss_d
            g_sum += loss_g
            n_batches += 1
        gen.loss_history.append((d_sum / n_batches, g_sum / n_batches))
        progress.update(epoch)
        if on_epoch is not None:
            on_epoch(epoch, gen)
    return gen.eval()


def sample_gan(gen: LatentGenerator, n: int, seed: int) -> np.ndarray:
    """S_GAN: push seeded Gaussian noise through a trained generator (noise drawn on CPU, so the noise
    is the same whatever device the generator lives on)."""
    n = check_n(n)
    noise_dim = int(getattr(gen, "noise_dim", GAN_NOISE_DIM))
    dev = next(gen.parameters()).device
    g_cpu = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(n, noise_dim, generator=g_cpu)
    was_training = gen.training
    gen.eval()
    with torch.no_grad():
        z = gen(noise.to(dev)).cpu().numpy()
    gen.train(was_training)
    return finish(z)
