"""What the bench/ scripts share: the machine header, logging to stderr, number formatting.

Every script prints a Markdown report that starts with :func:`machine_lines` (date, git commit,
CPU, GPU, torch / ray / Python versions, load average), so numbers from different runs can be
told apart; the scripts import this module as ``_common`` (their own directory is on sys.path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_MEASURED = "not measured"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def git_commit() -> str:
    try:
        sha = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
        dirty = subprocess.check_output(["git", "status", "--porcelain"], cwd=ROOT, text=True).strip()
        return sha + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def machine_lines(threads: int | None = None, load_when: str = "at start") -> list[str]:
    """The header every report starts with; ``threads``: torch threads of the in-process rows."""
    import ray
    import torch

    in_process = f" ({threads} thread(s) in-process)" if threads is not None else ""
    return [
        f"- date: {utc_now()}",
        f"- git commit: {git_commit()}",
        f"- CPU: {cpu_model()}, {usable_cores()} usable cores ({os.cpu_count()} logical)",
        f"- GPU: {gpu_name()}",
        f"- torch {torch.__version__}{in_process}, ray {ray.__version__}, Python {platform.python_version()}",
        f"- load average (1/5/15 min) {load_when}: {load_average()}",
    ]


def fmt(v: float, digits: int = 2) -> str:
    if not math.isfinite(v):
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def emit(text: str, out: str | None) -> None:
    """Print the report; also write it to ``out`` when given."""
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def pipeline_sampling_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The flags of the scripts that run the pipeline while sampling its processes (stage_time,
    stage_memory): --quick / --preset, --interval, --dir, --out."""
    p.add_argument("--quick", action="store_true", help="the smoke preset (default: --preset)")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick"])
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--dir", default=None, help="pipeline output directory (default: a temporary one)")
    p.add_argument("--out", default=None, help="also write the Markdown here")
    return p.parse_args(argv)
