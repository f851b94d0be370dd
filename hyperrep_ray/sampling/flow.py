"""S_FLOW: a rectified-flow (flow-matching) generative model of the anchors' embeddings.

The anchor-based samplers put every sample next to one anchor (S_KDEJ30, S_KDE30code) or sample each
dimension on its own (S_KDE30, whose decoded models mostly fail). A flow learns the anchors' joint
distribution and draws new points from it: an MLP velocity field v(x_t, t[, c]) trained on
x_t = (1 - t) x_0 + t x_1, x_0 ~ N(0, I), x_1 = a standardised anchor, with target x_1 - x_0
(Liu et al. 2022, "Flow straight and fast"; Lipman et al. 2022, "Flow matching"). Samples integrate
dx/dt = v from t = 0 to 1 with Euler or Heun steps from seeded noise.

Conditioning (``flow-top10``): the condition c is the rank quantile of the anchor's accuracy in
[0, 1]; during training c is dropped (replaced by a null token) with probability ``cond_dropout``, so
one network is both the conditional and the unconditional field and sampling can use
classifier-free guidance, v = v_null + guidance * (v_c - v_null). "Models like the top 10 %" draws c
uniformly from ``target_quantiles`` = (0.9, 1.0).

Training runs as a Ray task (in this process when it already is a Ray task or actor, as in the
experiments runner, which draws every sampler in its own task) and logs its own MLflow run when a
tracking URI is given. Seeded without touching the global torch RNG.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from hyperrep_ray.config import StrictModel
from hyperrep_ray.sampling.checks import check_anchors, check_n, finish
from hyperrep_ray.sampling.gan import derived_seed

__all__ = ["FlowConfig", "LatentFlow", "condition_quantiles", "train_flow", "fit_flow", "sample_flow"]

#: Stand-in condition of the null (unconditional) token.
NULL_CONDITION = 0.0
#: Training loss is logged to MLflow every this many steps.
LOG_EVERY = 100


class FlowConfig(StrictModel):
    """The latent flow's network, training and sampling (defaults sized for a few hundred to a few
    thousand anchors of d_z up to ~1000 on a CPU: about a minute)."""

    steps: int = Field(3000, ge=1, description="optimiser steps")
    batch_size: int = Field(256, ge=2)
    hidden: int = Field(512, ge=8, description="width of the velocity MLP")
    layers: int = Field(3, ge=1, description="hidden layers of the velocity MLP")
    lr: float = Field(1e-3, gt=0)
    ode_steps: int = Field(50, ge=1, description="integration steps from noise to a sample")
    solver: Literal["euler", "heun"] = "heun"
    temperature: float = Field(
        1.0,
        gt=0,
        description="scale of the starting noise: > 1 spreads samples away from the learnt modes (newer, "
        "further from the anchors); < 1 does not sharpen them (noise near 0 flows to between the modes)",
    )
    conditional: bool = Field(False, description="condition on the anchors' accuracy rank")
    cond_dropout: float = Field(0.2, ge=0, lt=1, description="share of training rows with a null condition")
    guidance: float = Field(1.0, ge=0, description="classifier-free guidance weight (1 = plain conditional)")
    target_quantiles: tuple[float, float] = Field(
        (0.9, 1.0), description="accuracy rank quantiles the conditional samples are asked for"
    )

    @model_validator(mode="after")
    def _check(self) -> FlowConfig:
        lo, hi = self.target_quantiles
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"target_quantiles must satisfy 0 <= lo <= hi <= 1, got {self.target_quantiles}")
        return self


class LatentFlow(nn.Module):
    """Velocity field v(x, t, c) over standardised embeddings; keeps the anchors' mean and scale."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, dim: int, cfg: FlowConfig, mean: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.dim, self.conditional = int(dim), cfg.conditional
        d_in = dim + 8 + (2 if cfg.conditional else 0)  # x, 4 sin/cos pairs of t, (c, is-conditioned)
        blocks: list[nn.Module] = []
        for i in range(cfg.layers):
            blocks += [nn.Linear(d_in if i == 0 else cfg.hidden, cfg.hidden), nn.SiLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(cfg.hidden, dim))
        self.register_buffer("mean", mean.reshape(1, dim).float())
        self.register_buffer("scale", scale.reshape(1, dim).float())

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        freqs = torch.pi * 2.0 ** torch.arange(4, device=x.device, dtype=x.dtype)
        parts = [x, torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)]
        if self.conditional:
            if c is None:  # the null token
                parts += [torch.full_like(t[:, None], NULL_CONDITION), torch.zeros_like(t[:, None])]
            else:
                parts += [c[:, None].to(x.dtype), torch.ones_like(t[:, None])]
        out: torch.Tensor = self.net(torch.cat(parts, dim=1))
        return out


