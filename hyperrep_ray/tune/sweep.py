"""Ray Tune sweeps over the autoencoder's beta, token sizes and learning rate, and the KDE bandwidth.

One trial = one autoencoder trained on the zoo's train split. After every evaluation epoch the trial
measures, on data the final report never uses,

- ``reconstruction_r2_val``: R^2 of the zoo's *val* models after encode -> decode, and
- ``sampled_accuracy_val`` (the objective): mean accuracy of ``n_samples`` kde30-sampled, decoded models
  (epoch 0, no fine-tuning) on a validation part of the image *training* set, held out with
  ``ImageData.split_validation``. Nothing in the sweep uses the test images or the zoo's test split.

The bandwidth h is not a per-trial hyperparameter: every evaluation samples at each of ``bandwidths``
(log-spaced, 0.002 .. 1 by default) around the same anchors, and reports the best accuracy with its h
(``best_bandwidth``). kde30 keeps the top 30 % anchors ranked by the stored ``train_acc`` of the zoo's
train-split checkpoints (accuracy on the image training set), so the test set stays out of the sweep.

Scheduling: ASHA on the per-epoch objective (``time_attr="epoch"``, rungs at multiples of the config's
``eval_every``, where the objective is fresh); OptunaSearch (TPE) when optuna is installed, else random
search; the preset's own configuration is the first trial, so the sweep measures its gain over it.

A trial with one worker runs the autoencoder's training loop (``train_ae.run_training_loop``) directly in
the Tune trial process and reports (and checkpoints) to Tune; with ``workers_per_trial > 1`` the trial is
the driver of a Ray Train ``TorchTrainer`` (DDP) whose rank 0 reports to Tune through
``TuneReportCallback``. Either way a diverging trial (non-finite loss or embeddings) raises and is
recorded as failed; the sweep goes on.

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

import argparse
import copy
import csv
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperrep_ray.config import PRESETS, AEConfig, ConfigError, ae_preset, make_config
from hyperrep_ray.io import atomic_path, write_json

__all__ = [
    "OBJECTIVE",
    "R2_METRIC",
    "DEFAULT_BANDWIDTHS",
    "TUNED_FIELDS",
    "SweepInterrupted",
    "search_space",
    "default_point",
    "trial_ae_config",
    "best_ae_config",
    "SampledAccuracyHook",
    "run_sweep",
    "add_sweep_arguments",
    "sweep_from_args",
]

OBJECTIVE = "sampled_accuracy_val"
R2_METRIC = "reconstruction_r2_val"
#: KDE bandwidths evaluated on every trained autoencoder: log-spaced from the 2022 code's 0.002 to 1.
DEFAULT_BANDWIDTHS: tuple[float, ...] = tuple(float(f"{h:.3g}") for h in np.geomspace(0.002, 1.0, 7))
#: AEConfig fields the sweep searches (beta through ``one_minus_beta``).
TUNED_FIELDS = ("beta", "d_token", "d_hidden", "d_z", "lr")
SWEEP_NAME = "sweep"
#: Validation images: this fraction of the image training set, at most MAX_VAL_IMAGES images.
VAL_FRACTION = 0.2
MAX_VAL_IMAGES = 1000
#: Logical memory a multi-worker trial's driver asks Tune for. Tune needs a non-empty request, and CPUs
#: would be held away from the Ray Train workers the driver launches (a 2-CPU machine would deadlock).
DRIVER_MEMORY_BYTES = 64 * 1024**2


class SweepInterrupted(RuntimeError):
    """The sweep stopped before all trials finished (Ctrl+C, SIGUSR1); rerun the same call to resume."""


# ------------------------------------------------------------------------------------ search space


def _scaled_choices(value: int, multiple: int = 1, factors: Sequence[float] = (0.5, 1.0, 2.0)) -> list[int]:
    """``value`` times ``factors``, rounded to a multiple of ``multiple`` (so d_token stays divisible
    by n_heads), deduplicated, ascending."""
    out = {max(multiple, int(round(value * f / multiple)) * multiple) for f in factors}
    return sorted(out)


def search_space(base: AEConfig) -> dict[str, Any]:
    """Tune search space around the preset ``base``: beta via 1 - beta log-uniform in [0.001, 0.5]
    (beta 0.5 .. 0.999), d_token / d_hidden / d_z at 0.5x, 1x, 2x the preset, lr log-uniform in
    [lr / 10, 3 lr]."""
    from ray import tune

    return {
        "one_minus_beta": tune.loguniform(1e-3, 0.5),
        "d_token": tune.choice(_scaled_choices(base.d_token, base.n_heads)),
        "d_hidden": tune.choice(_scaled_choices(base.d_hidden, 8 if base.d_hidden >= 16 else 1)),
        "d_z": tune.choice(_scaled_choices(base.d_z, 4 if base.d_z >= 8 else 1)),
        "lr": tune.loguniform(base.lr / 10, base.lr * 3),
    }


def default_point(base: AEConfig) -> dict[str, Any]:
    """The preset's own values, as a point of :func:`search_space` (the sweep's first trial)."""
    return {
        "one_minus_beta": round(1.0 - base.beta, 12),
        "d_token": base.d_token,
        "d_hidden": base.d_hidden,
        "d_z": base.d_z,
        "lr": base.lr,
    }


def _tuned_values(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "beta": round(1.0 - float(params["one_minus_beta"]), 12),
        "d_token": int(params["d_token"]),
        "d_hidden": int(params["d_hidden"]),
        "d_z": int(params["d_z"]),
        "lr": float(params["lr"]),
    }


def trial_ae_config(base: AEConfig, params: Mapping[str, Any]) -> AEConfig:
    """The AEConfig one trial trains: ``base`` (preset + sweep settings) with the trial's values."""
    return make_config(AEConfig, {**base.model_dump(), **_tuned_values(params)})


