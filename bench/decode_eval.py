#!/usr/bin/env python
"""Decode -> evaluate throughput: a plain Python loop vs batched in-process code vs the Ray Data pipeline.

Embeddings z are decoded to zoo-CNN weight vectors by a hyper-representation autoencoder and every
decoded model is scored on the digits test images (optionally after fine-tuning). Rows, measured
side by side in one run on the same embeddings:

- plain loop: ``ray_pipeline.decode_plain_loop``, one embedding at a time: ``HyperRepresentation.decode``
  then one ``ZooCNN`` scored with ``data.images.evaluate_accuracy`` (the simple way, no Ray);
- batched decode only: ``HyperRepresentation.decode`` of all embeddings (512 per batch), no scoring;
- batched decode + population evaluator: the same decode, then ``autoencoder.scoring.weights_accuracy``
  (the models scored as populations of 256);
- batched decode + ``finetune_population``: what each task of the Ray Data pipeline runs, in-process,
  with populations of the pipeline's batch size (0 fine-tuning epochs = evaluation only; and 1);
- Ray Data: ``ray_pipeline.evaluate_embeddings`` (decoder actor pool -> fine-tune/evaluate tasks), with
  one or two decoder actors, 0 fine-tuning epochs (and 1). One Ray CPU per actor and per task;
- Ray Data without actors: batched decode in-process, then ``ray_pipeline.evaluate_weights`` (the same
  fine-tune/evaluate tasks): separates the decoder actor pool's cost from the tasks'.

In-process rows use ``--threads`` torch threads (default 1); Ray rows use the local Ray instance's
cores. Every row scores the same decoded models, so the accuracies must agree: "max |Δacc|" compares
each row with the plain loop (0 epochs) or with the in-process fine-tuning (1 epoch; the pipeline
derives each sample's data order from (seed, sample_id), so they train identically).

The autoencoder is untrained unless ``--ae DIR`` names a trained bundle: throughput does not need a
good autoencoder, only its size (``--preset``, default quick). Its output standardisation is fitted to
freshly initialised zoo CNNs so decoded weights have a plausible scale (and are finite). A warm-up
call of every row on 8 embeddings runs first (imports, Ray worker processes, oneDNN primitives); each
timed Ray call still starts its own actor pool, so its fixed cost is part of the Ray rows.

    python bench/decode_eval.py --quick      # 64 models, a few minutes on a 2-core CPU
    python bench/decode_eval.py              # 512 models
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import NOT_MEASURED, emit, fmt, load_average, log, machine_lines, usable_cores  # noqa: E402

from hyperrep_ray.autoencoder.bundle import HyperRepresentation, architecture_for  # noqa: E402
from hyperrep_ray.autoencoder.model import HyperAutoencoder  # noqa: E402
from hyperrep_ray.autoencoder.scoring import weights_accuracy  # noqa: E402
from hyperrep_ray.config import ae_preset  # noqa: E402
from hyperrep_ray.data.images import ImageData, load_dataset  # noqa: E402
from hyperrep_ray.evaluation import ray_pipeline as ev  # noqa: E402
from hyperrep_ray.evaluation.finetune import (  # noqa: E402
    FinetuneHyper,
    finetune_population,
    finetune_seeds,
    hyper_for_dataset,
)
from hyperrep_ray.weightspace.tokens import layer_stats, standardisation, token_layout  # noqa: E402

SEED = 0

# ---------------------------------------------------------------- the autoencoder


def untrained_bundle(preset: str, directory: Path) -> Path:
    """An untrained autoencoder of the preset's size, saved as a bundle; decoded weights come out in
    the units of freshly initialised zoo CNNs (its standardisation is fitted to 256 of them)."""
    cfg = ae_preset(preset, "digits", use_gpu=False)
    layout = token_layout(1)
    init_w, _ = ev.scratch_weights(256, 1, "default", seed=7)
    torch.manual_seed(SEED)
    model = HyperAutoencoder(architecture_for(cfg, 1))
    shift, scale = standardisation(init_w, layout, "coordinate")
    model.set_standardisation(shift, scale)
    bundle = HyperRepresentation(
        model=model.eval(),
        cfg=cfg,
        in_channels=1,
        activation="tanh",
        dataset="digits",
        reference=None,
        var_tokens=layer_stats(init_w, layout)["var_tokens"].numpy(),
        mean_params=init_w.mean(0).astype(np.float32),
    )
    bundle.save(directory, extra={"note": "untrained: bench/decode_eval.py"})
    return directory


# ---------------------------------------------------------------- rows


@dataclass
class Row:
    label: str
    device: str
    epochs: int  # fine-tuning epochs (0: evaluation only)
    cores: int
    reference: str = ""  # the row whose accuracies this row's must match
    skip: str = ""
    run: Callable[[np.ndarray], np.ndarray | None] | None = None  # z -> test accuracy (M,) or None
    seconds: float = math.nan
    warm_seconds: float = math.nan  # the warm-up call, on 8 embeddings
    acc: np.ndarray | None = None
    note: str = ""


def ray_accuracy(df, epoch: int) -> np.ndarray:
    sel = df[df["finetune_epoch"] == epoch].sort_values("sample_id")
    return sel["test_acc"].to_numpy(dtype=np.float32)


@dataclass
class Runners:
    """The ways from embeddings to test accuracies on one device (``z -> accuracy (M,)``)."""

    decode: Callable[[np.ndarray], np.ndarray]
    population: Callable[[np.ndarray], np.ndarray]
    finetune: Callable[[np.ndarray, int], np.ndarray]
    ray_pipeline: Callable[[np.ndarray, int, int], np.ndarray]
    ray_weights: Callable[[np.ndarray, int], np.ndarray]


def runners(args, ae_dir: str, data: ImageData, hyper: FinetuneHyper, device: str) -> Runners:
    bundle = HyperRepresentation.load(ae_dir, device=device)
    bs = args.batch_size

    def decode(z: np.ndarray) -> np.ndarray:
        return bundle.decode(z, batch_size=512)

    def population(z: np.ndarray) -> np.ndarray:
        return weights_accuracy(decode(z), data.test_x, data.test_y, hyper.activation, device=device)

    def finetune(z: np.ndarray, epochs: int) -> np.ndarray:
        seeds = finetune_seeds(SEED, np.arange(len(z)))
        acc = finetune_population(
            decode(z), data, hyper, epochs, seeds, record=[epochs], device=device, population_size=bs
        )
        return acc[:, 0]

    def ray_pipeline(z: np.ndarray, epochs: int, actors: int) -> np.ndarray:
        gpus = 1.0 / actors if device == "cuda" else 0.0
        df = ev.evaluate_embeddings(
            z, ae_dir, data, hyper, [epochs], "bench", SEED, batch_size=bs, concurrency=actors, num_gpus=gpus
        )
        return ray_accuracy(df, epochs)

    def ray_weights(z: np.ndarray, epochs: int) -> np.ndarray:
        gpus = float(device == "cuda")
        df = ev.evaluate_weights(
            decode(z), data, hyper, [epochs], "bench", SEED, batch_size=bs, num_gpus=gpus
        )
        return ray_accuracy(df, epochs)

    return Runners(decode, population, finetune, ray_pipeline, ray_weights)


def row(label: str, device: str, epochs: int, cores: int, run=None, reference: str = "", **kw) -> Row:
    return Row(label, device, epochs, cores, reference=reference, run=run, **kw)


def evaluation_rows(args, run: Runners | None, device: str, threads: int, cores: int, skip: str) -> list[Row]:
    """0 fine-tuning epochs: every row scores the same decoded models as the plain loop."""
    plain = "plain loop [cpu]"  # the reference of every device (the same decoded models)
    bs = args.batch_size
    r = run
    rows = [
        row(
            "batched decode only (512 per batch)",
            device,
            0,
            threads,
            r and (lambda z: (r.decode(z), None)[1]),
        ),
        row("batched decode + weights_accuracy (256 per population)", device, 0, threads, r and r.population),
        row(f"batched decode + finetune_population ({bs} per population)", device, 0, threads),
    ]
    rows[-1].run = r and (lambda z: r.finetune(z, 0))
    if args.no_ray:
        rows.append(row("Ray Data pipeline", device, 0, cores, skip=NOT_MEASURED + " (--no-ray)"))
    else:
        for actors in (1, 2) if device == "cpu" else (1,):
            label = f"Ray Data evaluate_embeddings, {actors} decoder actor{'s' * (actors > 1)}"
            rows.append(row(label, device, 0, cores, r and (lambda z, a=actors: r.ray_pipeline(z, 0, a))))
        label = "batched decode in-process + Ray Data evaluate_weights (no actors)"
        rows.append(row(label, device, 0, cores, r and (lambda z: r.ray_weights(z, 0))))
    for x in rows:
        x.reference = plain if x.label != "batched decode only (512 per batch)" else ""
        x.skip = x.skip or skip
    return rows


def finetune_rows(args, run: Runners | None, device: str, threads: int, cores: int, skip: str) -> list[Row]:
    """Fine-tuning epochs > 0: the Ray pipeline must train exactly as the in-process populations."""
    rows = []
    for e in sorted({e for e in args.finetune_epochs if e > 0}):
        tuned = f"in-process fine-tune [{device}] {e}"
        label = f"batched decode + finetune_population ({args.batch_size} per population)"
        rows.append(row(label, device, e, threads, run and (lambda z, e=e: run.finetune(z, e)), skip=skip))
        rows[-1].note = tuned
        if not args.no_ray:
            f = run and (lambda z, e=e: run.ray_pipeline(z, e, 1))
            rows.append(
                row("Ray Data evaluate_embeddings, 1 decoder actor", device, e, cores, f, tuned, skip=skip)
            )
    return rows


def plan(args, ae_dir: str, data: ImageData, hyper: FinetuneHyper, cores: int) -> list[Row]:
    rows: list[Row] = []
    for device in args.devices.split(","):
        no_cuda = device == "cuda" and not torch.cuda.is_available()
        skip = NOT_MEASURED + " (no CUDA device)" if no_cuda else ""
        run = None if no_cuda else runners(args, ae_dir, data, hyper, device)
        threads = args.threads if device == "cpu" else 1
        if device == "cpu":
            label = "plain loop: decode 1 + evaluate_accuracy (decode_plain_loop)"
            plain = row(
                label, device, 0, threads, lambda z: ev.decode_plain_loop(z, ae_dir, data, hyper.activation)
            )
            plain.note = "plain loop [cpu]"
            rows.append(plain)
        else:
            rows.append(row("plain loop", device, 0, 1, skip="CPU only (decode_plain_loop loads on CPU)"))
        rows += evaluation_rows(args, run, device, threads, cores, skip)
        rows += finetune_rows(args, run, device, threads, cores, skip)
    return rows


def measure(rows: list[Row], z: np.ndarray, warm_z: np.ndarray, rounds: int) -> None:
    todo = [r for r in rows if r.run is not None and not r.skip]
    for r in todo:
        log(f"warm-up: [{r.device}] {r.label}, {r.epochs} epoch(s)")
        t0 = time.perf_counter()
        r.run(warm_z)
        r.warm_seconds = time.perf_counter() - t0
    for rnd in range(rounds):
        for r in todo:
            log(f"round {rnd + 1}/{rounds}: [{r.device}] {r.label}, {r.epochs} epoch(s), {len(z)} models")
            t0 = time.perf_counter()
            acc = r.run(z)
            if r.device == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            if not math.isfinite(r.seconds) or secs < r.seconds:
                r.seconds = secs
            r.acc = acc if acc is not None else r.acc


# ---------------------------------------------------------------- table


def table(rows: list[Row], m: int) -> list[str]:
    out = [
        "| row | device | fine-tune epochs | models | cores | wall s | models/s | models/s per core "
        "| × plain loop | mean test acc | max abs Δacc vs reference | warm-up call, 8 models, s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_note = {r.note: r for r in rows if r.note}
    plain = next((r for r in rows if r.note.startswith("plain loop") and math.isfinite(r.seconds)), None)
    for r in rows:
        cores = str(r.cores) if r.device == "cpu" else "1 GPU"
        if r.skip or not math.isfinite(r.seconds):
            why = r.skip or "not measured"
            out.append(f"| {r.label} | {r.device} | {r.epochs} | - | {cores} | {why} | | | | | | |")
            continue
        rate = m / r.seconds
        per_core = rate / r.cores if r.device == "cpu" else math.nan
        vs = rate / (m / plain.seconds) if plain else math.nan
        mean_acc = f"{float(np.mean(r.acc)):.3f}" if r.acc is not None else "-"
        ref = by_note.get(r.reference)
        if r.acc is None or ref is None or ref.acc is None:
            delta = "-" if r.acc is None or r.reference == "" else "no reference"
        else:
            delta = f"{float(np.max(np.abs(r.acc - ref.acc))):.4f}"
        out.append(
            f"| {r.label} | {r.device} | {r.epochs} | {m} | {cores} | {fmt(r.seconds)} | {fmt(rate, 1)} "
            f"| {fmt(per_core, 1)} | {fmt(vs)} | {mean_acc} | {delta} | {fmt(r.warm_seconds)} |"
        )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="64 models instead of 512")
    p.add_argument("--models", type=int, default=None, help="embeddings to decode and evaluate")
    p.add_argument(
        "--preset", default="quick", choices=["smoke", "quick", "paper"], help="AE size (untrained)"
    )
    p.add_argument(
        "--ae", default=None, help="a trained autoencoder bundle to use instead of an untrained one"
    )
    p.add_argument("--devices", default="cpu,cuda", help="comma list of cpu, cuda (default: both)")
    p.add_argument("--finetune-epochs", default="1", help="comma list of fine-tuning epochs (besides 0)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="Ray Data batch = fine-tuning population (default 64; 16 with --quick, so 64 models make "
        "4 batches for the 2+ cores)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads for in-process rows")
    p.add_argument("--rounds", type=int, default=1, help="measure every row this often, keep the fastest")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    args.models = args.models or (64 if args.quick else 512)
    args.batch_size = args.batch_size or (16 if args.quick else 64)
    args.finetune_epochs = [int(e) for e in args.finetune_epochs.split(",") if e.strip()]
    return args


def notes(
    args, bundle: HyperRepresentation, w: np.ndarray, data: ImageData, hyper: FinetuneHyper
) -> list[str]:
    """What was run and how to read the table."""
    cfg, m = bundle.cfg, args.models
    n_par = sum(x.numel() for x in bundle.model.parameters())
    return [
        f"- autoencoder: {args.ae or f'untrained, preset {args.preset}'} (d_token {cfg.d_token}, "
        f"{cfg.n_layers}+{cfg.n_layers} layers, d_z {cfg.d_z}, {n_par:,} parameters); {m} embeddings "
        f"uniform in [-1, 1]; decoded weights finite: {bool(np.isfinite(w).all())}, std {float(w.std()):.3f}",
        f"- data: digits, {data.test_x.shape[0]} test images scored per model; fine-tuning on "
        f"{data.train_x.shape[0]} train images with {hyper.optimizer} lr {hyper.lr}, "
        f"batch {hyper.batch_size}",
        f"- Ray Data batch = fine-tuning population = {args.batch_size} models; Ray rows: one CPU per "
        f"decoder actor and per fine-tune task on a {usable_cores()}-CPU local Ray; wall s of a Ray row is "
        "one evaluate_embeddings call (dataset, actor pool start, decode, evaluate, collect)",
        "- models/s per core: models/s / cores the row may use (in-process: torch threads; Ray: the "
        "instance's CPUs); '× plain loop': models/s over the plain loop's",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("digits")
    hyper = hyper_for_dataset("digits")
    if not args.no_ray:
        import ray
        from ray.data import DataContext

        ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False)
        DataContext.get_current().enable_progress_bars = False
    lines = ["# Decode -> evaluate throughput", "", *machine_lines(args.threads)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="decode_eval_") as tmp:
        ae_dir = args.ae or str(untrained_bundle(args.preset, Path(tmp) / "ae"))
        bundle = HyperRepresentation.load(ae_dir)
        z = np.random.default_rng(SEED).uniform(-1, 1, (args.models, bundle.cfg.d_z)).astype(np.float32)
        rows = plan(args, ae_dir, data, hyper, usable_cores())
        measure(rows, z, z[:8], args.rounds)
        w = bundle.decode(z)
    lines += [
        f"- load average at end: {load_average()}; whole run {time.perf_counter() - t0:.0f} s; "
        f"{args.rounds} round(s), rows interleaved, fastest round shown; one warm-up call per row first",
        *notes(args, bundle, w, data, hyper),
        *table(rows, args.models),
    ]
    emit("\n".join(lines), args.out)
    if not args.no_ray:
        import ray

        ray.shutdown()


if __name__ == "__main__":
    main()
