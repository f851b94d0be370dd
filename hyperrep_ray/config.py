"""Typed, validated configs and the presets (smoke, quick, paper).

One config system for every stage: pydantic models that reject unknown keys, so a typo in a
JSON config or a CLI override is an error that names the key instead of a silently ignored
setting. Every stage logs its full config to MLflow from ``model_dump()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DatasetName = Literal["digits", "mnist", "svhn", "cifar10", "stl10"]
PresetName = Literal["smoke", "quick", "paper"]
PRESETS: tuple[str, ...] = ("smoke", "quick", "paper")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(ValueError):
    """A config that cannot be used; the message says which key and why."""


# Paper Table 7, as the authors' zoo generators run it (ModelZoos/ModelZooDataset, code/zoo_generators);
# digits is ours: tanh, Adam 1e-3 (DESIGN.md) and PyTorch's default init. Measured on 100-model digits
# zoos (epoch 10, 70 train / 15 test models): a wide symmetric uniform init gives the same accuracy spread
# (std 0.019 vs 0.018) but its weights are dominated by init noise -- PCA(48) explains 0.02 of unseen
# models' variance (0.09 with the default init, after alignment) -- which leaves the autoencoder nothing
# to compress.
DATASET_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "digits": {"activation": "tanh", "weight_decay": 0.0, "lr": 1e-3, "init": "default"},
    "mnist": {"activation": "tanh", "weight_decay": 0.0, "lr": 3e-4, "init": "uniform"},
    "svhn": {"activation": "tanh", "weight_decay": 0.0, "lr": 3e-3, "init": "uniform"},
    "cifar10": {"activation": "gelu", "weight_decay": 1e-2, "lr": 1e-4, "init": "kaiming_uniform"},
    "stl10": {"activation": "tanh", "weight_decay": 1e-3, "lr": 1e-4, "init": "kaiming_uniform"},
}

#: What each init name draws. The names the authors' code uses (``def_net.py``) mean what they mean
#: there: ``torch.nn.init.<name>_`` with its defaults on every conv/linear weight and every bias filled
#: with 0.01. ``default`` is PyTorch's own layer init; ``uniform_symmetric`` is the range this package
#: called "uniform" before it followed the authors' code. Recorded in zoo.json and in the zoo identity,
#: so a store is never resumed under a changed rule.
INIT_RULES: dict[str, str] = {
    "uniform": "weights U(0, 1) (torch.nn.init.uniform_ defaults); biases 0.01",
    "normal": "weights N(0, 1) (torch.nn.init.normal_ defaults); biases 0.01",
    "kaiming_uniform": "weights U(-sqrt(6 / fan_in), sqrt(6 / fan_in)) (torch.nn.init.kaiming_uniform_ "
    "defaults); biases 0.01",
    "kaiming_normal": "weights N(0, std sqrt(2 / fan_in)) (torch.nn.init.kaiming_normal_ defaults); "
    "biases 0.01",
    "xavier": "weights U(-sqrt(6 / (fan_in + fan_out)), +...) (torch.nn.init.xavier_uniform_ defaults); "
    "biases 0.01",
    "default": "PyTorch's Conv2d/Linear default: weights and biases U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))",
    "uniform_symmetric": "weights U(-0.5, 0.5), biases U(-0.1, 0.1)",
}
InitName = Literal[
    "uniform", "normal", "kaiming_uniform", "kaiming_normal", "xavier", "default", "uniform_symmetric"
]

#: Image recipes: ``ours`` normalises with the statistics of the whole official training set (DESIGN.md);
#: ``authors`` is the zoo generators' recipe (fixed normalisation constants, a seeded train/validation
#: split of the official training set; see ``hyperrep_ray.data.authors``).
ImageRecipe = Literal["ours", "authors"]


class ZooConfig(StrictModel):
    """A population of zoo CNNs trained on one image data set (paper Tables 5-7)."""

    name: str = "digits"
    dataset: DatasetName = "digits"
    data_root: str | None = None
    download: bool = False
    image_split_seed: int = 0
    num_models: int = Field(500, ge=1)
    epochs: int = Field(10, ge=0, description="training epochs; checkpoints at 0..epochs")
    seed_offset: int = Field(0, ge=0, description="model i (0-based) uses seed seed_offset + i + 1")
    activation: Literal["tanh", "gelu", "relu", "sigmoid"] = "tanh"
    init: InitName = "uniform"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: int = Field(32, ge=1)
    image_recipe: ImageRecipe = Field(
        "ours", description="'authors': the zoo generators' normalisation and train/validation split"
    )
    population_size: int = Field(32, ge=1, description="K models trained as one batched module")
    models_per_shard: int = Field(64, ge=1, description="models per Ray task and per Parquet file")
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    num_gpus_per_task: float | None = Field(
        None, ge=0, description="GPUs per shard task; None = 0.25 when the cluster has GPUs, else 0"
    )
    num_cpus_per_task: float = Field(1.0, gt=0)
    max_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ZooConfig:
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or min(self.split_fractions) < 0:
            raise ValueError(f"split_fractions must be >= 0 and sum to 1, got {self.split_fractions}")
        return self

    @property
    def seeds(self) -> list[int]:
        return [self.seed_offset + i + 1 for i in range(self.num_models)]

    def identity(self) -> dict[str, Any]:
        """The settings that determine the store's contents (not how it is computed)."""
        skip = {
            "data_root",
            "download",
            "population_size",
            "models_per_shard",
            "num_gpus_per_task",
            "num_cpus_per_task",
            "max_retries",
            "name",
        }
        values = {k: v for k, v in self.model_dump(mode="json").items() if k not in skip}
        return {**values, "init_rule": INIT_RULES[self.init]}


