"""Progress lines: throttled, with a time-left estimate, and the count in an MLflow run."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from hyperrep_ray.progress import Progress, RunRef, current_run, format_seconds, reporting_to


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_lines_are_throttled_and_estimate_time_left():
    clock, lines = FakeClock(), []
    p = Progress(300, "S_GAN", every_s=20, echo=lines.append, clock=clock, run=None)
    for epoch in range(1, 301):
        clock.t = epoch * 0.5  # 0.5 s per epoch
        p.update(epoch)
    # 150 s of work, a line every >= 20 s: 7 timed lines + the final one
    assert 7 <= len(lines) <= 9
    assert lines[0] == "S_GAN: 40/300 epochs, 2m10s left"  # 40 epochs at 0.5 s, 260 left = 130 s
    assert lines[-1] == "S_GAN: 300/300 epochs, done in 2m30s"
    assert p.update(300) is None  # the end is said once


def test_a_resumed_count_estimates_from_the_units_done_since():
    clock, lines = FakeClock(), []
    p = Progress(100, "ae", every_s=0, echo=lines.append, clock=clock, run=None, initial=50)
    clock.t = 10.0
    p.update(60)  # 10 epochs in 10 s, 40 to go
    assert lines == ["ae: 60/100 epochs, 40s left"]


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 130, 7500)] == ["0s", "1m00s", "2m10s", "2h05m"]


def test_bad_total_is_refused():
    with pytest.raises(ValueError, match="total >= 0"):
        Progress(-1, "x")


def test_metrics_reach_the_run_given_and_the_active_one(mlflow_uri):
    mlflow.set_tracking_uri(mlflow_uri)
    with mlflow.start_run() as r:
        assert current_run() == RunRef(mlflow_uri, r.info.run_id)
        p = Progress(4, "fine-tune B_T", every_s=0, echo=lambda _: None)
        for i in range(1, 5):
            p.update(i)
        rid = r.info.run_id
    other = MlflowClient(mlflow_uri).create_run(r.info.experiment_id).info.run_id
    with reporting_to(RunRef(mlflow_uri, other)):  # as a Ray task does
        Progress(2, "gan", every_s=0, echo=lambda _: None).update(2)
    client = MlflowClient(mlflow_uri)
    steps = [m.value for m in client.get_metric_history(rid, "progress/fine-tune_B_T")]
    assert steps == [1.0, 2.0, 3.0, 4.0]
    assert client.get_metric_history(rid, "progress/fine-tune_B_T_left_s")[-1].value == 0.0
    assert client.get_run(other).data.metrics["progress/gan"] == 2.0


def test_an_unreachable_store_does_not_stop_the_work():
    bad = RunRef("nosuchscheme://nowhere", "no-such-run")
    p = Progress(2, "x", every_s=0, echo=lambda _: None, run=bad)
    p.update(1)
    p.update(2)
    assert p.mlflow_failed
