"""MLflow helpers: the one place that knows the tracking URI, how configs become params, and how a
run reads in the MLflow UI (experiment kind and description, run notes, grouped metric names, the zoo
as a dataset input).

Default store: a local SQLite file in the working directory (no server needed), with artifacts
beside it; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` points at a server instead.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_EXPERIMENT = "hyperrep_ray"

#: MLflow 3 shows an experiment as GenAI or model training by this tag (its UI's own selector writes it).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: The UI's description of an experiment or a run (Markdown).
NOTE_TAG = "mlflow.note.content"
EXPERIMENT_NOTE = (
    "Hyper-representations of CNN weights (hyperrep_ray). Each `pipeline-<preset>` run is one whole job; "
    "its children are the stages: `zoo-*` (the model zoo), `ae-*` / `ae-nolwln-*` (the autoencoders, "
    "registered per zoo in the model registry), `experiments` (sampling and Table 1) and one run per "
    "experiment. Filter stages with `tags.stage = 'zoo' | 'ae' | 'experiments'`."
)
#: The split words a metric name may carry; ``metric_name`` moves them to the front (``val/r2``).
SPLITS = ("train", "val", "test")


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
    exp = mlflow.set_experiment(experiment)
    describe_experiment(exp)
    return uri


def describe_experiment(exp: Any) -> None:
    """Mark ``exp`` as model training (so MLflow's UI opens its runs, not GenAI pages) and give it a
    description; tags a user already set are kept."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for key, value in ((EXPERIMENT_KIND_TAG, EXPERIMENT_KIND), (NOTE_TAG, EXPERIMENT_NOTE)):
        if key not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, key, value)


