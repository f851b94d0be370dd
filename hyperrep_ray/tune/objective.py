"""The sweep's objective and its Tune trainable.

One trial = one autoencoder trained on the zoo's train split. After every evaluation epoch the trial
measures, on data the final report never uses,

- ``reconstruction_r2_val``: R^2 of the zoo's *val* models after encode -> decode, and
- ``novel_accuracy_val`` (the objective): the accuracy of ``n_samples`` sampled, decoded models (epoch 0,
  no fine-tuning) on a validation part of the image *training* set (held out with
  ``ImageData.split_validation``), where a sample that is not new counts 0: the mean over samples of
  accuracy x [novelty >= required]. Novelty is 1 - the max wrong-prediction IoU against every train
  checkpoint on the same validation images (:mod:`hyperrep_ray.weightspace.novelty`); the required
  novelty is the median novelty of the zoo's *val-split* models (independently trained models of the
  same zoo, the sweep's stand-in for the test split). Accuracy alone rewarded decoders that re-decode
  anchors or the zoo mean; counting copies as 0 rewards models that are new and good.
- The reconstruction R^2 is a constraint: a trial whose ``reconstruction_r2_val`` is below ``min_r2``
  reports its objective minus :data:`R2_PENALTY` (``novel_accuracy_raw`` keeps the unpenalised value).
Nothing in the sweep uses the test images or the zoo's test split.

The sampler is a per-trial choice (``sampler`` in the space). For the KDE samplers the bandwidth h is
not: every evaluation samples at each of ``bandwidths`` around the same anchors and reports the best
value with its h (``best_bandwidth``). The ``*30`` samplers keep the top 30 % anchors ranked by the
stored ``train_acc`` of the zoo's train-split checkpoints (accuracy on the image training set).

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
from hyperrep_ray.sampling.flow import FlowConfig
from hyperrep_ray.sampling.samplers import sample, split_method
from hyperrep_ray.tune.space import DEFAULT_SAMPLER, trial_ae_config
from hyperrep_ray.weightspace.novelty import max_wrong_iou, wrong_masks
from hyperrep_ray.weightspace.tokens import token_layout, tokens_to_vectors, vectors_to_tokens

OBJECTIVE = "novel_accuracy_val"
RAW_OBJECTIVE = "novel_accuracy_raw"
R2_METRIC = "reconstruction_r2_val"
#: Subtracted from the objective of a trial whose validation R^2 is below ``min_r2`` (objectives lie in
#: [0, 1], so every such trial ranks below every trial that meets the constraint).
R2_PENALTY = 1.0
#: The flow the sweep trains at every evaluation of a trial that samples with ``flow`` (small: seconds).
SWEEP_FLOW = FlowConfig.model_validate({"steps": 500, "hidden": 256, "ode_steps": 20})
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


def novel_accuracy(masks: np.ndarray, ref_masks: np.ndarray, required: float) -> tuple[float, float, float]:
    """(mean over samples of accuracy x [novelty >= required], share of new samples, mean accuracy)
    for the samples' wrong-prediction masks (M, I) against the train checkpoints' (R, I)."""
    acc = 1.0 - masks.mean(1)
    novelty = 1.0 - max_wrong_iou(masks, ref_masks).value
    new = novelty >= required
    return float(np.mean(acc * new)), float(np.mean(new)), float(np.mean(acc))


def required_novelty(val_w: np.ndarray, ref_masks: np.ndarray, x: Any, y: Any, activation: str) -> float:
    """The median novelty of independently trained models (the zoo's val split) against the train
    checkpoints: what a sample has to reach to count as new."""
    novelty = 1.0 - max_wrong_iou(wrong_masks(val_w, x, y, activation), ref_masks).value
    return float(np.median(novelty))


@dataclass
class SampledAccuracyHook:
    """``epoch_hook`` of the training loop: on every epoch that evaluated R^2 (and on the first epoch
    of a resumed run), sample ``n_samples`` embeddings (per bandwidth for the KDE samplers) around the
    train anchors with ``method``, decode them and score accuracy and novelty on the validation images;
    every epoch gets the latest values, so Tune and ASHA always see the objective. ``ref_masks`` (the
    train anchors' wrong predictions on the validation images) and ``required`` (the novelty a sample
    must reach) are computed once for the sweep; without them every sample counts as new."""

    anchors_w: np.ndarray  # (M, N) aligned train-split weights (the anchors, before encoding)
    anchor_accuracy: np.ndarray  # (M,) stored train_acc of those checkpoints: ranks the top 30 %
    val_x: Any  # torch.Tensor (V, C, 28, 28): held-out training images
    val_y: Any  # torch.Tensor (V,)
    activation: str
    in_channels: int
    bandwidths: tuple[float, ...] = DEFAULT_BANDWIDTHS
    n_samples: int = 32
    seed: int = 0
    ref_masks: np.ndarray | None = None  # (M, V) bool
    required: float = 0.0
    min_r2: float = -math.inf
    method: str = DEFAULT_SAMPLER
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
            self.last.update(self.constrained(self.last))
        out = dict(self.last)
        if R2_METRIC in metrics:
            out.pop(R2_METRIC, None)  # the loop's own (fresh) value stays
        return out

    def constrained(self, values: Mapping[str, float]) -> dict[str, float]:
        """The objective after the R^2 constraint (penalised below ``min_r2``)."""
        raw = float(values.get(RAW_OBJECTIVE, values[OBJECTIVE]))
        r2 = values.get(R2_METRIC)
        below = r2 is not None and not float(r2) >= self.min_r2
        return {
            RAW_OBJECTIVE: raw,
            OBJECTIVE: raw - R2_PENALTY if below else raw,
            "r2_constraint_met": float(not below),
        }

    def evaluate(self, model: Any) -> dict[str, float]:
        """Samples (at every bandwidth for the KDE samplers) -> decode -> novel accuracy on the validation
        images; the best bandwidth's value is the objective."""
        import torch

        was = model.training
        model.eval()
        kde = split_method(self.method)[0].startswith("kde")
        knobs = list(self.bandwidths) if kde else [math.nan]
        try:
            with torch.no_grad():
                z = self.encode_anchors(model)
                scores = [self.score_at(model, z, i, h) for i, h in enumerate(knobs)]
        finally:
            model.train(was)
        best = int(np.argmax([s[0] for s in scores]))  # ties: the smallest bandwidth
        out = {bandwidth_key(h): s[0] for h, s in zip(knobs, scores, strict=True)} if kde else {}
        value, share, accuracy = scores[best]
        return {
            OBJECTIVE: value,
            "novel_share_val": share,
            "sampled_accuracy_val": accuracy,
            "required_novelty": self.required,
            **({"best_bandwidth": float(knobs[best])} if kde else {}),
            **out,
        }

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

    def score_at(self, model: Any, z: np.ndarray, index: int, h: float) -> tuple[float, float, float]:
        """:func:`novel_accuracy` of samples at bandwidth ``h`` (the ``index``-th, which seeds it)."""
        import torch

        device = next(model.parameters()).device
        layout = token_layout(self.in_channels)
        kwargs: dict[str, Any] = {"flow": SWEEP_FLOW} if self.method.startswith("flow") else {"bandwidth": h}
        zs = sample(self.method, z, self.anchor_accuracy, self.n_samples, self.seed + index, **kwargs)
        decoded = tokens_to_vectors(model.decode(torch.from_numpy(zs).to(device)).float(), layout)
        w = decoded.cpu().numpy()
        if self.ref_masks is None:
            acc = weights_accuracy(w, self.val_x, self.val_y, self.activation, device=device)
            return float(np.mean(acc)), 1.0, float(np.mean(acc))
        masks = wrong_masks(w, self.val_x, self.val_y, self.activation, device=device)
        return novel_accuracy(masks, self.ref_masks, self.required)


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
    hook = setup.hook.fresh()
    hook.method = str(config.get("sampler", hook.method))
    loop = LoopConfig(cfg=cfg, payload=setup.payload, epoch_hook=hook)
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
