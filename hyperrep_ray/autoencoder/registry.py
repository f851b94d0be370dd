"""The trained autoencoder in MLflow's model registry: one registered model per zoo
(``hyperrep-<zoo name>``), a new version per training, and an alias on the version a pipeline used
(``pipeline`` for the LWLN autoencoder, ``pipeline-nolwln`` for its baseline). Any version loads with
``mlflow.pyfunc.load_model("models:/hyperrep-<zoo>@pipeline")`` and embeds weight vectors.

The model is logged from code (:mod:`hyperrep_ray.autoencoder.pyfunc_model`), so loading it never
unpickles anything.
"""

from __future__ import annotations

import importlib.metadata
import re
import warnings
from pathlib import Path
from typing import Any

#: The models-from-code file MLflow copies into every logged autoencoder.
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
#: The alias the pipeline sets on the version of each of its autoencoders.
PIPELINE_ALIASES = {"ae": "pipeline", "ae-nolwln": "pipeline-nolwln"}


def model_name(zoo_name: str) -> str:
    """The registered model of a zoo (MLflow names: letters, digits, ``-``, ``_``, ``.``)."""
    return "hyperrep-" + re.sub(r"[^\w.-]", "-", zoo_name)


def pipeline_alias(label: str) -> str:
    """The alias of the pipeline's autoencoder ``label`` (``ae`` or ``ae-nolwln``)."""
    return PIPELINE_ALIASES[label]


def requirements() -> list[str]:
    """What loading the model needs: this package's dependencies (and the package, which is not on PyPI)."""
    try:
        reqs = importlib.metadata.requires("hyperrep_ray") or []
    except importlib.metadata.PackageNotFoundError:
        reqs = []
    return [r for r in reqs if "extra ==" not in r]


def signature(n_params: int, d_z: int) -> Any:
    """Weight vectors (M, n_params) in, embeddings (M, d_z) out, both float32."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    f32 = np.dtype(np.float32)
    return ModelSignature(
        inputs=Schema([TensorSpec(f32, (-1, n_params))]),
        outputs=Schema([TensorSpec(f32, (-1, d_z))]),
    )


def log_autoencoder(
    bundle_dir: Path,
    zoo_name: str,
    shapes: tuple[int, int],
    description: str,
    tags: dict[str, str],
    alias: str | None = None,
) -> Any:
    """Log the bundle in ``bundle_dir`` as a model of the active run and register it as a new version of
    the zoo's model, with ``description``, ``tags`` and (when given) ``alias``; returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from hyperrep_ray.autoencoder.pyfunc_model import BUNDLE_ARTIFACT

    name = model_name(zoo_name)
    with warnings.catch_warnings():
        # the signature is given, so an input example is not needed; MLflow warns on every log
        warnings.filterwarnings("ignore", message=".*input example was not provided", category=UserWarning)
        info = mlflow.pyfunc.log_model(
            name="hyper_representation",
            python_model=str(MODEL_CODE),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            signature=signature(*shapes),
            pip_requirements=requirements(),
            registered_model_name=name,
        )
    client = MlflowClient()
    version = str(info.registered_model_version)
    client.update_model_version(name, version, description=description)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=model_description(zoo_name, *shapes))
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return client.get_model_version(name, version)


def model_description(zoo_name: str, n_params: int, d_z: int) -> str:
    return (
        f"Hyper-representation autoencoder of the zoo `{zoo_name}`: weight vectors (M, {n_params}) float32 "
        f"in, embeddings z (M, {d_z}) out. One version per training; alias `pipeline` = the LWLN "
        f"autoencoder a pipeline used, `pipeline-nolwln` = its baseline. Load with "
        f"`mlflow.pyfunc.load_model('models:/{model_name(zoo_name)}@pipeline').predict(weights)` "
        f"(needs `pip install hyperrep_ray`; nothing is unpickled)."
    )
