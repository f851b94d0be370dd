#!/usr/bin/env python
"""CPU of Ray Train's control plane and the console lines of a short 2-worker autoencoder fit.

Runs ``autoencoder.trainer.fit_autoencoder`` (Ray Train V2, 2 DDP workers, gloo) on a synthetic
payload twice, each in a fresh process with its own local Ray: once with Ray's own settings
(``HYPERREP_RAY_DEFAULTS=1``, what the package did before it chose its own) and once with the
package's (``hyperrep_ray.runtime``). Per run: wall seconds, CPU seconds per process role (driver,
train workers, the TrainController, Train's helper actors, raylet, GCS, agents) sampled from /proc
every second, the console lines of each kind, and how long the Train controller lives on after
``fit`` returned (up to 30 s).

    python bench/train_control.py --quick        # 12 epochs per run, ~2 minutes on 2 cores
    python bench/train_control.py --epochs 40    # longer runs, steadier numbers
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, emit, fmt, log, machine_lines
from _procs import CONTROL, CpuSampler, alive_roles

sys.path.insert(0, str(ROOT))

MODES = {"ray defaults": {"HYPERREP_RAY_DEFAULTS": "1"}, "hyperrep settings": {}}
#: console line kinds counted in each run: (name, substring)
KINDS = (
    ("epoch lines ([train-ae] epoch)", "[train-ae] epoch"),
    ("'Reporting training result'", "Reporting training result"),
    ("'Failed to query ... Controller'", "Failed to query Ray Train Controller"),
)


def child(epochs: int, samples: int, out: str) -> None:
    """One fit in this process; writes wall, CPU per role and the Train actors alive after it."""
    from ae_training import synthetic_payload

    from hyperrep_ray.autoencoder.trainer import fit_autoencoder
    from hyperrep_ray.config import ae_preset
    from hyperrep_ray.runtime import ensure_ray

    cfg = ae_preset("smoke", epochs=epochs, num_workers=2, checkpoint_every=max(1, epochs // 3), eval_every=2)
    payload = synthetic_payload(samples, 32, cfg.standardize)
    ensure_ray(num_cpus=2)
    sampler = CpuSampler(1.0).start()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as storage:
        fit_autoencoder(cfg, payload, storage, name="control")
    wall = time.perf_counter() - t0
    cpu = sampler.stop()
    t_end, gone = time.perf_counter(), None
    while time.perf_counter() - t_end < 30:  # how long the finished controller lives on
        if "train controller" not in alive_roles():
            gone = time.perf_counter() - t_end
            break
        time.sleep(0.5)
    alive = {k: v for k, v in alive_roles().items() if k.startswith("train")}
    with open(out, "w") as f:
        json.dump({"wall": wall, "cpu": cpu, "alive": alive, "controller_gone_s": gone}, f)


def run_mode(name: str, args: argparse.Namespace) -> dict:
    log(f"{name}: fitting {args.epochs} epochs in a fresh process")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = {k: v for k, v in os.environ.items() if k != "HYPERREP_RAY_DEFAULTS"} | MODES[name]
    cmd = [
        sys.executable,
        __file__,
        "--child",
        out,
        "--epochs",
        str(args.epochs),
        "--samples",
        str(args.samples),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    console = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.stderr.write(console[-4000:])
        raise SystemExit(f"{name}: the fit failed (exit {proc.returncode})")
    with open(out) as f:
        row = json.load(f)
    os.unlink(out)
    row["lines"] = {k: sum(needle in line for line in console.splitlines()) for k, needle in KINDS}
    row["console_lines"] = len(console.splitlines())
    return row


def report(rows: dict[str, dict], args: argparse.Namespace) -> str:
    names = list(rows)
    roles = sorted({r for row in rows.values() for r in row["cpu"]})
    lines = ["# Ray Train control plane: CPU and console of a 2-worker fit", "", *machine_lines(), ""]
    lines += [
        f"- {args.epochs} epochs, smoke autoencoder, {args.samples} synthetic train vectors, 2 workers",
        "",
    ]
    lines += ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines.append("| wall s | " + " | ".join(fmt(rows[n]["wall"], 1) for n in names) + " |")
    for role in roles:
        cells = []
        for n in names:
            cpu = rows[n]["cpu"].get(role, 0.0)
            cells.append(f"{fmt(cpu, 1)} s ({fmt(100 * cpu / rows[n]['wall'], 0)} % of a core)")
        lines.append(f"| CPU: {role} | " + " | ".join(cells) + " |")
    for n in names:
        rows[n]["control"] = sum(v for k, v in rows[n]["cpu"].items() if k in CONTROL)
    lines.append(
        "| CPU: Ray control processes, all | "
        + " | ".join(
            f"{fmt(rows[n]['control'], 1)} s ({fmt(100 * rows[n]['control'] / rows[n]['wall'], 0)} %)"
            for n in names
        )
        + " |"
    )
    for kind, _ in KINDS:
        lines.append(f"| console: {kind} | " + " | ".join(str(rows[n]["lines"][kind]) for n in names) + " |")
    lines.append("| console lines, all | " + " | ".join(str(rows[n]["console_lines"]) for n in names) + " |")
    gone = [rows[n]["controller_gone_s"] for n in names]
    cells = ["still alive after 30" if g is None else fmt(g, 1) for g in gone]
    lines.append("| s until the Train controller exited after fit | " + " | ".join(cells) + " |")
    alive = [json.dumps(rows[n]["alive"]) if rows[n]["alive"] else "none" for n in names]
    lines.append("| Train actors alive then | " + " | ".join(alive) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="12 epochs per run (the default size)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--samples", type=int, default=512, help="synthetic train vectors")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args()
    if args.child:
        child(args.epochs, args.samples, args.child)
        return
    rows = {name: run_mode(name, args) for name in MODES}
    emit(report(rows, args), args.out)


if __name__ == "__main__":
    main()
