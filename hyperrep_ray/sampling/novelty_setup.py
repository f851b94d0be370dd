"""What novelty is measured against, for a trained autoencoder: its zoo's train checkpoints.

The reference set is every train-split checkpoint in the autoencoder's epoch window (what it was
trained on, and where the anchors come from), scored on the zoo's test images and put in the
autoencoder's canonical neuron order. ``ae.json`` records the zoo; :func:`novelty_setup` loads it
once, and the result scores any weights and gives the two reference points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.data.image_data import ImageData
from hyperrep_ray.data.zoo_images import images_for_zoo
from hyperrep_ray.weightspace.novelty import (
    NoveltyReference,
    NoveltyScores,
    NoveltySummary,
    build_reference,
    score_models,
    train_vs_train,
)

__all__ = ["NoveltySetup", "ae_zoo", "novelty_setup"]


@dataclass
class NoveltySetup:
    """The reference checkpoints of one autoencoder and the test images they were scored on."""

    reference: NoveltyReference
    x: torch.Tensor
    y: torch.Tensor
    zoo: str
    epochs_window: tuple[int, int]
    device: str = "cpu"

    def score(self, weights: np.ndarray) -> NoveltyScores:
        """Novelty of weight vectors (M, N) against the train checkpoints."""
        return score_models(weights, self.reference, self.x, self.y, device=self.device)

    def reference_points(self) -> dict[str, NoveltySummary]:
        """``test_split``: the zoo's test-split models in the same epoch window against the train
        checkpoints (omitted when the zoo has none); ``train_vs_train``: each train checkpoint against
        the other train models' checkpoints."""
        lo, hi = self.epochs_window
        out = {}
        w, _ = store.load_weights(self.zoo, epochs=range(lo, hi + 1), split="test")
        if len(w):
            out["test_split"] = self.score(w.numpy()).summary()
        out["train_vs_train"] = train_vs_train(self.reference, self.device).summary()
        return out


def ae_zoo(ae_dir: str | Path) -> str | None:
    """The zoo ``ae.json`` records, if it is still there to read (None otherwise)."""
    zoo = read_ae_info(ae_dir).get("zoo")
    if not zoo:
        return None
    try:
        store.read_zoo_meta(str(zoo))
    except store.StoreError:
        return None
    return str(zoo)


def novelty_setup(
    ae_dir: str | Path,
    zoo: str | None = None,
    data_root: str | None = None,
    device: str = "cpu",
    data: ImageData | None = None,
) -> NoveltySetup:
    """Load the train checkpoints of the autoencoder's epoch window from ``zoo`` (default: the zoo
    ``ae.json`` records), score them on the test images of ``data`` (default: the zoo's own, rebuilt
    from zoo.json; the experiments pass theirs so that accuracies match their tables) and align them to
    the autoencoder's canonical reference (a fitted one if the autoencoder did not align)."""
    info = read_ae_info(ae_dir)
    zoo = zoo or ae_zoo(ae_dir)
    if zoo is None:
        raise FileNotFoundError(
            f"the zoo of {ae_dir} ({info.get('zoo')!r} in ae.json) cannot be read; pass --zoo"
        )
    lo, hi = (int(e) for e in info["config"]["epochs_window"])
    w, meta = store.load_weights(zoo, epochs=range(lo, hi + 1), split="train")
    with np.load(Path(ae_dir) / "normalisation.npz") as npz:
        canonical = npz["reference"] if "reference" in npz.files else None
    images = images_for_zoo(store.read_zoo_meta(zoo), data_root) if data is None else data
    reference = build_reference(
        w.numpy(),
        meta["model_id"].to_numpy(),
        meta["epoch"].to_numpy(),
        images.test_x,
        images.test_y,
        str(info["activation"]),
        canonical,
        device,
    )
    return NoveltySetup(reference, images.test_x, images.test_y, zoo, (lo, hi), device)
