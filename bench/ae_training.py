#!/usr/bin/env python
"""Autoencoder training throughput: the in-process loop vs Ray Train (DDP) workers, CPU and GPU.

Rows, measured side by side in one run; all of them run ``hyperrep_ray.autoencoder.loop.run_training_loop``:

- in-process, 1 / 2 torch threads: the loop in this process with a minimal session (rank 0 of 1,
  reports kept in memory, no Tune, no Ray; ``autoencoder.session.LocalSession``), which is what a
  one-worker Tune trial runs;
- in-process + torch.compile: the same, the session's ``prepare_model`` wraps the model in
  ``torch.compile`` (run in a child process with a time limit; a failure is reported as such; off
  with ``--quick`` unless ``--compile``: the first compile took about 3 minutes on a busy 2-core CPU,
  later runs reuse inductor's on-disk cache);
- Ray Train, 1 / 2 workers: a ``TorchTrainer`` set up as ``autoencoder.trainer.fit_autoencoder`` sets it up
  (``ScalingConfig(num_workers, use_gpu)``, one CPU per worker, DDP over gloo on CPU) running the loop
  through ``autoencoder.session.RayTrainSession``; after training the workers time the collectives DDP runs
  every step (all_reduce of a gradient-sized float32 buffer, broadcast of the module's buffers), alone;
- Ray Train, 2 workers, independent loops: the same workers and data split, but each runs the loop
  as a world of one (no DDP, no collectives): the ceiling for data parallelism on these cores. If it
  is no faster than one worker, the cores (not DDP) are the limit;
- GPU, fp32 / bf16 autocast: in-process on CUDA with ``AEConfig.amp`` off / on (where CUDA exists).

Data: synthetic. Throughput does not depend on the weight values, so the train set is random
N(0, 0.1) vectors of the zoo CNN's length (``token_layout(1).n_params``) and the payload carries
their layer variances, mean and standardisation, as a ``TrainingPayload``.

A sample is one weight vector of the train set per epoch (its two augmented views count once):
samples/s = vectors trained per epoch / steady-state seconds per epoch. Steady state: the loop runs a
warm-up epoch, then ``--epochs`` timed epochs; time comes from the loop's own clock (the history's
``seconds``), so Ray Train's start-up is not in samples/s (it is in "total wall s"). Validation runs
after the first and the last epoch only, on ``--val`` vectors (negligible); checkpoints only at the
end (not timed). With W workers every worker takes batches of ``batch_size`` from its 1/W of the
shuffled train set, so an epoch has 1/W of the optimiser steps of one worker.

    python bench/ae_training.py --quick                          # a few minutes on a 2-core CPU
    python bench/ae_training.py --preset paper --devices cuda    # the paper's size, GPU rows only
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _ae_table import Row, notes, plan, table  # noqa: E402
from _common import emit, log, machine_lines, usable_cores  # noqa: E402

from hyperrep_ray.autoencoder.bundle import architecture_for  # noqa: E402
from hyperrep_ray.autoencoder.data import TrainingPayload  # noqa: E402
from hyperrep_ray.autoencoder.loop import LoopConfig, run_training_loop  # noqa: E402
from hyperrep_ray.autoencoder.model import HyperAutoencoder  # noqa: E402
from hyperrep_ray.autoencoder.session import LocalSession, RayTrainSession  # noqa: E402
from hyperrep_ray.config import AEConfig, ae_preset  # noqa: E402
from hyperrep_ray.weightspace.tokens import layer_stats, standardisation, token_layout  # noqa: E402

# ---------------------------------------------------------------- data and sessions


def synthetic_payload(n_train: int, n_val: int, standardize: str, seed: int = 0) -> TrainingPayload:
    """What ``AEData.training_payload()`` gives, for random weight vectors (throughput only)."""
    layout = token_layout(1)
    rng = np.random.default_rng(seed)
    train = (0.1 * rng.standard_normal((n_train, layout.n_params))).astype(np.float32)
    val = (0.1 * rng.standard_normal((n_val, layout.n_params))).astype(np.float32)
    shift, scale = standardisation(train, layout, standardize)
    return TrainingPayload(
        train=train,
        val=val,
        var_tokens=layer_stats(train, layout)["var_tokens"].numpy(),
        mean_params=train.mean(0),
        token_shift=shift.numpy(),
        token_scale=scale.numpy(),
        in_channels=1,
    )


class RecordingSession:
    """A Ray Train session (:class:`RayTrainSession`) that also keeps what the loop reports."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.rank, self.world, self.device = inner.rank, inner.world, inner.device
        self.history: list[dict[str, Any]] = []

    def get_checkpoint(self):
        return self.inner.get_checkpoint()

    def prepare_model(self, model):
        return self.inner.prepare_model(model)

    def checkpoint_from_directory(self, path: str):
        return self.inner.checkpoint_from_directory(path)

    def report(self, metrics: dict[str, Any], checkpoint=None) -> None:
        self.history.append({**metrics, "cpu_s": time.process_time()})
        self.inner.report(metrics, checkpoint=checkpoint)


