"""The autoencoder stage as users run it: data -> Ray Train -> bundle -> metrics, in MLflow.

Outputs in ``out``: the bundle (``model.pt``, ``ae.json``, ``normalisation.npz``), the anchors and
fitted probes (:mod:`hyperrep_ray.autoencoder.artifacts`), ``metrics.json`` (written last: its
presence means the stage is complete), ``history.json``, PNG figures, and Ray Train's run
directory ``ray_train/`` with checkpoints.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from hyperrep_ray import store, tracking
from hyperrep_ray.autoencoder import registry
from hyperrep_ray.autoencoder.artifacts import Anchors, save_anchors, save_probes
from hyperrep_ray.autoencoder.bundle import BUNDLE_FILES, HyperRepresentation, architecture_for, read_ae_info
from hyperrep_ray.autoencoder.data import AEData, prepare_ae_data
from hyperrep_ray.autoencoder.evaluate import evaluate_autoencoder
from hyperrep_ray.autoencoder.model import HyperAutoencoder
from hyperrep_ray.autoencoder.trainer import fit_autoencoder
from hyperrep_ray.config import AEConfig
from hyperrep_ray.io import write_json


def build_bundle(cfg: AEConfig, data: AEData, state: dict[str, torch.Tensor]) -> HyperRepresentation:
    """The trained network with everything needed to use it (layout, alignment reference, statistics)."""
    model = HyperAutoencoder(architecture_for(cfg, data.in_channels))
    model.load_state_dict(state)
    return HyperRepresentation(
        model=model.eval(),
        cfg=cfg,
        in_channels=data.in_channels,
        activation=data.activation,
        dataset=data.dataset,
        reference=data.reference,
        var_tokens=data.var_tokens,
        mean_params=data.mean_params,
    )


def train_anchors(bundle: HyperRepresentation, data: AEData) -> Anchors:
    """Train-split embeddings with their accuracies: what the samplers draw around."""
    meta = data.meta["train"]
    return Anchors(
        z=bundle.encode(data.weights["train"], aligned=True),
        test_acc=meta["test_acc"].to_numpy(),
        train_acc=meta["train_acc"].to_numpy(),
        model_id=meta["model_id"].to_numpy(),
        epoch=meta["epoch"].to_numpy(),
    )


def check_out_dir(out_dir: Path, resume: bool) -> Path:
    """Ray Train's run directory under ``out_dir``; an earlier run there needs ``resume``."""
    ray_dir = out_dir / "ray_train"
    if ray_dir.exists() and not resume:
        raise store.StoreError(
            f"{ray_dir} holds an earlier training run; pass --resume to continue it, or use another --out"
        )
    (out_dir / "metrics.json").unlink(missing_ok=True)
    return ray_dir


def kept_epoch(cfg: AEConfig, history: list[dict[str, Any]]) -> int | None:
    """Which epoch's weights the stage kept: the best validation R^2 (``keep_best``) or the last."""
    evaluated = [h for h in history if "best_epoch" in h]
    if not evaluated:
        return None
    return int(evaluated[-1]["best_epoch"]) if cfg.keep_best else len(history)