def condition_quantiles(accuracies: np.ndarray | list[float]) -> np.ndarray:
    """Rank quantile of each accuracy in [0, 1] (ties share their mean rank): scale-free, so "top 10 %"
    means the same on every zoo."""
    acc = np.asarray(accuracies, dtype=np.float64).ravel()
    if acc.size == 0 or not np.isfinite(acc).all():
        raise ValueError("the conditional flow needs finite accuracies, one per anchor")
    if acc.size == 1:
        return np.ones(1)
    order = np.argsort(acc, kind="stable")
    ranks = np.empty(acc.size)
    ranks[order] = np.arange(acc.size, dtype=np.float64)
    for value in np.unique(acc):  # ties: mean rank
        tie = acc == value
        ranks[tie] = ranks[tie].mean()
    return ranks / (acc.size - 1)


def train_flow(
    anchors: np.ndarray, cfg: FlowConfig, seed: int = 0, condition: np.ndarray | None = None
) -> tuple[LatentFlow, list[float]]:
    """Fit the velocity field by flow matching: (the flow in eval mode, mean loss per LOG_EVERY steps)."""
    arr = check_anchors(anchors)
    if cfg.conditional and (condition is None or len(condition) != len(arr)):
        raise ValueError("a conditional flow needs one condition value per anchor")
    data = torch.as_tensor(arr, dtype=torch.float32)
    mean, scale = data.mean(0), data.std(0, unbiased=False).clamp_min(1e-6)
    x1_all = (data - mean) / scale
    cond = torch.as_tensor(condition, dtype=torch.float32) if cfg.conditional else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, 10))
        flow = LatentFlow(arr.shape[1], cfg, mean, scale)
    gen = torch.Generator().manual_seed(derived_seed(seed, 11))
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    losses: list[float] = []
    running = 0.0
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, len(arr), (cfg.batch_size,), generator=gen)
        x1 = x1_all[idx]
        x0 = torch.randn(x1.shape, generator=gen)
        t = torch.rand(len(idx), generator=gen)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        pred = flow(xt, t, None) if cond is None else guided_training_call(flow, xt, t, cond[idx], cfg, gen)
        loss = (pred - (x1 - x0)).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        if step % LOG_EVERY == 0 or step == cfg.steps:
            losses.append(running / (step - LOG_EVERY * (len(losses))))
            running = 0.0
    if not all(math.isfinite(v) for v in losses):
        raise FloatingPointError(f"the latent flow's loss became non-finite ({losses[-1]})")
    return flow.eval(), losses


