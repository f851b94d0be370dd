#!/usr/bin/env python
"""Wall time and CPU seconds of each pipeline stage: our processes vs Ray's control processes.

Runs ``hyperrep_ray.pipeline.run_pipeline`` for a preset in this process (its own local Ray) while a
thread reads, every ``--interval`` seconds, the CPU seconds (utime + stime from /proc) of this process
and of every process of its Ray instance. Stage boundaries come from the pipeline's own progress lines
(as in ``stage_memory.py``, its sibling for memory). Per stage: wall seconds, and CPU seconds of

- our processes: the driver, Ray Train workers, Ray task/actor workers (zoo training, sampling,
  decoding, fine-tuning);
- Ray's control processes: the Train controller and Train's helper actors, raylet, GCS, agents and
  monitors.

CPU / wall above 1 means more than one core busy. Linux only (/proc). Run it on an otherwise idle
machine; only processes below this one count, so another Ray instance on the machine does not.

    python bench/stage_time.py --quick            # smoke preset, a few minutes on 2 cores
    python bench/stage_time.py --preset quick     # the quick pipeline
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from _common import ROOT, emit, fmt, machine_lines, pipeline_sampling_args
from _procs import CONTROL, CpuSampler

sys.path.insert(0, str(ROOT))

from hyperrep_ray.pipeline import run_pipeline  # noqa: E402

OURS = ("driver (our process)", "train workers", "ray workers (tasks, other actors)")


class StageClock:
    """CPU per role and wall seconds per stage; ``mark(name)`` closes the running stage."""

    def __init__(self, sampler: CpuSampler) -> None:
        self.sampler = sampler
        self.stage, self.t = "start-up", time.perf_counter()
        self.before = sampler.cut()
        self.rows: dict[str, dict[str, float]] = {}

    def mark(self, stage: str) -> None:
        if stage == self.stage:
            return
        now, cpu = time.perf_counter(), self.sampler.cut()
        row = self.rows.setdefault(self.stage, {"wall": 0.0})
        row["wall"] += now - self.t
        for role, v in cpu.items():
            row[role] = row.get(role, 0.0) + v - self.before.get(role, 0.0)
        self.stage, self.t, self.before = stage, now, cpu


def table(rows: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| stage | wall s | CPU s, ours | CPU s, Ray control | Train controller + helpers | raylet + GCS "
        "| Ray control, % of a core |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    total: dict[str, float] = {}
    for stage, r in [*rows.items(), ("all", {})]:
        if stage == "all":
            r = total
        ours = sum(r.get(k, 0.0) for k in OURS)
        control = sum(r.get(k, 0.0) for k in CONTROL)
        train = r.get("train controller", 0.0) + r.get("train helpers", 0.0)
        core = r.get("raylet", 0.0) + r.get("gcs", 0.0)
        wall = r.get("wall", 0.0)
        pct = fmt(100 * control / wall, 0) if wall else "-"
        lines.append(
            f"| {stage} | {fmt(wall, 0)} | {fmt(ours, 0)} | {fmt(control, 1)} | {fmt(train, 1)} | "
            f"{fmt(core, 1)} | {pct} |"
        )
        if stage != "all":
            for k, v in r.items():
                total[k] = total.get(k, 0.0) + v
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = pipeline_sampling_args(p, argv)
    preset = "smoke" if args.quick else args.preset

    import ray

    head = machine_lines(load_when="at start")
    out_dir = args.dir or tempfile.mkdtemp(prefix="stage_time_")
    sampler = CpuSampler(args.interval).start()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    clock = StageClock(sampler)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        if line.startswith("[pipeline] ") and ":" in line:
            clock.mark(line.removeprefix("[pipeline] ").split(":")[0])

    t0 = time.perf_counter()
    run_pipeline(preset, out_dir, f"sqlite:///{out_dir}/mlflow.db", log=log)
    clock.mark("shutdown")
    ray.shutdown()
    clock.mark("end")
    sampler.stop()
    wall = time.perf_counter() - t0

    lines = [f"# Wall time and CPU per pipeline stage ({preset} preset)", "", *head]
    lines += [f"- whole pipeline {wall:.0f} s; CPU read every {args.interval:g} s; output in {out_dir}", ""]
    lines += table(clock.rows)
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
