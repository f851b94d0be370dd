"""The autoencoder's training loop, in whatever process a :class:`TrainSession` describes.

Under Ray Train (:mod:`hyperrep_ray.autoencoder.trainer`) every DDP worker runs it on its share of
every epoch's shuffled train set; a Tune trial or a plain process runs it as rank 0 of 1. Rank 0
checkpoints every ``checkpoint_every`` epochs (:mod:`hyperrep_ray.autoencoder.train_state`); a run
given a checkpoint by its session continues after the checkpoint's epoch.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hyperrep_ray.autoencoder.behaviour import BehaviourLoss
from hyperrep_ray.autoencoder.bundle import architecture_for
from hyperrep_ray.autoencoder.data import TrainingPayload
from hyperrep_ray.autoencoder.losses import (
    combined_loss,
    latent_penalty,
    layerwise_normalized_mse,
    lwln_entry_weights,
    masked_mse,
    nt_xent,
    reconstruction_r2,
    saturated_fraction,
)
from hyperrep_ray.autoencoder.model import HyperAutoencoder
from hyperrep_ray.autoencoder.session import RayTrainSession, TrainSession
from hyperrep_ray.autoencoder.train_state import BestTracker, TrainState, load_train_state, save_train_state
from hyperrep_ray.config import AEConfig
from hyperrep_ray.weightspace.augment import TwoViewAugmenter
from hyperrep_ray.weightspace.tokens import TokenLayout, token_layout, tokens_to_vectors, vectors_to_tokens

#: ``hook(model, epoch, metrics) -> extra metrics``, called on rank 0 after every epoch's metrics.
EpochHook = Callable[[torch.nn.Module, int, dict[str, Any]], dict[str, Any]]
RecFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Per-epoch training means (``train_behaviour`` only when the behavioural loss is on).
TRAIN_METRICS = ("train_loss", "train_rec", "train_con", "train_behaviour")


@dataclass
class LoopConfig:
    """What one run of the loop is given. ``payload`` may be a Ray object ref to the payload;
    ``kill_worker_at_epoch`` is a fault drill (worker rank 1 exits once at that epoch, in a run
    that restored no checkpoint); ``epoch_hook`` adds metrics (Tune sweeps add their objective)."""

    cfg: AEConfig
    payload: Any  # TrainingPayload, a dict of its fields, or a Ray object ref to either
    kill_worker_at_epoch: int = 0
    epoch_hook: EpochHook | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> LoopConfig:
        """From Ray Train's ``train_loop_config`` dict: keys ``cfg`` (an AEConfig or its fields),
        ``payload``, and optionally ``kill_worker_at_epoch`` and ``epoch_hook``."""
        cfg = config["cfg"]
        return cls(
            cfg=cfg if isinstance(cfg, AEConfig) else AEConfig(**cfg),
            payload=config["payload"],
            kill_worker_at_epoch=int(config.get("kill_worker_at_epoch") or 0),
            epoch_hook=config.get("epoch_hook"),
        )

    def to_mapping(self) -> dict[str, Any]:
        """The ``train_loop_config`` for Ray Train (which takes a dict)."""
        return {
            "cfg": self.cfg.model_dump(mode="json"),
            "payload": self.payload,
            "kill_worker_at_epoch": self.kill_worker_at_epoch,
            "epoch_hook": self.epoch_hook,
        }


def resolve_payload(payload: Any) -> TrainingPayload:
    """The payload as a writable :class:`TrainingPayload`, fetched from the object store if needed."""
    import ray

    if isinstance(payload, ray.ObjectRef):
        payload = ray.get(payload)
    if not isinstance(payload, TrainingPayload):
        payload = TrainingPayload.from_mapping(payload)
    return payload.writable()


def build_losses(cfg: AEConfig, layout: TokenLayout, var_tokens: torch.Tensor) -> RecFn:
    """The reconstruction loss: layer-wise normalised (LWLN) or plain masked MSE."""
    mask = layout.mask_on(var_tokens.device)
    lot = layout.layer_of_token.to(var_tokens.device)
    if cfg.lwln:
        lwln_entry_weights(mask, var_tokens, lot)  # validates once, early

        def rec(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return layerwise_normalized_mse(pred, target, mask, var_tokens, lot)
    else:

        def rec(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return masked_mse(pred, target, mask)

    return rec


@torch.no_grad()
def evaluate_reconstruction(
    model: torch.nn.Module, w: torch.Tensor, mean_params: torch.Tensor, layout: TokenLayout, rec_fn: RecFn
) -> dict[str, float]:
    """Loss and R^2 of clean (un-augmented) reconstructions, in eval mode, and the share of z in
    tanh saturation (``losses.saturated_fraction``)."""
    was = model.training
    model.eval()
    tok = vectors_to_tokens(w, layout)
    z, recon, _ = model(tok)
    loss = float(rec_fn(recon, tok))
    r2 = reconstruction_r2(tokens_to_vectors(recon, layout), w, mean_params)
    model.train(was)
    return {"loss": loss, "r2": float(r2), "z_saturated": saturated_fraction(z)}


def build_behaviour(
    cfg: AEConfig, payload: TrainingPayload, layout: TokenLayout, device: torch.device
) -> BehaviourLoss | None:
    """The behavioural loss when ``cfg.behaviour_weight`` > 0 (the payload must carry query images)."""
    if cfg.behaviour_weight <= 0:
        return None
    if len(payload.queries) == 0:
        raise ValueError(
            "behaviour_weight > 0 but the training payload has no query images; build it with "
            "prepare_ae_data(zoo, cfg) for a cfg whose behaviour_weight is > 0"
        )
    return BehaviourLoss(
        payload.queries, layout, payload.activation, cfg.behaviour_loss, cfg.behaviour_queries, device
    )


@torch.no_grad()
def evaluate_behaviour(
    model: torch.nn.Module, w: torch.Tensor, layout: TokenLayout, behaviour: BehaviourLoss
) -> float:
    """The behavioural loss of clean reconstructions (eval mode) on the pool's first queries."""
    was = model.training
    model.eval()
    tok = vectors_to_tokens(w, layout)
    _, recon, _ = model(tok)
    value = float(behaviour(recon, tok))
    model.train(was)
    return value


