"""Progress lines for long steps: "label: 120/300 epochs, 2m10s left", on the console and in MLflow.

Every step that can run for minutes (a latent GAN, an experiment, a population's fine-tuning, a Tune
trial) counts its units through one :class:`Progress`. It prints at most one line every ``every_s``
seconds (and one when done), so a log stays readable on a slow machine, and logs the count and the
estimated seconds left as metrics ``progress/<key>`` and ``progress/<key>_left_s`` to an MLflow run.

Which run: the one given, else the run set by :func:`reporting_to` in this process (a Ray task has no
active MLflow run, so its caller hands it a :class:`RunRef` and the task enters ``reporting_to``), else
the process's active MLflow run, else none. A failing MLflow call is reported once and never stops the
step it reports on.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["Progress", "RunRef", "current_run", "format_seconds", "reporting_to"]

#: Default seconds between two console lines of one Progress.
DEFAULT_EVERY_S = 20.0


@dataclass(frozen=True)
class RunRef:
    """An MLflow run that another process (a Ray task) can report to: its store and its id."""

    tracking_uri: str
    run_id: str


_current: list[RunRef] = []  # the runs entered with reporting_to in this process, innermost last


@contextmanager
def reporting_to(run: RunRef | None) -> Iterator[None]:
    """Progress made inside this block reports to ``run`` (None: leave the choice as it was)."""
    if run is None:
        yield
        return
    _current.append(run)
    try:
        yield
    finally:
        _current.pop()


def current_run() -> RunRef | None:
    """The run progress goes to here: the innermost :func:`reporting_to`, else the active MLflow run."""
    if _current:
        return _current[-1]
    mlflow = sys.modules.get("mlflow")  # not imported here: no active run (and no import to pay for)
    if mlflow is None:
        return None
    active = mlflow.active_run()
    return RunRef(mlflow.get_tracking_uri(), active.info.run_id) if active is not None else None


def format_seconds(seconds: float) -> str:
    """``2h05m``, ``2m10s`` or ``45s``: short enough for a progress line."""
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def metric_key(label: str) -> str:
    """An MLflow-safe metric name from a label: letters, digits, ``_ - .``; the rest become ``_``."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", label).strip("_") or "step"


class Progress:
    """Counts ``total`` units of one step and says how far it is and how long it has left.

    ``update(done)`` (or ``advance(n)``) after each unit; the estimate is the mean time per unit so far
    times the units left; ``initial`` units were done before (a resumed run), so they do not count
    towards the time per unit. ``key``: the MLflow metric name (default: from ``label``); ``run``: where the
    metrics go (default :func:`current_run` at construction); ``echo``: where lines go (default
    ``print``); ``clock``: seconds, monotonic (tests pass a fake one)."""

    def __init__(
        self,
        total: int,
        label: str,
        unit: str = "epochs",
        every_s: float = DEFAULT_EVERY_S,
        key: str | None = None,
        run: RunRef | None = None,
        echo: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        initial: int = 0,
    ) -> None:
        if total < 0 or every_s < 0:
            raise ValueError(f"Progress needs total >= 0 and every_s >= 0, got {total}, {every_s}")
        self.total, self.label, self.unit, self.every_s = int(total), label, unit, float(every_s)
        self.key = metric_key(key or label)
        self.run = run if run is not None else current_run()
        self.echo = echo or (lambda line: print(line, flush=True))
        self.clock = clock
        self.t0 = self.last_shown = clock()
        self.initial = self.done = max(0, int(initial))
        self.finished = False
        self.mlflow_failed = False

    def seconds_left(self) -> float | None:
        """Estimated seconds to go (None before the first unit)."""
        if self.done <= self.initial:
            return None
        per_unit = (self.clock() - self.t0) / (self.done - self.initial)
        return per_unit * max(0, self.total - self.done)

    def line(self) -> str:
        """The progress line as it stands."""
        head = f"{self.label}: {self.done}/{self.total} {self.unit}"
        if self.done >= self.total:
            return f"{head}, done in {format_seconds(self.clock() - self.t0)}"
        left = self.seconds_left()
        return f"{head}, {'?' if left is None else format_seconds(left)} left"

    def update(self, done: int) -> str | None:
        """``done`` units finished; returns the line when one was shown (every ``every_s``; at the end)."""
        self.done = min(int(done), self.total)
        now = self.clock()
        end = self.done >= self.total
        if end and self.finished:
            return None
        if not end and now - self.last_shown < self.every_s:
            return None
        self.last_shown, self.finished = now, end
        text = self.line()
        self.echo(text)
        self.log_metrics()
        return text

    def advance(self, n: int = 1) -> str | None:
        return self.update(self.done + n)

    def log_metrics(self) -> None:
        """The count and the estimate into the run, if there is one (errors reported once, not raised)."""
        if self.run is None or self.mlflow_failed:
            return
        try:
            from mlflow.entities import Metric
            from mlflow.tracking import MlflowClient

            now_ms, left = int(time.time() * 1000), self.seconds_left() or 0.0
            batch = [
                Metric(f"progress/{self.key}", float(self.done), now_ms, self.done),
                Metric(f"progress/{self.key}_left_s", float(left), now_ms, self.done),
            ]
            MlflowClient(self.run.tracking_uri).log_batch(self.run.run_id, metrics=batch)
        except Exception as e:  # progress must never stop the work it reports on
            self.mlflow_failed = True
            log.warning("progress of %r not logged to MLflow run %s: %s", self.label, self.run.run_id, e)