def ui_url(experiment_id: str, base: str = "http://127.0.0.1:5000") -> str:
    """The experiment's runs in MLflow's UI. ``workflowType`` selects the UI's model-training view:
    MLflow 3.17's UI takes the GenAI/model-training switch from the URL or the browser, not from the
    experiment's kind tag."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


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
    description: str | None = None,
) -> Iterator[Any]:
    """An MLflow run that logs the full config as params and as ``config.json``; ``description`` is its
    note in the UI (:func:`describe` replaces it once the result is known). Stage runs (a ``stage``
    tag) record system metrics (CPU, memory, GPU where available) unless
    ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` says otherwise."""
    import mlflow

    if not nested or mlflow.active_run() is None:
        setup(tracking_uri, experiment)
    all_tags = {**(tags or {}), **({NOTE_TAG: description} if description else {})}
    # the system-metrics monitor says "started / skip GPU / stopping / terminated" at INFO per run
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    with mlflow.start_run(
        run_name=name,
        nested=nested and mlflow.active_run() is not None,
        tags=all_tags,
        log_system_metrics=system_metrics_wanted(all_tags),
    ) as r:
        if config:
            params = flatten(config)
            items = list(params.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
            mlflow.log_dict(dict(config), "config.json")
        yield r


def system_metrics_wanted(tags: Mapping[str, str]) -> bool:
    """System metrics for stage runs where MLflow can measure them (it needs ``psutil``: the
    ``system-metrics`` extra); the MLflow environment variable, when set, decides."""
    import importlib.util

    if importlib.util.find_spec("psutil") is None:
        return False
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING") is not None:
        from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

        return bool(MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get())
    return "stage" in tags


def describe(text: str) -> None:
    """The active run's one-line description in the UI (what it did and its headline result)."""
    import mlflow

    mlflow.set_tag(NOTE_TAG, text)


def metric_name(key: str) -> str:
    """``<split>/<rest>`` when ``key`` carries a split word, so MLflow's UI groups a split's charts
    (``reconstruction_r2_val`` -> ``val/reconstruction_r2``, ``train_loss`` -> ``train/loss``,
    ``n_test`` -> ``test/n``); other names stay as they are."""
    words = key.split("_")
    for i, w in enumerate(words):
        if w in SPLITS and len(words) > 1:
            rest = "_".join(words[:i] + words[i + 1 :])
            return f"{w}/{rest}"
    return key


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, group_splits: bool = False
) -> None:
    """Finite values only; ``group_splits`` names them with :func:`metric_name`."""
    import math

    import mlflow

    clean = {
        metric_name(k) if group_splits else k: float(v)
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    }
    if clean:
        mlflow.log_metrics(clean, step=step)


def zoo_digest(zoo: str) -> str:
    """A fingerprint of a weight store without reading its weights: ``zoo.json`` and every shard's
    name and size (shards are written once, atomically, so a changed store has changed files)."""
    import hashlib

    from hyperrep_ray import store

    h = hashlib.sha256(json.dumps(store.read_zoo_meta(zoo), sort_keys=True).encode())
    fs, _ = store.resolve(zoo)
    for path in store.list_shards(zoo):
        h.update(f"{path.rsplit('/', 1)[-1]}:{fs.get_file_info(path).size}".encode())
    return h.hexdigest()[:16]


def log_zoo_input(zoo: str, context: str = "training") -> None:
    """The weight store at ``zoo`` as a dataset input of the active run (its path and digest), so
    the UI lists it under the run's datasets and runs on the same zoo can be found by digest."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    from hyperrep_ray import store

    name = str(store.read_zoo_meta(zoo).get("name", Path(zoo).name))
    if "://" in zoo:
        with warnings.catch_warnings():  # MLflow warns when two of its source types match a URI
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(zoo)
    else:
        source = LocalArtifactDatasetSource(str(Path(zoo).resolve()))
    dataset = MetaDataset(source, name=name, digest=zoo_digest(zoo))  # type: ignore[abstract]
    mlflow.log_input(dataset, context=context)


def zoo_note(summary: Mapping[str, Any]) -> str:
    """A zoo run's one line: models x epochs and the test accuracy at the last epoch."""
    last = max(summary["test_acc"], key=int)
    acc = summary["test_acc"][last]
    return (
        f"zoo {summary['name']}: {summary['models_stored']} models x {last} epochs on {summary['dataset']}; "
        f"test accuracy at epoch {last}: mean {acc['mean']:.3f}, median {acc['median']:.3f}"
    )


#: The populations of the experiments' one line: the paper's sampler and its two baselines.
TABLE1_POPULATIONS = ("S_KDE30", "B_T", "B_KDE30")


def table1_line(summary: Mapping[str, Any]) -> str:
    """The Table 1 line of an experiments summary: mean test accuracy (%) of S_KDE30, B_T and B_KDE30
    at each fine-tuning epoch."""
    ind = summary.get("in_dataset") or {}
    pops = [p for p in TABLE1_POPULATIONS if p in ind]
    epochs = sorted({e for p in pops for e in ind[p]}, key=int)
    if not epochs:
        return "Table 1: no in-dataset populations (see the skipped.* tags)"
    parts = [
        f"epoch {e}: " + ", ".join(f"{p} {100 * ind[p][e]['mean']:.1f}" for p in pops if e in ind[p])
        for e in epochs
    ]
    n = next(iter(ind[pops[0]].values())).get("n", "?")
    return f"Table 1, test accuracy % (n={n}) - " + "; ".join(parts)


def pipeline_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Headline numbers of a pipeline run, named per zoo and stage so two runs compare side by side:
    ``<zoo>/zoo/test_acc``, ``<zoo>/ae/test_r2``, ``<zoo>/ae-nolwln/test_r2`` and
    ``<zoo>/table1/<population>/<epoch>``."""
    out: dict[str, float] = {}
    for name, entry in summary.get("zoos", {}).items():
        zoo = entry.get("zoo") or {}
        if zoo.get("test_acc"):
            out[f"{name}/zoo/test_acc"] = zoo["test_acc"][max(zoo["test_acc"], key=int)]["mean"]
        for label in ("ae", "ae-nolwln"):
            if "reconstruction_r2_test" in (entry.get(label) or {}):
                out[f"{name}/{label}/test_r2"] = entry[label]["reconstruction_r2_test"]
        ind = (entry.get("experiments") or {}).get("in_dataset") or {}
        for pop in TABLE1_POPULATIONS:
            for epoch, s in ind.get(pop, {}).items():
                out[f"{name}/table1/{pop}/{epoch}"] = s["mean"]
    return out


def log_pipeline_result(summary: Mapping[str, Any]) -> None:
    """The pipeline run's headline metrics and its one line (per zoo: zoo accuracy, test R^2, Table 1)."""
    metrics = pipeline_metrics(summary)
    log_metrics(metrics)
    lines = []
    for name, entry in summary.get("zoos", {}).items():
        r2 = metrics.get(f"{name}/ae/test_r2", float("nan"))
        acc = metrics.get(f"{name}/zoo/test_acc", float("nan"))
        exp = entry.get("experiments") or {}
        lines.append(f"{name}: zoo test acc {acc:.3f}, ae test R² {r2:.3f}; {table1_line(exp)}")
    minutes = summary.get("wall_seconds", 0.0) / 60
    describe(f"pipeline {summary.get('preset', '')} ({minutes:.1f} min) - " + " | ".join(lines))


def ui_hint(tracking_uri: str, run_id: str) -> str:
    """How to look at run ``run_id`` in MLflow's UI: a light local server (one web worker, no job
    queue) and the link that opens the experiment's runs."""
    from mlflow.tracking import MlflowClient

    exp_id = MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    return (
        f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --workers 1 --backend-store-uri {tracking_uri}\n"
        f"then open {ui_url(exp_id)}"
    )