class TrainingRun:
    """One run of the loop, step by step: set up, restore, then per epoch train, validate, report."""

    def __init__(self, loop: LoopConfig, session: TrainSession) -> None:
        self.cfg, self.session, self.loop = loop.cfg, session, loop
        self.rank, self.world, self.device = session.rank, session.world, session.device
        payload = resolve_payload(loop.payload)
        self.layout = token_layout(payload.in_channels)
        self.train_w = torch.from_numpy(payload.train)
        self.val_w = torch.from_numpy(payload.val).to(self.device)
        var_tokens = torch.from_numpy(payload.var_tokens).to(self.device)
        self.mean_params = torch.from_numpy(payload.mean_params).to(self.device)
        self.rec_fn = build_losses(self.cfg, self.layout, var_tokens)
        self.behaviour = build_behaviour(self.cfg, payload, self.layout, self.device)
        torch.manual_seed(self.cfg.seed)
        model = HyperAutoencoder(architecture_for(self.cfg, payload.in_channels))
        model.set_standardisation(
            torch.from_numpy(payload.token_shift), torch.from_numpy(payload.token_scale)
        )
        self.opt = torch.optim.Adam(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.best = BestTracker(self.cfg.patience)
        self.start = 0
        self.history: list[dict[str, Any]] = []
        self.resumed = self.restore(model)
        self.model = session.prepare_model(model)
        self.core: torch.nn.Module = getattr(self.model, "module", self.model)
        self.move_optimizer_state()
        c = self.cfg
        erase_scale = (float(c.erase_scale[0]), float(c.erase_scale[1]))
        self.augmenter = TwoViewAugmenter(
            payload.in_channels,
            permute=c.permute,
            noise_sigma=c.noise_sigma,
            noise_relative=True,
            erase_p=c.erase_p,
            erase_scale=erase_scale,
        )
        self.use_amp = c.amp and self.device.type == "cuda"
        self.t_start = time.perf_counter()

    def restore(self, model: torch.nn.Module) -> bool:
        """Continue from the session's checkpoint, if it has one; True when it did."""
        ckpt = self.session.get_checkpoint()
        if not ckpt:
            return False
        with ckpt.as_directory() as d:
            state = load_train_state(d)
        model.load_state_dict(state.model)
        self.opt.load_state_dict(state.optimizer)
        self.start, self.history = state.epoch, list(state.history)
        self.best.restore(state.best, state.best_weights)
        self.say(f"resuming from the checkpoint of epoch {self.start}")
        return True

    def move_optimizer_state(self) -> None:
        """The optimiser's state tensors follow the parameters' device."""
        for g in self.opt.param_groups:
            for p in g["params"]:
                for k, v in self.opt.state.get(p, {}).items():
                    if torch.is_tensor(v):
                        self.opt.state[p][k] = v.to(self.device)

    def say(self, msg: str) -> None:
        if self.rank == 0:
            print(f"[train-ae] {msg}", flush=True)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over this rank's share of the shuffled train set; mean losses over its batches."""
        cfg, m = self.cfg, self.train_w.shape[0]
        per_rank = m // self.world  # equal batches on every rank keep DDP's collectives in step
        self.model.train()
        order = torch.randperm(m, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        mine = order[self.rank * per_rank : (self.rank + 1) * per_rank]
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch * 131 + self.rank)
        sums, n_batches = np.zeros(len(TRAIN_METRICS)), 0
        for i in range(0, per_rank, cfg.batch_size):
            idx = mine[i : i + cfg.batch_size]
            if len(idx) >= 2:
                sums += self.train_step(self.train_w[idx], gen)
                n_batches += 1
        if not n_batches:
            return {}
        means = dict(zip(TRAIN_METRICS, (sums / n_batches).tolist(), strict=True))
        if self.behaviour is None:
            means.pop("train_behaviour")
        if not np.isfinite(means["train_loss"]):
            raise FloatingPointError(f"autoencoder loss became {means['train_loss']} at epoch {epoch}")
        return means

    def train_step(self, batch: torch.Tensor, gen: torch.Generator) -> list[float]:
        """One optimiser step on two augmented views of ``batch``; (loss, reconstruction, contrastive,
        behavioural: 0 when off)."""
        cfg = self.cfg
        views = self.augmenter.views(batch, gen)
        x = torch.cat([views.view1, views.view2]).to(self.device)
        target = torch.cat([views.target1, views.target2]).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            z, recon, proj = self.model(x)
        rec = self.rec_fn(recon.float(), target)
        p1, p2 = proj.float().chunk(2)
        con = nt_xent(p1, p2, cfg.temperature)
        loss = combined_loss(cfg.beta, rec, con)
        if cfg.z_penalty:
            loss = loss + cfg.z_penalty * latent_penalty(z)
        beh = torch.zeros(())
        if self.behaviour is not None:
            beh = self.behaviour(recon.float(), target, gen)
            loss = loss + cfg.behaviour_weight * beh
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return [float(loss.detach()), float(rec.detach()), float(con.detach()), float(beh.detach())]

    def validate(self, epoch: int) -> tuple[dict[str, float], bool]:
        """Validation metrics and whether patience ran out. Every rank sees the same model and val
        set, so all take the same stop decision."""
        v = evaluate_reconstruction(self.core, self.val_w, self.mean_params, self.layout, self.rec_fn)
        metrics = {
            "val_rec": v["loss"],
            "reconstruction_r2_val": v["r2"],
            "z_saturated_val": v["z_saturated"],
        }
        if self.behaviour is not None:
            metrics["val_behaviour"] = evaluate_behaviour(self.core, self.val_w, self.layout, self.behaviour)
        stop = self.best.update(v["r2"], epoch, self.core)
        if stop:
            metrics["early_stopped"] = 1.0
            self.say(
                f"stopping early at epoch {epoch}: validation R^2 not better than {self.best.r2:.4f} "
                f"(epoch {self.best.epoch}) for {self.cfg.patience} evaluations"
            )
        metrics["best_r2_val"], metrics["best_epoch"] = self.best.r2, self.best.epoch
        return metrics, stop

    def epoch_metrics(self, epoch: int) -> tuple[dict[str, Any], bool]:
        """Train one epoch, validate when due, add the hook's metrics; (metrics, last epoch?)."""
        cfg = self.cfg
        metrics: dict[str, Any] = {"epoch": epoch}
        if self.resumed and epoch == self.start + 1:
            metrics["resumed_from_epoch"] = self.start
        metrics.update(self.train_epoch(epoch))
        last = epoch == cfg.epochs
        if epoch % cfg.eval_every == 0 or last or epoch == 1:
            val, stop = self.validate(epoch)
            metrics.update(val)
            last = last or stop
        metrics["seconds"] = time.perf_counter() - self.t_start
        hook = self.loop.epoch_hook
        if hook is not None and self.rank == 0:
            metrics.update(hook(self.core, epoch, dict(metrics)))
        return metrics, last

    def report(self, epoch: int, metrics: dict[str, Any], last: bool) -> None:
        """Report the epoch; rank 0 attaches a checkpoint every ``checkpoint_every`` epochs and at the end."""
        if not (epoch % self.cfg.checkpoint_every == 0 or last):
            self.session.report(metrics)
            return
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if self.rank == 0:
                state = TrainState(
                    model=self.core.state_dict(),
                    optimizer=self.opt.state_dict(),
                    epoch=epoch,
                    history=self.history,
                    best=self.best.summary(),
                    best_weights=self.best.weights,
                )
                save_train_state(tmp, state)
                checkpoint = self.session.checkpoint_from_directory(tmp)
            self.session.report(metrics, checkpoint=checkpoint)

    def run(self) -> None:
        fail_at = self.loop.kill_worker_at_epoch
        for epoch in range(self.start + 1, self.cfg.epochs + 1):
            if fail_at and epoch == fail_at and self.rank == 1 and not self.resumed:
                os._exit(1)  # a worker process dies (tests): Ray Train restarts from the checkpoint
            metrics, last = self.epoch_metrics(epoch)
            self.history.append(metrics)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k not in ("epoch", "seconds"))
            self.say(f"epoch {epoch}/{self.cfg.epochs}: {shown} ({metrics['seconds']:.0f} s)")
            self.report(epoch, metrics, last)
            if last:
                break


def run_training_loop(config: LoopConfig | Mapping[str, Any], session: TrainSession) -> None:
    """Train in the process ``session`` describes (a Ray Train worker, a Tune trial, this process).

    ``config``: a :class:`LoopConfig` or Ray Train's dict form of it (:meth:`LoopConfig.from_mapping`)."""
    loop = config if isinstance(config, LoopConfig) else LoopConfig.from_mapping(config)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    TrainingRun(loop, session).run()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The per-worker entry point Ray Train calls on every worker."""
    run_training_loop(config, RayTrainSession())
