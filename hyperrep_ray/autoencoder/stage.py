"""The autoencoder stage as users run it: data -> Ray Train -> bundle -> metrics, in MLflow.

Outputs in ``out``: the bundle (``model.pt``, ``ae.json``, ``normalisation.npz``), fitted probes
(``probes.pkl``), ``metrics.json`` (written last: its presence means the stage is complete),
``history.json``, PNG figures, and Ray Train's run directory ``ray_train/`` with checkpoints.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hyperrep_ray import store, tracking
from hyperrep_ray.autoencoder.bundle import HyperRepresentation, architecture_for
from hyperrep_ray.autoencoder.data import AEData, prepare_ae_data
from hyperrep_ray.autoencoder.loop import fit_autoencoder
from hyperrep_ray.config import AEConfig
from hyperrep_ray.io import write_json


def build_bundle(cfg: AEConfig, data: AEData, state: dict[str, Any]) -> HyperRepresentation:
    from hyperrep_ray.autoencoder.model import HyperAutoencoder

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


def save_anchors(bundle: HyperRepresentation, data: AEData, out_dir: str | Path) -> Path:
    """Train-split embeddings with their accuracies (``anchors.npz``): what the samplers draw
    around, kept with the autoencoder so sampling needs no access to the zoo."""
    meta = data.meta["train"]
    path = Path(out_dir) / "anchors.npz"
    np.savez(
        path,
        z=bundle.encode(data.weights["train"], aligned=True),
        test_acc=meta["test_acc"].to_numpy(),
        train_acc=meta["train_acc"].to_numpy(),
        model_id=meta["model_id"].to_numpy(),
        epoch=meta["epoch"].to_numpy(),
    )
    return path


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
    import mlflow

    out_dir = Path(out)
    ray_dir = out_dir / "ray_train"
    if ray_dir.exists() and not resume:
        raise store.StoreError(
            f"{ray_dir} holds an earlier training run; pass --resume to continue it, or use another --out"
        )
    (out_dir / "metrics.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    name = run_name or ("ae" if cfg.lwln else "ae-nolwln")
    with tracking.run(
        name,
        {"zoo": zoo, **cfg.model_dump(mode="json")},
        tracking_uri,
        nested=nested,
        tags={"stage": "train-ae"},
    ) as run:
        data = prepare_ae_data(zoo, cfg)
        tracking.log_metrics({f"n_{k}": len(v) for k, v in data.weights.items()})
        state, history = fit_autoencoder(
            cfg,
            data.worker_payload(),
            str(ray_dir),
            tracking_uri=tracking.resolve_tracking_uri(tracking_uri),
            run_id=run.info.run_id,
            kill_worker_at_epoch=kill_worker_at_epoch,
        )
        t_train = time.perf_counter() - t0
        bundle = build_bundle(cfg, data, state)
        bundle.save(out_dir, extra={"zoo": str(zoo)})
        from hyperrep_ray.autoencoder.evaluate import evaluate_autoencoder

        save_anchors(bundle, data, out_dir)
        metrics, probes, figures = evaluate_autoencoder(bundle, data, zoo, out_dir, data_root=data_root)
        with open(out_dir / "probes.pkl", "wb") as f:
            pickle.dump(probes, f)
        metrics["train_seconds"] = t_train
        metrics["wall_seconds"] = time.perf_counter() - t0
        metrics["epochs_trained"] = len(history)
        evaluated = [h for h in history if "best_epoch" in h]
        if evaluated:  # which epoch's weights were kept (the best validation R^2, or the last)
            metrics["kept_epoch"] = int(evaluated[-1]["best_epoch"]) if cfg.keep_best else len(history)
        write_json(out_dir / "history.json", history)
        tracking.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        for fig in figures:
            mlflow.log_artifact(str(fig))
        for f in ("ae.json", "history.json"):
            mlflow.log_artifact(str(out_dir / f))
        _log_mlflow_model(out_dir)
        write_json(out_dir / "metrics.json", metrics)
        mlflow.log_artifact(str(out_dir / "metrics.json"))
    return metrics


def _log_mlflow_model(out_dir: Path) -> None:
    """Log the bundle as an MLflow pyfunc model: input = weight vectors, output = z."""
    import mlflow
    import mlflow.pyfunc

    class HyperRepModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            self.bundle = HyperRepresentation.load(context.artifacts["bundle"])

        def predict(self, context, model_input, params=None):  # noqa: ARG002
            return self.bundle.encode(np.asarray(model_input, dtype=np.float32))

    with _bundle_copy(out_dir) as bundle_dir:
        mlflow.pyfunc.log_model(
            name="hyper_representation", python_model=HyperRepModel(), artifacts={"bundle": str(bundle_dir)}
        )


@contextmanager
def _bundle_copy(out_dir: Path) -> Iterator[Path]:
    """Just the bundle files (not Ray Train's run directory) in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "bundle"
        dst.mkdir()
        for f in ("model.pt", "ae.json", "normalisation.npz"):
            shutil.copy2(out_dir / f, dst / f)
        yield dst
