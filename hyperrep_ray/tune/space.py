"""The sweep's search space around an autoencoder preset, and the AEConfig a point of it stands for.

Beta is searched through ``one_minus_beta`` so that a log-uniform draw spends as much effort near 0.999
as near 0.9; the widths are searched at 0.5x, 1x and 2x the preset so the preset itself is a point.
The levers that decide whether sampled models are new *and* good are searched too: the latent
penalty, the input standardisation, the behavioural-loss weight and the sampler (``sampler`` is not an
AEConfig field: the objective draws with it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from hyperrep_ray.config import AEConfig, StrictModel, make_config

#: AEConfig fields the sweep searches (beta through ``one_minus_beta``).
TUNED_FIELDS = ("beta", "d_token", "d_hidden", "d_z", "lr", "z_penalty", "standardize", "behaviour_weight")
#: Samplers a sweep may choose among (cheap enough to run at every evaluation of a trial).
TUNABLE_SAMPLERS = ("kde30", "kde-joint30", "kde30-code", "flow")
DEFAULT_SAMPLER = "kde30"
Z_PENALTIES = (0.0, 0.3, 1.0, 3.0)
STANDARDIZE = ("none", "layer", "coordinate")
BEHAVIOUR_WEIGHTS = (0.0, 1.0, 10.0)


class SearchPoint(StrictModel):
    """One point of :func:`search_space`, as Tune's ``points_to_evaluate`` takes it."""

    one_minus_beta: float = Field(ge=0, le=1)
    d_token: int = Field(ge=1)
    d_hidden: int = Field(ge=1)
    d_z: int = Field(ge=1)
    lr: float = Field(gt=0)
    z_penalty: float = Field(0.0, ge=0)
    standardize: Literal["none", "layer", "coordinate"] = "none"
    behaviour_weight: float = Field(0.0, ge=0)
    sampler: Literal["kde30", "kde-joint30", "kde30-code", "flow"] = "kde30"


def scaled_choices(value: int, multiple: int = 1, factors: Sequence[float] = (0.5, 1.0, 2.0)) -> list[int]:
    """``value`` times ``factors``, rounded to a multiple of ``multiple`` (so d_token stays divisible
    by n_heads), deduplicated, ascending."""
    out = {max(multiple, int(round(value * f / multiple)) * multiple) for f in factors}
    return sorted(out)


def search_space(base: AEConfig, samplers: Sequence[str] = (DEFAULT_SAMPLER,)) -> dict[str, Any]:
    """Tune search space around the preset ``base``: beta via 1 - beta log-uniform in [0.001, 0.5]
    (beta 0.5 .. 0.999), d_token / d_hidden / d_z at 0.5x, 1x, 2x the preset (quick: d_z 128..512),
    lr log-uniform in [lr / 10, 3 lr]; z_penalty, standardize and behaviour_weight among
    :data:`Z_PENALTIES`, :data:`STANDARDIZE`, :data:`BEHAVIOUR_WEIGHTS` (with the preset's own value);
    the sampler among ``samplers``."""
    from ray import tune

    return {
        "z_penalty": tune.choice(sorted({*Z_PENALTIES, base.z_penalty})),
        "standardize": tune.choice(list(STANDARDIZE)),
        "behaviour_weight": tune.choice(sorted({*BEHAVIOUR_WEIGHTS, base.behaviour_weight})),
        "sampler": tune.choice(list(samplers)),
        "one_minus_beta": tune.loguniform(1e-3, 0.5),
        "d_token": tune.choice(scaled_choices(base.d_token, base.n_heads)),
        "d_hidden": tune.choice(scaled_choices(base.d_hidden, 8 if base.d_hidden >= 16 else 1)),
        "d_z": tune.choice(scaled_choices(base.d_z, 4 if base.d_z >= 8 else 1)),
        "lr": tune.loguniform(base.lr / 10, base.lr * 3),
    }


def default_point(base: AEConfig, sampler: str = DEFAULT_SAMPLER) -> dict[str, Any]:
    """The preset's own values, as a point of :func:`search_space` (the sweep's first trial)."""
    return {
        "z_penalty": base.z_penalty,
        "standardize": base.standardize,
        "behaviour_weight": base.behaviour_weight,
        "sampler": sampler,
        "one_minus_beta": round(1.0 - base.beta, 12),
        "d_token": base.d_token,
        "d_hidden": base.d_hidden,
        "d_z": base.d_z,
        "lr": base.lr,
    }


def tuned_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`TUNED_FIELDS` values of a point of the space (beta from ``one_minus_beta``); the
    levers a point leaves out (points written before they were searched) keep the config's values."""
    levers = {k: params[k] for k in ("z_penalty", "standardize", "behaviour_weight") if k in params}
    return {
        **levers,
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
