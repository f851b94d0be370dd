"""Zoo training: populations of CNNs per Ray Task, checkpoints of every epoch into the store.

The zoo is cut into shards of ``models_per_shard`` models; each shard is one Ray Task that
trains its models as populations of ``population_size`` (see ``population.py``) and returns
its rows; the driver writes each finished shard atomically. A rerun skips the shards that are
complete on disk, so an interrupted run loses at most the shards in flight and never
duplicates a model.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hyperrep_ray.config import INIT_RULES, ZooConfig
from hyperrep_ray.data.accuracy import evaluate_accuracy
from hyperrep_ray.data.images import ImageData, load_dataset
from hyperrep_ray.zoo.cnn import build_model, init_params, model_to_vector
from hyperrep_ray.zoo.population import (
    PopulationCNN,
    data_order_generator,
    evaluate_population,
    make_optimizer,
    per_model_loss,
)

log = logging.getLogger(__name__)


@dataclass
class TrainedModels:
    """Checkpoints of K models at epochs 0..E. Arrays are (K, E+1[, N])."""

    seeds: list[int]
    weights: np.ndarray
    train_acc: np.ndarray
    train_loss: np.ndarray
    test_acc: np.ndarray
    test_loss: np.ndarray
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def concat(parts: list[TrainedModels]) -> TrainedModels:
        return TrainedModels(
            seeds=[s for p in parts for s in p.seeds],
            weights=np.concatenate([p.weights for p in parts]),
            train_acc=np.concatenate([p.train_acc for p in parts]),
            train_loss=np.concatenate([p.train_loss for p in parts]),
            test_acc=np.concatenate([p.test_acc for p in parts]),
            test_loss=np.concatenate([p.test_loss for p in parts]),
            seconds=sum(p.seconds for p in parts),
        )


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_population(
    seeds: list[int], data: ImageData, cfg: ZooConfig, device: str | torch.device | None = "cpu"
) -> TrainedModels:
    """Train len(seeds) models as one batched module; record every epoch 0..cfg.epochs."""
    t0 = time.perf_counter()
    dev = _device(device)
    k, epochs = len(seeds), cfg.epochs
    model = PopulationCNN(
        [init_params(data.in_channels, cfg.init, s) for s in seeds], data.in_channels, cfg.activation
    ).to(dev)
    opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
    tx, ty = data.train_x.to(dev), data.train_y.to(dev)
    ex, ey = data.test_x.to(dev), data.test_y.to(dev)
    gens = [data_order_generator(s) for s in seeds]
    bs = cfg.batch_size
    rec = _Recorder(k, epochs, model.vectors().shape[1])

    def record(epoch: int) -> None:
        tr_acc, tr_loss = evaluate_population(model, tx, ty)
        te_acc, te_loss = evaluate_population(model, ex, ey)
        rec.put(epoch, model.vectors(), tr_acc, tr_loss, te_acc, te_loss)

    record(0)
    for epoch in range(1, epochs + 1):
        train_population_epoch(model, opt, tx, ty, gens, bs)
        record(epoch)
    return rec.result(seeds, time.perf_counter() - t0)


def train_population_epoch(
    model: PopulationCNN,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    gens: list[torch.Generator],
    batch_size: int,
) -> None:
    """One epoch of a population: every model draws its own shuffled order of (x, y) from its
    own generator and sees its own mini-batches; the loss is the sum of the models' mean losses,
    so each model gets exactly the gradient it would get alone (shared by zoo training and
    fine-tuning)."""
    n = x.shape[0]
    order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(x.device)  # (K, n)
    for i in range(0, n, batch_size):
        idx = order[:, i : i + batch_size]
        logits = model(x[idx])
        loss = per_model_loss(logits, y[idx]).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def train_one_by_one(
    seeds: list[int], data: ImageData, cfg: ZooConfig, device: str | torch.device | None = "cpu"
) -> TrainedModels:
    """The simple way: one ``ZooCNN``, one plain PyTorch loop per model.

    Kept as the reference semantics of ``train_population`` (tests compare them) and as the
    benchmark baseline."""
    t0 = time.perf_counter()
    dev = _device(device)
    tx, ty = data.train_x.to(dev), data.train_y.to(dev)
    ex, ey = data.test_x.to(dev), data.test_y.to(dev)
    n, bs = tx.shape[0], cfg.batch_size
    rec = None
    for j, seed in enumerate(seeds):
        model = build_model(data.in_channels, cfg.activation, cfg.init, seed).to(dev)
        if rec is None:
            rec = _Recorder(len(seeds), cfg.epochs, model_to_vector(model).shape[0])
        opt = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay)
        g = data_order_generator(seed)
        for epoch in range(cfg.epochs + 1):
            if epoch > 0:
                model.train()
                order = torch.randperm(n, generator=g).to(dev)
                for i in range(0, n, bs):
                    idx = order[i : i + bs]
                    loss = torch.nn.functional.cross_entropy(model(tx[idx]), ty[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            tr = evaluate_accuracy(model, tx, ty)
            te = evaluate_accuracy(model, ex, ey)
            rec.put_one(j, epoch, model_to_vector(model), tr[0], tr[1], te[0], te[1])
    assert rec is not None, "no seeds given"
    return rec.result(seeds, time.perf_counter() - t0)


class _Recorder:
    def __init__(self, k: int, epochs: int, n_params: int):
        shape = (k, epochs + 1)
        self.weights = np.zeros((*shape, n_params), np.float32)
        self.metrics = {
            m: np.zeros(shape, np.float32) for m in ("train_acc", "train_loss", "test_acc", "test_loss")
        }

    def put(self, epoch: int, vectors, tr_acc, tr_loss, te_acc, te_loss) -> None:
        self.weights[:, epoch] = vectors
        for name, v in zip(self.metrics, (tr_acc, tr_loss, te_acc, te_loss), strict=True):
            self.metrics[name][:, epoch] = v

    def put_one(self, j: int, epoch: int, vector, tr_acc, tr_loss, te_acc, te_loss) -> None:
        self.weights[j, epoch] = vector
        for name, v in zip(self.metrics, (tr_acc, tr_loss, te_acc, te_loss), strict=True):
            self.metrics[name][j, epoch] = v

    def result(self, seeds: list[int], seconds: float) -> TrainedModels:
        m = self.metrics
        return TrainedModels(
            seeds=list(seeds),
            weights=self.weights,
            train_acc=m["train_acc"],
            train_loss=m["train_loss"],
            test_acc=m["test_acc"],
            test_loss=m["test_loss"],
            seconds=seconds,
        )


def train_models(
    seeds: list[int], data: ImageData, cfg: ZooConfig, device: str | torch.device | None = "cpu"
) -> TrainedModels:
    """Train ``seeds`` in populations of ``cfg.population_size``."""
    k = cfg.population_size
    parts = [train_population(seeds[i : i + k], data, cfg, device) for i in range(0, len(seeds), k)]
    return TrainedModels.concat(parts)


# ---------------------------------------------------------------- the zoo on Ray Tasks


def plan_shards(cfg: ZooConfig) -> list[list[int]]:
    """Model ids (0-based) per shard; fixed by the config so reruns find the same shards."""
    ids = list(range(cfg.num_models))
    return [ids[i : i + cfg.models_per_shard] for i in range(0, len(ids), cfg.models_per_shard)]


def zoo_metadata(cfg: ZooConfig, data: ImageData) -> dict[str, Any]:
    from hyperrep_ray import store
    from hyperrep_ray.zoo.cnn import layer_shapes, num_params

    return {
        "format_version": store.FORMAT_VERSION,
        "name": cfg.name,
        "dataset": cfg.dataset,
        "architecture": {
            "name": "ZooCNN",
            "reference": "Schuerholt et al. 2022, Table 6",
            "in_channels": data.in_channels,
            "activation": cfg.activation,
            "layers": [{"name": n, "shape": list(s)} for n, s in layer_shapes(data.in_channels)],
        },
        "num_params": num_params(data.in_channels),
        "hyperparameters": {
            "activation": cfg.activation,
            "init": cfg.init,
            "init_rule": INIT_RULES[cfg.init],
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "optimizer": cfg.optimizer,
            "batch_size": cfg.batch_size,
            "epochs": cfg.epochs,
            "seeds": f"model_id + {cfg.seed_offset + 1}",
            "image_recipe": cfg.image_recipe,
        },
        "num_models": cfg.num_models,
        "epochs_recorded": list(range(cfg.epochs + 1)),
        "split_rule": {
            "by": "model",
            "fractions": dict(zip(store.SPLITS, cfg.split_fractions, strict=True)),
            "seed": cfg.split_seed,
            "method": "numpy default_rng(seed).permutation(num_models); first train, then val, then test",
        },
        "preprocessing": data.preprocessing,
        "shards": {"count": len(plan_shards(cfg)), "models_per_shard": cfg.models_per_shard},
        "identity": cfg.identity(),
        "config": cfg.model_dump(mode="json"),
    }


def prepare_store(cfg: ZooConfig, out: str, data: ImageData) -> dict[str, Any]:
    """Write zoo.json for a new store, or check that an existing one was made by the same
    settings (a rerun resumes; different settings would mix two zoos in one store)."""
    from hyperrep_ray import store

    fs, path = store.resolve(store.zoo_json_path(out))
    if store.exists(fs, path):
        meta = store.read_zoo_meta(out)
        old, new = stored_identity(meta), cfg.identity()
        if old != new:
            diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if old.get(k) != new.get(k)}
            raise store.StoreError(
                f"the store at {out} was made with different settings {diff} (stored, requested); "
                f"use another --out, or the original settings to resume it"
            )
        return meta
    meta = zoo_metadata(cfg, data)
    store.write_json(store.zoo_json_path(out), meta)
    return meta


def stored_identity(meta: dict[str, Any]) -> dict[str, Any]:
    """The identity a store was made with, completed for stores written before the identity named
    the image recipe and the init rule: their recipe was "ours"; of their inits only "default" drew
    what it draws now, the others drew the earlier rules (so such a store is never resumed)."""
    identity = dict(meta.get("identity") or {})
    identity.setdefault("image_recipe", "ours")
    if "init_rule" not in identity:
        init = identity.get("init")
        identity["init_rule"] = (
            INIT_RULES["default"] if init == "default" else f"{init} (rule before INIT_RULES)"
        )
    return identity


def completed_shards(out: str, meta: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Shards on disk that are complete (checked from their footers); a broken one raises."""
    from hyperrep_ray import store

    fs, _ = store.resolve(out)
    done = {}
    for path in store.list_shards(out):
        info = store.shard_info(path, int(meta["num_params"]), fs)
        done[int(info["shard"])] = info
    return done