def zoo_preset(preset: str = "quick", dataset: str = "digits", **overrides: Any) -> ZooConfig:
    """Preset sizes; the dataset fixes the paper's per-zoo hyperparameters (Table 7)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    if dataset not in DATASET_HYPERPARAMETERS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_HYPERPARAMETERS)}")
    by_preset: dict[str, dict[str, Any]] = {
        "smoke": {"num_models": 8, "epochs": 2, "population_size": 4, "models_per_shard": 4},
        "quick": {"num_models": 500, "epochs": 10, "population_size": 50, "models_per_shard": 50},
        # GPUs asked for explicitly: an autoscaling cluster has none when the job starts. Batch size
        # and images as the authors' generators: 10 per step, their normalisation and split.
        "paper": {
            "batch_size": 10,
            "image_recipe": "authors",
            "num_models": 1000,
            "epochs": 50,
            "population_size": 125,
            "models_per_shard": 125,
            "num_gpus_per_task": 0.25,
        },
    }
    sizes = dict(by_preset[preset])
    if dataset == "digits":  # the authors made no digits zoo, so there is no recipe of theirs to follow
        sizes.pop("image_recipe", None)
    values = {"name": f"{dataset}-{preset}", "dataset": dataset, **DATASET_HYPERPARAMETERS[dataset], **sizes}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return make_config(ZooConfig, values)


def make_config(cls: type[StrictModel], values: dict[str, Any]) -> Any:
    """Build a config, turning pydantic's errors into one readable ConfigError."""
    try:
        return cls(**values)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(config)"
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError(f"invalid {cls.__name__}:\n" + "\n".join(lines)) from None


def load_json_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a JSON object, got {type(data).__name__}")
    return data


