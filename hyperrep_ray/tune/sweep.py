"""Ray Tune sweeps over the autoencoder's beta, token sizes and learning rate, and the KDE bandwidth.

What a trial trains and measures is in :mod:`hyperrep_ray.tune.objective`, the space in
:mod:`hyperrep_ray.tune.space`, the outputs in :mod:`hyperrep_ray.tune.results`.

Scheduling: ASHA on the per-epoch objective (``time_attr="epoch"``, rungs at multiples of the config's
``eval_every``, where the objective is fresh); OptunaSearch (TPE) when optuna is installed, else random
search; the preset's own configuration is the first trial, so the sweep measures its gain over it.

Resumable: the experiment lives at ``storage/sweep``; when ``Tuner.can_restore`` finds it, the same call
continues it with ``Tuner.restore`` (finished and failed trials are kept, unfinished ones resume from
their last checkpoint, missing ones are started) until ``num_samples`` trials exist.

Outputs in ``out``: ``best_config.json`` (AEConfig fields: the preset's config with the winning beta,
d_token, d_hidden, d_z and lr; ``hyperrep train-ae --config`` takes it as is), ``best_sampling.json``
(the best bandwidth), ``trials.csv``, ``summary.json`` and ``sweep.json`` (settings and the MLflow parent
run, for resuming). MLflow: one parent run, one child run per trial (params, per-epoch metrics, final
objective, status), logged from the driver by a Tune callback; the best child is tagged
``best_trial=true``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hyperrep_ray import store, tracking
from hyperrep_ray.autoencoder.data import prepare_ae_data
from hyperrep_ray.config import AEConfig, ConfigError, ae_preset
from hyperrep_ray.data.zoo_images import images_for_zoo
from hyperrep_ray.io import write_json
from hyperrep_ray.progress import RunRef
from hyperrep_ray.runtime import ensure_ray
from hyperrep_ray.tune import results
from hyperrep_ray.tune.config import SweepConfig
from hyperrep_ray.tune.mlflow_callback import sweep_logger
from hyperrep_ray.tune.objective import (
    OBJECTIVE,
    SampledAccuracyHook,
    TrialSetup,
    required_novelty,
    sweep_trial,
    trial_name,
)
from hyperrep_ray.tune.space import default_point, search_space
from hyperrep_ray.tune.trial_progress import trial_progress
from hyperrep_ray.weightspace.novelty import wrong_masks

__all__ = ["SweepInterrupted", "SweepPlan", "run_sweep"]

SWEEP_NAME = "sweep"
STATE_JSON = "sweep.json"
#: Validation images: this fraction of the image training set, at most MAX_VAL_IMAGES images.
VAL_FRACTION = 0.2
MAX_VAL_IMAGES = 1000
#: Logical memory a multi-worker trial's driver asks Tune for. Tune needs a non-empty request, and CPUs
#: would be held away from the Ray Train workers the driver launches (a 2-CPU machine would deadlock).
DRIVER_MEMORY_BYTES = 64 * 1024**2


class SweepInterrupted(RuntimeError):
    """The sweep stopped before all trials finished (Ctrl+C, SIGUSR1); rerun the same call to resume."""


@dataclass(frozen=True)
class SweepPlan:
    """A sweep's settings resolved against its zoo: the configs trials start from and where it lives."""

    config: SweepConfig
    zoo_meta: dict[str, Any]
    preset_cfg: AEConfig  # the preset as the user would train it (what best_config.json builds on)
    base: AEConfig  # the preset with the sweep's trial length and per-trial workers
    out_dir: Path
    storage: str
    exp_path: str

    @property
    def epochs(self) -> int:
        return self.base.epochs

    @property
    def state_path(self) -> Path:
        return self.out_dir / STATE_JSON

    def identity(self) -> dict[str, Any]:
        """What decides the sweep's trials: a resumed sweep must have the same."""
        c = self.config
        return {
            "zoo": str(c.zoo),
            "preset": c.preset,
            "num_samples": int(c.num_samples),
            "base_config": self.base.model_dump(mode="json"),
            "bandwidths": list(c.bandwidths),
            "n_samples": int(c.n_samples),
            "samplers": list(c.samplers),
            "min_r2": float(c.min_r2),
            "seed": int(c.seed),
            "search": c.resolved_search(),
            "workers_per_trial": int(c.workers_per_trial),
            "early_stopping": bool(c.early_stopping),
            "storage": self.storage,
        }


@dataclass(frozen=True)
class ParentRun:
    """The sweep's MLflow parent run (the trials are its children)."""

    tracking_uri: str
    experiment_id: str
    run_id: str


