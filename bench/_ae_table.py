"""The rows of ``ae_training.py`` and how they are printed (driver side only: the Ray Train
workers never import this module)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from _common import NOT_MEASURED, fmt, load_average

from hyperrep_ray.autoencoder.bundle import architecture_for
from hyperrep_ray.autoencoder.model import HyperAutoencoder
from hyperrep_ray.config import AEConfig
from hyperrep_ray.weightspace.tokens import token_layout


@dataclass
class Row:
    label: str
    device: str
    workers: int
    threads: int
    kind: str  # in-process, ray, ray-independent
    amp: bool = False
    compile_model: bool = False
    baseline: str = ""  # the 1-core row of the same kind, for the scaling efficiency
    note: str = ""
    skip: str = ""  # not measured: why
    samples_per_s: float = math.nan
    s_per_epoch: float = math.nan
    warmup_s: float = math.nan
    wall_s: float = math.nan
    steps: int = 0
    comm_s: dict[str, float] = field(default_factory=dict)
    cpu_use: list[float] = field(default_factory=list)  # per process: CPU s / wall s, timed epochs
    load: float = math.nan  # 1-minute load average when the row started

    @property
    def cores(self) -> int:
        return self.workers * self.threads


def plan(args) -> list[Row]:
    rows = [
        Row("in-process loop", "cpu", 1, 1, "in-process"),
        Row("in-process loop", "cpu", 1, 2, "in-process", baseline="in-process loop"),
    ]
    skip = "" if args.compile else NOT_MEASURED + " (off with --quick: compiling takes minutes; --compile)"
    rows.append(
        Row("in-process loop + torch.compile", "cpu", 1, 1, "in-process", compile_model=True, skip=skip)
    )
    if args.no_ray:
        rows += [
            Row("Ray Train (DDP)", "cpu", w, 1, "ray", skip=NOT_MEASURED + " (--no-ray)") for w in (1, 2)
        ]
    else:
        rows += [
            Row("Ray Train (DDP)", "cpu", 1, 1, "ray"),
            Row("Ray Train (DDP)", "cpu", 2, 1, "ray", baseline="Ray Train (DDP)"),
            Row(
                "Ray Train, independent loops (no DDP)",
                "cpu",
                2,
                1,
                "ray-independent",
                baseline="Ray Train (DDP)",
            ),
        ]
    no_cuda = "" if torch.cuda.is_available() else NOT_MEASURED + " (no CUDA device)"
    rows += [
        Row("in-process loop, fp32", "cuda", 1, 1, "in-process", amp=False, skip=no_cuda),
        Row(
            "in-process loop, bf16 autocast (AEConfig.amp)",
            "cuda",
            1,
            1,
            "in-process",
            amp=True,
            skip=no_cuda,
        ),
    ]
    return [r for r in rows if r.device in args.devices.split(",")]


# ---------------------------------------------------------------- table


def table(rows: list[Row], cfg: AEConfig, m: int) -> list[str]:
    out = [
        "| row | device | workers × threads | batch per worker (global) | steps/epoch per worker | s/epoch "
        "| samples/s | ms/step | DDP comm ms/step (all_reduce + broadcast) "
        "| × in-process 1 thread | scaling eff. vs 1 core | CPU use per process | load at row start "
        "| warm-up epoch s | total wall s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ref = next((r for r in rows if r.label == "in-process loop" and r.threads == 1), None)
    for r in rows:
        wt = f"{r.workers} × {r.threads}"
        batch = f"{cfg.batch_size} ({cfg.batch_size * r.workers})"
        if r.skip or not math.isfinite(r.samples_per_s):
            why = r.skip or r.note or "not measured"
            out.append(f"| {r.label} | {r.device} | {wt} | {batch} | - | {why} | | | | | | | | | |")
            continue
        ms_step = 1000 * r.s_per_epoch / r.steps
        comm = "-"
        if r.comm_s:
            a, b = 1000 * r.comm_s.get("allreduce_s", 0.0), 1000 * r.comm_s.get("broadcast_s", 0.0)
            comm = f"{a + b:.1f} ({a:.1f} + {b:.1f}; {(a + b) / ms_step:.0%} of a step)"
        elif r.kind == "ray" and r.workers > 1:
            comm = "?"
        vs_ref = (
            r.samples_per_s / ref.samples_per_s
            if ref and r.device == "cpu" and ref.samples_per_s
            else math.nan
        )
        base = next(
            (b for b in rows if b.label == r.baseline and b.cores == 1 and b.device == r.device), None
        )
        eff = (
            r.samples_per_s / (r.cores * base.samples_per_s)
            if base and r.baseline and math.isfinite(base.samples_per_s)
            else math.nan
        )
        out.append(
            f"| {r.label} | {r.device} | {wt} | {batch} | {r.steps} | {fmt(r.s_per_epoch)} "
            f"| {fmt(r.samples_per_s, 1)} | {fmt(ms_step, 1)} | {comm} | {fmt(vs_ref)} | {fmt(eff)} "
            f"| {', '.join(f'{c:.2f}' for c in r.cpu_use)} | {fmt(r.load)} "
            f"| {fmt(r.warmup_s, 1)} | {fmt(r.wall_s, 1)} |"
        )
    return out


def notes(args, cfg: AEConfig, m: int, timed: int, seconds: float) -> list[str]:
    """The lines under the machine header: what was run and how to read the table."""
    n_params = sum(x.numel() for x in HyperAutoencoder(architecture_for(cfg, 1)).parameters())
    layout = token_layout(1)
    return [
        f"- load average at end: {load_average()}; whole run {seconds:.0f} s; "
        f"{args.rounds} round(s), rows interleaved, fastest round shown",
        f"- autoencoder: preset {args.preset} (d_token {cfg.d_token}, d_hidden {cfg.d_hidden}, "
        f"{cfg.n_layers}+{cfg.n_layers} layers, {cfg.n_heads} heads, d_z {cfg.d_z}), "
        f"{n_params:,} parameters; {layout.n_tokens} tokens of width {layout.token_dim}; "
        f"Adam lr {cfg.lr}, LWLN {cfg.lwln}, noise {cfg.noise_sigma}, erase p {cfg.erase_p}, "
        f"permute {cfg.permute}",
        f"- data: {m} synthetic train vectors of {layout.n_params} (random N(0, 0.1): throughput does not "
        f"depend on the values), {args.val} val vectors; 1 warm-up epoch + {timed} timed epoch(s) per row",
        "- samples/s = train vectors per epoch / steady-state s per epoch (two augmented views of a vector "
        "count once); ms/step = s/epoch / steps per worker; 'scaling eff. vs 1 core' = samples/s / "
        "(cores × samples/s of the 1-core row of the same kind: 1-thread in-process loop, or 1 Ray Train "
        "worker); total wall s includes start-up (Ray Train: workers, process group, payload) "
        "and the warm-up",
        "- CPU use per process: CPU seconds (all its threads) / wall seconds over the timed epochs, per "
        "worker process; below 1 per busy thread means the process waited: for a core (other load) or, "
        "under DDP, for the other worker; 'load at row start' is the 1-minute load average",
        "- DDP comm: one all_reduce of all gradients as one float32 buffer + one broadcast of the module's "
        "buffers (DDP's broadcast_buffers), timed alone between the same workers after training (gloo on "
        "CPU); DDP buckets the all_reduce and overlaps it with backward, so this is an estimate",
        "",
    ]
