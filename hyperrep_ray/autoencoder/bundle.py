"""A trained hyper-representation as one object: encode weights -> z, decode z -> weights.

It carries everything needed besides the network: the token layout, the alignment reference
(new models are put in the same canonical neuron order before encoding) and the train-split
statistics. Saved as a plain directory (``model.pt``, ``ae.json``, ``normalisation.npz``) so it
can be copied, logged to MLflow and loaded without Ray.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperrep_ray.autoencoder.data import align_weights
from hyperrep_ray.autoencoder.model import AEArchitecture, HyperAutoencoder
from hyperrep_ray.config import AEConfig
from hyperrep_ray.io import write_json, write_npz, write_with
from hyperrep_ray.weightspace.tokens import token_layout, tokens_to_vectors, vectors_to_tokens
from hyperrep_ray.zoo.weights_io import load_error_reason

#: The files that make a directory a trained autoencoder (written by :meth:`HyperRepresentation.save`).
BUNDLE_FILES = ("model.pt", "ae.json", "normalisation.npz")


class NotABundleError(ValueError):
    """A directory with the bundle's file names whose contents are not a bundle this version wrote."""


def read_ae_info(directory: str | Path) -> dict[str, Any]:
    """``ae.json`` of a trained autoencoder directory; a clear error when ``directory`` is not one."""
    d = Path(directory)
    missing = [f for f in BUNDLE_FILES if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{d} is not a trained autoencoder (missing {', '.join(missing)}); "
            f"train one with `hyperrep train-ae --zoo ZOO --out {d}`"
        )
    try:
        return dict(json.loads((d / "ae.json").read_text()))
    except ValueError as e:
        raise NotABundleError(f"{d / 'ae.json'} is not JSON ({e}); retrain the autoencoder") from None


def architecture_for(cfg: AEConfig, in_channels: int) -> AEArchitecture:
    layout = token_layout(in_channels)
    return AEArchitecture(
        n_tokens=layout.n_tokens,
        token_dim=layout.token_dim,
        layer_of_token=layout.layer_of_token.tolist(),
        d_token=cfg.d_token,
        d_hidden=cfg.d_hidden,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_z=cfg.d_z,
        dropout=cfg.dropout,
        compression=cfg.compression,
        proj_layers=cfg.proj_layers,
        proj_width=cfg.proj_width,
        proj_dim=cfg.proj_dim,
    )


@dataclass
class HyperRepresentation:
    model: HyperAutoencoder
    cfg: AEConfig
    in_channels: int
    activation: str
    dataset: str
    reference: np.ndarray | None
    var_tokens: np.ndarray
    mean_params: np.ndarray
    device: str = "cpu"

    @torch.no_grad()
    def encode(
        self, weights: np.ndarray | torch.Tensor, batch_size: int = 512, aligned: bool = False
    ) -> np.ndarray:
        """z (M, d_z) of flat weight vectors (M, N); aligns them first unless ``aligned``."""
        w = np.asarray(weights.cpu() if torch.is_tensor(weights) else weights, dtype=np.float32)
        layout = token_layout(self.in_channels)
        if w.ndim != 2 or w.shape[1] != layout.n_params:
            raise ValueError(f"weights must be (M, {layout.n_params}), got {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError("weights contain NaN/inf; only finite models can be embedded")
        if not aligned:
            w = align_weights(w, self.reference, self.in_channels)
        self.model.eval()
        out = []
        for i in range(0, len(w), batch_size):
            t = vectors_to_tokens(torch.from_numpy(w[i : i + batch_size]).to(self.device), layout)
            out.append(self.model.encode(t).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.cfg.d_z), np.float32)

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
        """Flat weight vectors (M, N) decoded from embeddings (M, d_z) (in canonical order)."""
        zz = torch.as_tensor(np.asarray(z.cpu() if torch.is_tensor(z) else z, dtype=np.float32))
        if zz.ndim != 2 or zz.shape[1] != self.cfg.d_z:
            raise ValueError(f"z must be (M, {self.cfg.d_z}), got {tuple(zz.shape)}")
        layout = token_layout(self.in_channels)
        self.model.eval()
        out = []
        for i in range(0, len(zz), batch_size):
            tok = self.model.decode(zz[i : i + batch_size].to(self.device))
            out.append(tokens_to_vectors(tok.float(), layout).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, layout.n_params), np.float32)

    def reconstruct(self, weights: np.ndarray, aligned: bool = False) -> np.ndarray:
        return self.decode(self.encode(weights, aligned=aligned))

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the bundle files (each atomically); ``extra`` goes into ``ae.json`` (e.g. the zoo)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = self.model.state_dict()
        write_with(d / "model.pt", lambda tmp: torch.save(state, tmp))
        arrays = {"var_tokens": self.var_tokens, "mean_params": self.mean_params}
        if self.reference is not None:
            arrays["reference"] = self.reference
        write_npz(d / "normalisation.npz", arrays)
        info = {
            "config": self.cfg.model_dump(mode="json"),
            "in_channels": self.in_channels,
            "activation": self.activation,
            "dataset": self.dataset,
            "architecture": asdict(architecture_for(self.cfg, self.in_channels)),
            **(extra or {}),
        }
        write_json(d / "ae.json", info)
        return d

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> HyperRepresentation:
        """The bundle in ``directory`` (a clear error when it is not a trained autoencoder)."""
        d = Path(directory)
        info = read_ae_info(d)
        cfg = AEConfig(**info["config"])
        model = HyperAutoencoder(architecture_for(cfg, int(info["in_channels"])))
        try:  # weights_only: tensors and containers only, so a planted model.pt runs no code
            state = torch.load(d / "model.pt", map_location=device, weights_only=True)
            for name in ("token_shift", "token_scale"):  # saved before standardisation existed: identity
                state.setdefault(name, getattr(model, name))
            model.load_state_dict(state)
        except Exception as e:  # unreadable, not a state_dict, or another architecture's
            raise NotABundleError(
                f"{d / 'model.pt'} is not the weights `hyperrep train-ae` saved for this ae.json "
                f"({load_error_reason(e)}); "
                f"retrain the autoencoder or copy its directory again"
            ) from None
        model.to(device).eval()
        try:  # allow_pickle stays False: an object array in a planted file is refused, not unpickled
            with np.load(d / "normalisation.npz") as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as e:
            raise NotABundleError(
                f"{d / 'normalisation.npz'} is not the arrays `hyperrep train-ae` saved ({e}); retrain"
            ) from None
        return cls(
            model=model,
            cfg=cfg,
            in_channels=int(info["in_channels"]),
            activation=info["activation"],
            dataset=info["dataset"],
            reference=arrays.get("reference"),
            var_tokens=arrays["var_tokens"],
            mean_params=arrays["mean_params"],
            device=device,
        )
