#!/usr/bin/env python
"""Zoo training throughput: one-model PyTorch loop vs the population trainer vs Ray fan-out.

Rows, measured side by side in one run, per data set and device:

- one-model loop: ``train_one_by_one`` (one ``ZooCNN``, one plain PyTorch loop per model);
- population K: ``train_population`` in populations of K models, in this process;
- Ray Tasks K: the same populations fanned out as one Ray Task per population, one task per core
  (``ray.remote`` around ``train_population``; the Parquet write is measured by ``store_io.py``).

Every row uses the same hyperparameters and data, so every model takes the same number of
optimisation steps; wall time includes the evaluation on the train and test images after each
epoch (and before the first), as in the zoo stage. In-process rows use ``--threads`` torch
threads (default 1 = one core). ``--baseline-ref REF`` adds in-process rows that use
``hyperrep_ray/zoo/population.py`` as it is at git REF (before/after comparison in one run).

    python bench/zoo_throughput.py --quick            # a few minutes on a laptop CPU
    python bench/zoo_throughput.py --devices cuda     # on a GPU machine
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import NOT_MEASURED, emit, fmt, load_average, log, machine_lines, usable_cores  # noqa: E402

from hyperrep_ray.config import ZooConfig, zoo_preset  # noqa: E402
from hyperrep_ray.data.images import ImageData, load_dataset  # noqa: E402
from hyperrep_ray.zoo import train as train_mod  # noqa: E402

# ---------------------------------------------------------------- data


def synthetic_data(n_train: int, n_test: int, seed: int = 0) -> ImageData:
    """MNIST-shaped random images (1x28x28, standard normal) with random labels: throughput only."""
    g = torch.Generator().manual_seed(seed)
    return ImageData(
        "synthetic",
        torch.randn(n_train, 1, 28, 28, generator=g),
        torch.randint(0, 10, (n_train,), generator=g),
        torch.randn(n_test, 1, 28, 28, generator=g),
        torch.randint(0, 10, (n_test,), generator=g),
        {"note": "random tensors, random labels"},
    )


def subset(data: ImageData, n: int) -> ImageData:
    return ImageData(data.name, data.train_x[:n], data.train_y[:n], data.test_x[:n], data.test_y[:n])


# ---------------------------------------------------------------- rows


@dataclass
class Row:
    data: str
    device: str
    trainer: str
    k: str
    models: int = 0
    seconds: float = math.nan
    cores: int = 1
    note: str = ""
    run: Callable[[], float] | None = None

    def model_epochs_per_s(self, epochs: int) -> float:
        return self.models * epochs / self.seconds


@contextlib.contextmanager
def population_at(ref: str | None):
    """Make ``train_population`` use population.py as of git ``ref`` (None: the working tree)."""
    if ref is None:
        yield
        return
    src = subprocess.check_output(
        ["git", "show", f"{ref}:hyperrep_ray/zoo/population.py"], cwd=ROOT, text=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "population_ref.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location("_population_ref", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    names = [
        "PopulationCNN",
        "evaluate_population",
        "per_model_loss",
        "make_optimizer",
        "data_order_generator",
    ]
    saved = {n: getattr(train_mod, n) for n in names}
    try:
        for n in names:
            setattr(train_mod, n, getattr(mod, n))
        yield
    finally:
        for n, v in saved.items():
            setattr(train_mod, n, v)


def time_in_process(fn, seeds: list[int], data: ImageData, cfg: ZooConfig, device: str) -> float:
    t0 = time.perf_counter()
    fn(seeds, data, cfg, device)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def population_models(seeds: list[int], data: ImageData, cfg: ZooConfig, device: str) -> None:
    train_mod.train_models(seeds, data, cfg, device)


def _ray_population_task():
    import ray

    @ray.remote
    def population_task(seeds: list[int], data: ImageData, cfg_json: dict, device: str, threads: int):
        torch.set_num_threads(threads)
        out = train_mod.train_population(seeds, data, ZooConfig(**cfg_json), device)
        return out.weights.shape

    return population_task


def time_ray(
    k: int, n_shards: int, data_ref, cfg: ZooConfig, device: str, num_cpus: float, num_gpus: float
) -> float:
    import ray

    task = _ray_population_task().options(num_cpus=num_cpus, num_gpus=num_gpus)
    cfg_json = cfg.model_dump(mode="json")
    t0 = time.perf_counter()
    refs = [
        task.remote(list(range(1 + i * k, 1 + (i + 1) * k)), data_ref, cfg_json, device, 1)
        for i in range(n_shards)
    ]
    ray.get(refs)
    return time.perf_counter() - t0


def plan(args, name: str, data: ImageData, device: str, cfg: ZooConfig, cores: int) -> list[Row]:
    """The rows of one data set and device; each measurable row gets a ``run`` returning seconds."""
    ks = args.ks
    rows: list[Row] = []
    if device == "cuda" and not torch.cuda.is_available():
        rows.append(Row(name, device, "one-model loop", "-", note=NOT_MEASURED + " (no CUDA device)"))
        for label in ["population", "Ray Tasks"]:
            rows += [Row(name, device, label, str(k), note=NOT_MEASURED + " (no CUDA device)") for k in ks]
        return rows

    # warm-up (oneDNN primitives, CUDA context), not timed
    tiny = subset(data, 64)
    train_mod.train_population([1, 2], tiny, cfg, device)
    train_mod.train_one_by_one([1], tiny, cfg, device)

    n_one = args.one_models
    seeds = list(range(1, n_one + 1))
    rows.append(Row(name, device, "one-model loop", "-", n_one, cores=args.threads))
    rows[-1].run = lambda: time_in_process(train_mod.train_one_by_one, seeds, data, cfg, device)

    for k in ks:
        n = k * max(1, math.ceil(args.min_models / k))
        kcfg = cfg.model_copy(update={"population_size": k})
        variants = [("population", None)] + (
            [(f"population @{args.baseline_ref}", args.baseline_ref)] * bool(args.baseline_ref)
        )
        for label, ref in variants:

            def run(ref=ref, n=n, kcfg=kcfg):
                with population_at(ref):
                    return time_in_process(population_models, list(range(1, n + 1)), data, kcfg, device)

            rows.append(Row(name, device, label, str(k), n, cores=args.threads))
            rows[-1].run = run

    if args.no_ray:
        rows += [Row(name, device, "Ray Tasks", str(k), note=NOT_MEASURED + " (--no-ray)") for k in ks]
        return rows
    import ray

    data_ref = ray.put(data)
    if device == "cuda":
        n_tasks, num_cpus, num_gpus = args.gpu_tasks, 1.0, 1.0 / args.gpu_tasks
    else:
        n_tasks, num_cpus, num_gpus = cores, 1.0, 0.0
    time_ray(1, n_tasks, ray.put(tiny), cfg, device, num_cpus, num_gpus)  # start and warm the workers
    for k in ks:
        n_shards = n_tasks * max(1, math.ceil(args.min_models / k))
        rows.append(
            Row(name, device, "Ray Tasks", str(k), n_shards * k, cores=n_tasks if device == "cpu" else 1)
        )
        rows[-1].run = lambda k=k, n_shards=n_shards: time_ray(
            k, n_shards, data_ref, cfg, device, num_cpus, num_gpus
        )
    return rows


def measure(rows: list[Row], rounds: int) -> None:
    """Run every measurable row once per round, rows interleaved; keep each row's fastest round
    (the machine may be shared: interleaving spreads other load over all rows)."""
    todo = [r for r in rows if r.run is not None]
    for rnd in range(rounds):
        for r in todo:
            log(f"round {rnd + 1}/{rounds}: [{r.data}/{r.device}] {r.trainer} K={r.k}, {r.models} models")
            r.seconds = min(r.seconds, r.run()) if math.isfinite(r.seconds) else r.run()


# ---------------------------------------------------------------- table


def table(rows: list[Row], datasets: dict[str, ImageData], cfg: ZooConfig) -> list[str]:
    out = [
        "| data | device | trainer | K | models | steps/model | wall s | model-epochs/s | images·models/s "
        "| cores | × one-model loop | per core × loop |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    loops = {(r.data, r.device): r for r in rows if r.trainer == "one-model loop" and r.models}
    for r in rows:
        data = datasets[r.data]
        n_train = data.train_x.shape[0]
        steps = cfg.epochs * math.ceil(n_train / cfg.batch_size)
        if not r.models:
            out.append(f"| {r.data} | {r.device} | {r.trainer} | {r.k} | - | {steps} | {r.note} | | | | | |")
            continue
        me = r.model_epochs_per_s(cfg.epochs)
        base = loops.get((r.data, r.device))
        ratio = me / base.model_epochs_per_s(cfg.epochs) if base else math.nan
        per_core = (me / r.cores) / (base.model_epochs_per_s(cfg.epochs) / base.cores) if base else math.nan
        cores = str(r.cores) if r.device == "cpu" else "1 GPU"
        out.append(
            f"| {r.data} | {r.device} | {r.trainer} | {r.k} | {r.models} | {steps} | {fmt(r.seconds, 1)} "
            f"| {fmt(me)} | {fmt(me * n_train)} | {cores} | {fmt(ratio)} "
            f"| {fmt(per_core) if r.device == 'cpu' else '-'} |"
        )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 epoch, small synthetic set, fewer models")
    p.add_argument("--devices", default="cpu,cuda", help="comma list of cpu, cuda (default: both)")
    p.add_argument("--datasets", default="digits,synthetic")
    p.add_argument("--ks", default="1,8,64,256", help="population sizes")
    p.add_argument("--epochs", type=int, default=None, help="default: 1 with --quick, else 2")
    p.add_argument("--min-models", type=int, default=None, help="models per row at least (default 8/16)")
    p.add_argument("--one-models", type=int, default=None, help="models in the one-model loop (default 4/8)")
    p.add_argument("--synthetic-train", type=int, default=None, help="default 2048 with --quick, else 60000")
    p.add_argument("--synthetic-test", type=int, default=None, help="default 512 with --quick, else 10000")
    p.add_argument("--threads", type=int, default=1, help="torch threads for in-process rows")
    p.add_argument("--gpu-tasks", type=int, default=4, help="Ray Tasks sharing one GPU (cuda rows)")
    p.add_argument("--rounds", type=int, default=1, help="measure every row this often, keep the fastest")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--baseline-ref", default=None, help="git ref: also time population.py as of this ref")
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    q = args.quick
    args.ks = [int(k) for k in args.ks.split(",")]
    args.epochs = args.epochs or (1 if q else 2)
    args.min_models = args.min_models or (8 if q else 16)
    args.one_models = args.one_models or (4 if q else 8)
    args.synthetic_train = args.synthetic_train or (2048 if q else 60_000)
    args.synthetic_test = args.synthetic_test or (512 if q else 10_000)
    return args


def notes(args, cfg, datasets: dict[str, ImageData], seconds: float) -> list[str]:
    """What was run and how to read the table."""
    return [
        f"- load average at end: {load_average()}; whole run {seconds:.0f} s; "
        f"{args.rounds} round(s), rows interleaved, fastest round shown",
        f"- hyperparameters (all rows): {cfg.activation}, {cfg.init} init, {cfg.optimizer} lr {cfg.lr}, "
        f"batch {cfg.batch_size}, {cfg.epochs} epoch(s); evaluation on train + test images after every "
        "epoch and before the first (included in wall time)",
        "- data: "
        + "; ".join(
            f"{n} {tuple(d.train_x.shape)} train / {d.test_x.shape[0]} test"
            + (" (random tensors with random labels: throughput only)" if n == "synthetic" else "")
            for n, d in datasets.items()
        ),
        "- images·models/s counts training images (models × epochs × train images / wall s); "
        "'× one-model loop' compares model-epochs/s with the one-model loop on the same data and device; "
        "'per core × loop' divides both by the cores they used",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cores = usable_cores()
    datasets: dict[str, ImageData] = {
        name: load_dataset("digits")
        if name == "digits"
        else synthetic_data(args.synthetic_train, args.synthetic_test)
        for name in args.datasets.split(",")
    }
    cfg = zoo_preset("quick", epochs=args.epochs)
    if not args.no_ray:
        import ray

        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    t0 = time.perf_counter()
    rows: list[Row] = []
    for name, data in datasets.items():
        for device in args.devices.split(","):
            rows += plan(args, name, data, device, cfg, cores)
    measure(rows, args.rounds)
    lines = ["# Zoo training throughput", "", *machine_lines(args.threads)]
    lines += [*notes(args, cfg, datasets, time.perf_counter() - t0), *table(rows, datasets, cfg)]
    emit("\n".join(lines), args.out)
    if not args.no_ray:
        import ray

        ray.shutdown()


if __name__ == "__main__":
    main()
