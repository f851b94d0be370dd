"""``SweepConfig``: what one Ray Tune sweep of the autoencoder is (``hyperrep tune``, ``jobs/tune_sweep.py``
and the pipeline's ``--tune`` build the same typed object, so they share defaults and bounds)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hyperrep_ray.config import PresetName, StrictModel
from hyperrep_ray.tune.objective import DEFAULT_BANDWIDTHS, bandwidth_key
from hyperrep_ray.tune.space import TUNABLE_SAMPLERS, SearchPoint


class SweepConfig(StrictModel):
    """One sweep: the zoo, the preset whose space is searched, the trials and their resources.
    The settings that decide which trials exist are the sweep's identity (recorded in ``sweep.json``):
    a rerun with the same identity resumes the sweep, another one is refused."""

    zoo: str = Field(description="weight store written by `hyperrep zoo`")
    out: str = Field(description="output directory (best_config.json, trials.csv, summary.json, ...)")
    preset: PresetName = Field("quick", description="autoencoder preset the space is scaled to")
    num_samples: int = Field(16, ge=1, description="number of trials")
    workers_per_trial: int = Field(1, ge=1, description="Ray Train workers (DDP) per trial; 1 = in-process")
    cpus_per_trial: float | None = Field(
        None, ge=0, description="CPUs per trial, split over its workers; None = 1 per worker"
    )
    gpus_per_trial: float = Field(0.0, ge=0, description="GPUs per trial, split over its workers")
    max_epochs: int | None = Field(
        None, ge=1, description="autoencoder epochs per trial; None = the preset's"
    )
    storage: str | None = Field(None, description="Ray Tune storage path or URI; None = OUT/ray_tune")
    epochs_window: tuple[int, int] | None = Field(None, description="zoo epochs to train on")
    search: Literal["optuna", "random"] | None = Field(
        None, description="search algorithm; None = optuna if installed, else random"
    )
    bandwidths: tuple[float, ...] = Field(
        DEFAULT_BANDWIDTHS, description="KDE bandwidths evaluated per trial (sorted, deduplicated)"
    )
    n_samples: int = Field(
        32, ge=1, description="samples per evaluation (per bandwidth for the KDE samplers)"
    )
    samplers: tuple[str, ...] = Field(
        ("kde30", "kde-joint30", "flow"),
        description="samplers the space chooses among (the first: the default trial's); see TUNABLE_SAMPLERS",
    )
    min_r2: float = Field(
        0.0, description="validation R^2 a trial must reach; below it its objective is penalised by 1"
    )
    seed: int = 0
    max_concurrent: int | None = Field(None, ge=1, description="at most this many trials at once")
    early_stopping: bool = Field(True, description="ASHA stops unpromising trials early")
    points_to_evaluate: list[SearchPoint] | None = Field(
        None, description="the first trials; None = the preset's own values"
    )
    data_root: str | None = Field(None, description="image data set directory (not needed for digits)")

    @field_validator("bandwidths")
    @classmethod
    def _sorted_bandwidths(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        bandwidths = tuple(sorted({float(h) for h in value}))
        if not bandwidths or not all(math.isfinite(h) and h > 0 for h in bandwidths):
            raise ValueError(f"bandwidths must be positive, finite numbers, got {value}")
        if len({bandwidth_key(h) for h in bandwidths}) < len(bandwidths):
            raise ValueError(f"bandwidths must differ in their first 3 significant digits, got {bandwidths}")
        return bandwidths

    @field_validator("samplers")
    @classmethod
    def _known_samplers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in value if m not in TUNABLE_SAMPLERS]
        if not value or unknown:
            raise ValueError(f"samplers must be among {TUNABLE_SAMPLERS}, got {list(value)}")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _some_resources(self) -> SweepConfig:
        if self.cpus == 0 and self.gpus_per_trial == 0:
            raise ValueError("a trial needs some CPUs or GPUs: check --cpus-per-trial / --gpus-per-trial")
        return self

    @property
    def cpus(self) -> float:
        """CPUs per trial (default: one per worker)."""
        return float(self.workers_per_trial if self.cpus_per_trial is None else self.cpus_per_trial)

    def resolved_search(self) -> str:
        """``search``, or optuna when it is installed, else random."""
        if self.search is not None:
            return self.search
        try:
            import optuna  # noqa: F401
        except ImportError:
            return "random"
        return "optuna"

    def points(self, default: dict[str, Any]) -> list[dict[str, Any]]:
        """Tune's ``points_to_evaluate``: the given points, else ``default`` (the preset's values)."""
        if self.points_to_evaluate is None:
            return [dict(default)]
        return [p.model_dump() for p in self.points_to_evaluate]