class AEConfig(StrictModel):
    """The hyper-representation autoencoder and its training (2022 paper, Appendix B, Table 8)."""

    # data
    epochs_window: tuple[int, int] = Field((21, 25), description="zoo epochs (inclusive) used for training")
    align: bool = Field(True, description="permute every checkpoint's neurons to a canonical reference first")
    align_iterations: int = Field(3, ge=1)
    standardize: Literal["none", "layer", "coordinate"] = Field(
        "none",
        description="encoder input / decoder output units: raw weights (the paper), per-layer or per-weight "
        "z-scores (train-split statistics; fits the train split much faster, see issue 3's note)",
    )
    # architecture
    d_token: int = Field(128, ge=1)
    d_hidden: int = Field(256, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    d_z: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    compression: Literal["linear", "mlp", "sequence"] = Field(
        "linear",
        description="bottleneck: CLS token -> linear ('linear') or MLP ('mlp'); or the whole encoder output "
        "sequence -> linear ('sequence', what the 2022 code calls linear compression)",
    )
    proj_layers: int = Field(4, ge=0)
    proj_width: int = Field(400, ge=1)
    proj_dim: int = Field(50, ge=1)
    # loss
    lwln: bool = Field(
        True, description="layer-wise normalised reconstruction loss; False = plain MSE of [37]"
    )
    beta: float = Field(0.95, ge=0, le=1, description="beta * L_rec + (1 - beta) * L_NT-Xent")
    temperature: float = Field(0.1, gt=0)
    z_penalty: float = Field(
        0.0,
        ge=0,
        description="weight of mean(z^2) added to the loss (a regularised autoencoder as in Ghosh et al. "
        "2020, which the 2022 paper's sampling cites): keeps z out of tanh saturation",
    )
    behaviour_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the behavioural loss (0 = off): decoded models' outputs against the original "
        "checkpoints' on the zoo's training images (Meynent et al., ICLR 2025 WSL, 'Structure Is Not "
        "Enough'); see hyperrep_ray.autoencoder.behaviour",
    )
    behaviour_loss: Literal["logits_mse", "kl"] = Field(
        "kl", description="logits_mse: MSE of the logits; kl: temperature-2 distillation KL (times T^2)"
    )
    behaviour_queries: int = Field(64, ge=1, description="query images per training step")
    # augmentation
    permute: bool = Field(False, description="random permutation augmentation (the paper's)")
    erase_p: float = Field(0.5, ge=0, le=1)
    erase_scale: tuple[float, float] = (0.02, 0.33)
    noise_sigma: float = Field(0.01, ge=0, description="relative Gaussian noise on the input weights")
    # optimisation
    epochs: int = Field(300, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-9, ge=0)
    seed: int = 0
    # scaling and bookkeeping
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    amp: bool = Field(True, description="bfloat16 autocast on GPU (ignored on CPU)")
    checkpoint_every: int = Field(10, ge=1)
    eval_every: int = Field(10, ge=1, description="epochs between validation R^2 evaluations")
    keep_best: bool = Field(
        True,
        description="keep the weights of the evaluation with the best validation R^2 (not the last "
        "epoch's): the val split selects, the test split still only reports",
    )
    patience: int = Field(
        0, ge=0, description="stop after this many evaluations without a better validation R^2 (0 = never)"
    )
    max_failures: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _check(self) -> AEConfig:
        lo, hi = self.epochs_window
        if lo < 0 or hi < lo:
            raise ValueError(f"epochs_window must be (lo, hi) with 0 <= lo <= hi, got {self.epochs_window}")
        if self.d_token % self.n_heads:
            raise ValueError(f"d_token ({self.d_token}) must be divisible by n_heads ({self.n_heads})")
        lo_s, hi_s = self.erase_scale
        if not 0 < lo_s <= hi_s <= 1:
            raise ValueError(f"erase_scale must satisfy 0 < lo <= hi <= 1, got {self.erase_scale}")
        return self


# Table 8 of the 2022 paper, per zoo.
PAPER_AE: dict[str, dict[str, Any]] = {
    "mnist": {
        "d_token": 972,
        "d_hidden": 1140,
        "n_layers": 2,
        "n_heads": 12,
        "d_z": 700,
        "beta": 0.977,
        "epochs": 1750,
        "batch_size": 500,
    },
    "svhn": {
        "d_token": 1680,
        "d_hidden": 1800,
        "n_layers": 4,
        "n_heads": 12,
        "d_z": 1000,
        "beta": 0.92,
        "epochs": 1750,
        "batch_size": 250,
    },
    "cifar10": {
        "d_token": 1488,
        "d_hidden": 1164,
        "n_layers": 2,
        "n_heads": 12,
        "d_z": 700,
        "beta": 0.95,
        "epochs": 500,
        "batch_size": 200,
    },
    "stl10": {
        "d_token": 1632,
        "d_hidden": 1680,
        "n_layers": 4,
        "n_heads": 24,
        "d_z": 700,
        "beta": 0.95,
        "epochs": 2000,
        "batch_size": 200,
    },
}


def ae_preset(preset: str = "quick", dataset: str = "digits", **overrides: Any) -> AEConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    values: dict[str, Any] = {
        "smoke": {
            "epochs_window": (1, 2),
            "d_token": 32,
            "d_hidden": 64,
            "n_heads": 2,
            "d_z": 16,
            "proj_width": 64,
            "proj_dim": 16,
            "epochs": 4,
            "batch_size": 16,
            "checkpoint_every": 2,
            "eval_every": 2,
            "lr": 1e-3,
        },
        "quick": {
            "epochs_window": (6, 10),
            "d_token": 64,
            "d_hidden": 128,
            "n_heads": 4,
            "d_z": 256,
            "proj_width": 200,
            "proj_dim": 32,
            # measured on the 500-model quick zoo (issue 3): with raw inputs and a CLS bottleneck the
            # model sits at the mean (test R^2 ~ 0); standardised sequence bottleneck: 0.144, with
            # its tanh code saturated; the latent penalty keeps z unsaturated: 0.235 at 60 epochs
            "compression": "sequence",
            "standardize": "coordinate",
            "noise_sigma": 0.3,
            "dropout": 0.3,
            "z_penalty": 1.0,
            # lr 2e-3 for 50 epochs reaches what 5e-4 reached in 100 (test R^2 0.245 vs 0.240 on the
            # quick zoo) in half the time: the quick pipeline's 30-minute budget
            "epochs": 50,
            "eval_every": 5,
            "patience": 4,
            "batch_size": 64,
            "lr": 2e-3,
        },
        "paper": {
            "epochs_window": (21, 25),
            "use_gpu": True,
            "num_workers": 1,
            **PAPER_AE.get(dataset, PAPER_AE["mnist"]),
        },
    }[preset]
    values = {**values, **{k: v for k, v in overrides.items() if v is not None}}
    return make_config(AEConfig, values)