def epoch_plan(m: int, world: int, batch: int) -> tuple[int, int]:
    """(vectors trained per epoch over all workers, optimiser steps per epoch per worker), as the loop
    splits the train set (``m // world`` per worker, batches of fewer than 2 skipped)."""
    per_rank = m // world
    sizes = [min(batch, per_rank - i) for i in range(0, per_rank, batch)]
    sizes = [s for s in sizes if s >= 2]
    return sum(sizes) * world, len(sizes)


def steady_seconds(history: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(seconds per timed epoch, seconds of the warm-up epoch, CPU seconds per wall second of the
    process over the timed epochs) from the loop's history (``cpu_s``: the session's process_time)."""
    secs = [float(h["seconds"]) for h in history]
    cpu = [float(h["cpu_s"]) for h in history]
    return (secs[-1] - secs[0]) / (len(secs) - 1), secs[0], (cpu[-1] - cpu[0]) / (secs[-1] - secs[0])


def run_in_process(cfg: AEConfig, payload: TrainingPayload, threads: int, device: str, compile_model: bool):
    """Run the loop here with ``threads`` torch threads; (history, wall seconds)."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the loop sets its thread count from this
    session = LocalSession(device, compile_model=compile_model)
    try:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # the loop prints a line per epoch
            run_training_loop(LoopConfig(cfg, payload), session)
        wall = time.perf_counter() - t0
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old
    return session.history, wall