def plan_sweep(config: SweepConfig) -> SweepPlan:
    """Resolve the presets against the zoo's data set and the storage paths; creates ``out``."""
    meta = store.read_zoo_meta(config.zoo)
    dataset = str(meta["dataset"])
    window: dict[str, Any] = {"epochs_window": tuple(config.epochs_window)} if config.epochs_window else {}
    preset_cfg = ae_preset(config.preset, dataset, **window)
    base = ae_preset(
        config.preset,
        dataset,
        **window,
        epochs=config.max_epochs,
        num_workers=config.workers_per_trial,
        use_gpu=config.gpus_per_trial > 0,
    )
    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = config.storage or str((out_dir / "ray_tune").resolve())
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    return SweepPlan(config, meta, preset_cfg, base, out_dir, storage, store.join(storage, SWEEP_NAME))


def resume_state(plan: SweepPlan) -> tuple[bool, dict[str, Any]]:
    """(whether Tune can restore the experiment, the saved ``sweep.json``); a saved sweep with other
    settings is an error rather than a silently different sweep."""
    from ray import tune

    state = json.loads(plan.state_path.read_text()) if plan.state_path.exists() else {}
    resume = bool(tune.Tuner.can_restore(plan.exp_path))
    identity = plan.identity()
    if resume and state.get("identity") not in (None, identity):
        changed = sorted(k for k in identity if state["identity"].get(k) != identity[k])
        raise ConfigError(
            f"{plan.exp_path} holds a sweep with other settings ({', '.join(changed)}); rerun it with the "
            f"settings it was started with to resume it, or use another --out / --storage"
        )
    return resume, state


def validation_images(meta: dict[str, Any], data_root: str | None, seed: int) -> tuple[Any, Any]:
    """Held-out part of the zoo's image *training* set (``split_validation``): (x, y)."""
    images = images_for_zoo(meta, data_root)
    n = int(images.train_y.shape[0])
    fraction = min(VAL_FRACTION, MAX_VAL_IMAGES / n)
    _, val = images.split_validation(fraction, seed)
    return val.test_x, val.test_y


def trial_setup(plan: SweepPlan) -> TrialSetup:
    """The zoo's training data and the objective's anchors and validation images, for every trial."""
    c, base = plan.config, plan.base
    lo, hi = base.epochs_window
    print(f"[tune] preparing the {c.preset} autoencoder data of {c.zoo} (zoo epochs {lo}..{hi})")
    # query images for trials the space gives a behavioural loss (behaviour_weight is searched)
    data = prepare_ae_data(c.zoo, base.model_copy(update={"behaviour_weight": 1.0}), data_root=c.data_root)
    val_x, val_y = validation_images(plan.zoo_meta, c.data_root, c.seed)
    ref_masks = wrong_masks(data.weights["train"], val_x, val_y, data.activation)
    hook = SampledAccuracyHook(
        anchors_w=data.weights["train"],
        anchor_accuracy=data.meta["train"]["train_acc"].to_numpy(np.float64),
        val_x=val_x,
        val_y=val_y,
        activation=data.activation,
        in_channels=data.in_channels,
        bandwidths=c.bandwidths,
        n_samples=c.n_samples,
        seed=c.seed,
        ref_masks=ref_masks,
        required=required_novelty(data.weights["val"], ref_masks, val_x, val_y, data.activation),
        min_r2=c.min_r2,
        method=c.samplers[0],
    )
    return TrialSetup(
        base=base.model_dump(mode="json"),
        payload=data.training_payload(),
        hook=hook,
        workers_per_trial=c.workers_per_trial,
        cpus_per_trial=c.cpus,
        gpus_per_trial=c.gpus_per_trial,
        train_storage=store.join(plan.storage, f"{SWEEP_NAME}_train"),
    )


