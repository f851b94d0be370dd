"""CPU seconds of this process and of every Ray process of the machine, by role, read from /proc.

Shared by bench/train_control.py and bench/stage_time.py. Only processes below the given driver count
(a local Ray instance started by it), so other Ray instances on the machine do not. A Ray process is
told by its command line (Ray sets ``ray::<Actor>`` as the title of its workers and actors). Linux only.
"""

from __future__ import annotations

import os
import threading

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: (role, substring of the command line), first match wins; roles are what the tables show.
ROLES = (
    ("train controller", "ray::TrainController"),
    ("train helpers", "ray::PlacementGroupCleaner"),
    ("train helpers", "ray::TrainStateActor"),
    ("train helpers", "ray::PreemptionWatcher"),
    ("train helpers", "AutoscalingCoordinator"),
    ("train workers", "ray::RayTrainWorker"),
    ("raylet", "raylet"),
    ("gcs", "gcs_server"),
    ("ray agents and monitors", "dashboard"),
    ("ray agents and monitors", "log_monitor"),
    ("ray agents and monitors", "monitor.py"),
    ("ray agents and monitors", "runtime_env"),
    ("ray workers (tasks, other actors)", "ray::"),
    ("ray workers (tasks, other actors)", "default_worker.py"),
)
CONTROL = ("train controller", "train helpers", "raylet", "gcs", "ray agents and monitors")


def cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_seconds(pid: str) -> float:
    """utime + stime of a process, seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def parent_of(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (a local Ray instance's processes descend from its driver;
    other Ray instances on the same machine do not)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            children.setdefault(parent_of(name), []).append(int(name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


def role_of(pid: int, cmd: str, driver_pid: int) -> str | None:
    if pid == driver_pid:
        return "driver (our process)"
    for role, needle in ROLES:
        if needle in cmd:
            return role
    return None


class CpuSampler:
    """Samples every ``interval`` s the CPU seconds of the driver and of every Ray process; ``totals()``
    gives, per role, the CPU seconds spent since ``start()`` (processes that die keep their last count),
    ``cut()`` the totals so far (for per-stage differences)."""

    def __init__(self, interval: float = 1.0, driver_pid: int | None = None) -> None:
        self.interval = interval
        self.driver = driver_pid or os.getpid()
        self.base: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def sample(self) -> None:
        seen = {}
        for pid in descendants(self.driver):
            role = role_of(pid, cmdline(str(pid)), self.driver)
            if role is not None:
                seen[pid] = (role, cpu_seconds(str(pid)))
        with self.lock:
            for pid, (role, cpu) in seen.items():
                if pid in self.last and self.last[pid][0] != role:
                    # a pooled worker took a new title (e.g. became the TrainController): count anew
                    self.base[pid] = self.last[pid][1]
                self.last[pid] = (role, cpu)

    def start(self) -> CpuSampler:
        self.sample()
        with self.lock:
            self.base = {pid: cpu for pid, (_, cpu) in self.last.items()}
        self.thread.start()
        return self

    def loop(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def cut(self) -> dict[str, float]:
        self.sample()
        out: dict[str, float] = {}
        with self.lock:
            for pid, (role, cpu) in self.last.items():
                out[role] = out.get(role, 0.0) + max(0.0, cpu - self.base.get(pid, 0.0))
        return out

    def stop(self) -> dict[str, float]:
        self.stop_event.set()
        self.thread.join(timeout=5)
        return self.cut()


def alive_roles() -> dict[str, int]:
    """How many processes of each Ray role below this process are alive now."""
    out: dict[str, int] = {}
    me = os.getpid()
    for pid in descendants(me):
        role = role_of(pid, cmdline(str(pid)), me)
        if role is not None and role != "driver (our process)":
            out[role] = out.get(role, 0) + 1
    return out
