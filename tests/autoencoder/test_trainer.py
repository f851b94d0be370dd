"""The Ray Train fit: its progress reaches the stage's MLflow run, and a finished fit leaves no Train
controller behind (Ray Train keeps the controller's handle in its SIGINT handler; the trainer puts the
previous handler back)."""

from __future__ import annotations

import os
import time

from mlflow.tracking import MlflowClient


def train_controllers_below(pid: int) -> list[int]:
    """Live ``ray::TrainController`` processes below ``pid`` (this test process drives the local Ray)."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parent[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found = []
    for p in parent:
        q = p
        while q and q != pid:
            q = parent.get(q, 0)
        if q == pid:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if b"ray::TrainController" in f.read():
                        found.append(p)
            except OSError:
                continue
    return found


def test_epoch_progress_reaches_the_stage_run(trained_ae):
    _, _, uri = trained_ae
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hyperrep_ray")
    (run,) = client.search_runs([exp.experiment_id], "tags.stage = 'ae'")
    done = [m.value for m in client.get_metric_history(run.info.run_id, "progress/ae_epoch")]
    assert done and done[-1] == 4.0  # the fixture trains 4 epochs; the last count is always logged
    left = client.get_metric_history(run.info.run_id, "progress/ae_epoch_left_s")
    assert left[-1].value == 0.0


def test_a_finished_fit_leaves_no_train_controller(trained_ae):
    deadline = time.monotonic() + 30  # the actor's exit is asynchronous
    while train_controllers_below(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert train_controllers_below(os.getpid()) == []