def run_ae_stage(
    zoo: str,
    out: str,
    cfg: AEConfig,
    tracking_uri: str | None = None,
    nested: bool = False,
    resume: bool = False,
    data_root: str | None = None,
    run_name: str | None = None,
    kill_worker_at_epoch: int | None = None,
    alias: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate one autoencoder; returns its metrics (also in ``out/metrics.json``). The
    autoencoder becomes a new version of the zoo's registered model (``alias`` set on it when given)."""
    out_dir = Path(out)
    ray_dir = check_out_dir(out_dir, resume)
    t0 = time.perf_counter()
    name = run_name or ("ae" if cfg.lwln else "ae-nolwln")
    params = {"zoo": zoo, **cfg.model_dump(mode="json")}
    tags = {"stage": "ae", "loss": "lwln" if cfg.lwln else "nolwln"}
    note = f"Training the autoencoder on {zoo} ({cfg.epochs} epochs, {cfg.num_workers} DDP workers)"
    with tracking.run(name, params, tracking_uri, nested=nested, tags=tags, description=note) as run:
        tracking.log_zoo_input(zoo)
        data = prepare_ae_data(zoo, cfg, data_root=data_root)
        tracking.log_metrics({f"n_{k}": len(v) for k, v in data.weights.items()}, group_splits=True)
        state, history = fit_autoencoder(
            cfg,
            data.training_payload(),
            str(ray_dir),
            tracking_uri=tracking.resolve_tracking_uri(tracking_uri),
            run_id=run.info.run_id,
            kill_worker_at_epoch=kill_worker_at_epoch,
        )
        t_train = time.perf_counter() - t0
        bundle = build_bundle(cfg, data, state)
        bundle.save(out_dir, extra={"zoo": str(zoo)})
        save_anchors(out_dir, train_anchors(bundle, data))
        evaluation = evaluate_autoencoder(bundle, data, zoo, out_dir, data_root=data_root)
        save_probes(out_dir, evaluation.probes)
        metrics = evaluation.metrics
        metrics.update(
            train_seconds=t_train, wall_seconds=time.perf_counter() - t0, epochs_trained=len(history)
        )
        epoch = kept_epoch(cfg, history)
        if epoch is not None:
            metrics["kept_epoch"] = epoch
        write_json(out_dir / "history.json", history)
        record_outputs(out_dir, zoo, name, metrics, evaluation.figures, alias)
    return metrics


def record_outputs(
    out_dir: Path, zoo: str, name: str, metrics: dict[str, Any], figures: list[Path], alias: str | None
) -> None:
    """What the active run shows of a trained autoencoder in ``out_dir``: its one-line result, metrics,
    figures, the registered model version; then ``metrics.json`` (last: it marks the stage complete)."""
    headline = headline_note(name, zoo, metrics)
    tracking.describe(headline)
    log_stage_outputs(out_dir, metrics, figures)
    register_model(out_dir, zoo, headline, alias)
    write_json(out_dir / "metrics.json", metrics)
    log_artifact(out_dir / "metrics.json")


def headline_note(name: str, zoo: str, metrics: dict[str, Any]) -> str:
    """The run's one line in the UI: what it trained, its test R^2 and the epoch it kept."""
    kept = metrics.get("kept_epoch")
    trained = metrics["epochs_trained"]
    kept_text = f"kept the weights of epoch {kept} of {trained}" if kept else f"{trained} epochs"
    return (
        f"{name}: autoencoder on zoo {store.read_zoo_meta(zoo)['name']} - test R² "
        f"{metrics.get('reconstruction_r2_test', float('nan')):.3f}, {kept_text}"
    )


def log_stage_outputs(out_dir: Path, metrics: dict[str, Any], figures: list[Path]) -> None:
    """Metrics (grouped by split, e.g. ``test/reconstruction_r2``), figures, ``ae.json``, ``history.json``."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    tracking.log_metrics(numbers, group_splits=True)
    for f in [*figures, out_dir / "ae.json", out_dir / "history.json"]:
        log_artifact(f)


def log_artifact(path: Path) -> None:
    import mlflow

    mlflow.log_artifact(str(path))


def register_model(out_dir: Path, zoo: str, description: str, alias: str | None) -> None:
    """The bundle in ``out_dir`` as a new version of its zoo's registered model (logged from code)."""
    import mlflow

    meta, info = store.read_zoo_meta(zoo), read_ae_info(out_dir)
    shapes = (int(meta["num_params"]), int(info["config"]["d_z"]))
    run = mlflow.active_run()
    tags = {
        "zoo": str(zoo),
        "zoo_digest": tracking.zoo_digest(zoo),
        "lwln": str(info["config"]["lwln"]).lower(),
        "run_name": run.info.run_name if run else "",
    }
    with bundle_copy(out_dir) as bundle_dir:
        registry.log_autoencoder(bundle_dir, str(meta["name"]), shapes, description, tags, alias)


@contextmanager
def bundle_copy(out_dir: Path) -> Iterator[Path]:
    """Just the bundle files (not Ray Train's run directory) in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "bundle"
        dst.mkdir()
        for f in BUNDLE_FILES:
            shutil.copy2(out_dir / f, dst / f)
        yield dst