def train_shard(
    shard_index: int, model_ids: list[int], cfg: ZooConfig, data: ImageData, device: str | None = None
) -> tuple[int, Any, list[int], float]:
    """Train one shard; returns (index, Arrow table, diverged model ids, seconds)."""
    from hyperrep_ray import store

    seeds = [cfg.seed_offset + i + 1 for i in model_ids]
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    trained = train_models(seeds, data, cfg, device)
    splits_all = store.assign_splits(cfg.num_models, cfg.split_fractions, cfg.split_seed)
    hyper = {
        "activation": cfg.activation,
        "init": cfg.init,
        "lr": float(cfg.lr),
        "weight_decay": float(cfg.weight_decay),
        "optimizer": cfg.optimizer,
    }
    metrics = {
        "train_acc": trained.train_acc,
        "test_acc": trained.test_acc,
        "train_loss": trained.train_loss,
        "test_loss": trained.test_loss,
    }
    table, diverged = store.build_shard_table(
        model_ids, seeds, [splits_all[i] for i in model_ids], trained.weights, metrics, hyper
    )
    return shard_index, table, diverged, trained.seconds


def _shard_task():
    import ray

    @ray.remote
    def shard_task(shard_index: int, model_ids: list[int], cfg_json: dict[str, Any], data: ImageData):
        torch.set_num_threads(max(1, int(float(os.environ.get("OMP_NUM_THREADS", "1")))))
        return train_shard(shard_index, model_ids, ZooConfig(**cfg_json), data)

    return shard_task