def best_ae_config(preset_cfg: AEConfig, params: Mapping[str, Any]) -> AEConfig:
    """What ``best_config.json`` holds: the preset's config with the winning values (trial length and
    per-trial workers are sweep settings and are not copied)."""
    return trial_ae_config(preset_cfg, params)


# ------------------------------------------------------------------------------------ the objective


@dataclass
class SampledAccuracyHook:
    """``epoch_hook`` of the training loop: on every epoch that evaluated R^2 (and on the first epoch
    of a resumed run), sample ``n_samples`` kde30 embeddings per bandwidth around the train anchors,
    decode them and score them on the validation images; every epoch gets the latest values, so Tune
    and ASHA always see the objective."""

    anchors_w: np.ndarray  # (M, N) aligned train-split weights (the anchors, before encoding)
    anchor_accuracy: np.ndarray  # (M,) stored train_acc of those checkpoints: ranks the top 30 %
    val_x: Any  # torch.Tensor (V, C, 28, 28): held-out training images
    val_y: Any  # torch.Tensor (V,)
    activation: str
    in_channels: int
    bandwidths: tuple[float, ...] = DEFAULT_BANDWIDTHS
    n_samples: int = 32
    seed: int = 0
    _last: dict[str, float] | None = field(default=None, repr=False)

    def fresh(self) -> SampledAccuracyHook:
        """A copy for one trial: no evaluation state, a writable copy of the anchors (arrays that
        come out of Ray's object store are read-only), the images shared."""
        hook = copy.copy(self)
        hook.anchors_w = np.array(self.anchors_w, np.float32)
        hook._last = None
        return hook

    def __call__(self, model: Any, epoch: int, metrics: Mapping[str, Any]) -> dict[str, float]:
        if R2_METRIC in metrics or self._last is None:
            self._last = {**self.evaluate(model), "objective_epoch": int(epoch)}
            if R2_METRIC in metrics:
                self._last[R2_METRIC] = float(metrics[R2_METRIC])
        out = dict(self._last)
        if R2_METRIC in metrics:
            out.pop(R2_METRIC, None)  # the loop's own (fresh) value stays
        return out

    def evaluate(self, model: Any) -> dict[str, float]:
        """kde30 samples at every bandwidth -> decode -> accuracy on the validation images."""
        import torch

        from hyperrep_ray.sampling.samplers import sample
        from hyperrep_ray.weightspace.tokens import token_layout, tokens_to_vectors, vectors_to_tokens
        from hyperrep_ray.zoo.population import evaluate_weight_vectors

        device = next(model.parameters()).device
        layout = token_layout(self.in_channels)
        was = model.training
        model.eval()
        out: dict[str, float] = {}
        try:
            with torch.no_grad():
                w = torch.as_tensor(self.anchors_w, dtype=torch.float32)
                parts = [
                    model.encode(vectors_to_tokens(w[i : i + 512].to(device), layout)).float().cpu()
                    for i in range(0, len(w), 512)
                ]
                z = torch.cat(parts).numpy()
                if not np.isfinite(z).all():
                    raise FloatingPointError("non-finite embeddings of the anchors")
                for i, h in enumerate(self.bandwidths):
                    zs = sample("kde30", z, self.anchor_accuracy, self.n_samples, self.seed + i, bandwidth=h)
                    decoded = tokens_to_vectors(model.decode(torch.from_numpy(zs).to(device)).float(), layout)
                    acc, _ = evaluate_weight_vectors(
                        decoded.cpu(), self.val_x, self.val_y, self.activation, device=device
                    )
                    out[_h_key(h)] = float(np.mean(acc))
        finally:
            model.train(was)
        accs = [out[_h_key(h)] for h in self.bandwidths]
        best = int(np.argmax(accs))  # ties: the smallest bandwidth
        return {OBJECTIVE: accs[best], "best_bandwidth": float(self.bandwidths[best]), **out}


