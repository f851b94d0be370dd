#!/usr/bin/env python
"""Peak memory of each pipeline stage: the driver and every Ray process it uses, sampled.

Runs ``hyperrep_ray.pipeline.run_pipeline`` for a preset in this process (its own local Ray)
while a thread samples, every ``--interval`` seconds, the resident set size (VmRSS from /proc)
of this process and of every Ray process of the machine (workers, raylet, GCS, dashboard).
Stage boundaries come from the pipeline's own progress lines. Reported per stage: the peak of the
sum over processes and of the driver alone, and the process count at that peak.

The sum over processes counts shared pages (the object store's shared memory, shared libraries)
once per process that maps them, so it is an upper bound on what the stage needs; the driver
column has no such overlap. Linux only (/proc). Run it on an otherwise idle machine: other Ray
processes would be counted.

    python bench/stage_memory.py --quick            # smoke preset, ~3 minutes on 2 cores
    python bench/stage_memory.py --preset quick     # the quick pipeline, ~25 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

from _common import ROOT, emit, machine_lines, pipeline_sampling_args

sys.path.insert(0, str(ROOT))

from hyperrep_ray.pipeline import run_pipeline  # noqa: E402


def _rss_mib(pid: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sample_once(driver_pid: int) -> tuple[float, float, int]:
    """(sum of RSS over the driver and all Ray processes, driver RSS, processes counted), MiB."""
    total, driver, n = 0.0, 0.0, 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        mine = int(pid) == driver_pid
        if mine or "ray::" in cmd or "/ray/" in cmd:
            rss = _rss_mib(pid)
            total += rss
            n += 1
            driver += rss if mine else 0.0
    return total, driver, n


class StageSampler:
    """Peak memory per stage; ``mark(name)`` starts a stage (the pipeline's log lines call it)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stage = "start-up"
        self.peaks: dict[str, tuple[float, float, int]] = {}
        self.started: dict[str, float] = {"start-up": time.perf_counter()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mark(self, stage: str) -> None:
        self.stage = stage
        self.started.setdefault(stage, time.perf_counter())

    def _run(self) -> None:
        while not self._stop.is_set():
            total, driver, n = sample_once(os.getpid())
            old = self.peaks.get(self.stage, (0.0, 0.0, 0))
            count = n if total > old[0] else old[2]
            self.peaks[self.stage] = (max(old[0], total), max(old[1], driver), count)
            self._stop.wait(self.interval)

    def __enter__(self) -> StageSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = pipeline_sampling_args(p, argv)
    preset = "smoke" if args.quick else args.preset

    import ray

    head = machine_lines(load_when="at start")
    out_dir = args.dir or tempfile.mkdtemp(prefix="stage_memory_")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    sampler = StageSampler(args.interval)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        if line.startswith("[pipeline] ") and ":" in line:
            sampler.mark(line.removeprefix("[pipeline] ").split(":")[0])

    t0 = time.perf_counter()
    with sampler:
        sampler.mark("start-up")
        summary = run_pipeline(preset, out_dir, f"sqlite:///{out_dir}/mlflow.db", log=log)
        sampler.mark("report")
        time.sleep(args.interval * 2)
    ray.shutdown()
    wall = time.perf_counter() - t0

    lines = [f"# Peak memory per pipeline stage ({preset} preset)", "", *head]
    lines += [f"- whole pipeline {wall:.0f} s; samples every {args.interval:g} s; output in {out_dir}", ""]
    lines += ["| stage | seconds | peak RSS, driver + Ray (MiB) | processes | peak RSS, driver (MiB) |"]
    lines += ["|---|---:|---:|---:|---:|"]
    seconds = summary.get("stage_seconds", {})
    for stage, (total, driver, n) in sampler.peaks.items():
        secs = next((v for k, v in seconds.items() if k.replace("/", " ") == stage), None)
        shown = f"{secs:.0f}" if secs is not None else "-"
        lines.append(f"| {stage} | {shown} | {total:,.0f} | {n} | {driver:,.0f} |")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
