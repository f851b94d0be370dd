"""The sweep's objective and its Tune trainable.

One trial = one autoencoder trained on the zoo's train split. After every evaluation epoch the trial
measures, on data the final report never uses,

- ``reconstruction_r2_val``: R^2 of the zoo's *val* models after encode -> decode, and
- ``sampled_accuracy_val`` (the objective): mean accuracy of ``n_samples`` kde30-sampled, decoded models
  (epoch 0, no fine-tuning) on a validation part of the image *training* set, held out with
  ``ImageData.split_validation``. Nothing in the sweep uses the test images or the zoo's test split.

The bandwidth h is not a per-trial hyperparameter: every evaluation samples at each of ``bandwidths``
around the same anchors and reports the best accuracy with its h (``best_bandwidth``). kde30 keeps the
top 30 % anchors ranked by the stored ``train_acc`` of the zoo's train-split checkpoints (accuracy on
the image training set), so the test set stays out of the sweep.

A trial with one worker runs the autoencoder's training loop directly in the Tune trial process and
reports (and checkpoints) to Tune; with ``workers_per_trial > 1`` the trial is the driver of a Ray Train
``TorchTrainer`` (DDP) whose rank 0 reports to Tune through ``TuneReportCallback``. Either way a
diverging trial (non-finite loss or embeddings) raises and is recorded as failed; the sweep goes on.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hyperrep_ray.autoencoder.data import TrainingPayload
from hyperrep_ray.autoencoder.loop import LoopConfig, run_training_loop, train_loop_per_worker
from hyperrep_ray.autoencoder.scoring import weights_accuracy
from hyperrep_ray.autoencoder.session import TrainSession
from hyperrep_ray.config import AEConfig
from hyperrep_ray.sampling.samplers import sample
from hyperrep_ray.tune.space import trial_ae_config
from hyperrep_ray.weightspace.tokens import token_layout, tokens_to_vectors, vectors_to_tokens

OBJECTIVE = "sampled_accuracy_val"
R2_METRIC = "reconstruction_r2_val"
#: KDE bandwidths evaluated on every trained autoencoder: log-spaced from the 2022 code's 0.002 to 1.
DEFAULT_BANDWIDTHS: tuple[float, ...] = tuple(float(f"{h:.3g}") for h in np.geomspace(0.002, 1.0, 7))
#: Anchors encoded per forward pass.
ENCODE_CHUNK = 512


def bandwidth_key(h: float) -> str:
    """The metric name of the accuracy at bandwidth ``h`` (3 significant digits)."""
    return f"sampled_accuracy_h{h:.3g}"


def is_finite_number(v: Any) -> bool:
    """A reported value that can be logged and ranked (not None, bool, NaN or inf)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


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
    last: dict[str, float] | None = field(default=None, repr=False)

    def fresh(self) -> SampledAccuracyHook:
        """A copy for one trial: no evaluation state, a writable copy of the anchors (arrays that
        come out of Ray's object store are read-only), the images shared."""
        hook = copy.copy(self)
        hook.anchors_w = np.array(self.anchors_w, np.float32)
        hook.last = None
        return hook

    def __call__(self, model: Any, epoch: int, metrics: Mapping[str, Any]) -> dict[str, float]:
        if R2_METRIC in metrics or self.last is None:
            self.last = {**self.evaluate(model), "objective_epoch": int(epoch)}
            if R2_METRIC in metrics:
                self.last[R2_METRIC] = float(metrics[R2_METRIC])
        out = dict(self.last)
        if R2_METRIC in metrics:
            out.pop(R2_METRIC, None)  # the loop's own (fresh) value stays
        return out

    def evaluate(self, model: Any) -> dict[str, float]:
        """kde30 samples at every bandwidth -> decode -> accuracy on the validation images."""
        import torch

        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                z = self.encode_anchors(model)
                out = {
                    bandwidth_key(h): self.accuracy_at(model, z, i, h) for i, h in enumerate(self.bandwidths)
                }
        finally:
            model.train(was)
        accs = [out[bandwidth_key(h)] for h in self.bandwidths]
        best = int(np.argmax(accs))  # ties: the smallest bandwidth
        return {OBJECTIVE: accs[best], "best_bandwidth": float(self.bandwidths[best]), **out}

    def encode_anchors(self, model: Any) -> np.ndarray:
        import torch

        device = next(model.parameters()).device
        layout = token_layout(self.in_channels)
        w = torch.as_tensor(self.anchors_w, dtype=torch.float32)
        parts = [
            model.encode(vectors_to_tokens(w[i : i + ENCODE_CHUNK].to(device), layout)).float().cpu()
            for i in range(0, len(w), ENCODE_CHUNK)
        ]
        z: np.ndarray = torch.cat(parts).numpy()
        if not np.isfinite(z).all():
            raise FloatingPointError("non-finite embeddings of the anchors")
        return z

    def accuracy_at(self, model: Any, z: np.ndarray, index: int, h: float) -> float:
        """Mean validation accuracy of kde30 samples at bandwidth ``h`` (the ``index``-th, which seeds it)."""
        import torch

        device = next(model.parameters()).device
        layout = token_layout(self.in_channels)
        zs = sample("kde30", z, self.anchor_accuracy, self.n_samples, self.seed + index, bandwidth=h)
        decoded = tokens_to_vectors(model.decode(torch.from_numpy(zs).to(device)).float(), layout)
        acc = weights_accuracy(decoded.cpu(), self.val_x, self.val_y, self.activation, device=device)
        return float(np.mean(acc))


