"""Fault tolerance of the zoo stage on a real multi-node Ray cluster.

``tests/_cluster_zoo_job.py`` runs in its own Python process (the session's shared Ray instance
stays untouched): ``ray.cluster_utils.Cluster`` with a head and two worker nodes (1 CPU each),
``train_zoo`` with 6 shards of 2 models (2 epochs), and, once the first shard is in the store, a worker
node that is executing a shard task is killed (SIGKILL of all its processes, like a lost
machine). The zoo stage must still finish: Ray retries the lost task on the surviving nodes,
and the Parquet store holds every model exactly once, with the weights a clean run gives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("_cluster_zoo_job.py")
NUM_MODELS, MODELS_PER_SHARD, EPOCHS = 12, 2, 2


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{entry}: {cmd[:200]}")
    return found


def _run_job(out: Path, result: Path, timeout: float = 300) -> str:
    """Run the cluster job; on a hang stop its whole process group (only what it started)."""
    ray_tmp = tempfile.mkdtemp(prefix="rft", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        # Cluster writes $RAY_TMPDIR/ray/ray_current_cluster: keep it away from other processes' ray.init()
        RAY_TMPDIR=ray_tmp,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        RAY_USAGE_STATS_ENABLED="0",
        TQDM_DISABLE="1",
    )
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--result", str(result)]
    cmd += ["--num-models", str(NUM_MODELS), "--models-per-shard", str(MODELS_PER_SHARD)]
    cmd += ["--epochs", str(EPOCHS), "--train-images", "256", "--test-images", "128"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            log, _ = proc.communicate()
            pytest.fail(f"the cluster job did not finish within {timeout} s:\n{log[-6000:]}")
        assert proc.returncode == 0, f"the cluster job failed (rc {proc.returncode}):\n{log[-6000:]}"
        # The job shut its cluster down: no process of it (raylets, GCS, workers) is left.
        deadline = time.time() + 15
        while (left := _processes_mentioning(ray_tmp)) and time.time() < deadline:
            time.sleep(0.5)
        assert not left, f"the cluster job left processes behind: {left}"
        return log
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_zoo_survives_losing_a_worker_node(tmp_path, small_digits):
    from hyperrep_ray import store
    from hyperrep_ray.config import zoo_preset
    from hyperrep_ray.zoo.train import plan_shards, train_shard, zoo_summary

    out, result_path = tmp_path / "zoo", tmp_path / "result.json"
    t0 = time.perf_counter()
    _run_job(out, result_path)
    res = json.loads(result_path.read_text())
    seconds = time.perf_counter() - t0
    cfg = zoo_preset(
        "smoke", "digits", num_models=NUM_MODELS, epochs=EPOCHS,
        models_per_shard=MODELS_PER_SHARD, population_size=MODELS_PER_SHARD,
    )  # fmt: skip
    shards = plan_shards(cfg)
    n_shards = len(shards)
    assert res["total_shards"] == n_shards == NUM_MODELS // MODELS_PER_SHARD

    # A real three-node cluster: the head and two worker nodes, one CPU each.
    assert res["nodes_alive_at_start"] == 3 and res["cluster_cpus"] == 3

    # A worker node was removed mid-run: after the first shard was written, while shards were
    # still missing, and while it was executing a shard task (a process titled ray::shard_task).
    rm = res["removal"]
    assert 1 <= rm["shards_written_before"] < n_shards, rm
    assert 1 <= rm["shard_files_before"] < n_shards, rm
    assert rm["shard_task_pids_on_node"], f"the removed node ran no shard task: {rm}"
    assert res["pids_alive_at_end"] == [], "the removed node's task process outlived its node"
    assert res["nodes_alive_at_end"] == 2 and not res["removed_node_alive_at_end"]

    # Ray's own record: the attempt on the removed node failed because the node died, it was
    # retried on a surviving node, and every shard task finished exactly once.
    attempts = res["attempts"]
    by_task: dict[str, list[dict]] = {}
    for a in attempts:
        by_task.setdefault(a["task_id"], []).append(a)
    assert len(by_task) == n_shards, attempts
    failed = [a for a in attempts if a["state"] != "FINISHED"]
    assert failed, f"no task attempt failed, so nothing was retried: {attempts}"
    for a in failed:
        assert a["state"] == "FAILED" and a["node_id"] == rm["node_id"], a
        assert a["error_type"] in ("NODE_DIED", "WORKER_DIED"), a
    for task_id, tries in by_task.items():
        done = [a for a in tries if a["state"] == "FINISHED"]
        assert len(done) == 1, (task_id, tries)
        assert done[0]["node_id"] != rm["node_id"] or len(tries) == 1, (task_id, tries)
    retried = [tries for tries in by_task.values() if len(tries) > 1]
    assert retried and all(max(a["attempt"] for a in t) <= cfg.max_retries for t in retried)

    # The zoo stage finished normally.
    assert res["trained_shards"] == list(range(n_shards)) and res["skipped_shards"] == []
    assert res["diverged"] == []
    assert sorted(res["written_order"]) == list(range(n_shards)), "a shard was written twice or not at all"

    # The store: one complete file per shard, nothing half-written, shards disjoint and complete.
    files = store.list_shards(str(out))
    assert [Path(f).name for f in files] == [f"shard-{i:05d}.parquet" for i in range(n_shards)]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [Path(f).name for f in files]
    meta = store.read_zoo_meta(str(out))
    infos = [store.shard_info(f, int(meta["num_params"])) for f in files]
    assert [info["model_ids"] for info in infos] == shards
    assert sorted(m for info in infos for m in info["model_ids"]) == list(range(NUM_MODELS))

    # Every model exactly once per epoch 0..EPOCHS, finite weights, the right seeds.
    w, df = store.load_weights(str(out))
    assert len(df) == w.shape[0] == NUM_MODELS * (EPOCHS + 1)
    assert w.shape[1] == meta["num_params"] and bool(np.isfinite(w.numpy()).all())
    counts = df.groupby(["model_id", "epoch"]).size()
    assert len(counts) == NUM_MODELS * (EPOCHS + 1) and (counts == 1).all()
    assert sorted(df["model_id"].unique()) == list(range(NUM_MODELS))
    assert sorted(df["epoch"].unique()) == list(range(EPOCHS + 1))
    assert (df["seed"] == df["model_id"] + 1).all()
    for epoch in range(EPOCHS + 1):
        ids = df.loc[df["epoch"] == epoch, "model_id"]
        assert sorted(ids) == list(range(NUM_MODELS)) and not ids.duplicated().any()
    summary = zoo_summary(str(out))
    assert summary["models_stored"] == NUM_MODELS and summary["rows"] == NUM_MODELS * (EPOCHS + 1)

    # The retried shard is no different from a clean run: every shard, retrained here in-process
    # from the same seeds and data, gives the stored weights.
    stored = w.numpy().reshape(NUM_MODELS, EPOCHS + 1, -1)  # rows are sorted by (model_id, epoch)
    for index, ids in enumerate(shards):
        _, table, diverged, _ = train_shard(index, ids, cfg, small_digits, device="cpu")
        assert diverged == []
        fresh = store.weights_matrix(table.sort_by([("model_id", "ascending"), ("epoch", "ascending")]))
        np.testing.assert_allclose(stored[ids].reshape(-1, stored.shape[-1]), fresh, rtol=0, atol=1e-5)

    print(
        f"\nfault tolerance: {seconds:.1f} s for the job (cluster start {res['cluster_start_s']} s, "
        f"train {res['train_s']} s, task-event query {res['attempts_query_s']} s, shutdown "
        f"{res['shutdown_s']} s); node removed at {rm['at_s']} s after {rm['shard_files_before']}/"
        f"{n_shards} shards; {len(failed)} failed attempt(s), {len(attempts)} attempts in all"
    )
