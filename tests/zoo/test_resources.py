"""A task no node of the cluster can hold fails at once with what to change, instead of waiting
forever (the session's Ray has 2 CPUs and no GPU, and no autoscaler)."""

from __future__ import annotations

import logging
import time

import pytest

from hyperrep_ray.config import zoo_preset
from hyperrep_ray.zoo.resources import WAIT_ENV, TaskRequest, UnsatisfiableResourcesError, check_task_fits
from hyperrep_ray.zoo.train import train_zoo


def test_requests_that_fit_pass(ray_session):
    check_task_fits(TaskRequest(1, 0))
    check_task_fits(TaskRequest(2, 0))


@pytest.mark.parametrize(
    ("request_", "advice"),
    [
        (TaskRequest(1, 0.25), "this Ray cluster has no GPU; pass --gpus-per-task 0 to train on CPUs"),
        (TaskRequest(64, 0), "its largest node has 2 CPU; set num_cpus_per_task (in the zoo config) to 2"),
    ],
)
def test_unsatisfiable_request_on_a_fixed_cluster_fails_with_what_to_do(ray_session, request_, advice):
    with pytest.raises(UnsatisfiableResourcesError) as e:
        check_task_fits(request_)
    assert advice in str(e.value) and "nothing will add one" in str(e.value) and WAIT_ENV in str(e.value)


def test_asked_to_wait_it_says_what_for(ray_session, monkeypatch, caplog):
    monkeypatch.setenv(WAIT_ENV, "1")
    with caplog.at_level(logging.WARNING, logger="hyperrep_ray.zoo.resources"):
        check_task_fits(TaskRequest(1, 0.25, what="each zoo shard task"))
    assert "each zoo shard task asks for 1 CPU and 0.25 GPU" in caplog.text
    assert "waiting for the autoscaler to add a node with 1 CPU and 0.25 GPU" in caplog.text


def test_zoo_asking_for_gpus_on_a_cpu_cluster_fails_at_once(ray_session, small_digits, tmp_path):
    cfg = zoo_preset("smoke", num_models=2, epochs=1, num_gpus_per_task=0.25)
    start = time.perf_counter()
    with pytest.raises(UnsatisfiableResourcesError, match="pass --gpus-per-task 0"):
        train_zoo(cfg, str(tmp_path / "zoo"), data=small_digits, progress=False)
    assert time.perf_counter() - start < 30
    assert not list((tmp_path / "zoo").glob("checkpoints/*.parquet"))
