"""Run by tests/test_fault_tolerance.py in its own Python process (never collected by pytest).

Starts a three-node Ray cluster on this machine with ``ray.cluster_utils.Cluster`` (a head and
two worker nodes, one CPU each), trains a small digits zoo on it with ``train_zoo`` and, as soon
as the first shard is in the store, removes a worker node that is executing a shard task at that
moment (``Cluster.remove_node`` without grace: every process of the node is SIGKILLed, as when a
machine is lost). ``train_zoo`` must still finish: Ray retries the lost task (``max_retries``) on the nodes
left. A JSON summary goes to ``--result``; the cluster is always shut down.

Own process because the test session's Ray (``ray.init(num_cpus=2)`` in conftest) must stay
untouched; the caller also gives this process its own ``RAY_TMPDIR`` so the address file that
``Cluster`` writes cannot lead another process's ``ray.init()`` into this cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

import ray
from ray._private import ray_constants
from ray.cluster_utils import Cluster

T_START = time.perf_counter()


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def _shard_task_pids(node) -> list[int]:
    """Processes of ``node`` (descendants of its raylet) executing a zoo shard task right now:
    Ray sets a worker's process title to ``ray::<function name>`` while it runs a task (Linux
    /proc, no psutil needed)."""
    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("ray::shard_task"):
                continue
            parent = _ppid(pid)
            while parent > 1 and parent != raylet:
                parent = _ppid(parent)
        except (OSError, ValueError, IndexError):
            continue
        if parent == raylet:
            pids.append(pid)
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard_task_attempts(total_shards: int, timeout: float = 20.0) -> list[dict]:
    """Every attempt of every ``shard_task`` as Ray's state API records it (task events reach the
    GCS about once a second, so wait until each shard task has a finished attempt)."""
    from ray.util.state import list_tasks

    deadline = time.perf_counter() + timeout
    while True:
        tasks = list_tasks(
            filters=[("name", "=", "shard_task")], detail=True, limit=10_000, raise_on_missing_output=False
        )
        rows = [
            {
                "task_id": t.task_id,
                "attempt": t.attempt_number,
                "state": t.state,
                "node_id": t.node_id,
                "error_type": t.error_type,
            }
            for t in tasks
        ]
        finished = {r["task_id"] for r in rows if r["state"] == "FINISHED"}
        if len(finished) >= total_shards or time.perf_counter() > deadline:
            return sorted(rows, key=lambda r: (r["task_id"], r["attempt"]))
        time.sleep(0.5)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--num-models", type=int, default=16)
    p.add_argument("--models-per-shard", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-images", type=int, default=256)
    p.add_argument("--test-images", type=int, default=128)
    p.add_argument("--max-retries", type=int, default=3)
    args = p.parse_args()
    # The test stops this process with SIGTERM if it hangs: turn that into SystemExit so the
    # finally below still shuts the cluster down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import torch

    from hyperrep_ray import store
    from hyperrep_ray.config import zoo_preset
    from hyperrep_ray.data.images import ImageData, load_dataset
    from hyperrep_ray.zoo.train import plan_shards, train_zoo

    torch.set_num_threads(1)
    full = load_dataset("digits")
    n, m = args.train_images, args.test_images
    prep = dict(full.preprocessing)
    data = ImageData("digits", full.train_x[:n], full.train_y[:n], full.test_x[:m], full.test_y[:m], prep)
    cfg = zoo_preset(
        "smoke",
        "digits",
        num_models=args.num_models,
        epochs=args.epochs,
        models_per_shard=args.models_per_shard,
        population_size=args.models_per_shard,
        num_cpus_per_task=1.0,
        num_gpus_per_task=0.0,
        max_retries=args.max_retries,
    )
    total_shards = len(plan_shards(cfg))
    result: dict = {"total_shards": total_shards, "num_models": cfg.num_models, "epochs": cfg.epochs}
    written: list[int] = []
    removal: dict = {}
    t0 = time.perf_counter()
    result["imports_s"] = round(t0 - T_START, 2)
    cluster = None
    try:
        # Fast node-death detection for the crash case (GCS health checks every 0.5 s).
        system_config = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                # the dashboard serves the state API that records every task attempt
                "include_dashboard": True,
                "dashboard_host": "127.0.0.1",
                "dashboard_port": _free_port(),
                "_system_config": system_config,
            },
        )
        workers = [cluster.add_node(wait=False, num_cpus=1) for _ in range(2)]  # start side by side
        cluster.wait_for_nodes(timeout=120)
        ray.init(address=cluster.address, log_to_driver=False)
        result["nodes_alive_at_start"] = sum(1 for nd in ray.nodes() if nd["Alive"])
        result["cluster_cpus"] = ray.cluster_resources().get("CPU", 0)
        result["cluster_start_s"] = round(time.perf_counter() - t0, 2)

        def on_shard_written(index: int) -> None:
            written.append(index)
            if removal:
                return
            # Wait (briefly) until a worker node is in the middle of a shard task, then kill it.
            t_wait = time.perf_counter()
            deadline = t_wait + 30
            busy: list = []
            while time.perf_counter() < deadline:
                busy = [(nd, pids) for nd in workers if (pids := _shard_task_pids(nd))]
                if busy:
                    break
                time.sleep(0.02)
            victim, pids = busy[0] if busy else (workers[-1], [])
            removal.update(
                node_id=victim.node_id,
                shard_task_pids_on_node=pids,
                shards_written_before=len(written),
                shard_files_before=len(store.list_shards(args.out)),
                waited_for_busy_node_s=round(time.perf_counter() - t_wait, 3),
                at_s=round(time.perf_counter() - t0, 2),
            )
            t_rm = time.perf_counter()
            # The whole machine goes at once: freeze the task's process first, so it cannot hand
            # its result back in the moment between its raylet's death and its own.
            _signal(pids, signal.SIGSTOP)
            cluster.remove_node(victim, allow_graceful=False)  # SIGKILL: a crash
            _signal(pids, signal.SIGKILL)
            removal["remove_node_s"] = round(time.perf_counter() - t_rm, 2)

        t_train = time.perf_counter()
        zoo = train_zoo(cfg, args.out, data=data, progress=False, on_shard_written=on_shard_written)
        result["train_s"] = round(time.perf_counter() - t_train, 2)
        result["trained_shards"] = zoo.trained_shards
        result["skipped_shards"] = zoo.skipped_shards
        result["diverged"] = zoo.diverged
        result["written_order"] = written
        result["removal"] = removal
        result["pids_alive_at_end"] = [q for q in removal.get("shard_task_pids_on_node", []) if _alive(q)]
        t_att = time.perf_counter()
        result["attempts"] = _shard_task_attempts(total_shards)
        result["attempts_query_s"] = round(time.perf_counter() - t_att, 2)
        alive = [nd for nd in ray.nodes() if nd["Alive"]]
        result["nodes_alive_at_end"] = len(alive)
        result["removed_node_alive_at_end"] = any(nd["NodeID"] == removal.get("node_id") for nd in alive)
    finally:
        t_down = time.perf_counter()
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        result["shutdown_s"] = round(time.perf_counter() - t_down, 2)
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    with open(args.result, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
