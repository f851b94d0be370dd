"""The sweep's search space around an autoencoder preset, and the AEConfig a point of it stands for.

Beta is searched through ``one_minus_beta`` so that a log-uniform draw spends as much effort near 0.999
as near 0.9; the widths are searched at 0.5x, 1x and 2x the preset so the preset itself is a point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from hyperrep_ray.config import AEConfig, StrictModel, make_config

#: AEConfig fields the sweep searches (beta through ``one_minus_beta``).
TUNED_FIELDS = ("beta", "d_token", "d_hidden", "d_z", "lr")


class SearchPoint(StrictModel):
    """One point of :func:`search_space`, as Tune's ``points_to_evaluate`` takes it."""

    one_minus_beta: float = Field(ge=0, le=1)
    d_token: int = Field(ge=1)
    d_hidden: int = Field(ge=1)
    d_z: int = Field(ge=1)
    lr: float = Field(gt=0)


def scaled_choices(value: int, multiple: int = 1, factors: Sequence[float] = (0.5, 1.0, 2.0)) -> list[int]:
    """``value`` times ``factors``, rounded to a multiple of ``multiple`` (so d_token stays divisible
    by n_heads), deduplicated, ascending."""
    out = {max(multiple, int(round(value * f / multiple)) * multiple) for f in factors}
    return sorted(out)


def search_space(base: AEConfig) -> dict[str, Any]:
    """Tune search space around the preset ``base``: beta via 1 - beta log-uniform in [0.001, 0.5]
    (beta 0.5 .. 0.999), d_token / d_hidden / d_z at 0.5x, 1x, 2x the preset, lr log-uniform in
    [lr / 10, 3 lr]."""
    from ray import tune

    return {
        "one_minus_beta": tune.loguniform(1e-3, 0.5),
        "d_token": tune.choice(scaled_choices(base.d_token, base.n_heads)),
        "d_hidden": tune.choice(scaled_choices(base.d_hidden, 8 if base.d_hidden >= 16 else 1)),
        "d_z": tune.choice(scaled_choices(base.d_z, 4 if base.d_z >= 8 else 1)),
        "lr": tune.loguniform(base.lr / 10, base.lr * 3),
    }


def default_point(base: AEConfig) -> dict[str, Any]:
    """The preset's own values, as a point of :func:`search_space` (the sweep's first trial)."""
    return {
        "one_minus_beta": round(1.0 - base.beta, 12),
        "d_token": base.d_token,
        "d_hidden": base.d_hidden,
        "d_z": base.d_z,
        "lr": base.lr,
    }


def tuned_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`TUNED_FIELDS` values of a point of the space (beta from ``one_minus_beta``)."""
    return {
        "beta": round(1.0 - float(params["one_minus_beta"]), 12),
        "d_token": int(params["d_token"]),
        "d_hidden": int(params["d_hidden"]),
        "d_z": int(params["d_z"]),
        "lr": float(params["lr"]),
    }


def trial_ae_config(base: AEConfig, params: Mapping[str, Any]) -> AEConfig:
    """The AEConfig one trial trains: ``base`` (preset + sweep settings) with the trial's values.
    Applied to the preset's own config it is what ``best_config.json`` holds: trial length and
    per-trial workers are sweep settings and are not copied."""
    config: AEConfig = make_config(AEConfig, {**base.model_dump(), **tuned_values(params)})
    return config