def _h_key(h: float) -> str:
    return f"sampled_accuracy_h{h:.3g}"


class TuneSession:
    """The training loop's view of a Tune trial process (cf. ``train_ae.RayTrainSession``): rank 0 of 1,
    reports and checkpoints go to Ray Tune."""

    rank = 0
    world = 1

    def __init__(self, use_gpu: bool = False) -> None:
        import torch

        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")

    def get_checkpoint(self):
        import ray.tune

        return ray.tune.get_checkpoint()

    def prepare_model(self, model: Any) -> Any:
        return model.to(self.device)

    def checkpoint_from_directory(self, path: str):
        import ray.tune

        return ray.tune.Checkpoint.from_directory(path)

    def report(self, metrics: dict[str, Any], checkpoint=None) -> None:
        import ray.tune

        ray.tune.report(metrics, checkpoint=checkpoint)


def _sweep_trial(config: dict[str, Any], data: dict[str, Any]) -> None:
    """The Tune trainable: train one autoencoder with the trial's values, reporting every epoch."""
    import ray
    import ray.tune

    from hyperrep_ray.autoencoder.loop import run_training_loop, train_loop_per_worker

    cfg = trial_ae_config(AEConfig(**data["base"]), config)
    hook = data["hook"].fresh()
    loop_config = {"cfg": cfg.model_dump(mode="json"), "payload": data["payload"], "epoch_hook": hook}
    workers = int(data["workers_per_trial"])
    if workers == 1:  # writable copies: arrays from the object store are read-only
        loop_config["payload"] = {
            k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in data["payload"].items()
        }
        run_training_loop(loop_config, TuneSession(use_gpu=float(data["gpus_per_trial"]) > 0))
        return

    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    per_worker = {"CPU": float(data["cpus_per_trial"]) / workers}
    if float(data["gpus_per_trial"]) > 0:
        per_worker["GPU"] = float(data["gpus_per_trial"]) / workers
    loop_config["payload"] = ray.put(data["payload"])
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu="GPU" in per_worker, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            # the same name after a Tune restore resumes this Train run from its last checkpoint
            name=f"trial_{ray.tune.get_context().get_trial_id()}",
            storage_path=data["train_storage"],
            failure_config=ray.train.FailureConfig(max_failures=0),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


def _trial_name(trial) -> str:
    return f"trial_{trial.trial_id}"


# ------------------------------------------------------------------------------------ MLflow


_EPOCH_KEYS = ("train_loss", "train_rec", "train_con", "val_rec", "seconds")


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _eval_keys(result: Mapping[str, Any]) -> list[str]:
    return [
        OBJECTIVE,
        R2_METRIC,
        "best_bandwidth",
        *[k for k in result if k.startswith("sampled_accuracy_h")],
    ]