@dataclass
class ZooResult:
    out: str
    trained_shards: list[int]
    skipped_shards: list[int]
    diverged: list[int]
    seconds: float
    meta: dict[str, Any]


def train_zoo(
    cfg: ZooConfig,
    out: str,
    data: ImageData | None = None,
    progress: bool = True,
    on_shard_written: Any = None,
) -> ZooResult:
    """Train the zoo into the store at ``out`` with one Ray Task per missing shard."""

    t0 = time.perf_counter()
    data = data or load_dataset(
        cfg.dataset, cfg.data_root, cfg.download, cfg.image_split_seed, recipe=cfg.image_recipe
    )
    meta = prepare_store(cfg, out, data)
    shards = plan_shards(cfg)
    done = completed_shards(out, meta)
    todo = [i for i in range(len(shards)) if i not in done]
    diverged = [m for info in done.values() for m in info.get("diverged", [])]
    if todo:
        diverged += _run_shard_tasks(cfg, out, data, shards, todo, progress, on_shard_written)
    if diverged:
        log.warning(
            "%d model(s) diverged (non-finite weights) and are not in the store: %s", len(diverged), diverged
        )
    return ZooResult(out, todo, sorted(done), sorted(diverged), time.perf_counter() - t0, meta)


def write_trained_shard(
    out: str, cfg: ZooConfig, shards: list[list[int]], index: int, table: Any, div: list[int]
) -> None:
    """Write one finished shard atomically, with the footer a rerun checks to skip it."""
    from hyperrep_ray import store

    info = {"model_ids": shards[index], "epochs": list(range(cfg.epochs + 1)), "diverged": div}
    store.write_shard(out, index, table, info)


