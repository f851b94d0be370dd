"""The weight store read by other tools, without hyperrep_ray: DuckDB and Polars select checkpoints by
model, epoch and split straight from the Parquet shards (README's queries), and get the same rows
and weights as the package's own reader."""

import json
from pathlib import Path

import numpy as np
import pytest

from hyperrep_ray import store

duckdb = pytest.importorskip("duckdb", reason="pip install -e '.[duckdb]' (also in the test extra)")
pl = pytest.importorskip("polars", reason="pip install -e '.[polars]' (also in the test extra)")


def _expected(zoo: str, epoch: int, split: str):
    w, df = store.load_weights(zoo, epochs=[epoch], split=split)
    return w.numpy(), df


def test_duckdb_reads_one_epoch_of_one_split_by_model(tiny_zoo):
    zoo = Path(tiny_zoo)
    n = json.loads((zoo / "zoo.json").read_text())["num_params"]
    query = f"""
        SELECT model_id, epoch, split, test_acc, weights
        FROM read_parquet('{zoo}/checkpoints/*.parquet')
        WHERE epoch = 3 AND split = 'val'
        ORDER BY model_id
    """
    table = duckdb.sql(query).arrow()
    if hasattr(table, "read_all"):  # newer DuckDB hands back a record batch reader
        table = table.read_all()
    w_ref, df_ref = _expected(tiny_zoo, 3, "val")
    assert table.column("model_id").to_pylist() == df_ref["model_id"].tolist()
    assert set(table.column("split").to_pylist()) == {"val"}
    weights = np.stack(table.column("weights").to_numpy(zero_copy_only=False))
    assert weights.shape == (len(df_ref), n) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights, w_ref)
    np.testing.assert_allclose(table.column("test_acc").to_numpy(), df_ref["test_acc"].to_numpy())
    # one model's whole training curve, aggregated in SQL
    curve = duckdb.sql(
        f"SELECT epoch, test_acc FROM read_parquet('{zoo}/checkpoints/*.parquet') "
        f"WHERE model_id = {int(df_ref['model_id'].iloc[0])} ORDER BY epoch"
    ).fetchall()
    assert [e for e, _ in curve] == [0, 1, 2, 3]


def test_polars_scans_the_store_lazily_by_model_epoch_and_split(tiny_zoo):
    w_ref, df_ref = _expected(tiny_zoo, 2, "train")
    df = (
        pl.scan_parquet(f"{tiny_zoo}/checkpoints/*.parquet")
        .filter((pl.col("epoch") == 2) & (pl.col("split") == "train"))
        .select("model_id", "epoch", "test_acc", "weights")
        .sort("model_id")
        .collect()
    )
    assert df["model_id"].to_list() == df_ref["model_id"].tolist()
    weights = df["weights"].to_numpy()
    assert weights.shape == w_ref.shape
    np.testing.assert_array_equal(weights, w_ref)
    per_split = (
        pl.scan_parquet(f"{tiny_zoo}/checkpoints/*.parquet")
        .group_by("split")
        .agg(pl.col("model_id").n_unique().alias("models"))
        .collect()
    )
    ours = store.read_checkpoints(tiny_zoo, columns=["model_id", "split"]).to_pandas().drop_duplicates()
    assert dict(per_split.iter_rows()) == ours["split"].value_counts().to_dict()
