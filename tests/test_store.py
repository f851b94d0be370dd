"""The Parquet weight store: schema, atomic shards, validated readers, clear errors."""

import json
import os
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hyperrep_ray import store
from hyperrep_ray.store import StoreError

N = 2464
HYPER = {"activation": "tanh", "init": "uniform", "lr": 1e-3, "weight_decay": 0.0, "optimizer": "adam"}


def _fake_zoo(root, n_models=6, n_epochs=3, shard_size=3, seed=0):
    """A store written through the real writer, with random weights (no training needed)."""
    rng = np.random.default_rng(seed)
    splits = store.assign_splits(n_models, (0.7, 0.15, 0.15), 0)
    store.write_json(
        store.zoo_json_path(str(root)),
        {
            "format_version": store.FORMAT_VERSION,
            "name": "fake",
            "dataset": "digits",
            "num_params": N,
            "num_models": n_models,
        },
    )
    weights = rng.normal(size=(n_models, n_epochs, N)).astype(np.float32)
    metrics = {m: rng.uniform(size=(n_models, n_epochs)).astype(np.float32) for m in store.METRIC_COLUMNS}
    for s, start in enumerate(range(0, n_models, shard_size)):
        ids = list(range(start, min(n_models, start + shard_size)))
        table, div = store.build_shard_table(
            ids,
            [i + 1 for i in ids],
            [splits[i] for i in ids],
            weights[ids],
            {k: v[ids] for k, v in metrics.items()},
            HYPER,
        )
        store.write_shard(
            str(root), s, table, {"model_ids": ids, "epochs": list(range(n_epochs)), "diverged": div}
        )
    return weights, metrics, splits


def test_split_is_by_model_70_15_15_and_deterministic():
    s = store.assign_splits(1000, (0.7, 0.15, 0.15), 0)
    assert (s.count("train"), s.count("val"), s.count("test")) == (700, 150, 150)
    assert s == store.assign_splits(1000, (0.7, 0.15, 0.15), 0)
    assert s != store.assign_splits(1000, (0.7, 0.15, 0.15), 1)


def test_zoos_too_small_for_the_split_are_named():
    assert [store.empty_splits(n, (0.7, 0.15, 0.15), 0) for n in (1, 3, 5, 6)] == [
        ["val", "test"],
        ["val"],
        ["test"],
        [],
    ]
    assert store.models_for_every_split((0.7, 0.15, 0.15), 0) == 6
    assert store.empty_splits(3, (1.0, 0.0, 0.0), 0) == [], "a split with fraction 0 is not missing"
    rule = {"fractions": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": 0}
    assert "leave the val split empty" in store.split_too_small({"num_models": 2, "split_rule": rule})
    assert store.split_too_small({"num_models": 5, "split_rule": rule}) is None  # test empty: no AE need


def test_round_trip_schema_and_filters(tmp_path):
    weights, metrics, splits = _fake_zoo(tmp_path)
    schema = pq.read_schema(store.shard_path(str(tmp_path), 0))
    assert schema.field("weights").type == pa.list_(pa.float32(), N)
    assert schema.field("model_id").type == pa.int32() and schema.field("epoch").type == pa.int16()
    for col in (
        "seed",
        "split",
        "train_acc",
        "test_acc",
        "train_loss",
        "test_loss",
        *store.HYPERPARAMETER_COLUMNS,
    ):
        assert col in schema.names

    w, df = store.load_weights(str(tmp_path))
    assert w.shape == (18, N) and len(df) == 18
    assert not df.duplicated(["model_id", "epoch"]).any()
    row = df.index[(df.model_id == 4) & (df.epoch == 2)][0]
    assert np.array_equal(w[row].numpy(), weights[4, 2])
    assert df.loc[row, "test_acc"] == pytest.approx(metrics["test_acc"][4, 2])
    assert df.loc[row, "split"] == splits[4]

    w1, df1 = store.load_weights(str(tmp_path), epochs=[1, 2], split="train")
    assert set(df1.epoch) == {1, 2} and set(df1.split) == {"train"}
    assert len(df1) == 2 * splits.count("train")


def test_epoch_is_a_row_group_so_one_epoch_reads_a_fraction(tmp_path):
    _fake_zoo(tmp_path, n_models=6, n_epochs=3, shard_size=6)
    md = pq.read_metadata(store.shard_path(str(tmp_path), 0))
    assert md.num_row_groups == 3
    epochs_per_group = [
        pq.ParquetFile(store.shard_path(str(tmp_path), 0))
        .read_row_group(i, columns=["epoch"])
        .column(0)
        .unique()
        for i in range(3)
    ]
    assert [len(e) for e in epochs_per_group] == [1, 1, 1]


def test_diverged_models_are_left_out_and_recorded(tmp_path):
    w = np.zeros((3, 2, N), np.float32)
    w[1, 1, 5] = np.nan
    metrics = {m: np.zeros((3, 2), np.float32) for m in store.METRIC_COLUMNS}
    table, div = store.build_shard_table([0, 1, 2], [1, 2, 3], ["train"] * 3, w, metrics, HYPER)
    assert div == [1] and table.num_rows == 4 and set(table.column("model_id").to_pylist()) == {0, 2}


def test_missing_store_says_what_to_run(tmp_path):
    with pytest.raises(StoreError, match="hyperrep zoo --out"):
        store.read_checkpoints(str(tmp_path / "nowhere"))


def test_truncated_shard_is_named(tmp_path):
    _fake_zoo(tmp_path)
    path = store.shard_path(str(tmp_path), 1)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"shard-00001\.parquet.*truncated"):
        store.read_checkpoints(str(tmp_path))


