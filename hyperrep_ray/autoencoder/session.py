"""What the training loop needs from the process it runs in, declared once.

The same loop (:func:`hyperrep_ray.autoencoder.loop.run_training_loop`) runs on a Ray Train worker
(DDP, reports and checkpoints to Ray Train), inside a Ray Tune trial (Ray refuses ``ray.train.*``
calls there, so the trial reports to Tune) and in a plain process (benchmarks, tests). It only ever
talks to its surroundings through a :class:`TrainSession`, so each of those places supplies one.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from typing import Any, Protocol, runtime_checkable

import torch

from hyperrep_ray.runtime import ray_defaults_wanted


@runtime_checkable
class TrainSession(Protocol):
    """The loop's view of its process: who it is among the workers, where to compute, how to report."""

    rank: int
    world: int
    device: torch.device

    def get_checkpoint(self) -> Any:
        """The checkpoint to resume from (an object with ``as_directory()``), or None."""
        ...

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move the model to ``device`` (and wrap it for data parallelism where there is any)."""
        ...

    def checkpoint_from_directory(self, path: str) -> Any:
        """A checkpoint object for the files in ``path`` (called on rank 0 only)."""
        ...

    def report(self, metrics: dict[str, Any], checkpoint: Any = None) -> None:
        """One epoch's metrics, with a checkpoint when the loop saved one."""
        ...


#: Ray Train's per-report INFO line in every worker, and the module that logs it.
REPORT_LINE = "Reporting training result"
REPORT_MODULE = "ray.train.v2._internal.execution.context"


class RayTrainSession:
    """A Ray Train worker: DDP through ``ray.train.torch.prepare_model``, reports to Ray Train.

    Ray Train's own INFO lines in the worker go: the ``ray.train`` logger is set to WARNING, as the
    trainer's LoggingConfig asks, and "Reporting training result ..." (per worker per epoch), which
    bypasses both, is filtered where it is logged (unless ``HYPERREP_RAY_DEFAULTS=1``)."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        if not ray_defaults_wanted():
            logging.getLogger("ray.train").setLevel(logging.WARNING)
            # the line comes from a logger named after its module's *file path* (so outside
            # ``ray.train``, through the root logger at INFO): a filter there drops it at the source
            spec = importlib.util.find_spec(REPORT_MODULE)
            if spec is not None and spec.origin:
                logging.getLogger(spec.origin).addFilter(lambda r: not r.getMessage().startswith(REPORT_LINE))

        ctx = ray.train.get_context()
        self.rank: int = ctx.get_world_rank()
        self.world: int = ctx.get_world_size()
        self.device: torch.device = ray.train.torch.get_device()

    def get_checkpoint(self) -> Any:
        import ray.train

        return ray.train.get_checkpoint()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def checkpoint_from_directory(self, path: str) -> Any:
        import ray.train

        return ray.train.Checkpoint.from_directory(path)

    def report(self, metrics: dict[str, Any], checkpoint: Any = None) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=checkpoint)


class LocalSession:
    """A plain process: rank 0 of 1, nothing to resume, every report kept in ``history`` (with the
    process's CPU seconds so far, ``cpu_s``, for throughput benchmarks).

    ``keep_checkpoints``: a directory that receives a copy of every checkpoint the loop saves (the
    latest overwrites the earlier ones); ``compile_model`` wraps the model in ``torch.compile``."""

    rank = 0
    world = 1

    def __init__(
        self, device: str = "cpu", compile_model: bool = False, keep_checkpoints: str | None = None
    ) -> None:
        self.device = torch.device(device)
        self.compile_model = compile_model
        self.keep_checkpoints = keep_checkpoints
        self.history: list[dict[str, Any]] = []

    def get_checkpoint(self) -> Any:
        return None

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return torch.compile(model) if self.compile_model else model  # type: ignore[return-value]

    def checkpoint_from_directory(self, path: str) -> Any:
        if self.keep_checkpoints is None:
            return None
        shutil.copytree(path, self.keep_checkpoints, dirs_exist_ok=True)
        return self.keep_checkpoints

    def report(self, metrics: dict[str, Any], checkpoint: Any = None) -> None:  # noqa: ARG002
        self.history.append({**metrics, "cpu_s": time.process_time()})