class TuneSession:
    """The :class:`TrainSession` of a Tune trial process: rank 0 of 1, reports and checkpoints go to
    Ray Tune (Ray refuses ``ray.train.*`` calls there)."""

    rank = 0
    world = 1

    def __init__(self, use_gpu: bool = False) -> None:
        import torch

        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")

    def get_checkpoint(self) -> Any:
        import ray.tune

        return ray.tune.get_checkpoint()

    def prepare_model(self, model: Any) -> Any:
        return model.to(self.device)

    def checkpoint_from_directory(self, path: str) -> Any:
        import ray.tune

        return ray.tune.Checkpoint.from_directory(path)

    def report(self, metrics: dict[str, Any], checkpoint: Any = None) -> None:
        import ray.tune

        ray.tune.report(metrics, checkpoint=checkpoint)


@dataclass
class TrialSetup:
    """What every trial shares, shipped once to the trial processes by ``tune.with_parameters``."""

    base: dict[str, Any]  # AEConfig (JSON) of a trial before the tuned values are applied
    payload: TrainingPayload  # the training loop's arrays
    hook: SampledAccuracyHook
    workers_per_trial: int
    cpus_per_trial: float
    gpus_per_trial: float
    train_storage: str  # where multi-worker trials keep their Ray Train runs


def trial_name(trial: Any) -> str:
    """Name and directory of a Tune trial (``trial_<id>``)."""
    return f"trial_{trial.trial_id}"


def sweep_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The Tune trainable: train one autoencoder with the trial's values, reporting every epoch."""
    cfg = trial_ae_config(AEConfig(**setup.base), config)
    loop = LoopConfig(cfg=cfg, payload=setup.payload, epoch_hook=setup.hook.fresh())
    if setup.workers_per_trial == 1:
        session: TrainSession = TuneSession(use_gpu=setup.gpus_per_trial > 0)
        run_training_loop(loop, session)
    else:
        fit_with_ray_train(loop, setup)


def fit_with_ray_train(loop: LoopConfig, setup: TrialSetup) -> None:
    """A multi-worker trial: the trial process drives a DDP ``TorchTrainer`` whose rank 0 reports to Tune."""
    import ray
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    workers = setup.workers_per_trial
    per_worker = {"CPU": setup.cpus_per_trial / workers}
    if setup.gpus_per_trial > 0:
        per_worker["GPU"] = setup.gpus_per_trial / workers
    loop.payload = ray.put(setup.payload)  # once, for all the trial's workers
    report_to_tune: list[Any] = [TuneReportCallback()]  # a Ray Train callback; Ray's hint names Tune's
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop.to_mapping(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu="GPU" in per_worker, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            # the same name after a Tune restore resumes this Train run from its last checkpoint
            name=f"trial_{ray.tune.get_context().get_trial_id()}",
            storage_path=setup.train_storage,
            failure_config=ray.train.FailureConfig(max_failures=0),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=report_to_tune,
        ),
    )
    trainer.fit()
