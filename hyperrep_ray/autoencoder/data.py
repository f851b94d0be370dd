"""What the autoencoder trains on: store windows -> (aligned) weight matrices + normalisation.

Train/val/test follow the store's split by model; the autoencoder sees the checkpoints of the
configured epoch window (paper: 21-25). Layer statistics and the alignment reference come from
the train split only, so nothing about val/test leaks into training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from hyperrep_ray import store
from hyperrep_ray.autoencoder.behaviour import query_pool
from hyperrep_ray.config import AEConfig
from hyperrep_ray.data.zoo_images import images_for_zoo
from hyperrep_ray.weightspace.align import align_to_reference, fit_reference
from hyperrep_ray.weightspace.tokens import layer_stats, standardisation, token_layout


def no_queries(in_channels: int = 1) -> np.ndarray:
    """An empty query set: what a payload holds when the behavioural loss is off."""
    return np.zeros((0, in_channels, 28, 28), np.float32)


@dataclass(frozen=True)
class TrainingPayload:
    """The arrays a training worker needs, shipped once through Ray's object store.

    Everything is fitted on the train split (see :func:`train_statistics`); ``val`` is only scored."""

    train: np.ndarray  # (M, N) float32, aligned when the autoencoder aligns
    val: np.ndarray  # (M_val, N)
    var_tokens: np.ndarray  # [T, D] layer variance per token entry (LWLN)
    mean_params: np.ndarray  # [N] mean weight vector (the R^2 baseline)
    token_shift: np.ndarray  # [T, D] encoder-input standardisation
    token_scale: np.ndarray  # [T, D]
    in_channels: int
    # behavioural loss (AEConfig.behaviour_weight > 0): the zoo CNN's activation and a pool of the
    # zoo's *training* images (Q, C, 28, 28); empty when the loss is off
    activation: str = "tanh"
    queries: np.ndarray = field(default_factory=no_queries)

    @classmethod
    def from_mapping(cls, payload: Mapping[str, Any]) -> TrainingPayload:
        """From the plain dict older callers ship (the field names are its keys); a payload without
        standardisation gets the identity, as before standardisation existed."""
        var_tokens = np.asarray(payload["var_tokens"], np.float32)
        return cls(
            train=np.asarray(payload["train"], np.float32),
            val=np.asarray(payload["val"], np.float32),
            var_tokens=var_tokens,
            mean_params=np.asarray(payload["mean_params"], np.float32),
            token_shift=np.asarray(payload.get("token_shift", np.zeros_like(var_tokens)), np.float32),
            token_scale=np.asarray(payload.get("token_scale", np.ones_like(var_tokens)), np.float32),
            in_channels=int(payload["in_channels"]),
            activation=str(payload.get("activation", "tanh")),
            queries=np.asarray(payload.get("queries", no_queries(int(payload["in_channels"]))), np.float32),
        )

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def writable(self) -> TrainingPayload:
        """A copy whose arrays torch may wrap (arrays from Ray's object store are read-only)."""
        return TrainingPayload(
            train=np.array(self.train, np.float32),
            val=np.array(self.val, np.float32),
            var_tokens=np.array(self.var_tokens, np.float32),
            mean_params=np.array(self.mean_params, np.float32),
            token_shift=np.array(self.token_shift, np.float32),
            token_scale=np.array(self.token_scale, np.float32),
            in_channels=self.in_channels,
            activation=self.activation,
            queries=np.array(self.queries, np.float32),
        )


@dataclass
class AEData:
    in_channels: int
    activation: str
    dataset: str
    weights: dict[str, np.ndarray]  # split -> (M, N) float32, aligned when a reference is set
    meta: dict[str, pd.DataFrame]  # split -> model_id, epoch, accuracies, losses
    reference: np.ndarray | None
    var_tokens: np.ndarray  # [T, D] train-split layer variance per token entry
    mean_params: np.ndarray  # [N] train-split mean weight vector (R^2 baseline)
    layer_std: np.ndarray  # [L]
    token_shift: np.ndarray  # [T, D] encoder-input standardisation (cfg.standardize), train split
    token_scale: np.ndarray  # [T, D]
    queries: np.ndarray = field(default_factory=no_queries)  # behavioural-loss query images (training set)

    def training_payload(self) -> TrainingPayload:
        """What Ray Train workers need (shipped once through the object store)."""
        return TrainingPayload(
            train=self.weights["train"],
            val=self.weights["val"],
            var_tokens=self.var_tokens,
            mean_params=self.mean_params,
            token_shift=self.token_shift,
            token_scale=self.token_scale,
            in_channels=self.in_channels,
            activation=self.activation,
            queries=self.queries,
        )


def align_weights(w: np.ndarray, reference: np.ndarray | None, in_channels: int) -> np.ndarray:
    """``w`` in the reference's canonical neuron order (unchanged without a reference)."""
    if reference is None or len(w) == 0:
        return w
    return np.asarray(align_to_reference(w, reference, in_channels).aligned, dtype=np.float32)


def prepare_ae_data(
    zoo: str, cfg: AEConfig, reference: np.ndarray | None = None, data_root: str | None = None
) -> AEData:
    """Load the epoch window of every split from the store; fit (or reuse) the alignment
    reference and the layer statistics on the train split. With a behavioural loss, also the query
    images: a seeded pool of the zoo's image *training* set (``data_root``: where non-digits images are)."""
    meta = store.read_zoo_meta(zoo)
    lo, hi = cfg.epochs_window
    recorded = meta.get("epochs_recorded", [])
    if recorded and (lo not in recorded or hi not in recorded):
        raise store.StoreError(
            f"epochs_window {cfg.epochs_window} is outside the epochs recorded in {zoo} "
            f"({min(recorded)}..{max(recorded)}); pass --epochs-window LO HI within that range"
        )
    in_channels = int(meta["architecture"]["in_channels"])
    weights, frames = {}, {}
    for split in store.SPLITS:
        w, df = store.load_weights(zoo, epochs=range(lo, hi + 1), split=split)
        if split in ("train", "val") and len(df) == 0:
            raise store.StoreError(f"the store at {zoo} has no {split} checkpoints in epochs {lo}..{hi}")
        weights[split] = w.numpy()
        frames[split] = df.reset_index(drop=True)
    if cfg.align and reference is None:
        fit = fit_reference(weights["train"], in_channels, iterations=cfg.align_iterations, seed=cfg.seed)
        reference = np.asarray(fit.reference, dtype=np.float32)
    if cfg.align:
        weights = {k: align_weights(v, reference, in_channels) for k, v in weights.items()}
    else:
        reference = None
    return AEData(
        in_channels=in_channels,
        activation=str(meta["architecture"]["activation"]),
        dataset=str(meta["dataset"]),
        weights=weights,
        meta=frames,
        reference=reference,
        **train_statistics(weights["train"], in_channels, cfg.standardize),
        queries=behaviour_queries(meta, cfg, data_root, in_channels),
    )


def behaviour_queries(
    meta: dict[str, Any], cfg: AEConfig, data_root: str | None, in_channels: int
) -> np.ndarray:
    """The query pool of the behavioural loss (empty when it is off): training images only."""
    if cfg.behaviour_weight <= 0:
        return no_queries(in_channels)
    return query_pool(images_for_zoo(meta, data_root).train_x, seed=cfg.seed)


def train_statistics(train: np.ndarray, in_channels: int, standardize: str) -> dict[str, np.ndarray]:
    """The ``AEData`` fields fitted on the train split: layer variances (LWLN), the mean vector
    (the R^2 baseline) and the input standardisation."""
    layout = token_layout(in_channels)
    stats = layer_stats(train, layout)
    shift, scale = standardisation(train, layout, standardize)
    return {
        "var_tokens": stats["var_tokens"].numpy(),
        "mean_params": train.mean(0).astype(np.float32),
        "layer_std": stats["std"].numpy(),
        "token_shift": shift.numpy(),
        "token_scale": scale.numpy(),
    }
