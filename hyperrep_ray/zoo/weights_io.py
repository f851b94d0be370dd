"""Zoo-CNN weights as files people can pass around: safetensors (state_dict keys) or .pt.

``load_zoo_cnn(path)`` gives a ready ``ZooCNN``; generated initialisations and ``predict`` use
these helpers so one file format serves both directions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hyperrep_ray.zoo.cnn import ZooCNN, in_channels_for_length, layer_shapes, vector_to_state_dict


def save_weights(vector: np.ndarray, path: str | Path, activation: str = "tanh", **metadata: str) -> Path:
    """Write one flat weight vector as a safetensors file with the zoo CNN's state_dict keys."""
    from safetensors.torch import save_file

    vec = np.asarray(vector, dtype=np.float32)
    c = in_channels_for_length(vec.shape[-1])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "hyperrep_ray.zoo_cnn",
        "in_channels": str(c),
        "activation": activation,
        **{k: str(v) for k, v in metadata.items()},
    }
    save_file({k: v.contiguous() for k, v in vector_to_state_dict(vec, c).items()}, str(path), metadata=meta)
    return path


def load_weights(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """(flat float32 vector, metadata) from a .safetensors or .pt state_dict of the zoo CNN."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    meta: dict[str, str] = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    c = 3 if sd.get("conv1.weight") is not None and sd["conv1.weight"].shape[1] == 3 else 1
    names = [n for n, _ in layer_shapes(c)]
    missing = [n for n in names if n not in sd]
    if missing:
        raise ValueError(f"{path} is not a zoo CNN state_dict: missing {missing}")
    for n, shape in layer_shapes(c):
        if tuple(sd[n].shape) != shape:
            raise ValueError(f"{path}: {n} has shape {tuple(sd[n].shape)}, the zoo CNN needs {shape}")
    vec = torch.cat([sd[n].reshape(-1).float() for n in names]).numpy()
    return vec, meta


def load_zoo_cnn(path: str | Path, activation: str | None = None) -> ZooCNN:
    """A ready-to-use ZooCNN from a weights file (activation from the file's metadata if present)."""
    vec, meta = load_weights(path)
    c = in_channels_for_length(vec.shape[0])
    model = ZooCNN(c, activation or meta.get("activation", "tanh"))
    model.load_state_dict(vector_to_state_dict(vec, c))
    return model
