"""Zoo-CNN weights as files people can pass around: safetensors (state_dict keys) or .pt.

``load_zoo_cnn(path)`` gives a ready ``ZooCNN``; generated initialisations and ``predict`` use
these helpers so one file format serves both directions.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

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


class WeightsFileError(ValueError):
    """A weights file that is not a finite zoo-CNN state_dict (the file is named in the message)."""


def load_error_reason(error: BaseException) -> str:
    """Why a weights file did not load, in a few words. torch's weights_only refusal (the file holds
    Python objects besides tensors) is said plainly, without torch's advice to load it unsafely."""
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error):
        return "it holds Python objects besides tensors, which are refused: loading them could run code"
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    first = text.splitlines()[0] if text else ""
    if " " not in first:  # a bare key, offset or nothing: only the type says what went wrong
        return f"unrecognised content: {type(error).__name__} {first}".strip()
    return first[:200]


def read_state_dict(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors by name, metadata) of a .safetensors file or a ``torch.save``d state_dict; the .pt
    path is read with ``weights_only=True`` (tensors and containers only: loading runs no code)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure to parse means the same thing to the user
        kind = "safetensors file" if path.suffix == ".safetensors" else "PyTorch state_dict (torch.save)"
        raise WeightsFileError(
            f"{path} is not a readable {kind} ({load_error_reason(e)}); pass zoo-CNN weights written by "
            f"`hyperrep generate` or torch.save(model.state_dict(), path)"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsFileError(f"{path} holds a {type(sd).__name__}, not a state_dict of tensors")
    return sd, {}


def load_weights(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """(flat float32 vector, metadata) from a .safetensors or .pt state_dict of the zoo CNN; a
    :class:`WeightsFileError` for a file that is not one or holds NaN/inf."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    sd, meta = read_state_dict(path)
    conv1 = sd.get("conv1.weight")
    c = 3 if conv1 is not None and conv1.ndim == 4 and conv1.shape[1] == 3 else 1
    names = [n for n, _ in layer_shapes(c)]
    missing = [n for n in names if n not in sd]
    if missing:
        raise WeightsFileError(
            f"{path} is not a zoo CNN state_dict: missing {', '.join(missing)} (it has {len(sd)} tensors)"
        )
    for n, shape in layer_shapes(c):
        if tuple(sd[n].shape) != shape:
            raise WeightsFileError(f"{path}: {n} has shape {tuple(sd[n].shape)}, the zoo CNN needs {shape}")
        if not sd[n].is_floating_point():
            raise WeightsFileError(f"{path}: {n} holds {sd[n].dtype} values, the zoo CNN needs floats")
    vec = torch.cat([sd[n].reshape(-1).float() for n in names]).numpy()
    if not np.isfinite(vec).all():
        bad = [n for n in names if not torch.isfinite(sd[n].float()).all()]
        raise WeightsFileError(
            f"{path}: NaN or inf values in {', '.join(bad)}; only finite models can be used "
            f"(a diverged training run? use an earlier checkpoint)"
        )
    return vec, meta


def load_zoo_cnn(path: str | Path, activation: str | None = None) -> ZooCNN:
    """A ready-to-use ZooCNN from a weights file (activation from the file's metadata if present)."""
    vec, meta = load_weights(path)
    c = in_channels_for_length(vec.shape[0])
    model = ZooCNN(c, activation or meta.get("activation", "tanh"))
    model.load_state_dict(vector_to_state_dict(vec, c))
    return model
