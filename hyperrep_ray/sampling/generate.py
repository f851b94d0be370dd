"""Generate new zoo-CNN weights from a trained hyper-representation, as files anyone can load.

``generate(ae_dir, n, out_dir)`` samples ``n`` embeddings around the autoencoder's train-split anchors
(``anchors.npz``, written with the autoencoder; default sampler S_KDE30, paper Section 3.2), decodes
them and writes one ``model_{i:03d}.safetensors`` per sample plus ``generated.json`` listing them.
When the autoencoder's zoo can be read, ``generated.json`` also says how new each model is: its
nearest train checkpoint and how close (``hyperrep_ray.weightspace.novelty``).

Loading a generated model needs only PyTorch and safetensors::

    from hyperrep_ray.zoo.weights_io import load_zoo_cnn

    model = load_zoo_cnn("out/model_000.safetensors")  # a ready ZooCNN (activation from the file)
    logits = model(images)  # images: (B, C, 28, 28), preprocessed as the zoo's zoo.json records

The files use the zoo CNN's ``state_dict`` keys (``conv1.weight``, ..., ``fc2.bias``), so
``ZooCNN(...).load_state_dict(safetensors.torch.load_file(path))`` works as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hyperrep_ray.autoencoder.artifacts import load_anchors as read_anchors
from hyperrep_ray.io import write_json
from hyperrep_ray.sampling.novelty_setup import novelty_setup
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH, SAMPLERS, sample

__all__ = ["load_anchors", "sample_embeddings", "novelty_listing", "generate"]


def load_anchors(ae_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(z (M, d_z), test accuracy (M,)) of the train-split anchors kept with the autoencoder."""
    anchors = read_anchors(ae_dir)
    return anchors.z, anchors.test_acc


def sample_embeddings(
    ae_dir: str | Path, n: int, method: str = "kde30", seed: int = 0, bandwidth: float | None = None
) -> np.ndarray:
    """``n`` embeddings (n, d_z) drawn with sampler ``method`` (a key of ``sampling.SAMPLERS``)."""
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampling method {method!r}; valid methods: {', '.join(SAMPLERS)}")
    anchors, acc = load_anchors(ae_dir)
    return sample(
        method, anchors, acc, n, seed, bandwidth=DEFAULT_BANDWIDTH if bandwidth is None else bandwidth
    )


def generate(
    ae_dir: str,
    n: int,
    out_dir: str,
    method: str = "kde30",
    seed: int = 0,
    bandwidth: float | None = None,
    novelty: bool = True,
    data_root: str | None = None,
) -> list[Path]:
    """Sample, decode and write ``n`` models; returns the paths of the weight files.

    Each file's safetensors metadata records the activation, the sampler (method and paper name),
    seed, bandwidth, sample index and the autoencoder's path; ``generated.json`` lists the files with
    the same settings (written last, so its presence means the set is complete). Decoded vectors
    that are not finite are still written, and listed under ``non_finite``. With ``novelty``,
    ``generated.json`` adds :func:`novelty_listing` (``data_root``: where a non-digits zoo's images are).
    """
    from hyperrep_ray.autoencoder.bundle import HyperRepresentation
    from hyperrep_ray.zoo.weights_io import save_weights

    h = DEFAULT_BANDWIDTH if bandwidth is None else float(bandwidth)
    z = sample_embeddings(ae_dir, n, method, seed, h)
    bundle = HyperRepresentation.load(ae_dir)
    weights = bundle.decode(z)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ae = str(Path(ae_dir).resolve())
    settings = {
        "method": method,
        "population": SAMPLERS[method],
        "seed": str(seed),
        "bandwidth": repr(h),
        "ae": ae,
        "dataset": bundle.dataset,
    }
    paths = [
        save_weights(
            w, out / f"model_{i:03d}.safetensors", bundle.activation, sample_index=str(i), **settings
        )
        for i, w in enumerate(weights)
    ]
    listing = {
        **settings,
        "seed": int(seed),
        "bandwidth": h,
        "n": len(paths),
        "activation": bundle.activation,
        "in_channels": bundle.in_channels,
        "files": [p.name for p in paths],
        "non_finite": [p.name for p, w in zip(paths, weights, strict=True) if not np.isfinite(w).all()],
        "loader": "from hyperrep_ray.zoo.weights_io import load_zoo_cnn; model = load_zoo_cnn(path)",
    }
    if novelty:
        listing.update(novelty_listing(ae_dir, weights, [p.name for p in paths], data_root))
    write_json(out / "generated.json", listing)
    return paths


def novelty_listing(
    ae_dir: str | Path, weights: np.ndarray, names: list[str], data_root: str | None = None
) -> dict[str, Any]:
    """``{"novelty": ...}`` for generated.json: the reference (zoo, epoch window, number of train
    checkpoints, L2 scale), the population summary and one record per model name (nearest train
    checkpoint by L2 in canonical order, most similar by wrong predictions). When the zoo or its
    images cannot be read (or are not the ones zoo.json records): ``{"novelty": None, "novelty_note":
    why}``."""
    try:
        setup = novelty_setup(ae_dir, data_root=data_root)
    except (FileNotFoundError, ValueError) as e:  # no zoo / no images (StoreError is a ValueError)
        return {"novelty": None, "novelty_note": f"not measured: {e}"}
    scores = setup.score(weights)
    ref = setup.reference
    return {
        "novelty": {
            "reference": {
                "zoo": setup.zoo,
                "split": "train",
                "epochs_window": list(setup.epochs_window),
                "n_checkpoints": int(ref.model_id.size),
                "l2_scale": ref.scale,
                "test_images": int(ref.masks.shape[1]),
            },
            "summary": scores.summary().model_dump(),
            "models": {n: r.model_dump() for n, r in zip(names, scores.records(ref), strict=True)},
        }
    }
