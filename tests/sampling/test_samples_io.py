"""The samples file (`hyperrep sample` -> `hyperrep evaluate`): round trip and clear errors."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hyperrep_ray.sampling.samples_io import (
    SamplerRecord,
    SamplesFormatError,
    read_samples,
    write_samples,
)

RECORD = SamplerRecord(method="kde30", population="S_KDE30", seed=4, bandwidth=0.002, ae="/runs/ae")


def test_round_trip(tmp_path):
    z = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    path = write_samples(tmp_path / "s.parquet", z, RECORD)
    samples = read_samples(path)
    np.testing.assert_array_equal(samples.z, z)
    np.testing.assert_array_equal(samples.sample_id, np.arange(5))
    assert samples.z.dtype == np.float32 and samples.sample_id.dtype == np.int64
    assert samples.record() == RECORD
    assert samples.metadata["bandwidth"] == "0.002" and samples.metadata["seed"] == "4"
    table = pq.read_table(path)  # the on-disk format other tools read
    z_type = table.schema.field("z").type
    assert table.column_names == ["sample_id", "z"] and table.schema.field("sample_id").type == pa.int64()
    assert pa.types.is_fixed_size_list(z_type) and z_type.list_size == 3 and z_type.value_type == pa.float32()
    assert not list(tmp_path.glob(".tmp-*")), "written atomically"


def test_a_file_without_a_complete_record_still_reads(tmp_path):
    path = tmp_path / "s.parquet"
    pd.DataFrame({"sample_id": [0, 1], "z": [[0.0, 1.0], [2.0, 3.0]]}).to_parquet(path)
    samples = read_samples(path)
    assert samples.z.shape == (2, 2) and samples.z[1, 0] == 2.0 and samples.record() is None


def test_not_a_samples_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="hyperrep sample --out"):
        read_samples(tmp_path / "none.parquet")
    wrong = tmp_path / "wrong.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(wrong)
    with pytest.raises(
        SamplesFormatError, match=r"lacks column\(s\) \['sample_id', 'z'\]; it was not written by"
    ):
        read_samples(wrong)
    text = tmp_path / "text.parquet"
    text.write_text("sample_id,z\n")
    with pytest.raises(SamplesFormatError, match="is not a Parquet file"):
        read_samples(text)


def test_embeddings_must_be_a_matrix(tmp_path):
    with pytest.raises(ValueError, match=r"\(M, d_z\)"):
        write_samples(tmp_path / "s.parquet", np.zeros(3), RECORD)