def max_concurrent_for(cpus: float, gpus: float) -> int:
    """Trials whose Ray Train workers fit the cluster at once (Tune cannot see those resources)."""
    import ray

    res = ray.cluster_resources()
    limits = [int(res.get("CPU", 1) // cpus)] if cpus > 0 else []
    if gpus > 0:
        limits.append(int(res.get("GPU", 0) // gpus))
    return max(1, min(limits) if limits else 1)


def make_trainable(config: SweepConfig, setup: TrialSetup) -> tuple[Any, int | None]:
    """(the Tune trainable with its resources, the concurrency limit). A single-worker trial asks Tune
    for its CPUs/GPUs; a multi-worker trial's driver asks for memory only and the limit keeps its Ray
    Train workers from oversubscribing the cluster."""
    from ray import tune

    trainable = tune.with_parameters(sweep_trial, setup=setup)
    max_concurrent = config.max_concurrent
    if config.workers_per_trial == 1:
        resources: dict[str, float] = {"cpu": config.cpus, "gpu": config.gpus_per_trial}
    else:
        resources = {"memory": DRIVER_MEMORY_BYTES}
        if max_concurrent is None:
            max_concurrent = max_concurrent_for(config.cpus, config.gpus_per_trial)
    return tune.with_resources(trainable, resources), max_concurrent


def log_sweep_params(plan: SweepPlan) -> None:
    import mlflow

    identity = plan.identity()
    params = tracking.flatten({k: v for k, v in identity.items() if k != "base_config"})
    params.update({f"base.{k}": v for k, v in tracking.flatten(identity["base_config"]).items()})
    params.update({"cpus_per_trial": plan.config.cpus, "gpus_per_trial": plan.config.gpus_per_trial})
    params["objective"] = OBJECTIVE
    items = list(params.items())
    for i in range(0, len(items), 100):  # MLflow takes at most 100 params per call
        mlflow.log_params(dict(items[i : i + 100]))


def start_parent_run(
    plan: SweepPlan, tracking_uri: str | None, saved_run_id: str | None, nested: bool
) -> ParentRun:
    """Start (or, for a resumed sweep whose run still exists, reopen) the parent run; records it in
    ``sweep.json`` so the next resume finds it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking.setup(tracking_uri)
    experiment = mlflow.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT)
    assert experiment is not None, "tracking.setup creates the experiment"
    if saved_run_id:
        try:
            MlflowClient(uri).get_run(saved_run_id)
        except Exception:
            saved_run_id = None
    nest = nested and mlflow.active_run() is not None
    if saved_run_id:
        mlflow.start_run(run_id=saved_run_id, nested=nest)
        run_id = saved_run_id
    else:
        run_id = mlflow.start_run(run_name="tune-sweep", nested=nest, tags={"stage": "tune"}).info.run_id
        log_sweep_params(plan)
    state = {"identity": plan.identity(), "mlflow_parent_run_id": run_id, "experiment_path": plan.exp_path}
    write_json(plan.state_path, state)
    return ParentRun(uri, experiment.experiment_id, run_id)


def new_tuner(
    plan: SweepPlan, trainable: Any, max_concurrent: int | None, callbacks: Sequence[Any], verbose: int
) -> Any:
    """A fresh Tune experiment: the search, the scheduler and the run settings."""
    from ray import tune

    c = plan.config
    return tune.Tuner(
        trainable,
        param_space=search_space(plan.base, c.samplers),
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode="max",
            search_alg=search_algorithm(c, c.points(default_point(plan.base, c.samplers[0]))),
            scheduler=scheduler(c.early_stopping, plan.epochs, plan.base.eval_every),
            num_samples=c.num_samples,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=SWEEP_NAME,
            storage_path=plan.storage,
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=list(callbacks),
            verbose=verbose,
        ),
    )


def search_algorithm(config: SweepConfig, points: list[dict[str, Any]]) -> Any:
    """OptunaSearch (TPE) or random search, both starting with ``points``."""
    if config.resolved_search() == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(points_to_evaluate=points, seed=config.seed)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(points_to_evaluate=points, random_state=config.seed)


def scheduler(early_stopping: bool, epochs: int, eval_every: int) -> Any:
    """ASHA with rungs where the objective is fresh (multiples of ``eval_every``), else FIFO."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if early_stopping and epochs > 1:
        grace = max(1, min(eval_every, epochs))
        return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=3)
    return FIFOScheduler()


def restore_tuner(plan: SweepPlan, trainable: Any) -> Any:
    from ray import tune

    print(f"[tune] resuming the sweep at {plan.exp_path}")
    return tune.Tuner.restore(
        plan.exp_path,
        trainable=trainable,
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


def collect_rows(plan: SweepPlan, result_grid: Any) -> tuple[list[dict[str, Any]], int]:
    """(every trial's row, how many trials finished, failed ones included)."""
    statuses = results.trial_statuses(plan.exp_path)
    rows = results.trial_rows(
        result_grid, statuses, plan.epochs, default_point(plan.base, plan.config.samplers[0])
    )
    return rows, sum(s in ("TERMINATED", "ERROR") for s in statuses.values())


def write_interrupted(
    plan: SweepPlan, rows: list[dict[str, Any]], finished: int, run_info: dict[str, Any], t0: float
) -> None:
    """What an interrupted sweep leaves: the rows so far and a summary saying it was interrupted."""
    results.write_trials_csv(plan.out_dir / results.TRIALS_CSV, rows)
    partial = {"interrupted": True, "trials_finished": finished, **run_info}
    write_json(plan.out_dir / results.SUMMARY_JSON, {**partial, "wall_seconds": time.perf_counter() - t0})


def write_outputs(plan: SweepPlan, rows: list[dict[str, Any]], parent: ParentRun) -> dict[str, Any]:
    """trials.csv, best_config.json, best_sampling.json; the children's status tags; the summary."""
    out_dir, c = plan.out_dir, plan.config
    results.write_trials_csv(out_dir / results.TRIALS_CSV, rows)
    best = results.best_row(rows)
    if best is None:
        results.tag_children(parent.tracking_uri, parent.run_id, rows, None)
        raise RuntimeError(f"no trial finished with an objective; see {out_dir / results.TRIALS_CSV}")
    results.write_best(out_dir, best, plan.preset_cfg, c.bandwidths, c.n_samples)
    results.tag_children(parent.tracking_uri, parent.run_id, rows, best["trial_id"])
    return results.summarize_trials(rows, plan.epochs)


def log_summary(summary: dict[str, Any], out_dir: Path) -> None:
    """The parent run's final metrics, its best-trial tag and the output files."""
    import mlflow

    best = summary["best"]
    metrics = {
        "best_objective": best["objective"],
        "best_reconstruction_r2_val": best["reconstruction_r2_val"],
        "best_bandwidth": best["h"],
        "trials_failed": summary["trials_failed"],
        "wall_seconds": summary["wall_seconds"],
    }
    if summary.get("gain_over_default") is not None:
        metrics["gain_over_default"] = summary["gain_over_default"]
    tracking.log_metrics(metrics)
    mlflow.set_tags({"best_trial_id": best["trial_id"]})
    for f in (results.BEST_CONFIG_JSON, results.BEST_SAMPLING_JSON, results.TRIALS_CSV, results.SUMMARY_JSON):
        mlflow.log_artifact(str(out_dir / f))


def fit_and_report(plan: SweepPlan, tuner: Any, parent: ParentRun, t0: float) -> dict[str, Any]:
    """Run the experiment to its end and write the outputs; raises :class:`SweepInterrupted` when
    Tune returned before every trial finished (it saved its state; the same call resumes)."""
    rows, finished = collect_rows(plan, tuner.fit())
    num_samples = plan.config.num_samples
    run_info = {
        "experiment_path": plan.exp_path,
        "mlflow_parent_run_id": parent.run_id,
        "num_samples": num_samples,
    }
    if finished < num_samples:  # Ctrl+C / SIGUSR1: Tune saved its state and returned early
        write_interrupted(plan, rows, finished, run_info, t0)
        raise SweepInterrupted(
            f"the sweep stopped after {finished} of {num_samples} trials; run the same command "
            f"again to resume it ({plan.exp_path})"
        )
    summary = write_outputs(plan, rows, parent)
    summary.update(run_info, wall_seconds=time.perf_counter() - t0)
    write_json(plan.out_dir / results.SUMMARY_JSON, summary)
    log_summary(summary, plan.out_dir)
    return summary


def run_sweep(
    config: SweepConfig,
    *,
    tracking_uri: str | None = None,
    callbacks: Sequence[Any] = (),
    nested: bool = False,
    verbose: int = 1,
) -> dict[str, Any]:
    """Run (or resume) the sweep; returns the summary also written to ``out/summary.json``.

    ``callbacks`` are extra Tune callbacks; ``nested`` makes the parent run a child of the active
    MLflow run. Raises :class:`SweepInterrupted` when the experiment stopped before every trial
    finished (outputs so far are written; the same call resumes)."""
    import mlflow

    t0 = time.perf_counter()
    plan = plan_sweep(config)
    resume, state = resume_state(plan)
    ensure_ray()
    trainable, max_concurrent = make_trainable(config, trial_setup(plan))
    parent = start_parent_run(
        plan, tracking_uri, state.get("mlflow_parent_run_id") if resume else None, nested
    )
    status = "FAILED"
    try:
        if resume:
            tuner = restore_tuner(plan, trainable)
        else:
            logger = sweep_logger(parent.tracking_uri, parent.experiment_id, parent.run_id)
            run = RunRef(parent.tracking_uri, parent.run_id)
            shown = trial_progress(plan.epochs, config.num_samples, run)
            tuner = new_tuner(plan, trainable, max_concurrent, [logger, shown, *callbacks], verbose)
        summary = fit_and_report(plan, tuner, parent, t0)
        status = "FINISHED"
        return summary
    except SweepInterrupted:
        status = "KILLED"
        raise
    finally:
        mlflow.end_run(status=status)
