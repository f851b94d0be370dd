"""The whole method as one job: zoo -> autoencoder (+ its --no-lwln baseline) -> sampling and
evaluation -> report. Orchestration only: every stage is a public function of its module.

A run holds one lock on its local out dir (:mod:`hyperrep_ray.run_lock`; a remote --out is not
locked): a second pipeline, or a stage command, on the same tree stops at once; the stages are
called as functions, inside that one lock. A killed run's lock is taken over by the rerun.

Each stage writes its outputs and, last, a ``stage.json`` with the fingerprint of its inputs.
A rerun skips a stage whose ``stage.json`` matches (its outputs are complete by construction),
resumes one that has no ``stage.json`` yet (Ray Train / shard resume), and moves a stage whose
inputs changed aside (``<dir>.stale-<time>``) before redoing it, so nothing is silently reused
and nothing already written is destroyed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperrep_ray import remote_out, tracking
from hyperrep_ray.autoencoder.registry import pipeline_alias
from hyperrep_ray.autoencoder.stage import run_ae_stage
from hyperrep_ray.config import (
    PRESETS,
    AEConfig,
    ConfigError,
    ExperimentsConfig,
    ZooConfig,
    ae_preset,
    experiments_preset,
    make_config,
    zoo_preset,
)
from hyperrep_ray.experiments.runner import run_experiments
from hyperrep_ray.io import write_json, write_text
from hyperrep_ray.report.tables import pipeline_markdown
from hyperrep_ray.run_lock import local_output_lock
from hyperrep_ray.runtime import ensure_ray
from hyperrep_ray.tune.config import SweepConfig
from hyperrep_ray.tune.space import TUNED_FIELDS
from hyperrep_ray.tune.sweep import run_sweep
from hyperrep_ray.zoo.figures import plot_zoo_accuracy
from hyperrep_ray.zoo.stage import run_zoo_stage
from hyperrep_ray.zoo.train import zoo_summary

PAPER_DATASETS = ("mnist", "svhn", "cifar10", "stl10")


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_done(directory: Path, inputs: dict[str, Any]) -> bool:
    """True when the stage finished with exactly these inputs; a finished stage with other inputs
    is moved aside so it is redone, never silently reused."""
    marker = directory / "stage.json"
    if not marker.exists():
        return False
    recorded = json.loads(marker.read_text())
    if recorded.get("fingerprint") == fingerprint(inputs):
        return True
    stale = directory.with_name(f"{directory.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(str(directory), str(stale))
    print(f"[pipeline] inputs of {directory.name} changed; previous outputs moved to {stale.name}")
    return False


def mark_done(directory: Path, inputs: dict[str, Any], seconds: float) -> None:
    write_text(
        directory / "stage.json",
        json.dumps(
            {"fingerprint": fingerprint(inputs), "inputs": inputs, "seconds": seconds}, indent=2, default=str
        ),
    )


def pipeline_configs(preset: str, data_root: str | None = None) -> list[tuple[ZooConfig, AEConfig, AEConfig]]:
    """(zoo, autoencoder, --no-lwln autoencoder) per zoo of the preset."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    datasets = PAPER_DATASETS if preset == "paper" else ("digits",)
    out = []
    for ds in datasets:
        zoo = zoo_preset(preset, ds, data_root=data_root)
        ae = ae_preset(preset, ds)
        out.append((zoo, ae, ae.model_copy(update={"lwln": False})))
    return out


@dataclass(frozen=True)
class StageContext:
    """Where one pipeline run writes (``root``; mirrored to ``remote`` when --out is remote) and what
    every stage shares."""

    root: Path
    remote: str | None
    tracking_uri: str | None
    data_root: str | None
    log: Callable[[str], None]

    def publish(self, directory: Path) -> None:
        """A finished stage goes to the remote --out at once (nothing to do for a local one)."""
        if self.remote:
            remote_out.push(self.root, self.remote, directory.relative_to(self.root).as_posix())


