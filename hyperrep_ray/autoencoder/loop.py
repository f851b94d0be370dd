"""Training the autoencoder with Ray Train: a TorchTrainer runs DDP over ``num_workers``
workers (gloo on CPU, NCCL on GPU), each taking its share of every epoch's shuffled train set.

Rank 0 checkpoints every ``checkpoint_every`` epochs (model, optimiser, epoch, history); a
killed worker is restarted by ``FailureConfig`` from the last checkpoint, and rerunning the same
command with ``resume=True`` continues an interrupted run (Ray Train V2 resumes a run of the
same name and storage path from its latest checkpoint).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperrep_ray.config import AEConfig

log = logging.getLogger(__name__)


def build_losses(cfg: AEConfig, layout, var_tokens: torch.Tensor):
    from hyperrep_ray.autoencoder.losses import layerwise_normalized_mse, lwln_entry_weights, masked_mse

    mask = layout.mask_on(var_tokens.device)
    lot = layout.layer_of_token.to(var_tokens.device)
    if cfg.lwln:
        lwln_entry_weights(mask, var_tokens, lot)  # validates once, early

        def rec(pred, target):
            return layerwise_normalized_mse(pred, target, mask, var_tokens, lot)
    else:

        def rec(pred, target):
            return masked_mse(pred, target, mask)

    return rec


@torch.no_grad()
def evaluate_reconstruction(
    model, w: torch.Tensor, mean_params: torch.Tensor, layout, rec_fn
) -> dict[str, float]:
    """Loss and R^2 of clean (un-augmented) reconstructions, in eval mode, and the share of z in
    tanh saturation (``losses.saturated_fraction``)."""
    from hyperrep_ray.autoencoder.losses import reconstruction_r2, saturated_fraction
    from hyperrep_ray.weightspace.tokens import tokens_to_vectors, vectors_to_tokens

    was = model.training
    model.eval()
    tok = vectors_to_tokens(w, layout)
    z, recon, _ = model(tok)
    loss = float(rec_fn(recon, tok))
    r2 = reconstruction_r2(tokens_to_vectors(recon, layout), w, mean_params)
    model.train(was)
    return {"loss": loss, "r2": float(r2), "z_saturated": saturated_fraction(z)}


class RayTrainSession:
    """What the training loop needs from the process it runs in, on a Ray Train worker.

    ``tune.py`` runs the same loop directly inside a Ray Tune trial (one process, no Train
    workers) with a session of the same shape that reports to Tune instead; Ray refuses
    ``ray.train.*`` calls inside a Tune trial, so the loop goes through this object."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()

    def get_checkpoint(self):
        import ray.train

        return ray.train.get_checkpoint()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def checkpoint_from_directory(self, path: str):
        import ray.train

        return ray.train.Checkpoint.from_directory(path)

    def report(self, metrics: dict[str, Any], checkpoint=None) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=checkpoint)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The per-worker loop (Ray Train calls it on every worker)."""
    run_training_loop(config, RayTrainSession())


def run_training_loop(config: dict[str, Any], session) -> None:
    """The training loop, in the process ``session`` describes (a Ray Train worker or a Tune trial).

    ``config``: ``cfg`` (AEConfig fields), ``payload`` (``AEData.worker_payload()`` or a Ray
    object ref to it), optional ``kill_worker_at_epoch`` (fault drill) and optional ``epoch_hook``:
    ``hook(model, epoch, metrics) -> dict`` called on rank 0 after every epoch's metrics are
    computed; what it returns is added to the epoch's metrics (Tune sweeps add their objective)."""
    import ray

    from hyperrep_ray.autoencoder.bundle import architecture_for
    from hyperrep_ray.autoencoder.losses import combined_loss, latent_penalty, nt_xent
    from hyperrep_ray.autoencoder.model import HyperAutoencoder
    from hyperrep_ray.weightspace.augment import TwoViewAugmenter
    from hyperrep_ray.weightspace.tokens import token_layout

    cfg = AEConfig(**config["cfg"])
    payload = config["payload"]
    if isinstance(payload, ray.ObjectRef):
        payload = ray.get(payload)
    rank, world = session.rank, session.world
    device = session.device
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    in_channels = int(payload["in_channels"])
    layout = token_layout(in_channels)
    train_w = torch.from_numpy(np.asarray(payload["train"], np.float32))
    val_w = torch.from_numpy(np.asarray(payload["val"], np.float32)).to(device)
    var_tokens = torch.from_numpy(np.asarray(payload["var_tokens"], np.float32)).to(device)
    mean_params = torch.from_numpy(np.asarray(payload["mean_params"], np.float32)).to(device)
    rec_fn = build_losses(cfg, layout, var_tokens)

    torch.manual_seed(cfg.seed)
    model = HyperAutoencoder(architecture_for(cfg, in_channels))
    if "token_shift" in payload:
        model.set_standardisation(
            torch.from_numpy(np.asarray(payload["token_shift"], np.float32)),
            torch.from_numpy(np.asarray(payload["token_scale"], np.float32)),
        )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history = 0, []
    best = _BestTracker(cfg.patience)
    ckpt = session.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / "train_state.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), list(state["history"])
        best.restore(state.get("best"))
        if rank == 0:
            print(f"[train-ae] resuming from the checkpoint of epoch {start}", flush=True)
    model = session.prepare_model(model)
    core = model.module if hasattr(model, "module") else model
    for g in opt.param_groups:  # the optimiser's state tensors follow the parameters' device
        for p in g["params"]:
            for k, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v):
                    opt.state[p][k] = v.to(device)
    augmenter = TwoViewAugmenter(
        in_channels,
        permute=cfg.permute,
        noise_sigma=cfg.noise_sigma,
        noise_relative=True,
        erase_p=cfg.erase_p,
        erase_scale=tuple(cfg.erase_scale),
    )
    use_amp = cfg.amp and device.type == "cuda"
    m = train_w.shape[0]
    per_rank = m // world  # equal batches on every rank keep DDP's collectives in step
    fail_at = int(config.get("kill_worker_at_epoch") or 0)
    epoch_hook = config.get("epoch_hook")
    t_start = time.perf_counter()

    for epoch in range(start + 1, cfg.epochs + 1):
        if fail_at and epoch == fail_at and rank == 1 and not ckpt:
            os._exit(1)  # a worker process dies (tests): Ray Train restarts from the checkpoint
        model.train()
        order = torch.randperm(m, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        mine = order[rank * per_rank : (rank + 1) * per_rank]
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch * 131 + rank)
        sums = np.zeros(3)
        n_batches = 0
        for i in range(0, per_rank, cfg.batch_size):
            idx = mine[i : i + cfg.batch_size]
            if len(idx) < 2:
                continue
            views = augmenter(train_w[idx], gen, return_targets=True)
            x = torch.cat([views.view1, views.view2]).to(device)
            target = torch.cat([views.target1, views.target2]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                z, recon, proj = model(x)
            rec = rec_fn(recon.float(), target)
            p1, p2 = proj.float().chunk(2)
            con = nt_xent(p1, p2, cfg.temperature)
            loss = combined_loss(cfg.beta, rec, con)
            if cfg.z_penalty:
                loss = loss + cfg.z_penalty * latent_penalty(z)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += [float(loss.detach()), float(rec.detach()), float(con.detach())]
            n_batches += 1
        metrics: dict[str, Any] = {"epoch": epoch}
        if ckpt and epoch == start + 1:
            metrics["resumed_from_epoch"] = start
        if n_batches:
            metrics.update(dict(zip(("train_loss", "train_rec", "train_con"), sums / n_batches, strict=True)))
        if not np.isfinite(metrics.get("train_loss", 0.0)):
            raise FloatingPointError(f"autoencoder loss became {metrics['train_loss']} at epoch {epoch}")
        last = epoch == cfg.epochs
        if epoch % cfg.eval_every == 0 or last or epoch == 1:
            v = evaluate_reconstruction(core, val_w, mean_params, layout, rec_fn)
            metrics.update(val_rec=v["loss"], reconstruction_r2_val=v["r2"], z_saturated_val=v["z_saturated"])
            # every rank sees the same model and val set, so all take the same stop decision
            if best.update(v["r2"], epoch, core):
                metrics["early_stopped"] = 1.0
                last = True
                if rank == 0:
                    print(
                        f"[train-ae] stopping early at epoch {epoch}: validation R^2 not better than "
                        f"{best.r2:.4f} (epoch {best.epoch}) for {cfg.patience} evaluations",
                        flush=True,
                    )
            metrics["best_r2_val"], metrics["best_epoch"] = best.r2, best.epoch
        metrics["seconds"] = time.perf_counter() - t_start
        if epoch_hook is not None and rank == 0:
            metrics.update(epoch_hook(core, epoch, dict(metrics)))
        history.append(metrics)
        if rank == 0:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k not in ("epoch", "seconds"))
            print(f"[train-ae] epoch {epoch}/{cfg.epochs}: {shown} ({metrics['seconds']:.0f} s)", flush=True)
        if epoch % cfg.checkpoint_every == 0 or last:
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = None
                if rank == 0:
                    torch.save(
                        {
                            "model": core.state_dict(),
                            "optimizer": opt.state_dict(),
                            "epoch": epoch,
                            "history": history,
                            "best": best.state(),
                        },
                        Path(tmp) / "train_state.pt",
                    )
                    checkpoint = session.checkpoint_from_directory(tmp)
                session.report(metrics, checkpoint=checkpoint)
        else:
            session.report(metrics)
        if last:
            break


