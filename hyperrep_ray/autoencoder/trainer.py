"""Training the autoencoder with Ray Train: a TorchTrainer runs DDP over ``num_workers`` workers
(gloo on CPU, NCCL on GPU), each running :func:`hyperrep_ray.autoencoder.loop.train_loop_per_worker`.

A killed worker is restarted by ``FailureConfig`` from the last checkpoint, and rerunning the same
command with ``resume=True`` continues an interrupted run (Ray Train V2 resumes a run of the same
name and storage path from its latest checkpoint). Per-epoch metrics reach MLflow as they are
reported, through a Ray Train ``UserCallback`` in the Train controller, which also prints a progress
line with the time left (``progress/ae_epoch``).

The control plane is kept lean (:func:`hyperrep_ray.runtime.apply_train_settings`; Ray Train's own
``LoggingConfig`` at WARNING drops its per-report INFO lines), and a finished fit leaves no Train
actor behind: Ray Train keeps the controller's handle in the SIGINT handler it installs, so the
handler that was there before is put back after ``fit``, which lets the controller go.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch

from hyperrep_ray.autoencoder.data import TrainingPayload
from hyperrep_ray.autoencoder.loop import LoopConfig, train_loop_per_worker
from hyperrep_ray.autoencoder.train_state import load_train_state
from hyperrep_ray.config import AEConfig
from hyperrep_ray.progress import Progress, RunRef
from hyperrep_ray.runtime import apply_train_settings, ensure_ray, ray_defaults_wanted, single_node
from hyperrep_ray.tracking import metric_name


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
                Metric(metric_name(k), float(v), now, step)
                for k, v in m.items()
                if k != "epoch" and isinstance(v, int | float) and math.isfinite(v)
            ]
            if batch:  # one request per epoch
                MlflowClient(tracking_uri).log_batch(rid, metrics=batch)

    return [EpochMetricsToMlflow()]


def epoch_progress(total: int, label: str, tracking_uri: str | None, run_id: str | None) -> list[Any]:
    """A Ray Train callback that prints "label: 12/100 epochs, 18m20s left" (at most every 20 s) in
    the controller and logs ``progress/ae_epoch`` to the MLflow run ``run_id``."""
    from ray.train import UserCallback

    run = RunRef(tracking_uri, run_id) if tracking_uri and run_id else None

    class EpochProgress(UserCallback):
        def __init__(self) -> None:
            self.progress: Progress | None = None

        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:  # noqa: ARG002
            epoch = int((metrics[0] if metrics else {}).get("epoch", 0))
            if self.progress is None:  # the first report of this (maybe resumed) run starts the clock
                self.progress = Progress(total, label, key="ae_epoch", run=run, initial=epoch - 1)
            self.progress.update(epoch)

    return [EpochProgress()]


def lean_torch_trainer() -> type:
    """TorchTrainer, without the PlacementGroupCleaner on a single-node cluster: that detached actor
    asks the State API (the dashboard, which a local instance does not start) every second whether
    the controller is alive and warns each time it cannot tell; on one node Ray's shutdown removes
    the placement group anyway."""
    from ray.train.torch import TorchTrainer

    if ray_defaults_wanted() or not single_node():
        return TorchTrainer

    class LeanTorchTrainer(TorchTrainer):
        def _create_default_callbacks(self) -> list[Any]:
            callbacks = super()._create_default_callbacks()  # type: ignore[misc]  # V2 method; mypy reads V1
            return [c for c in callbacks if type(c).__name__ != "PlacementGroupCleanerCallback"]

    return LeanTorchTrainer


def fit_releasing_controller(trainer: Any) -> Any:
    """``trainer.fit()``, then the SIGINT handler from before it, so that the handler Ray Train
    installed (which holds the controller's actor handle) goes and the finished controller exits
    (``HYPERREP_RAY_DEFAULTS=1``: Ray's behaviour, the handler stays)."""
    main = threading.current_thread() is threading.main_thread() and not ray_defaults_wanted()
    before = signal.getsignal(signal.SIGINT) if main else None
    try:
        return trainer.fit()
    finally:
        if main and before is not None:
            signal.signal(signal.SIGINT, before)


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

    # ray.train's configs under Train V2 (mypy would read ray.train's names as the V1 ones)
    from ray.train.v2.api.config import (
        CheckpointConfig,
        FailureConfig,
        LoggingConfig,
        RunConfig,
        ScalingConfig,
    )

    ensure_ray()
    apply_train_settings()
    storage_path = storage if "://" in storage else str(Path(storage).resolve())
    loop = LoopConfig(cfg, ray.put(payload), kill_worker_at_epoch=int(kill_worker_at_epoch or 0))
    callbacks = epoch_metrics_to_mlflow(tracking_uri, run_id)
    callbacks += epoch_progress(cfg.epochs, f"autoencoder {name}", tracking_uri, run_id)
    trainer = lean_torch_trainer()(
        train_loop_per_worker,
        train_loop_config=loop.to_mapping(),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
            logging_config=None if ray_defaults_wanted() else LoggingConfig(log_level="WARNING"),
        ),
    )
    result = fit_releasing_controller(trainer)
    if result.checkpoint is None:
        raise RuntimeError(f"autoencoder training under {storage_path}/{name} ended without a checkpoint")
    with result.checkpoint.as_directory() as d:
        state = load_train_state(d)
    return state.final_weights(cfg), state.history