def run_pipeline(
    preset: str = "quick",
    out: str = "runs/quick",
    tracking_uri: str | None = None,
    data_root: str | None = None,
    ae_override: dict[str, Any] | None = None,
    tune: bool = False,
    tune_samples: int = 16,
    log: Callable[[str], None] = print,
    experiments_override: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or finish) every stage; returns the summary also written to ``out/report/summary.json``.
    A second run on the same out dir raises :class:`~hyperrep_ray.run_lock.OutputInUseError`."""
    remote = str(out) if remote_out.is_remote(str(out)) else None
    root = remote_out.staging_dir(remote) if remote else Path(out)
    with local_output_lock(out, f"full_pipeline --preset {preset} --out {out}"):  # a URI: not locked
        return _run_held(
            root,
            remote,
            preset,
            tracking_uri=tracking_uri,
            data_root=data_root,
            ae_override=ae_override,
            tuning=(preset, tune_samples) if tune else None,
            log=log,
            experiments_override=experiments_override,
        )


def _run_held(
    root: Path,
    remote: str | None,
    preset: str,
    *,
    tracking_uri: str | None,
    data_root: str | None,
    ae_override: dict[str, Any] | None,
    tuning: tuple[str, int] | None,
    log: Callable[[str], None],
    experiments_override: dict[str, Any] | None,
) -> dict[str, Any]:
    """:func:`run_pipeline` in ``root`` (the out dir, or a remote --out's staging dir), which it holds."""
    root.mkdir(parents=True, exist_ok=True)
    ensure_ray()  # after the lock: a second run on this out dir stops before starting Ray
    if remote:
        log(f"[pipeline] {remote}: staged in {root} ({remote_out.pull(remote, root)} files pulled)")
    ctx = StageContext(root, remote, tracking_uri, data_root, log)
    configs = pipeline_configs(preset, data_root)
    exp_cfg = experiments_preset(preset, **(experiments_override or {}))
    summary: dict[str, Any] = {"preset": preset, "out": str(root.resolve()), "zoos": {}, "stage_seconds": {}}
    if remote:
        summary["remote_out"] = remote
    t_all = time.perf_counter()
    note = f"Pipeline {preset}: zoo -> autoencoders -> experiments -> report, in {root}"
    with tracking.run(
        f"pipeline-{preset}",
        {"preset": preset, "out": str(root)},
        tracking_uri,
        tags={"stage": "pipeline"},
        description=note,
    ) as parent:
        summary["mlflow_run_id"] = parent.info.run_id
        for zoo_cfg, ae_cfg, base_cfg in configs:
            if ae_override:
                ae_cfg = ae_cfg.model_copy(update=ae_override)
                base_cfg = base_cfg.model_copy(update=ae_override)
            base = root if len(configs) == 1 else root / zoo_cfg.dataset
            entry = zoo_stages(
                ctx, base, zoo_cfg, ae_cfg, base_cfg, exp_cfg, tuning, summary["stage_seconds"]
            )
            summary["zoos"][zoo_cfg.dataset] = entry
        summary["wall_seconds"] = time.perf_counter() - t_all
        report_dir = root / "report"
        write_report(summary, report_dir)
        import mlflow

        mlflow.log_artifacts(str(report_dir), "report")
        tracking.log_metrics({"wall_seconds": summary["wall_seconds"]})
        tracking.log_pipeline_result(summary)
    if remote:  # the report, and a local MLflow store / artifacts kept under the staging dir
        remote_out.push(root, remote)
        summary["out"] = remote
    return summary


def zoo_stages(
    ctx: StageContext,
    base: Path,
    zoo_cfg: ZooConfig,
    ae_cfg: AEConfig,
    base_cfg: AEConfig,
    exp_cfg: ExperimentsConfig,
    tuning: tuple[str, int] | None,
    stage_seconds: dict[str, float],
) -> dict[str, Any]:
    """Every stage of one zoo under ``base``: the zoo, the sweep when ``tuning`` = (preset, trials) is
    given (its winner replaces both autoencoders' tuned fields), both autoencoders, the experiments.
    Returns the zoo's summary entry; each stage's seconds go into ``stage_seconds``."""
    name = zoo_cfg.dataset
    entry: dict[str, Any] = {}
    t0 = time.perf_counter()
    entry["zoo"] = zoo_stage(ctx, base / "zoo", zoo_cfg)
    stage_seconds[f"zoo/{name}"] = time.perf_counter() - t0
    if tuning:
        t0 = time.perf_counter()
        best = _tuned_config(ctx, base / "zoo", base / "tune", *tuning, zoo_cfg)
        ctx.publish(base / "tune")
        ae_cfg = ae_cfg.model_copy(update=best)
        base_cfg = base_cfg.model_copy(update=best)
        stage_seconds[f"tune/{name}"] = time.perf_counter() - t0
    for label, cfg in (("ae", ae_cfg), ("ae-nolwln", base_cfg)):
        t0 = time.perf_counter()
        entry[label] = ae_stage(ctx, base, label, zoo_cfg, cfg)
        stage_seconds[f"{label}/{name}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    entry["experiments"] = _experiments_stage(ctx, base, zoo_cfg, ae_cfg, base_cfg, exp_cfg)
    ctx.publish(base / "experiments")
    stage_seconds[f"experiments/{name}"] = time.perf_counter() - t0
    return entry


def zoo_stage(ctx: StageContext, zoo_dir: Path, zoo_cfg: ZooConfig) -> dict[str, Any]:
    """The zoo's summary: read when the stage finished with this config, else trained."""
    t0 = time.perf_counter()
    inputs = {"zoo": zoo_cfg.identity()}
    if stage_done(zoo_dir, inputs):
        ctx.log(f"[pipeline] zoo {zoo_cfg.dataset}: complete, skipped")
        return zoo_summary(str(zoo_dir))
    ctx.log(
        f"[pipeline] zoo {zoo_cfg.dataset}: training {zoo_cfg.num_models} models x {zoo_cfg.epochs} epochs"
    )
    _, summary = run_zoo_stage(zoo_cfg, str(zoo_dir), ctx.tracking_uri, nested=True)
    mark_done(zoo_dir, inputs, time.perf_counter() - t0)
    ctx.publish(zoo_dir)
    return summary


def ae_stage(ctx: StageContext, base: Path, label: str, zoo_cfg: ZooConfig, cfg: AEConfig) -> dict[str, Any]:
    """The metrics of autoencoder ``label`` (``ae`` or ``ae-nolwln``): read when the stage finished with
    this zoo and config, else trained (resuming a run that did not finish)."""
    t0 = time.perf_counter()
    ae_dir, name = base / label, zoo_cfg.dataset
    inputs = {"zoo": zoo_cfg.identity(), "ae": cfg.model_dump(mode="json")}
    if stage_done(ae_dir, inputs):
        ctx.log(f"[pipeline] {label} {name}: complete, skipped")
        return dict(json.loads((ae_dir / "metrics.json").read_text()))
    ctx.log(f"[pipeline] {label} {name}: training the autoencoder ({cfg.epochs} epochs)")
    metrics = run_ae_stage(
        str(base / "zoo"),
        str(ae_dir),
        cfg,
        ctx.tracking_uri,
        nested=True,
        resume=True,
        data_root=ctx.data_root,
        run_name=f"{label}-{name}",
        alias=pipeline_alias(label),
    )
    mark_done(ae_dir, inputs, time.perf_counter() - t0)
    ctx.publish(ae_dir)
    return metrics


def _experiments_stage(
    ctx: StageContext,
    base: Path,
    zoo_cfg: ZooConfig,
    ae_cfg: AEConfig,
    base_cfg: AEConfig,
    exp_cfg: ExperimentsConfig,
) -> dict[str, Any]:
    """Sampling and evaluation (Figure 4, Table 1, ensembles, transfer) on the stage's autoencoders;
    reruns only when the zoo, either autoencoder or the experiment settings changed."""
    out = base / "experiments"
    inputs = {
        "zoo": zoo_cfg.identity(),
        "ae": ae_cfg.model_dump(mode="json"),
        "ae-nolwln": base_cfg.model_dump(mode="json"),
        "experiments": exp_cfg.model_dump(mode="json"),
    }
    if stage_done(out, inputs):
        ctx.log(f"[pipeline] experiments {zoo_cfg.dataset}: complete, skipped")
        return dict(json.loads((out / "summary.json").read_text()))
    ctx.log(
        f"[pipeline] experiments {zoo_cfg.dataset}: sampling, fine-tuning, {exp_cfg.n} models per population"
    )
    t0 = time.perf_counter()
    summary = run_experiments(
        str(base / "ae"),
        str(base / "ae-nolwln"),
        str(base / "zoo"),
        out,
        exp_cfg,
        tracking_uri=ctx.tracking_uri,
        data_root=ctx.data_root,
        nested=True,
    )
    mark_done(out, inputs, time.perf_counter() - t0)
    return summary


def _tuned_config(
    ctx: StageContext, zoo_dir: Path, tune_dir: Path, preset: str, samples: int, zoo_cfg: ZooConfig
) -> dict[str, Any]:
    """The sweep's winning autoencoder settings (run once; a rerun reads best_config.json)."""
    inputs = {"zoo": zoo_cfg.identity(), "preset": preset, "num_samples": samples}
    if not stage_done(tune_dir, inputs):
        ctx.log(f"[pipeline] tune {zoo_cfg.dataset}: Ray Tune sweep of {samples} trials")
        t0 = time.perf_counter()
        values = {"zoo": str(zoo_dir), "out": str(tune_dir), "preset": preset, "num_samples": samples}
        sweep: SweepConfig = make_config(SweepConfig, values)
        run_sweep(sweep, tracking_uri=ctx.tracking_uri, nested=True)
        mark_done(tune_dir, inputs, time.perf_counter() - t0)
    best = json.loads((tune_dir / "best_config.json").read_text())
    return {k: best[k] for k in TUNED_FIELDS if k in best}


def write_report(summary: dict[str, Any], report_dir: Path) -> None:
    """``report.md`` and ``summary.json`` of the run, each zoo's accuracy figure, and each zoo's
    experiments report and figures copied next to them."""
    report_dir.mkdir(parents=True, exist_ok=True)
    for name, entry in summary["zoos"].items():
        plot_zoo_accuracy(entry["zoo"], report_dir / f"zoo_{name}_test_accuracy.png")
        exp_dir = Path(summary["out"]) / ("" if len(summary["zoos"]) == 1 else name) / "experiments"
        if (exp_dir / "report.md").exists():  # the experiments' tables and figures, in one place
            shutil.copyfile(exp_dir / "report.md", report_dir / f"experiments_{name}.md")
            for png in sorted(exp_dir.glob("*/*.png")):
                shutil.copyfile(png, report_dir / f"{name}_{png.parent.name}_{png.name}")
    write_json(report_dir / "summary.json", summary)  # atomic: a kill leaves the old one or the new one
    write_text(report_dir / "report.md", pipeline_markdown(summary) + "\n")