def test_foreign_parquet_file_is_rejected(tmp_path):
    _fake_zoo(tmp_path)
    pq.write_table(pa.table({"a": [1, 2]}), store.shard_path(str(tmp_path), 7))
    with pytest.raises(StoreError, match=r"shard-00007\.parquet.*not a hyperrep_ray shard"):
        store.read_checkpoints(str(tmp_path))


def test_wrong_vector_length_is_rejected(tmp_path):
    _fake_zoo(tmp_path)
    meta = json.loads((tmp_path / "zoo.json").read_text())
    meta["num_params"] = 2864
    (tmp_path / "zoo.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"column 'weights' has type .*2464.*expected .*2864"):
        store.read_checkpoints(str(tmp_path))


def test_missing_rows_are_detected_not_dropped(tmp_path):
    _fake_zoo(tmp_path)
    path = store.shard_path(str(tmp_path), 0)
    t = pq.read_table(path)
    pq.write_table(t.slice(0, t.num_rows - 1), path)  # keeps the footer metadata, loses a row
    with pytest.raises(StoreError, match=r"holds 8 rows, its metadata promises 9"):
        store.read_checkpoints(str(tmp_path))


def test_nan_weights_in_a_file_are_an_error(tmp_path):
    _fake_zoo(tmp_path)
    path = store.shard_path(str(tmp_path), 0)
    t = pq.read_table(path)
    w = store.weights_matrix(t).copy()
    w[3, 10] = np.nan
    col = pa.FixedSizeListArray.from_arrays(pa.array(w.reshape(-1)), N)
    pq.write_table(t.set_column(t.schema.get_field_index("weights"), "weights", col), path)
    with pytest.raises(StoreError, match="NaN/inf weights"):
        store.read_checkpoints(str(tmp_path))


def test_unknown_split_and_bad_zoo_json(tmp_path):
    _fake_zoo(tmp_path)
    with pytest.raises(StoreError, match="unknown split 'training'"):
        store.read_checkpoints(str(tmp_path), split="training")
    (tmp_path / "zoo.json").write_text("{not json")
    with pytest.raises(StoreError, match="zoo.json is not valid JSON"):
        store.read_zoo_meta(str(tmp_path))


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    _fake_zoo(tmp_path)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_to_ray_dataset_filters(tmp_path, ray_session):
    _fake_zoo(tmp_path)
    ds = store.to_ray_dataset(str(tmp_path), epochs=[2], split=["train", "val"])
    rows = ds.take_all()
    splits = store.assign_splits(6, (0.7, 0.15, 0.15), 0)
    assert len(rows) == sum(s in ("train", "val") for s in splits)
    assert {r["epoch"] for r in rows} == {2}
    assert len(rows[0]["weights"]) == N


@pytest.fixture
def small_disk(tmp_path):
    """A 60 kB tmpfs: the kernel's own "No space left on device" part-way through a zoo."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=60k", "tmpfs", str(mnt)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_disk_full_keeps_finished_shards_and_the_rerun_resumes(small_disk, small_digits, ray_session):
    from hyperrep_ray.config import zoo_preset
    from hyperrep_ray.zoo.train import train_zoo

    out = str(small_disk / "zoo")  # 4 models in 4 shards of ~20 kB each: the disk holds two
    cfg = zoo_preset("smoke", num_models=4, epochs=1, population_size=1, models_per_shard=1)
    with pytest.raises(StoreError) as err:
        train_zoo(cfg, out, data=small_digits, progress=False)
    msg = str(err.value)
    assert msg.startswith("disk full while writing shard ") and "\n" not in msg
    assert "free space and rerun the same command: the finished shards are kept" in msg
    kept = store.list_shards(out)
    assert 1 <= len(kept) < 4
    before = {p: open(p, "rb").read() for p in kept}
    assert all(store.shard_info(p, N)["num_rows"] == 2 for p in kept), "written shards are whole"
    assert not [p for p in (small_disk / "zoo").rglob(".tmp-*")], "the partial shard is removed"

    subprocess.run(["mount", "-o", "remount,size=2m", str(small_disk)], check=True)  # space freed
    result = train_zoo(cfg, out, data=small_digits, progress=False)
    assert sorted(result.skipped_shards) == sorted(int(p[-13:-8]) for p in kept)
    assert len(result.trained_shards) == 4 - len(kept)
    assert all(open(p, "rb").read() == data for p, data in before.items()), "kept shards untouched"
    rows = store.read_checkpoints(out, columns=["model_id", "epoch"]).to_pylist()
    assert sorted((r["model_id"], r["epoch"]) for r in rows) == [(m, e) for m in range(4) for e in (0, 1)]
