"""The autoencoder as an MLflow pyfunc model, logged *from code*: MLflow copies this file into the model
and runs it on load, so a logged model holds no pickle, only this file, the bundle's weights
(``model.pt``, read with ``weights_only``), ``ae.json`` and ``normalisation.npz``.

Input: weight vectors (M, N) float32 in the zoo's layout; output: embeddings z (M, d_z).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

from hyperrep_ray.autoencoder.bundle import HyperRepresentation

#: The name the bundle directory is logged under (``artifacts={BUNDLE_ARTIFACT: ...}``).
BUNDLE_ARTIFACT = "bundle"


class HyperRepModel(PythonModel):
    """Encodes weight vectors with the bundle logged next to this file."""

    # MLflow's switch for models without predict type hints: the logged signature is what validates
    # inputs, and without it MLflow warns on every definition of this class (import and log alike)
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        self.bundle = HyperRepresentation.load(context.artifacts[BUNDLE_ARTIFACT])

    # no type hints: MLflow would derive (and enforce) a second signature from them
    def predict(self, context, model_input, params=None):  # noqa: ARG002
        return self.bundle.encode(np.asarray(model_input, dtype=np.float32))


mlflow.models.set_model(HyperRepModel())
