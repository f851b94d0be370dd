"""Using a trained hyper-representation: embed a whole store, characterise single models.

``predict_properties`` is the 2021 paper's use case: from a model's weights alone (no data),
predict its test accuracy, training epoch and generalisation gap with the linear probes that
were fitted on z when the autoencoder was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hyperrep_ray import store
from hyperrep_ray.autoencoder.artifacts import load_probes
from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.autoencoder.probes import TARGETS, probe_key
from hyperrep_ray.io import write_with
from hyperrep_ray.zoo.weights_io import load_weights


def embed_store(ae: str, zoo: str, out: str, epochs: Sequence[int] | None = None) -> int:
    """Write z of every checkpoint (with model_id, epoch, split and accuracies) as Parquet."""
    bundle = HyperRepresentation.load(ae)
    w, df = store.load_weights(zoo, epochs=epochs)
    z = bundle.encode(w.numpy())
    table = pa.Table.from_pandas(
        df[["model_id", "seed", "epoch", "split", "train_acc", "test_acc", "train_loss", "test_loss"]],
        preserve_index=False,
    ).append_column(
        "z", pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1).astype(np.float32)), z.shape[1])
    )
    write_with(out, lambda tmp: pq.write_table(table, tmp))
    return table.num_rows


def predict_properties(ae: str, files: Sequence[str]) -> list[dict[str, Any]]:
    """Test accuracy, epoch and generalisation gap of each model file, predicted from its z by the
    probes fitted when the autoencoder was trained."""
    bundle = HyperRepresentation.load(ae)
    probes = load_probes(ae)
    w = np.stack([load_weights(f)[0] for f in files])
    z = bundle.encode(w)
    preds = {t: probes[probe_key(t, "z")].predict(z) for t in TARGETS}
    return [{"file": str(f), **{t: float(preds[t][i]) for t in preds}} for i, f in enumerate(files)]