class _BestTracker:
    """The evaluation with the best validation R^2 so far, its weights (CPU copy) and how many
    evaluations have passed without improving on it (for ``patience``)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.r2, self.epoch, self.weights, self.bad = -float("inf"), 0, None, 0

    def update(self, r2: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record one evaluation; True when patience is exhausted."""
        if r2 > self.r2:
            self.r2, self.epoch, self.bad = r2, epoch, 0
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience

    def state(self) -> dict[str, Any]:
        return {"r2": self.r2, "epoch": self.epoch, "weights": self.weights, "bad": self.bad}

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:
            self.r2, self.epoch = state["r2"], state["epoch"]
            self.weights, self.bad = state["weights"], state["bad"]


def _mlflow_callback(tracking_uri: str | None, run_id: str | None):
    """Per-epoch metrics to the stage's MLflow run as they are reported (runs in the Train
    controller, so it talks to MLflow through a client and the run id)."""
    if not run_id:
        return []
    from ray.train import UserCallback

    class _ToMlflow(UserCallback):
        def after_report(self, run_context, metrics, checkpoint) -> None:  # noqa: ARG002
            from mlflow.tracking import MlflowClient

            m = metrics[0] if metrics else {}
            step = int(m.get("epoch", 0))
            client = MlflowClient(tracking_uri)
            for k, v in m.items():
                if k != "epoch" and isinstance(v, int | float) and np.isfinite(v):
                    client.log_metric(run_id, k, float(v), step=step)

    return [_ToMlflow()]