def guided_training_call(
    flow: LatentFlow,
    xt: torch.Tensor,
    t: torch.Tensor,
    c: torch.Tensor,
    cfg: FlowConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """The conditional field with a share ``cond_dropout`` of rows asked without their condition."""
    drop = torch.rand(len(t), generator=gen) < cfg.cond_dropout
    v_c, v_null = flow(xt, t, c), flow(xt, t, None)
    return torch.where(drop[:, None], v_null, v_c)


@torch.no_grad()
def sample_flow(flow: LatentFlow, cfg: FlowConfig, n: int, seed: int) -> np.ndarray:
    """``n`` embeddings: seeded noise integrated from t = 0 to 1 (Euler or Heun), un-standardised,
    clipped to the encoder's tanh box. A conditional flow is asked for ``cfg.target_quantiles``."""
    n = check_n(n)
    gen = torch.Generator().manual_seed(int(seed))
    x = cfg.temperature * torch.randn(n, flow.dim, generator=gen)
    c = None
    if flow.conditional:
        lo, hi = cfg.target_quantiles
        c = lo + (hi - lo) * torch.rand(n, generator=gen)
    h = 1.0 / cfg.ode_steps
    for i in range(cfg.ode_steps):
        t = torch.full((n,), i * h)
        v = velocity(flow, x, t, c, cfg.guidance)
        if cfg.solver == "heun":
            v_next = velocity(flow, x + h * v, t + h, c, cfg.guidance)
            v = 0.5 * (v + v_next)
        x = x + h * v
    return finish((x * flow.scale + flow.mean).numpy())


def velocity(
    flow: LatentFlow, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None, guidance: float
) -> torch.Tensor:
    """v(x, t), with classifier-free guidance when a condition is given."""
    if c is None:
        return flow(x, t, None)
    v_c = flow(x, t, c)
    if guidance == 1.0:
        return v_c
    v_null = flow(x, t, None)
    return v_null + guidance * (v_c - v_null)


def train_and_log(
    anchors: np.ndarray, cfg: FlowConfig, seed: int, condition: np.ndarray | None, tracking_uri: str | None
) -> LatentFlow:
    """:func:`train_flow`, recorded as an MLflow run ("sample-flow") when ``tracking_uri`` is given."""
    if tracking_uri is None:
        return train_flow(anchors, cfg, seed, condition)[0]
    from hyperrep_ray import tracking

    params = {**cfg.model_dump(mode="json"), "seed": seed, "n_anchors": len(anchors), "d_z": anchors.shape[1]}
    with tracking.run("flow", params, tracking_uri, nested=True, tags={"stage": "sample-flow"}):
        flow, losses = train_flow(anchors, cfg, seed, condition)
        for i, value in enumerate(losses):
            tracking.log_metrics({"flow_loss": value}, step=min((i + 1) * LOG_EVERY, cfg.steps))
        tracking.log_metrics({"final_flow_loss": losses[-1]})
    return flow


def in_ray_worker() -> bool:
    """Whether this process already runs a Ray task or actor (then the flow trains right here)."""
    import ray

    if not ray.is_initialized():
        return False
    context = ray.get_runtime_context()
    return context.get_task_id() is not None or context.get_actor_id() is not None


def fit_flow(
    anchors: np.ndarray,
    cfg: FlowConfig,
    seed: int = 0,
    accuracies: np.ndarray | None = None,
    tracking_uri: str | None = None,
) -> LatentFlow:
    """Train the flow as a Ray task (joining or starting Ray), or here when this is already a Ray
    task or actor. A conditional flow needs ``accuracies`` (one per anchor)."""
    import ray

    from hyperrep_ray.runtime import ensure_ray

    arr = check_anchors(anchors)
    condition = None
    if cfg.conditional:
        if accuracies is None:
            raise ValueError("the conditional flow ranks anchors by accuracy and needs accuracies")
        condition = condition_quantiles(accuracies)
        if len(condition) != len(arr):
            raise ValueError(f"got {len(arr)} anchors but {len(condition)} accuracies")
    if in_ray_worker():
        return train_and_log(arr, cfg, seed, condition, tracking_uri)
    ensure_ray()
    task: Any = ray.remote(num_cpus=1, max_retries=1)(train_and_log)
    flow: LatentFlow = ray.get(task.remote(arr, cfg, seed, condition, tracking_uri))
    return flow