class _MlflowSweepLog:
    """One MLflow child run per trial, under the sweep's parent run, written from the driver (Tune
    callbacks run in the driver process). Mixed into :data:`MlflowSweepLogger` (a ``ray.tune.Callback``)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self._client = None
        self._runs: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_runs")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client, self._runs = None, {}

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def run_id(self, trial) -> str:
        """The trial's child run: found by its tags (a resumed sweep reuses it) or created."""
        tid = trial.trial_id
        if tid in self._runs:
            return self._runs[tid]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.sweep_parent = '{self.parent_run_id}' and tags.trial_id = '{tid}'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=_trial_name(trial),
                tags={
                    "mlflow.parentRunId": self.parent_run_id,
                    "sweep_parent": self.parent_run_id,
                    "trial_id": tid,
                    "stage": "tune-trial",
                },
            )
            run_id = run.info.run_id
            for k, v in {**trial.config, **_tuned_values(trial.config)}.items():
                self.client.log_param(run_id, k, v)
        self._runs[tid] = run_id
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.client.set_tag(self.run_id(trial), "status", "running")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        from mlflow.entities import Metric

        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        keys = list(_EPOCH_KEYS)
        if result.get("objective_epoch") == epoch:  # evaluation metrics only where they were measured
            keys += _eval_keys(result)
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(result[k]), now, epoch) for k in keys if _finite(result.get(k))]
        if metrics:
            self.client.log_batch(self.run_id(trial), metrics=metrics)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        run_id = self.run_id(trial)
        last = trial.last_result or {}
        for k in (OBJECTIVE, R2_METRIC, "best_bandwidth"):
            if _finite(last.get(k)):
                self.client.log_metric(run_id, f"final_{k}", float(last[k]))
        self.client.set_tag(run_id, "status", "finished")
        self.client.set_terminated(run_id, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        run_id = self.run_id(trial)
        self.client.set_tag(run_id, "status", "failed")
        self.client.set_terminated(run_id, "FAILED")


def _logger_class() -> type:
    """``MlflowSweepLogger`` = ``_MlflowSweepLog`` + ``ray.tune.Callback``, made on first use so that
    importing this module (``hyperrep --help``) does not import Ray Tune. It is set as a module
    attribute, so Tune's experiment state pickles the callback by reference, not by value."""
    cls = globals().get("MlflowSweepLogger")
    if cls is None:
        from ray.tune import Callback

        doc = _MlflowSweepLog.__doc__
        cls = type("MlflowSweepLogger", (_MlflowSweepLog, Callback), {"__module__": __name__, "__doc__": doc})
        globals()["MlflowSweepLogger"] = cls
    return cls


def __getattr__(name: str) -> Any:  # PEP 562: lets a fresh process unpickle MlflowSweepLogger
    if name == "MlflowSweepLogger":
        return _logger_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------ the sweep


def _validation_images(meta: dict[str, Any], data_root: str | None, seed: int):
    """Held-out part of the image *training* set (``split_validation``): (x, y)."""
    from hyperrep_ray.data.images import load_dataset

    split_seed = int((meta.get("config") or {}).get("image_split_seed", 0))
    images = load_dataset(meta["dataset"], data_root, split_seed=split_seed)
    n = int(images.train_y.shape[0])
    fraction = min(VAL_FRACTION, MAX_VAL_IMAGES / n)
    _, val = images.split_validation(fraction, seed)
    return val.test_x, val.test_y


def _default_search() -> str:
    try:
        import optuna  # noqa: F401
    except ImportError:
        return "random"
    return "optuna"


def _storage_join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts]) if "://" in root else str(Path(root, *parts))