def fit_autoencoder(
    cfg: AEConfig,
    payload: dict[str, Any],
    storage: str,
    name: str = "ae",
    tracking_uri: str | None = None,
    run_id: str | None = None,
    kill_worker_at_epoch: int | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the TorchTrainer; returns (the kept model state_dict, per-epoch history).

    A run directory ``storage/name`` that already holds checkpoints is resumed from its latest.
    ``kill_worker_at_epoch`` is a fault drill: worker rank 1 exits once at that epoch (before any
    checkpoint was restored), so FailureConfig has to bring the run back from its checkpoint."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from hyperrep_ray.runtime import ensure_ray

    ensure_ray()
    storage_path = storage if "://" in storage else str(Path(storage).resolve())
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "cfg": cfg.model_dump(mode="json"),
            "payload": ray.put(payload),
            "kill_worker_at_epoch": kill_worker_at_epoch,
        },
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=_mlflow_callback(tracking_uri, run_id),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"autoencoder training under {storage_path}/{name} ended without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "train_state.pt", map_location="cpu", weights_only=False)
    return final_weights(cfg, state), state["history"]


def final_weights(cfg: AEConfig, state: dict[str, Any]) -> dict[str, Any]:
    """The weights the stage keeps: the best-validation ones when ``keep_best``, else the last."""
    best = state.get("best") or {}
    if cfg.keep_best and best.get("weights") is not None:
        return best["weights"]
    return state["model"]


