"""Weights to judge for novelty, from what users have at hand: safetensors files of single models, a
directory written by ``hyperrep generate``, or a samples Parquet of ``hyperrep sample`` (decoded by the
autoencoder). Every vector is checked before it is scored: a wrong length or a non-finite weight is a
clear error naming the file, not a silent score of "wrong on every image"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.sampling.samples_io import read_samples
from hyperrep_ray.zoo.cnn import num_params
from hyperrep_ray.zoo.weights_io import WeightsFileError, load_weights

__all__ = ["NoveltyInputError", "weights_from_paths"]


class NoveltyInputError(ValueError):
    """A file given for novelty scoring that is not a model, or a model of the wrong shape."""


def expand(path: Path) -> list[Path]:
    """A ``hyperrep generate`` directory becomes the files its ``generated.json`` lists."""
    if not path.is_dir():
        return [path]
    listing = path / "generated.json"
    if not listing.is_file():
        raise NoveltyInputError(
            f"{path} is a directory without generated.json; pass safetensors files, a samples Parquet "
            "or a directory written by `hyperrep generate`"
        )
    return [path / f for f in json.loads(listing.read_text())["files"]]


def read_one(path: Path, bundle: HyperRepresentation) -> tuple[list[str], np.ndarray]:
    """(names, weights (M, N)) of one file."""
    if not path.is_file():
        raise NoveltyInputError(f"{path} does not exist")
    if path.suffix == ".safetensors":
        try:
            vec, _ = load_weights(path)
        except WeightsFileError as e:  # damaged, wrong shape or non-finite: the reader says which
            raise NoveltyInputError(str(e)) from None
        return [str(path)], vec[None, :]
    if path.suffix == ".parquet":
        samples = read_samples(path)
        return [f"{path}#{int(i)}" for i in samples.sample_id], bundle.decode(samples.z)
    raise NoveltyInputError(f"{path}: expected .safetensors, a samples .parquet or a generate directory")


def weights_from_paths(
    paths: list[str | Path], bundle: HyperRepresentation
) -> tuple[list[str], np.ndarray]:
    """(names, weights (M, N)) of every model in ``paths``, checked against the autoencoder's zoo CNN
    (parameter count for its input channels) and for finite values."""
    names: list[str] = []
    parts: list[np.ndarray] = []
    want = num_params(bundle.in_channels)
    for path in (p for given in paths for p in expand(Path(given))):
        n, w = read_one(path, bundle)
        if w.ndim != 2 or w.shape[1] != want:
            raise NoveltyInputError(
                f"{path}: weight vectors of length {w.shape[-1]}, the autoencoder's zoo CNN has {want} "
                f"parameters ({bundle.in_channels} input channel(s))"
            )
        bad = ~np.isfinite(w).all(axis=1)
        if bad.any():
            raise NoveltyInputError(f"{path}: {int(bad.sum())} model(s) with NaN or infinite weights")
        names += n
        parts.append(np.asarray(w, np.float32))
    if not parts:
        raise NoveltyInputError("no models given")
    return names, np.concatenate(parts)