def _max_concurrent(cpus: float, gpus: float) -> int:
    """Trials whose Ray Train workers fit the cluster at once (Tune cannot see those resources)."""
    import ray

    res = ray.cluster_resources()
    limits = [int(res.get("CPU", 1) // cpus)] if cpus > 0 else []
    if gpus > 0:
        limits.append(int(res.get("GPU", 0) // gpus))
    return max(1, min(limits) if limits else 1)


def _status(tune_status: str | None, metrics: Mapping[str, Any], epochs: int) -> str:
    """failed (ERROR), completed / stopped_early (by ASHA) for TERMINATED, else unfinished."""
    if tune_status == "ERROR":
        return "failed"
    epoch = metrics.get("epoch")
    if tune_status != "TERMINATED" or epoch is None:
        return "unfinished"
    return "completed" if int(epoch) >= epochs else "stopped_early"


def _trial_statuses(exp_path: str) -> dict[str, str]:
    """Tune's status of every trial of the experiment (PENDING, RUNNING, TERMINATED, ERROR, ...)."""
    from ray.tune import ExperimentAnalysis

    return {t.trial_id: t.status for t in ExperimentAnalysis(exp_path).trials}


def _error_text(error: BaseException | None) -> str:
    """One line for trials.csv: "diverged: ..." for a non-finite loss, else the error's last line."""
    if error is None:
        return ""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    diverged = [ln for ln in lines if "FloatingPointError" in ln]
    if diverged:
        return ("diverged: " + diverged[-1].split("FloatingPointError:")[-1].strip())[:300]
    return (lines[-1] if lines else type(error).__name__)[:300]


def _trial_rows(
    results, statuses: Mapping[str, str], epochs: int, default: Mapping[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        cfg = dict(r.config or {})
        m = r.metrics or {}
        tid = str(m.get("trial_id") or Path(str(r.path)).name.removeprefix("trial_"))
        tuned = _tuned_values(cfg) if "one_minus_beta" in cfg else {}
        rows.append(
            {
                "trial_id": tid,
                "status": _status(statuses.get(tid), m, epochs),
                "beta": tuned.get("beta"),
                "d_token": tuned.get("d_token"),
                "d_hidden": tuned.get("d_hidden"),
                "d_z": tuned.get("d_z"),
                "lr": tuned.get("lr"),
                "h": m.get("best_bandwidth"),
                "objective": m.get(OBJECTIVE),
                "reconstruction_r2_val": m.get(R2_METRIC),
                "epochs_run": m.get("epoch"),
                "is_default": all(cfg.get(k) == v for k, v in default.items()),
                "error": _error_text(r.error) if statuses.get(tid) == "ERROR" else "",
                "_config": {k: cfg[k] for k in default if k in cfg},
                "_start": float(m.get("timestamp", math.inf)) - float(m.get("time_total_s", 0.0)),
            }
        )
    rows.sort(key=lambda row: row.pop("_start"))
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols = [c for c in rows[0] if not c.startswith("_")] if rows else ["trial_id"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in cols})


def _ok(row: Mapping[str, Any]) -> bool:
    return row["status"] in ("completed", "stopped_early") and _finite(row["objective"])


def run_sweep(
    zoo: str,
    out: str,
    preset: str = "quick",
    num_samples: int = 16,
    tracking_uri: str | None = None,
    workers_per_trial: int = 1,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float = 0.0,
    max_epochs: int | None = None,
    storage: str | None = None,
    epochs_window: tuple[int, int] | None = None,
    search: str | None = None,
    bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS,
    n_samples: int = 32,
    seed: int = 0,
    max_concurrent: int | None = None,
    early_stopping: bool = True,
    points_to_evaluate: list[dict[str, Any]] | None = None,
    data_root: str | None = None,
    callbacks: Sequence[Any] = (),
    nested: bool = False,
    verbose: int = 1,
) -> dict[str, Any]:
    """Run (or resume) the sweep; returns the summary also written to ``out/summary.json``.

    ``cpus_per_trial``/``gpus_per_trial`` are per trial in total, split evenly over its Ray Train
    workers (default: 1 CPU per worker, no GPU). ``max_epochs`` shortens every trial (default: the
    preset's epochs). ``points_to_evaluate`` are the first trials (default: the preset's own values);
    ``callbacks`` are extra Tune callbacks. Raises :class:`SweepInterrupted` when the experiment
    stopped before every trial finished (outputs so far are written; the same call resumes)."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from hyperrep_ray import store, tracking
    from hyperrep_ray.autoencoder.data import prepare_ae_data
    from hyperrep_ray.runtime import ensure_ray

    t0 = time.perf_counter()
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    if num_samples < 1 or workers_per_trial < 1 or n_samples < 1:
        raise ConfigError("num_samples, workers_per_trial and n_samples must be >= 1")
    bandwidths = tuple(sorted({float(h) for h in bandwidths}))
    if not bandwidths or not all(math.isfinite(h) and h > 0 for h in bandwidths):
        raise ConfigError(f"bandwidths must be positive, finite numbers, got {bandwidths}")
    if len({_h_key(h) for h in bandwidths}) < len(bandwidths):
        raise ConfigError(f"bandwidths must differ in their first 3 significant digits, got {bandwidths}")
    cpus = float(workers_per_trial if cpus_per_trial is None else cpus_per_trial)
    gpus = float(gpus_per_trial or 0.0)
    if cpus < 0 or gpus < 0 or (cpus == 0 and gpus == 0):
        raise ConfigError("a trial needs some CPUs or GPUs: check --cpus-per-trial / --gpus-per-trial")
    search = search or _default_search()
    if search not in ("optuna", "random"):
        raise ConfigError(f"unknown search {search!r}; choose optuna or random")

    meta = store.read_zoo_meta(zoo)
    dataset = str(meta["dataset"])
    preset_overrides: dict[str, Any] = {"epochs_window": tuple(epochs_window)} if epochs_window else {}
    preset_cfg = ae_preset(preset, dataset, **preset_overrides)
    base = ae_preset(
        preset,
        dataset,
        **preset_overrides,
        epochs=max_epochs,
        num_workers=workers_per_trial,
        use_gpu=gpus > 0,
    )
    epochs = base.epochs
    points = (
        [dict(p) for p in points_to_evaluate] if points_to_evaluate is not None else [default_point(base)]
    )

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or str((out_dir / "ray_tune").resolve())
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    exp_path = _storage_join(storage, SWEEP_NAME)
    identity = {
        "zoo": str(zoo),
        "preset": preset,
        "num_samples": int(num_samples),
        "base_config": base.model_dump(mode="json"),
        "bandwidths": list(bandwidths),
        "n_samples": int(n_samples),
        "seed": int(seed),
        "search": search,
        "workers_per_trial": int(workers_per_trial),
        "early_stopping": bool(early_stopping),
        "storage": storage,
    }
    state_path = out_dir / "sweep.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    resume = tune.Tuner.can_restore(exp_path)
    if resume and state.get("identity") not in (None, identity):
        changed = sorted(k for k in identity if state["identity"].get(k) != identity[k])
        raise ConfigError(
            f"{exp_path} holds a sweep with other settings ({', '.join(changed)}); rerun it with the "
            f"settings it was started with to resume it, or use another --out / --storage"
        )

    ensure_ray()
    lo, hi = base.epochs_window
    print(f"[tune] preparing the {preset} autoencoder data of {zoo} (zoo epochs {lo}..{hi})")
    data = prepare_ae_data(zoo, base)
    val_x, val_y = _validation_images(meta, data_root, seed)
    hook = SampledAccuracyHook(
        anchors_w=data.weights["train"],
        anchor_accuracy=data.meta["train"]["train_acc"].to_numpy(np.float64),
        val_x=val_x,
        val_y=val_y,
        activation=data.activation,
        in_channels=data.in_channels,
        bandwidths=bandwidths,
        n_samples=n_samples,
        seed=seed,
    )
    trial_data = {
        "base": base.model_dump(mode="json"),
        "payload": data.worker_payload(),
        "hook": hook,
        "workers_per_trial": workers_per_trial,
        "cpus_per_trial": cpus,
        "gpus_per_trial": gpus,
        "train_storage": _storage_join(storage, f"{SWEEP_NAME}_train"),
    }
    trainable = tune.with_parameters(_sweep_trial, data=trial_data)
    if workers_per_trial == 1:
        resources: dict[str, float] = {"cpu": cpus, "gpu": gpus}
    else:
        resources = {"memory": DRIVER_MEMORY_BYTES}
        if max_concurrent is None:
            max_concurrent = _max_concurrent(cpus, gpus)
    trainable = tune.with_resources(trainable, resources)

    uri = tracking.setup(tracking_uri)
    experiment_id = mlflow.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT).experiment_id
    parent_id = state.get("mlflow_parent_run_id") if resume else None
    if parent_id:
        try:
            MlflowClient(uri).get_run(parent_id)
        except Exception:
            parent_id = None
    nest = nested and mlflow.active_run() is not None
    if parent_id:
        parent = mlflow.start_run(run_id=parent_id, nested=nest)
    else:
        parent = mlflow.start_run(run_name="tune-sweep", nested=nest, tags={"stage": "tune"})
        params = tracking.flatten({k: v for k, v in identity.items() if k != "base_config"})
        params.update({f"base.{k}": v for k, v in tracking.flatten(identity["base_config"]).items()})
        params.update({"cpus_per_trial": cpus, "gpus_per_trial": gpus, "objective": OBJECTIVE})
        items = list(params.items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i : i + 100]))
        parent_id = parent.info.run_id
    write_json(
        state_path, {"identity": identity, "mlflow_parent_run_id": parent_id, "experiment_path": exp_path}
    )

    status = "FAILED"
    try:
        if resume:
            print(f"[tune] resuming the sweep at {exp_path}")
            tuner = tune.Tuner.restore(
                exp_path,
                trainable=trainable,
                resume_unfinished=True,
                resume_errored=False,
                restart_errored=False,
            )
        else:
            if search == "optuna":
                from ray.tune.search.optuna import OptunaSearch

                search_alg = OptunaSearch(points_to_evaluate=points, seed=seed)
            else:
                from ray.tune.search.basic_variant import BasicVariantGenerator

                search_alg = BasicVariantGenerator(points_to_evaluate=points, random_state=seed)
            if early_stopping and epochs > 1:
                grace = max(1, min(base.eval_every, epochs))
                scheduler = ASHAScheduler(
                    time_attr="epoch", max_t=epochs, grace_period=grace, reduction_factor=3
                )
            else:
                scheduler = FIFOScheduler()
            tuner = tune.Tuner(
                trainable,
                param_space=search_space(base),
                tune_config=tune.TuneConfig(
                    metric=OBJECTIVE,
                    mode="max",
                    search_alg=search_alg,
                    scheduler=scheduler,
                    num_samples=num_samples,
                    max_concurrent_trials=max_concurrent,
                    reuse_actors=True,
                    trial_name_creator=_trial_name,
                    trial_dirname_creator=_trial_name,
                ),
                run_config=tune.RunConfig(
                    name=SWEEP_NAME,
                    storage_path=storage,
                    failure_config=tune.FailureConfig(max_failures=0),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[_logger_class()(uri, experiment_id, parent_id), *callbacks],
                    verbose=verbose,
                ),
            )
        results = tuner.fit()
        statuses = _trial_statuses(exp_path)
        rows = _trial_rows(results, statuses, epochs, default_point(base))
        run_info = {
            "experiment_path": exp_path,
            "mlflow_parent_run_id": parent_id,
            "num_samples": num_samples,
        }
        finished = sum(s in ("TERMINATED", "ERROR") for s in statuses.values())
        if finished < num_samples:  # Ctrl+C / SIGUSR1: Tune saved its state and returned early
            _write_csv(out_dir / "trials.csv", rows)
            partial = {"interrupted": True, "trials_finished": finished, **run_info}
            write_json(out_dir / "summary.json", {**partial, "wall_seconds": time.perf_counter() - t0})
            status = "KILLED"
            raise SweepInterrupted(
                f"the sweep stopped after {finished} of {num_samples} trials; run the same command "
                f"again to resume it ({exp_path})"
            )
        summary = _write_outputs(out_dir, rows, preset_cfg, bandwidths, n_samples, uri, parent_id, epochs)
        summary.update(run_info, wall_seconds=time.perf_counter() - t0)
        write_json(out_dir / "summary.json", summary)
        tracking.log_metrics(
            {
                "best_objective": summary["best"]["objective"],
                "best_reconstruction_r2_val": summary["best"]["reconstruction_r2_val"],
                "best_bandwidth": summary["best"]["h"],
                "trials_failed": summary["trials_failed"],
                "wall_seconds": summary["wall_seconds"],
            }
        )
        if summary.get("gain_over_default") is not None:
            tracking.log_metrics({"gain_over_default": summary["gain_over_default"]})
        mlflow.set_tags({"best_trial_id": summary["best"]["trial_id"]})
        for f in ("best_config.json", "best_sampling.json", "trials.csv", "summary.json"):
            mlflow.log_artifact(str(out_dir / f))
        status = "FINISHED"
        return summary
    finally:
        mlflow.end_run(status=status)


def _write_outputs(
    out_dir: Path,
    rows: list[dict[str, Any]],
    preset_cfg: AEConfig,
    bandwidths: Sequence[float],
    n_samples: int,
    tracking_uri: str,
    parent_id: str,
    epochs: int,
) -> dict[str, Any]:
    _write_csv(out_dir / "trials.csv", rows)
    ok = [r for r in rows if _ok(r)]
    summary: dict[str, Any] = {
        "trials": len(rows),
        "trials_failed": sum(r["status"] == "failed" for r in rows),
        "trials_stopped_early": sum(r["status"] == "stopped_early" for r in rows),
        "epochs_per_trial": epochs,
        "objective": OBJECTIVE,
    }
    if not ok:
        _tag_children(tracking_uri, parent_id, rows, None)
        raise RuntimeError(f"no trial finished with an objective; see {out_dir / 'trials.csv'}")
    r2 = lambda r: r["reconstruction_r2_val"] if _finite(r["reconstruction_r2_val"]) else -math.inf
    best = max(ok, key=lambda r: (r["objective"], r2(r)))  # ties: the better reconstruction
    cfg = best_ae_config(preset_cfg, best["_config"])
    write_json(out_dir / "best_config.json", cfg.model_dump(mode="json"))
    write_json(
        out_dir / "best_sampling.json",
        {
            "method": "kde30",
            "bandwidth": best["h"],
            OBJECTIVE: best["objective"],
            "trial_id": best["trial_id"],
            "bandwidths_evaluated": list(bandwidths),
            "samples_per_bandwidth": n_samples,
            "anchors_ranked_by": "train_acc",
        },
    )
    default = next((r for r in ok if r["is_default"]), None)
    summary["best"] = {k: v for k, v in best.items() if not k.startswith("_")}
    summary["best_config"] = {k: getattr(cfg, k) for k in TUNED_FIELDS}
    summary["default"] = {k: v for k, v in default.items() if not k.startswith("_")} if default else None
    summary["gain_over_default"] = (best["objective"] - default["objective"]) if default else None
    _tag_children(tracking_uri, parent_id, rows, best["trial_id"])
    return summary


def _tag_children(tracking_uri: str, parent_id: str, rows: list[dict[str, Any]], best_id: str | None) -> None:
    """Each child run's final status (and error), and ``best_trial=true`` on the best one."""
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri)
        children = client.search_runs(
            [client.get_run(parent_id).info.experiment_id],
            filter_string=f"tags.sweep_parent = '{parent_id}'",
            max_results=10_000,
        )
        by_trial = {run.data.tags.get("trial_id"): run.info.run_id for run in children}
        for r in rows:
            run_id = by_trial.get(r["trial_id"])
            if run_id is None:
                continue
            client.set_tag(run_id, "status", r["status"])
            if r["error"]:
                client.set_tag(run_id, "error", r["error"])
            if r["trial_id"] == best_id:
                client.set_tag(run_id, "best_trial", "true")
    except Exception as e:  # bookkeeping must not lose the sweep's results
        print(f"[tune] warning: could not tag the MLflow child runs: {e}")


# ------------------------------------------------------------------------------------ command line


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    """The sweep's options, shared by ``hyperrep tune`` and ``jobs/tune_sweep.py``."""
    p.add_argument("--zoo", required=True, help="weight store written by `hyperrep zoo`")
    p.add_argument("--out", required=True, help="output directory (best_config.json, trials.csv, ...)")
    p.add_argument(
        "--preset", choices=PRESETS, default="quick", help="autoencoder preset the space is scaled to"
    )
    p.add_argument("--num-samples", type=int, default=16, help="number of trials (default 16)")
    p.add_argument(
        "--workers-per-trial",
        type=int,
        default=1,
        help="Ray Train workers (DDP) per trial (default 1: in-process)",
    )
    p.add_argument(
        "--cpus-per-trial", type=float, help="CPUs per trial, split over its workers (default 1 per worker)"
    )
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial, split over its workers")
    p.add_argument("--max-epochs", type=int, help="autoencoder epochs per trial (default: the preset's)")
    p.add_argument("--storage", help="Ray Tune storage path or URI (default OUT/ray_tune; s3://, gs:// work)")
    p.add_argument("--epochs-window", type=int, nargs=2, metavar=("LO", "HI"), help="zoo epochs to train on")
    p.add_argument(
        "--search", choices=["optuna", "random"], help="search algorithm (default optuna if installed)"
    )
    p.add_argument(
        "--bandwidths",
        type=lambda s: [float(x) for x in s.split(",") if x.strip()],
        help="comma-separated KDE bandwidths evaluated per trial (default 7 log-spaced in 0.002..1)",
    )
    p.add_argument("--samples-per-bandwidth", type=int, default=32, help="kde30 samples per bandwidth (32)")
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    p.add_argument("--no-early-stopping", action="store_true", help="run every trial to the end (no ASHA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", help="image data set directory (not needed for digits)")
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"
    )


def sweep_from_args(args: argparse.Namespace) -> int:
    """Run the sweep for parsed :func:`add_sweep_arguments` options and print its outcome."""
    try:
        summary = run_sweep(
            args.zoo,
            args.out,
            preset=args.preset,
            num_samples=args.num_samples,
            tracking_uri=args.tracking_uri,
            workers_per_trial=args.workers_per_trial,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            max_epochs=args.max_epochs,
            storage=args.storage,
            epochs_window=tuple(args.epochs_window) if args.epochs_window else None,
            search=args.search,
            bandwidths=args.bandwidths or DEFAULT_BANDWIDTHS,
            n_samples=args.samples_per_bandwidth,
            seed=args.seed,
            max_concurrent=args.max_concurrent,
            early_stopping=not args.no_early_stopping,
            data_root=args.data_root,
        )
    except SweepInterrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    print(format_summary(summary, args.out))
    return 0


def format_summary(summary: Mapping[str, Any], out: str) -> str:
    lines = [
        f"trials: {summary['trials']} ({summary['trials_failed']} failed, "
        f"{summary['trials_stopped_early']} stopped early by ASHA)"
    ]
    best = summary.get("best")
    if best:
        lines.append(
            f"best trial {best['trial_id']}: {OBJECTIVE} {best['objective']:.4f} at h={best['h']}, "
            f"R^2 val {best['reconstruction_r2_val']:.4f}"
        )
        lines.append("best config: " + ", ".join(f"{k}={v}" for k, v in summary["best_config"].items()))
        if summary.get("gain_over_default") is not None:
            lines.append(f"gain over the preset's default: {summary['gain_over_default']:+.4f}")
    lines.append(f"wall time: {summary['wall_seconds']:.0f} s")
    lines.append(f"outputs: {Path(out) / 'best_config.json'}, best_sampling.json, trials.csv, summary.json")
    return "\n".join(lines)
