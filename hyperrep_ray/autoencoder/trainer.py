"""Training the autoencoder with Ray Train: a TorchTrainer runs DDP over ``num_workers`` workers
(gloo on CPU, NCCL on GPU), each running :func:`hyperrep_ray.autoencoder.loop.train_loop_per_worker`.

A killed worker is restarted by ``FailureConfig`` from the last checkpoint, and rerunning the same
command with ``resume=True`` continues an interrupted run (Ray Train V2 resumes a run of the same
name and storage path from its latest checkpoint). Per-epoch metrics reach MLflow as they are
reported, through a Ray Train ``UserCallback`` in the Train controller.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from hyperrep_ray.autoencoder.data import TrainingPayload
from hyperrep_ray.autoencoder.loop import LoopConfig, train_loop_per_worker
from hyperrep_ray.autoencoder.train_state import load_train_state
from hyperrep_ray.config import AEConfig
from hyperrep_ray.runtime import ensure_ray


def epoch_metrics_to_mlflow(tracking_uri: str | None, run_id: str | None) -> list[Any]:
    """Ray Train callbacks that log every reported epoch's numbers to the MLflow run ``run_id``
    (none without a run). The callback runs in the Train controller, not in the driver's MLflow
    run, so it talks to MLflow through a client and the run id."""
    if not run_id:
        return []
    from ray.train import UserCallback

    rid: str = run_id

    class EpochMetricsToMlflow(UserCallback):
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:  # noqa: ARG002
            from mlflow.entities import Metric
            from mlflow.tracking import MlflowClient

            m = metrics[0] if metrics else {}
            step, now = int(m.get("epoch", 0)), int(time.time() * 1000)
            batch = [
                Metric(k, float(v), now, step)
                for k, v in m.items()
                if k != "epoch" and isinstance(v, int | float) and math.isfinite(v)
            ]
            if batch:  # one request per epoch
                MlflowClient(tracking_uri).log_batch(rid, metrics=batch)

    return [EpochMetricsToMlflow()]


def fit_autoencoder(
    cfg: AEConfig,
    payload: TrainingPayload,
    storage: str,
    name: str = "ae",
    tracking_uri: str | None = None,
    run_id: str | None = None,
    kill_worker_at_epoch: int | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Run the TorchTrainer; returns (the kept model state_dict, per-epoch history).

    A run directory ``storage/name`` that already holds checkpoints is resumed from its latest.
    ``kill_worker_at_epoch`` is a fault drill: worker rank 1 exits once at that epoch (before any
    checkpoint was restored), so FailureConfig has to bring the run back from its checkpoint."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ensure_ray()
    storage_path = storage if "://" in storage else str(Path(storage).resolve())
    loop = LoopConfig(cfg, ray.put(payload), kill_worker_at_epoch=int(kill_worker_at_epoch or 0))
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop.to_mapping(),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=epoch_metrics_to_mlflow(tracking_uri, run_id),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"autoencoder training under {storage_path}/{name} ended without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state = load_train_state(d)
    return state.final_weights(cfg), state.history
