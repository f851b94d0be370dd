"""The trained autoencoder in MLflow's model registry: one registered model per zoo, a version per
training, the pipeline's alias; loaded by ``models:/<name>@<alias>`` without unpickling anything."""

import pickle
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hyperrep_ray import tracking
from hyperrep_ray.autoencoder import registry
from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.autoencoder.stage import register_model
from hyperrep_ray.store import load_weights


class _Payload:
    """Unpickling this creates ``marker``: the kind of file a tampered model directory could hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_names_and_aliases():
    assert registry.model_name("digits-quick") == "hyperrep-digits-quick"
    assert registry.model_name("my zoo/1") == "hyperrep-my-zoo-1"
    assert [registry.pipeline_alias(x) for x in ("ae", "ae-nolwln")] == ["pipeline", "pipeline-nolwln"]


def test_each_training_is_a_version_and_the_alias_loads_without_pickle(
    trained_ae, tiny_zoo, mlflow_uri, tmp_path
):
    ae_dir = Path(trained_ae[0])
    for alias in (None, "pipeline"):  # two trainings of the same zoo: versions 1 and 2, alias on 2
        with tracking.run("ae-digits", None, mlflow_uri, tags={"stage": "ae"}):
            register_model(ae_dir, tiny_zoo, f"test R² 0.1 ({alias})", alias)
    client = MlflowClient(mlflow_uri)
    name = "hyperrep-digits-smoke"
    model = client.get_registered_model(name)
    assert "models:/hyperrep-digits-smoke@pipeline" in model.description
    assert sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'")) == [1, 2]
    version = client.get_model_version_by_alias(name, "pipeline")
    assert str(version.version) == "2" and version.tags["lwln"] == "true" and version.tags["zoo"] == tiny_zoo
    assert version.description == "test R² 0.1 (pipeline)"

    # the logged model holds code, weights and JSON only
    mlflow.set_tracking_uri(mlflow_uri)
    logged = mlflow.get_logged_model(version.source.removeprefix("models:/"))
    root = Path(urlparse(logged.artifact_location).path)  # the registered version's own directory
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    assert "pyfunc_model.py" in files
    assert {"model.pt", "ae.json", "normalisation.npz"} <= {Path(f).name for f in files}

    # plant a pickle in the registered model's own directory: loading never runs it
    marker = tmp_path / "unpickled"
    (root / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@pipeline")
    w, _ = load_weights(tiny_zoo, epochs=[3])
    z = loaded.predict(w.numpy())
    np.testing.assert_allclose(z, HyperRepresentation.load(ae_dir).encode(w.numpy()), atol=1e-6)
    assert not marker.exists(), "loading the model unpickled the planted file"
    pickle.loads((root / "python_model.pkl").read_bytes())
    assert marker.exists(), "the planted file is a live payload (so the check above means something)"
    with pytest.raises(Exception, match="float32|shape|dimension"):
        loaded.predict(np.zeros((2, 7), np.float32))  # the signature rejects vectors of another zoo
