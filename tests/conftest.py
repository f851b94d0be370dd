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


@pytest.fixture(scope="session")
def new_mlflow_store(tmp_path_factory):
    """``new_mlflow_store(directory)`` -> the URI of a fresh, empty SQLite MLflow store in
    ``directory``: a copy of one store made once per session (MLflow takes seconds to create and
    migrate its tables, a copy takes milliseconds)."""
    import shutil

    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{template}").search_experiments()

    def make(directory) -> str:
        return f"sqlite:///{shutil.copyfile(template, os.path.join(str(directory), 'mlflow.db'))}"

    return make


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch, new_mlflow_store):
    """A fresh SQLite MLflow store for one test, also exported for code that reads the env."""
    import mlflow

    uri = new_mlflow_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # MLflow remembers the active experiment per process: an id set by an earlier test (in another
    # store) would be looked up in this empty one. Start from the new store's Default experiment.
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id="0")
    yield uri


@pytest.fixture(scope="session")
def digits():
    from hyperrep_ray.data.images import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def small_digits(digits):
    """A 256/128-image slice of digits: same format, a fraction of the training time."""
    from hyperrep_ray.data.images import ImageData

    return ImageData(
        "digits",
        digits.train_x[:256],
        digits.train_y[:256],
        digits.test_x[:128],
        digits.test_y[:128],
        dict(digits.preprocessing),
    )


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory, small_digits, ray_session):
    """A 10-model, 3-epoch digits zoo trained on real Ray Tasks into a real store."""
    from hyperrep_ray.config import zoo_preset
    from hyperrep_ray.zoo.train import train_zoo

    out = str(tmp_path_factory.mktemp("tiny") / "zoo")
    cfg = zoo_preset("smoke", num_models=10, epochs=3, population_size=5, models_per_shard=5)
    train_zoo(cfg, out, data=small_digits, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_ae(tmp_path_factory, tiny_zoo, ray_session, new_mlflow_store):
    """A smoke autoencoder trained once by the real stage (Ray Train, 2 DDP workers, gloo), tracked
    in its own MLflow store. Returns (ae dir, metrics, mlflow uri). The killed-worker drill has its
    own run in tests/autoencoder/test_stage.py (slow)."""
    from hyperrep_ray.autoencoder.stage import run_ae_stage
    from hyperrep_ray.config import ae_preset

    root = tmp_path_factory.mktemp("ae")
    uri = new_mlflow_store(root)
    cfg = ae_preset("smoke", epochs=4, checkpoint_every=2, num_workers=2, epochs_window=(2, 3))
    metrics = run_ae_stage(tiny_zoo, str(root / "ae"), cfg, uri)
    return str(root / "ae"), metrics, uri
