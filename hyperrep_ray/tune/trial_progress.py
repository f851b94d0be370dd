"""Progress of a sweep: per trial "tune trial <name>: 12/40 epochs, 3m10s left", and per finished
trial "tune: 3/16 trials, 41m left", on the console (at most every 20 s per trial) and as
``progress/*`` metrics of the sweep's parent MLflow run (:mod:`hyperrep_ray.progress`).

A ``ray.tune.Callback`` runs in the driver. Tune pickles its callbacks with the experiment state, so
the class is made on first use and found by this module's path (PEP 562 ``__getattr__``), and its
counters are not pickled (a resumed sweep starts its clocks anew).
"""

from __future__ import annotations

from typing import Any

from hyperrep_ray.progress import Progress, RunRef
from hyperrep_ray.tune.objective import trial_name


class TrialProgressLog:
    """The callback's state and hooks; mixed into :data:`TrialProgress` (a ``ray.tune.Callback``)."""

    def __init__(self, epochs: int, trials: int, run: RunRef | None) -> None:
        self.epochs, self.trials, self.run = int(epochs), int(trials), run
        self.per_trial: dict[str, Progress] = {}
        self.overall: Progress | None = None
        self.finished = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "trials": self.trials, "run": self.run}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["epochs"], state["trials"], state["run"])  # type: ignore[misc]

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any
    ) -> None:  # noqa: ARG002
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        p = self.per_trial.get(trial.trial_id)
        if p is None:
            name = trial_name(trial)
            label = f"tune trial {name}"
            p = Progress(self.epochs, label, key=f"tune_{name}_epoch", run=self.run, initial=epoch - 1)
            self.per_trial[trial.trial_id] = p
        p.update(epoch)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:  # noqa: ARG002
        if self.overall is None:
            self.overall = Progress(
                self.trials, "tune", unit="trials", every_s=0, key="tune_trials", run=self.run
            )
        self.finished += 1
        self.overall.update(self.finished)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.on_trial_complete(iteration, trials, trial, **info)


def progress_class() -> type:
    """``TrialProgress`` = :class:`TrialProgressLog` + ``ray.tune.Callback``, made on first use."""
    cls = globals().get("TrialProgress")
    if cls is None:
        from ray.tune import Callback

        cls = type("TrialProgress", (TrialProgressLog, Callback), {"__module__": __name__})
        globals()["TrialProgress"] = cls
    return cls


def trial_progress(epochs: int, trials: int, run: RunRef | None) -> Any:
    """The sweep's progress callback: ``epochs`` per trial, ``trials`` in all, metrics into ``run``."""
    return progress_class()(epochs, trials, run)


def __getattr__(name: str) -> Any:  # PEP 562: lets a fresh process unpickle TrialProgress
    if name == "TrialProgress":
        return progress_class()
    raise AttributeError(name)
