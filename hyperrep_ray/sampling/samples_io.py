"""The samples file: embeddings z drawn by a sampler, as ``hyperrep sample`` writes them and
``hyperrep evaluate`` reads them.

Format (Parquet): columns ``sample_id`` (int64, 0..M-1) and ``z`` (fixed-size list of float32, d_z),
and the sampler that drew them in the schema metadata (``method``, ``population``, ``seed``,
``bandwidth``, ``ae``: strings, see :class:`SamplerRecord`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, ValidationError

from hyperrep_ray.io import write_with

COLUMNS = ("sample_id", "z")


class SamplesFormatError(ValueError):
    """A file that is not a samples file (not Parquet, or without its columns)."""


class SamplerRecord(BaseModel):
    """What drew the samples: kept in the file, so that an evaluation names its population."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    method: str
    population: str
    seed: int
    bandwidth: float
    ae: str

    def metadata(self) -> dict[str, str]:
        """The Parquet schema metadata (strings; the bandwidth as Python's repr, e.g. ``0.002``)."""
        return {
            "method": self.method,
            "population": self.population,
            "seed": str(self.seed),
            "bandwidth": repr(float(self.bandwidth)),
            "ae": self.ae,
        }


@dataclass(frozen=True)
class Samples:
    """A samples file's contents: ids (M,), embeddings (M, d_z) and the metadata as stored."""

    sample_id: np.ndarray
    z: np.ndarray
    metadata: dict[str, str]

    def record(self) -> SamplerRecord | None:
        """The sampler that drew them, or None for a file that does not record it completely."""
        try:
            return SamplerRecord.model_validate(self.metadata)
        except ValidationError:
            return None


def write_samples(path: str | Path, z: np.ndarray, record: SamplerRecord) -> Path:
    """Write embeddings ``z`` (M, d_z) with ids 0..M-1 (atomically); returns the path."""
    z = np.asarray(z, np.float32)
    if z.ndim != 2:
        raise ValueError(f"expected embeddings of shape (M, d_z), got {z.shape}")
    table = pa.table(
        {
            "sample_id": pa.array(np.arange(len(z), dtype=np.int64)),
            "z": pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1), pa.float32()), z.shape[1]),
        }
    ).replace_schema_metadata(record.metadata())
    return write_with(path, lambda tmp: pq.write_table(table, tmp))


def read_samples(path: str | Path) -> Samples:
    """Read a samples file; FileNotFoundError when there is none, SamplesFormatError when the file
    is not one (both say how to write one)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no samples file at {path}; write one with `hyperrep sample --out {path}`")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise SamplesFormatError(f"{path} is not a Parquet file: {e}") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise SamplesFormatError(
            f"{path} lacks column(s) {missing}; it was not written by `hyperrep sample` "
            f"(columns: {table.column_names})"
        )
    ids = table.column("sample_id").to_numpy().astype(np.int64)
    values = table.column("z").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    z = np.asarray(values, dtype=np.float32).reshape(len(ids), -1)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return Samples(ids, z, meta)
