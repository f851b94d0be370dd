"""The zoo stage as users run it: train into the store, tracked as one MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hyperrep_ray import tracking
from hyperrep_ray.config import ZooConfig
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.zoo.figures import plot_zoo_accuracy, zoo_summary_markdown
from hyperrep_ray.zoo.train import ZooResult, train_zoo, zoo_summary


def run_zoo_stage(
    cfg: ZooConfig,
    out: str,
    tracking_uri: str | None = None,
    nested: bool = False,
    progress: bool = True,
    data: ImageData | None = None,
) -> tuple[ZooResult, dict[str, Any]]:
    """Train (or finish) the zoo at ``out`` and log config, per-epoch accuracy quantiles,
    zoo.json and an accuracy plot to MLflow."""
    import mlflow

    note = f"Training zoo {cfg.name}: {cfg.num_models} models x {cfg.epochs} epochs"
    with tracking.run(
        f"zoo-{cfg.name}",
        cfg.model_dump(mode="json"),
        tracking_uri,
        nested=nested,
        tags={"stage": "zoo"},
        description=note,
    ):
        result = train_zoo(cfg, out, data=data, progress=progress)
        summary = zoo_summary(out)
        tracking.describe(tracking.zoo_note(summary))
        tracking.log_zoo_input(out, context="output")
        for epoch, s in summary["test_acc"].items():
            tracking.log_metrics({f"test_acc/{k}": v for k, v in s.items() if k != "n"}, step=int(epoch))
        tracking.log_metrics(
            {
                "models_stored": summary["models_stored"],
                "models_diverged": len(result.diverged),
                "wall_seconds": result.seconds,
                "shards_trained": len(result.trained_shards),
            }
        )
        mlflow.log_dict(result.meta, "zoo.json")
        mlflow.log_dict(summary, "zoo_summary.json")
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(plot_zoo_accuracy(summary, Path(tmp) / "zoo_test_accuracy.png")))
            md = Path(tmp) / "zoo_summary.md"
            md.write_text(zoo_summary_markdown(summary) + "\n")
            mlflow.log_artifact(str(md))
    return result, summary