def _run_shard_tasks(
    cfg: ZooConfig,
    out: str,
    data: ImageData,
    shards: list[list[int]],
    todo: list[int],
    progress: bool,
    on_shard_written: Any,
) -> list[int]:
    """One Ray Task per shard in ``todo``; each finished shard is written as it arrives. Returns the
    diverged model ids."""
    import ray
    from tqdm.auto import tqdm

    from hyperrep_ray.runtime import cluster_has_gpus, ensure_ray
    from hyperrep_ray.zoo.resources import TaskRequest, check_task_fits

    ensure_ray()
    gpus = cfg.num_gpus_per_task
    if gpus is None:
        gpus = 0.25 if cluster_has_gpus() else 0.0
    check_task_fits(TaskRequest(cfg.num_cpus_per_task, gpus, what="each zoo shard task"))
    task = _shard_task().options(num_cpus=cfg.num_cpus_per_task, num_gpus=gpus, max_retries=cfg.max_retries)
    data_ref = ray.put(data)
    cfg_json = cfg.model_dump(mode="json")
    pending = {task.remote(i, shards[i], cfg_json, data_ref): i for i in todo}
    done_models = cfg.num_models - sum(len(shards[i]) for i in todo)
    bar = tqdm(
        total=cfg.num_models, initial=done_models, unit="model", desc=f"zoo {cfg.name}", disable=not progress
    )
    diverged: list[int] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index, table, div, _secs = ray.get(ref)
                del pending[ref]
                write_trained_shard(out, cfg, shards, index, table, div)
                diverged.extend(div)
                bar.update(len(shards[index]))
                if on_shard_written is not None:
                    on_shard_written(index)
    finally:
        bar.close()
        for ref in pending:
            ray.cancel(ref, force=True)  # pure task: killing it loses nothing, and no
            # KeyboardInterrupt lands half-way through an import in a reused worker
    return diverged


def zoo_summary(out: str) -> dict[str, Any]:
    """Models, epochs, splits and test-accuracy quantiles per recorded epoch (no weights read)."""
    from hyperrep_ray import store

    meta = store.read_zoo_meta(out)
    df = store.read_checkpoints(out, columns=["model_id", "epoch", "split", "test_acc"]).to_pandas()
    per_epoch = {}
    for epoch, g in df.groupby("epoch"):
        q = np.quantile(g["test_acc"], [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
        per_epoch[int(epoch)] = {
            "n": len(g),
            "mean": float(g["test_acc"].mean()),
            "std": float(g["test_acc"].std(ddof=0)),
            **{
                k: float(v)
                for k, v in zip(("min", "q05", "q25", "median", "q75", "q95", "max"), q, strict=True)
            },
        }
    models = df.drop_duplicates("model_id")
    return {
        "name": meta["name"],
        "dataset": meta["dataset"],
        "num_params": meta["num_params"],
        "models_planned": meta["num_models"],
        "models_stored": int(models.shape[0]),
        "epochs": sorted(int(e) for e in df["epoch"].unique()),
        "splits": {k: int(v) for k, v in models["split"].value_counts().items()},
        "rows": int(df.shape[0]),
        "test_acc": per_epoch,
    }
