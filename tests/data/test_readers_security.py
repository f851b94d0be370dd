"""Reading CIFAR-10's pickled batches runs no code: a planted batch is refused with the file named,
before anything it asks for is imported or called."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from hyperrep_ray.data.images import load_dataset
from hyperrep_ray.data.readers import DatasetFormatError, read_cifar_batch
from tests.data.formats import py2_pickle, write_cifar10


class Planted:
    """Unpickling this calls ``call(*args)``: what a malicious file does."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def planted_batches(marker: Path) -> dict[str, tuple[bytes, str]]:
    """Pickles whose loading would create ``marker``, each with the global the refusal names."""
    data = np.zeros((1, 3072), np.uint8)
    touch = f"touch {marker}"
    return {
        "open": (pickle.dumps(Planted(open, str(marker), "w"), protocol=2), f"{open.__module__}.open"),
        "os.system": (
            pickle.dumps({"data": data, "labels": [Planted(os.system, touch)]}),
            f"{os.system.__module__}.system",
        ),
        "py2 exec": (
            pickle.dumps(Planted(exec, f"open({str(marker)!r}, 'w')"), protocol=0),
            "__builtin__.exec",
        ),
        "protocol 5 array": (pickle.dumps({"data": data, "labels": [0]}, protocol=5), "numpy._core.numeric"),
    }


def test_official_format_batches_load(tmp_path: Path) -> None:
    """data_batch_* as Python 2 wrote them; test_batch as Python 3 writes them (protocol 4)."""
    (train, test), (train_y, test_y) = write_cifar10(tmp_path)
    images, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    np.testing.assert_array_equal(images, train[:2])
    assert labels == train_y[:2]
    images, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    np.testing.assert_array_equal(images, test)
    assert labels == test_y


@pytest.mark.parametrize("kind", ["open", "os.system", "py2 exec", "protocol 5 array"])
def test_planted_batch_is_refused_and_runs_nothing(tmp_path: Path, kind: str) -> None:
    write_cifar10(tmp_path)
    marker = tmp_path / "planted_marker"
    payload, asked = planted_batches(marker)[kind]
    target = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    target.write_bytes(payload)
    with pytest.raises(DatasetFormatError) as e:
        load_dataset("cifar10", data_root=tmp_path)
    message = str(e.value)
    assert f"{target} is not a CIFAR-10 batch: it asks to load {asked}" in message
    assert "re-download" in message.lower() and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "EOFError"),
        (b"\x80\x02}q\x00(U\x04data", "not a CIFAR-10 batch ("),
        (py2_pickle({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}), "no (N, 3072) 'data' array"),
        (py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "'labels' is not 2 integers"),
        (py2_pickle([1, 2, 3]), "no (N, 3072) 'data' array"),
    ],
)
def test_garbled_batch_is_a_clear_error(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(DatasetFormatError, match="not a CIFAR-10 batch") as e:
        read_cifar_batch(path)
    assert str(path) in str(e.value) and why in str(e.value)
