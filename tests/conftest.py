"""Shared fixtures: one real local Ray per test session, a real MLflow store per test."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TQDM_DISABLE", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session():
    """``ray.init(num_cpus=2)`` once; every test that needs Ray shares it."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    """A fresh SQLite MLflow store for one test, also exported for code that reads the env."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri


@pytest.fixture(scope="session")
def digits():
    from hyperrep_ray.datasets import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def small_digits(digits):
    """A 256/128-image slice of digits: same format, a fraction of the training time."""
    from hyperrep_ray.datasets import ImageData

    return ImageData(
        "digits",
        digits.train_x[:256],
        digits.train_y[:256],
        digits.test_x[:128],
        digits.test_y[:128],
        dict(digits.preprocessing),
    )
