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

import numpy as np
import torch

from hyperrep_ray import store, tracking
from hyperrep_ray.autoencoder.artifacts import Anchors, save_anchors, save_probes
from hyperrep_ray.autoencoder.bundle import BUNDLE_FILES, HyperRepresentation, architecture_for
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
) -> dict[str, Any]:
    """Train and evaluate one autoencoder; returns its metrics (also in ``out/metrics.json``)."""
    out_dir = Path(out)
    ray_dir = check_out_dir(out_dir, resume)
    t0 = time.perf_counter()
    name = run_name or ("ae" if cfg.lwln else "ae-nolwln")
    params = {"zoo": zoo, **cfg.model_dump(mode="json")}
    with tracking.run(name, params, tracking_uri, nested=nested, tags={"stage": "train-ae"}) as run:
        data = prepare_ae_data(zoo, cfg, data_root=data_root)
        tracking.log_metrics({f"n_{k}": len(v) for k, v in data.weights.items()})
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
        log_stage_outputs(out_dir, metrics, evaluation.figures)
    return metrics


def log_stage_outputs(out_dir: Path, metrics: dict[str, Any], figures: list[Path]) -> None:
    """Metrics, figures, the bundle as an MLflow model; ``metrics.json`` last (it marks completion)."""
    import mlflow

    tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    for fig in figures:
        mlflow.log_artifact(str(fig))
    for f in ("ae.json", "history.json"):
        mlflow.log_artifact(str(out_dir / f))
    log_mlflow_model(out_dir)
    write_json(out_dir / "metrics.json", metrics)
    mlflow.log_artifact(str(out_dir / "metrics.json"))


def log_mlflow_model(out_dir: Path) -> None:
    """Log the bundle as an MLflow pyfunc model: input = weight vectors, output = z.

    The model class is defined here, not at module level, so that MLflow stores it by value
    (cloudpickle) and a logged model loads without this module's import path."""
    import mlflow
    import mlflow.pyfunc

    base: Any = mlflow.pyfunc.PythonModel

    class HyperRepModel(base):
        def load_context(self, context: Any) -> None:
            self.bundle = HyperRepresentation.load(context.artifacts["bundle"])

        # no type hints: MLflow would try (and fail) to derive a signature from them
        def predict(self, context, model_input, params=None):  # noqa: ARG002
            return self.bundle.encode(np.asarray(model_input, dtype=np.float32))

    with bundle_copy(out_dir) as bundle_dir:
        mlflow.pyfunc.log_model(
            name="hyper_representation", python_model=HyperRepModel(), artifacts={"bundle": str(bundle_dir)}
        )


@contextmanager
def bundle_copy(out_dir: Path) -> Iterator[Path]:
    """Just the bundle files (not Ray Train's run directory) in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "bundle"
        dst.mkdir()
        for f in BUNDLE_FILES:
            shutil.copy2(out_dir / f, dst / f)
        yield dst
