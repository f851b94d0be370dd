"""The training loop's checkpoint: what a restarted or resumed run continues from.

Two files in a checkpoint directory, neither of which runs code when read: ``train_state.pt``
holds only tensors and plain containers (model, optimiser, best weights; loaded with
``torch.load(weights_only=True)``) and ``train_state.json`` the rest (epoch, per-epoch history,
best validation R^2 so far, patience count).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hyperrep_ray.config import AEConfig
from hyperrep_ray.io import write_json

TENSORS_FILE = "train_state.pt"
JSON_FILE = "train_state.json"


class BestTracker:
    """The evaluation with the best validation R^2 so far, its weights (CPU copy) and how many
    evaluations have passed without improving on it (for ``patience``)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.r2, self.epoch, self.bad = -math.inf, 0, 0
        self.weights: dict[str, torch.Tensor] | None = None

    def update(self, r2: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record one evaluation; True when patience is exhausted."""
        if r2 > self.r2:
            self.r2, self.epoch, self.bad = r2, epoch, 0
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience

    def summary(self) -> dict[str, Any]:
        """The JSON part (R^2 -inf, before any evaluation, is written as null)."""
        return {"r2": self.r2 if math.isfinite(self.r2) else None, "epoch": self.epoch, "bad": self.bad}

    def restore(self, summary: dict[str, Any] | None, weights: dict[str, torch.Tensor] | None) -> None:
        if summary:
            self.r2 = -math.inf if summary.get("r2") is None else float(summary["r2"])
            self.epoch, self.bad = int(summary["epoch"]), int(summary["bad"])
            self.weights = weights


@dataclass
class TrainState:
    """One checkpoint of the loop, after ``epoch`` epochs."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # BestTracker.summary()
    best_weights: dict[str, torch.Tensor] | None = None

    def final_weights(self, cfg: AEConfig) -> dict[str, torch.Tensor]:
        """The weights the stage keeps: the best-validation ones when ``keep_best``, else the last."""
        if cfg.keep_best and self.best_weights is not None:
            return self.best_weights
        return self.model


def save_train_state(directory: str | Path, state: TrainState) -> None:
    d = Path(directory)
    tensors = {"model": state.model, "optimizer": state.optimizer, "best_weights": state.best_weights}
    torch.save(tensors, d / TENSORS_FILE)
    write_json(d / JSON_FILE, {"epoch": state.epoch, "history": state.history, "best": state.best})


def load_train_state(directory: str | Path) -> TrainState:
    """The checkpoint in ``directory``; a clear error for one written by an older version (its
    state was a pickle, which this version does not unpickle)."""
    d = Path(directory)
    if not (d / JSON_FILE).is_file():
        raise FileNotFoundError(
            f"the checkpoint in {d} has no {JSON_FILE}: it was written by an older version of hyperrep_ray "
            f"(a pickled training state, which is not loaded because unpickling runs code); retrain the "
            f"autoencoder into a new --out directory"
        )
    tensors = torch.load(d / TENSORS_FILE, map_location="cpu", weights_only=True)
    info = json.loads((d / JSON_FILE).read_text())
    return TrainState(
        model=tensors["model"],
        optimizer=tensors["optimizer"],
        epoch=int(info["epoch"]),
        history=list(info["history"]),
        best=info.get("best"),
        best_weights=tensors.get("best_weights"),
    )
