"""The files a trained autoencoder keeps besides its bundle, written and read here only.

- ``anchors.npz``: train-split embeddings with their accuracies, model ids and epochs: what the
  samplers draw around, kept with the autoencoder so sampling needs no access to the zoo.
- ``probes.npz`` + ``probes.json``: the linear probes fitted on z when the autoencoder was
  evaluated, as plain arrays and JSON (nothing executes when they are read). An older version
  pickled them to ``probes.pkl``; that file is not read (unpickling runs code): re-run the stage.

The bundle itself (``model.pt``, ``ae.json``, ``normalisation.npz``) belongs to
:mod:`hyperrep_ray.autoencoder.bundle`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyperrep_ray.autoencoder.probes import Probe
from hyperrep_ray.io import write_json, write_npz

ANCHORS_FILE = "anchors.npz"
PROBE_ARRAYS_FILE = "probes.npz"
PROBE_INFO_FILE = "probes.json"
OLD_PROBES_FILE = "probes.pkl"
_PROBE_ARRAYS = ("mean", "scale", "coef")


@dataclass(frozen=True)
class Anchors:
    """Train-split checkpoints in latent space, row-aligned."""

    z: np.ndarray  # (M, d_z) float32
    test_acc: np.ndarray  # (M,) float64
    train_acc: np.ndarray  # (M,)
    model_id: np.ndarray  # (M,) int
    epoch: np.ndarray  # (M,) int


def save_anchors(out_dir: str | Path, anchors: Anchors) -> Path:
    path = Path(out_dir) / ANCHORS_FILE
    arrays = {k: getattr(anchors, k) for k in ("z", "test_acc", "train_acc", "model_id", "epoch")}
    return write_npz(path, arrays)


def load_anchors(ae_dir: str | Path) -> Anchors:
    """The anchors of a trained autoencoder; a clear error when the file is missing."""
    path = Path(ae_dir) / ANCHORS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: samplers draw around the train-split embeddings that "
            f"`hyperrep train-ae` writes next to the model; retrain or re-export the autoencoder"
        )
    with np.load(path) as npz:
        return Anchors(
            z=np.asarray(npz["z"], np.float32),
            test_acc=np.asarray(npz["test_acc"], np.float64),
            train_acc=np.asarray(npz["train_acc"], np.float64),
            model_id=np.asarray(npz["model_id"], np.int64),
            epoch=np.asarray(npz["epoch"], np.int64),
        )


def save_probes(out_dir: str | Path, probes: Mapping[str, Probe]) -> list[Path]:
    """Every probe's arrays in ``probes.npz`` (``{key}.mean`` etc.), the rest in ``probes.json``."""
    d = Path(out_dir)
    arrays = {f"{key}.{a}": getattr(p, a) for key, p in probes.items() for a in _PROBE_ARRAYS}
    info = {
        key: {
            "intercept": p.intercept,
            "alpha": p.alpha,
            "n_features": p.n_features,
            "selection": p.selection,
        }
        for key, p in probes.items()
    }
    return [
        write_npz(d / PROBE_ARRAYS_FILE, arrays),
        write_json(d / PROBE_INFO_FILE, info),
    ]


def load_probes(ae_dir: str | Path) -> dict[str, Probe]:
    """The probes saved with an autoencoder, keyed as ``probes.probe_key`` names them."""
    d = Path(ae_dir)
    if not (d / PROBE_INFO_FILE).is_file() or not (d / PROBE_ARRAYS_FILE).is_file():
        old = (d / OLD_PROBES_FILE).is_file()
        why = (
            f"it holds only {OLD_PROBES_FILE}, written by an older version (a pickle, which is not loaded "
            f"because unpickling runs code)"
            if old
            else f"{PROBE_INFO_FILE} and {PROBE_ARRAYS_FILE} are written at the end of `hyperrep train-ae`"
        )
        raise FileNotFoundError(f"{d} has no fitted probes: {why}; retrain the autoencoder to get them")
    info = json.loads((d / PROBE_INFO_FILE).read_text())
    with np.load(d / PROBE_ARRAYS_FILE) as npz:
        return {
            key: Probe(
                mean=npz[f"{key}.mean"],
                scale=npz[f"{key}.scale"],
                coef=npz[f"{key}.coef"],
                intercept=float(meta["intercept"]),
                alpha=float(meta["alpha"]),
                n_features=int(meta["n_features"]),
                selection=str(meta["selection"]),
            )
            for key, meta in info.items()
        }