#: Sampler names a config or command may use -> the paper's population name (implemented in
#: ``hyperrep_ray.sampling.samplers``).
SAMPLERS: dict[str, str] = {
    "uniform": "S_U",
    "counterfactual": "S_C",
    "kde": "S_KDE",
    "kde30": "S_KDE30",
    "kde-joint": "S_KDEJ",
    "kde-joint30": "S_KDEJ30",
    "kde30-code": "S_KDE30code",  # the per-dimension KDE as the 2022 authors' code runs it
    "mix": "S_MIX",  # a point between two anchors (ours; hyperrep_ray.sampling.samplers.sample_mix)
    "mix30": "S_MIX30",
    "neigh": "S_Neigh",
    "neigh30": "S_Neigh30",
    "gan": "S_GAN",
    "gan30": "S_GAN30",
    "flow": "S_FLOW",  # rectified flow on all anchors (ours; hyperrep_ray.sampling.flow)
    "flow-top10": "S_FLOWtop10",  # the same flow conditioned on accuracy rank, asked for the top 10 %
}


class ExperimentsConfig(StrictModel):
    """The paper's experiments run by the pipeline after the autoencoders (2022 paper, Sec. 4):
    how many models each sampler draws, the fine-tuning epochs evaluated, ensemble sizes."""

    n: int = Field(50, ge=2, description="models per sampler and population")
    finetune_epochs: tuple[int, ...] = Field((0, 1, 5, 25), description="fine-tuning epochs evaluated")
    methods: tuple[str, ...] = Field(tuple(SAMPLERS), description="samplers of Figure 4 (see SAMPLERS)")
    novelty: bool = Field(
        True,
        description="measure every in-dataset population's novelty against the train checkpoints and "
        "the samplers' accuracy-novelty frontiers against the noise baseline",
    )
    gan_epochs: int = Field(1000, ge=1)
    gan_steps: int | None = Field(
        None,
        ge=1,
        description="cap on each latent GAN's optimiser steps (whole epochs); None = gan_epochs only. "
        "An epoch over all anchors costs 3.3x one over the top 30 %, so a cap in steps bounds S_GAN",
    )
    bandwidth: float | None = Field(
        None, gt=0, description="KDE bandwidth of the KDE samplers; None = the paper's 0.002"
    )
    ensemble_sizes: tuple[int, ...] = (1, 2, 3, 5, 10)
    ensemble_repeats: int = Field(15, ge=1)
    transfer_methods: tuple[str, ...] = ("kde30",)
    seed: int = 0
    decode_on_driver: bool | None = Field(
        None,
        description="decode samples in the driver (batched, milliseconds) instead of Ray Data decoder "
        "actors; None = when the cluster has no GPUs (an actor pool per population costs ~9 s of "
        "start-up on a CPU, bench/decode_eval.py)",
    )

    @model_validator(mode="after")
    def _check(self) -> ExperimentsConfig:
        unknown = [m for m in (*self.methods, *self.transfer_methods) if m not in SAMPLERS]
        if unknown:
            raise ValueError(f"unknown sampling method(s) {unknown}; valid: {', '.join(SAMPLERS)}")
        if not self.finetune_epochs or min(self.finetune_epochs) < 0:
            raise ValueError(f"finetune_epochs must be non-negative epochs, got {self.finetune_epochs}")
        if not self.ensemble_sizes or min(self.ensemble_sizes) < 1:
            raise ValueError(f"ensemble_sizes must be sizes >= 1, got {self.ensemble_sizes}")
        return self


def experiments_preset(preset: str = "quick", **overrides: Any) -> ExperimentsConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    values: dict[str, Any] = {
        "smoke": {
            "n": 4,
            "finetune_epochs": (0, 1),
            "methods": ("uniform", "kde30"),
            "gan_epochs": 5,
            "ensemble_sizes": (1, 2),
            "ensemble_repeats": 2,
        },
        "quick": {
            "n": 30,
            "finetune_epochs": (0, 1, 5),
            "gan_epochs": 300,
            "gan_steps": 4000,
            "ensemble_repeats": 10,
        },
        "paper": {},
    }[preset]
    values = {**values, **{k: v for k, v in overrides.items() if v is not None}}
    return make_config(ExperimentsConfig, values)
