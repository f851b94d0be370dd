"""The sweep's MLflow record: one child run per trial under the sweep's parent run.

Tune saves its callbacks with the experiment state and unpickles them on ``Tuner.restore``, so the
class is found by this module's path, ``hyperrep_ray.tune.mlflow_callback.MlflowSweepLogger``: keep
it stable. The class derives from ``ray.tune.Callback``, which is only imported when the class is
first used (importing Ray Tune takes seconds that ``hyperrep --help`` should not pay).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from hyperrep_ray.tune.objective import OBJECTIVE, R2_METRIC, is_finite_number, trial_name
from hyperrep_ray.tune.space import tuned_values

#: Per-epoch training metrics logged for every trial.
EPOCH_KEYS = ("train_loss", "train_rec", "train_con", "val_rec", "seconds")
#: Final metrics of a finished trial (logged as ``final_<key>``).
FINAL_KEYS = (OBJECTIVE, R2_METRIC, "best_bandwidth")


def evaluation_keys(result: Mapping[str, Any]) -> list[str]:
    """The objective's metrics in one Tune result (logged only at epochs that measured them)."""
    return [*FINAL_KEYS, *[k for k in result if k.startswith("sampled_accuracy_h")]]


class MlflowSweepLog:
    """One MLflow child run per trial, under the sweep's parent run, written from the driver (Tune
    callbacks run in the driver process). Mixed into :data:`MlflowSweepLogger` (a ``ray.tune.Callback``)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self._client: Any = None
        self._runs: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_runs")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client, self._runs = None, {}

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def run_id(self, trial: Any) -> str:
        """The trial's child run: found by its tags (a resumed sweep reuses it) or created."""
        tid = trial.trial_id
        if tid not in self._runs:
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.sweep_parent = '{self.parent_run_id}' and tags.trial_id = '{tid}'",
                max_results=1,
            )
            self._runs[tid] = found[0].info.run_id if found else self.create_run(trial)
        return self._runs[tid]

    def create_run(self, trial: Any) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=trial_name(trial),
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                "sweep_parent": self.parent_run_id,
                "trial_id": trial.trial_id,
                "stage": "tune-trial",
            },
        )
        run_id: str = run.info.run_id
        for k, v in {**trial.config, **tuned_values(trial.config)}.items():
            self.client.log_param(run_id, k, v)
        return run_id

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.client.set_tag(self.run_id(trial), "status", "running")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        from mlflow.entities import Metric

        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        keys = list(EPOCH_KEYS)
        if result.get("objective_epoch") == epoch:  # evaluation metrics only where they were measured
            keys += evaluation_keys(result)
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(result[k]), now, epoch) for k in keys if is_finite_number(result.get(k))]
        if metrics:
            self.client.log_batch(self.run_id(trial), metrics=metrics)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial)
        last = trial.last_result or {}
        for k in FINAL_KEYS:
            if is_finite_number(last.get(k)):
                self.client.log_metric(run_id, f"final_{k}", float(last[k]))
        self.client.set_tag(run_id, "status", "finished")
        self.client.set_terminated(run_id, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run_id = self.run_id(trial)
        self.client.set_tag(run_id, "status", "failed")
        self.client.set_terminated(run_id, "FAILED")


def logger_class() -> type:
    """``MlflowSweepLogger`` = :class:`MlflowSweepLog` + ``ray.tune.Callback``, made on first use and
    set as a module attribute, so Tune's experiment state pickles the callback by reference."""
    cls = globals().get("MlflowSweepLogger")
    if cls is None:
        from ray.tune import Callback

        namespace = {"__module__": __name__, "__doc__": MlflowSweepLog.__doc__}
        cls = type("MlflowSweepLogger", (MlflowSweepLog, Callback), namespace)
        globals()["MlflowSweepLogger"] = cls
    return cls


def sweep_logger(tracking_uri: str, experiment_id: str, parent_run_id: str) -> Any:
    """The Tune callback that logs every trial of the sweep under ``parent_run_id``."""
    return logger_class()(tracking_uri, experiment_id, parent_run_id)


def __getattr__(name: str) -> Any:  # PEP 562: lets a fresh process unpickle MlflowSweepLogger
    if name == "MlflowSweepLogger":
        return logger_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
