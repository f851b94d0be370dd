"""MLflow helpers: the one place that knows the tracking URI and how configs become params.

Default store: a local SQLite file in the working directory (no server needed), with artifacts
beside it; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` points at a server instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_EXPERIMENT = "hyperrep_ray"


def resolve_tracking_uri(uri: str | None = None) -> str:
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def setup(tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Point MLflow at the store and experiment; returns the tracking URI in use.

    For a SQLite store, artifacts go next to the database file (MLflow would otherwise put them
    under the *current* directory, which differs between the driver and a Ray job)."""
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(uri[len("sqlite:///") :])
            location = (db.parent / "mlartifacts" / experiment).as_uri()
        try:
            mlflow.create_experiment(experiment, artifact_location=location)
        except Exception:  # another process created it first
            if mlflow.get_experiment_by_name(experiment) is None:
                raise
    mlflow.set_experiment(experiment)
    return uri


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, list | tuple):
            out[key] = json.dumps(v)[:500]
        else:
            out[key] = v
    return out


@contextmanager
def run(
    name: str,
    config: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """An MLflow run that logs the full config as params and as ``config.json``."""
    import mlflow

    if not nested or mlflow.active_run() is None:
        setup(tracking_uri, experiment)
    with mlflow.start_run(
        run_name=name, nested=nested and mlflow.active_run() is not None, tags=dict(tags or {})
    ) as r:
        if config:
            params = flatten(config)
            items = list(params.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
            mlflow.log_dict(dict(config), "config.json")
        yield r


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    import math

    import mlflow

    clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    if clean:
        mlflow.log_metrics(clean, step=step)