def _child(
    cfg_json: dict, payload: TrainingPayload, threads: int, device: str, compile_model: bool, queue
) -> None:
    try:
        history, wall = run_in_process(AEConfig(**cfg_json), payload, threads, device, compile_model)
        queue.put(("ok", history, wall))
    except BaseException as e:  # noqa: BLE001 - reported in the table
        traceback.print_exc()
        queue.put(("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160], 0.0))


def run_in_child(cfg: AEConfig, payload, threads: int, device: str, compile_model: bool, timeout: float):
    """``run_in_process`` in a fresh (spawned) process, killed after ``timeout`` seconds."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_child, args=(cfg.model_dump(mode="json"), payload, threads, device, compile_model, queue)
    )
    proc.start()
    try:
        status, history, wall = queue.get(timeout=timeout)
    except Exception:  # noqa: BLE001 - queue.Empty: timed out
        proc.kill()
        proc.join()
        raise RuntimeError(f"not finished within {timeout:.0f} s") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(history)
    return history, wall


# ---------------------------------------------------------------- Ray Train


def _collective_seconds(n_grad: int, buffer_numels: list[int], device, reps: int) -> dict[str, float]:
    """Seconds of one all_reduce of ``n_grad`` float32 and one broadcast of each buffer (what DDP
    runs per step), each timed alone, averaged over ``reps``."""
    import torch.distributed as dist

    grad = torch.zeros(n_grad, device=device)
    bufs = [torch.zeros(n, device=device) for n in buffer_numels]

    def allreduce():
        dist.all_reduce(grad)

    def broadcast():
        for b in bufs:
            dist.broadcast(b, 0)

    out = {}
    for name, fn in (("allreduce_s", allreduce), ("broadcast_s", broadcast)):
        for _ in range(3):
            fn()
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[name] = (time.perf_counter() - t0) / reps
    return out


def _ray_worker_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: the package's loop (DDP) or, with ``independent``, the loop as a world of one
    on this worker's share of the train set; writes its history and timings to ``result_dir``."""
    import ray
    import torch.distributed as dist

    inner = RayTrainSession()
    rank, world = inner.rank, inner.world
    out: dict[str, Any] = {"rank": rank, "world": world}
    if config["independent"]:
        payload = config["payload"]
        if isinstance(payload, ray.ObjectRef):
            payload = ray.get(payload)
        per = len(payload.train) // world
        mine = replace(payload, train=payload.train[rank * per : (rank + 1) * per])
        session = LocalSession(str(inner.device))
        run_training_loop({**config, "payload": mine}, session)
        if dist.is_initialized():
            dist.barrier()
    else:
        session = RecordingSession(inner)
        run_training_loop(config, session)
        if world > 1 and dist.is_initialized():
            model = HyperAutoencoder(architecture_for(AEConfig(**config["cfg"]), 1))
            n_grad = sum(p.numel() for p in model.parameters())
            buffers = [b.numel() for b in model.buffers()]
            out.update(_collective_seconds(n_grad, buffers, inner.device, reps=config["comm_reps"]))
    out["history"] = session.history
    out["threads"] = torch.get_num_threads()
    Path(config["result_dir"], f"rank{rank}.json").write_text(json.dumps(out, default=float))


def run_ray_train(cfg: AEConfig, payload_ref, storage: str, name: str, independent: bool, comm_reps: int):
    """A TorchTrainer as ``fit_autoencoder`` builds it, around the bench worker; (per-rank results,
    wall seconds of ``fit()`` including start-up)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    result_dir = Path(storage) / f"{name}-results"
    result_dir.mkdir(parents=True)
    trainer = TorchTrainer(
        _ray_worker_loop,
        train_loop_config={
            "cfg": cfg.model_dump(mode="json"),
            "payload": payload_ref,
            "independent": independent,
            "result_dir": str(result_dir),
            "comm_reps": comm_reps,
        },
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=0),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    ranks = [json.loads(p.read_text()) for p in sorted(result_dir.glob("rank*.json"))]
    if len(ranks) != cfg.num_workers:
        raise RuntimeError(f"{len(ranks)} of {cfg.num_workers} workers wrote results")
    return ranks, wall


# ---------------------------------------------------------------- rows


def measure_row(row: Row, args, cfg: AEConfig, payload, payload_ref, storage: str, n: int) -> None:
    rcfg = cfg.model_copy(
        update={"num_workers": row.workers, "use_gpu": row.device == "cuda", "amp": row.amp}
    )
    m = len(payload.train)
    samples, steps = epoch_plan(m, row.workers, rcfg.batch_size)
    load = os.getloadavg()[0]
    if row.kind == "in-process":
        if row.compile_model:
            history, wall = run_in_child(rcfg, payload, row.threads, row.device, True, args.compile_timeout)
        else:
            history, wall = run_in_process(rcfg, payload, row.threads, row.device, False)
        s_epoch, warm, cpu = steady_seconds(history)
        cpu_use = [cpu]
    else:
        independent = row.kind == "ray-independent"
        ranks, wall = run_ray_train(
            rcfg, payload_ref, storage, f"bench-{n}", independent, comm_reps=args.comm_reps
        )
        timings = [steady_seconds(r["history"]) for r in ranks]
        # DDP ranks move in step; independent ranks each own 1/W of the data: the slowest sets the epoch
        s_epoch = max(t[0] for t in timings)
        warm = max(t[1] for t in timings)
        cpu_use = [t[2] for t in timings]
        comm = {
            k: float(np.mean([r[k] for r in ranks])) for k in ("allreduce_s", "broadcast_s") if k in ranks[0]
        }
        if comm and row.comm_s:  # keep the fastest round's
            comm = {k: min(v, row.comm_s.get(k, v)) for k, v in comm.items()}
        row.comm_s = comm
    if not math.isfinite(row.s_per_epoch) or s_epoch < row.s_per_epoch:
        row.s_per_epoch, row.warmup_s, row.wall_s = s_epoch, warm, wall
        row.samples_per_s, row.steps, row.cpu_use, row.load = samples / s_epoch, steps, cpu_use, load


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer samples and epochs (a few minutes on 2 cores)")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "paper"], help="AE size (digits)")
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="train vectors (default 768 with --quick, "
        "else 1750 = the quick zoo's 350 train models x 5 epochs)",
    )
    p.add_argument("--val", type=int, default=32, help="validation vectors")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs after the warm-up (default 2/3)")
    p.add_argument("--batch-size", type=int, default=None, help="per worker (default: the preset's)")
    p.add_argument("--devices", default="cpu,cuda", help="comma list of cpu, cuda (default: both)")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure the torch.compile row (default: yes, but not with --quick: compiling takes minutes)",
    )
    p.add_argument("--compile-timeout", type=float, default=None, help="seconds (default 300/600)")
    p.add_argument("--comm-reps", type=int, default=20, help="repetitions of the timed collectives")
    p.add_argument("--rounds", type=int, default=1, help="measure every row this often, keep the fastest")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    q = args.quick
    args.samples = args.samples or (768 if q else 1750)
    args.epochs = args.epochs or (2 if q else 3)
    args.compile_timeout = args.compile_timeout or (300 if q else 600)
    args.compile = (not q) if args.compile is None else args.compile
    return args


def measure_all(rows: list[Row], args, cfg: AEConfig, payload: TrainingPayload, payload_ref) -> None:
    """Every row ``args.rounds`` times, interleaved; a failing row is noted and the others go on."""
    n = 0
    with tempfile.TemporaryDirectory(prefix="ae_bench_") as storage:
        for rnd in range(args.rounds):
            for r in rows:
                if r.skip:
                    continue
                n += 1
                log(f"round {rnd + 1}/{args.rounds}: {r.label} [{r.device}, {r.workers} x {r.threads}]")
                try:
                    measure_row(r, args, cfg, payload, payload_ref, storage, n)
                except Exception as e:  # noqa: BLE001 - one failing row must not lose the others
                    log(f"  failed: {type(e).__name__}: {e}")
                    if not math.isfinite(r.samples_per_s):
                        first = str(e).splitlines()[0] if str(e) else ""
                        r.note = f"failed: {type(e).__name__}: {first}"[:200]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = ae_preset(
        args.preset,
        "digits",
        epochs=1 + args.epochs,
        eval_every=10**6,  # validation after the first and the last epoch only
        checkpoint_every=10**6,  # one checkpoint, after the last epoch's clock
        batch_size=args.batch_size,
    )
    torch.set_num_threads(1)
    log(f"synthetic payload: {args.samples} train / {args.val} val vectors")
    payload = synthetic_payload(args.samples, args.val, cfg.standardize)
    payload_ref = None
    if not args.no_ray:
        import ray

        ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False)
        payload_ref = ray.put(payload)
    rows = plan(args)
    t0 = time.perf_counter()
    measure_all(rows, args, cfg, payload, payload_ref)
    lines = ["# Autoencoder training throughput", "", *machine_lines()]
    lines += notes(args, cfg, args.samples, args.epochs, time.perf_counter() - t0)
    emit("\n".join([*lines, *table(rows, cfg, args.samples)]), args.out)
    if not args.no_ray:
        import ray

        ray.shutdown()


if __name__ == "__main__":
    main()
