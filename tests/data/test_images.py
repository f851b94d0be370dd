"""Tests for hyperrep_ray.data.images.

The file-based data sets are tested on tiny files written in each data set's real on-disk format
(idx, .mat, pickled batches, column-major binaries) and loaded through ``load_dataset``; the
expected 28x28 tensors are recomputed independently from the known pixels, so a wrong axis order,
scaling, grey conversion or label mapping shows up as a mismatch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from hyperrep_ray.data import images as ds
from hyperrep_ray.data import readers
from hyperrep_ray.data.images import (
    DATASETS,
    DatasetNotFoundError,
    ImageData,
    evaluate_accuracy,
    in_channels,
    load_dataset,
)
from tests.data.formats import N_TEST, N_TRAIN, WRITERS, write_cifar10, write_stl10, write_svhn


@pytest.fixture(autouse=True)
def _fresh_cache():
    ds.clear_dataset_cache()
    yield
    ds.clear_dataset_cache()


def _expected_28(images: np.ndarray, grey: bool = False) -> torch.Tensor:
    x = torch.from_numpy(images).to(torch.float32) / 255.0
    if grey:
        x = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)


def _denormalise(x: torch.Tensor, record: dict) -> torch.Tensor:
    mean = torch.tensor(record["normalisation"]["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(record["normalisation"]["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return x * std + mean


def _check_loaded(data: ImageData, name: str, channels: int, raw: tuple, labels: tuple, grey: bool) -> None:
    """Shapes, labels, normalisation, exact reproduction from the record, JSON-ability."""
    assert data.name == name
    assert data.in_channels == channels == in_channels(name)
    assert data.num_classes == 10
    assert data.train_x.shape == (N_TRAIN, channels, 28, 28)
    assert data.test_x.shape == (N_TEST, channels, 28, 28)
    assert data.train_x.dtype == data.test_x.dtype == torch.float32
    assert data.train_y.dtype == data.test_y.dtype == torch.int64
    assert data.train_y.tolist() == list(labels[0])
    assert data.test_y.tolist() == list(labels[1])
    assert torch.isfinite(data.train_x).all() and torch.isfinite(data.test_x).all()

    per_channel = data.train_x.transpose(0, 1).reshape(channels, -1)
    torch.testing.assert_close(per_channel.mean(dim=1), torch.zeros(channels), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(dim=1, correction=0), torch.ones(channels), atol=1e-4, rtol=0)

    rec = json.loads(json.dumps(data.preprocessing))  # must survive a JSON round trip unchanged
    assert rec == data.preprocessing
    assert rec["dataset"] == name
    assert rec["input_scaling"]["divide_by"] == 255.0
    assert rec["resize"] == {
        "function": "torch.nn.functional.interpolate",
        "size": [28, 28],
        "mode": "bilinear",
        "align_corners": False,
        "antialias": False,
        "original_size": list(raw[0].shape[-2:]),
    }
    assert len(rec["normalisation"]["mean"]) == len(rec["normalisation"]["std"]) == channels
    if grey:
        assert rec["grey_conversion"]["weights_rgb"] == [0.299, 0.587, 0.114]
    else:
        assert rec["grey_conversion"] is None
    assert rec["num_train"] == N_TRAIN and rec["num_test"] == N_TEST
    assert rec["source"]["official_md5_match"] in (False, None)  # fixtures are not the official files

    # Anyone holding only the record and the raw pixels can reproduce the tensors.
    torch.testing.assert_close(_denormalise(data.train_x, rec), _expected_28(raw[0], grey), atol=1e-5, rtol=0)
    torch.testing.assert_close(_denormalise(data.test_x, rec), _expected_28(raw[1], grey), atol=1e-5, rtol=0)


# ---- file-based data sets --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "channels", "grey"),
    [("mnist", 1, False), ("svhn", 1, True), ("cifar10", 3, False), ("stl10", 3, False)],
)
def test_real_format_files_load_correctly(tmp_path: Path, name: str, channels: int, grey: bool) -> None:
    raw, labels = WRITERS[name](tmp_path)
    data = load_dataset(name, data_root=tmp_path)
    _check_loaded(data, name, channels, raw, labels, grey)
    assert data.preprocessing["split"] == {"rule": "official train/test split of the data set"}


def test_cache_returns_fresh_objects(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    a = load_dataset("svhn", data_root=str(tmp_path))
    b = load_dataset("svhn", data_root=tmp_path)
    assert a is not b and a.preprocessing is not b.preprocessing
    a.preprocessing["dataset"] = "changed"
    assert load_dataset("svhn", data_root=tmp_path).preprocessing["dataset"] == "svhn"


@pytest.mark.parametrize("name", ["mnist", "svhn", "cifar10", "stl10"])
def test_missing_dataset_is_a_clear_error_and_downloads_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, data_root=tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert repr(name) in msg and str(tmp_path) in msg
    assert "--data-root DIR" in msg and "--download" in msg
    assert list(tmp_path.iterdir()) == []  # nothing was created, so nothing was downloaded

    with pytest.raises(DatasetNotFoundError, match="--download"):
        load_dataset(name, data_root=None)


def test_partially_missing_files_are_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing test_batch"):
        load_dataset("cifar10", data_root=tmp_path)


def test_download_only_when_asked_and_only_when_missing(tmp_path: Path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(readers, "download", lambda name, root: calls.append((name, root)))
    write_stl10(tmp_path / "present")
    load_dataset("stl10", data_root=tmp_path / "present", download=True)
    assert calls == []  # files are there: no network
    with pytest.raises(DatasetNotFoundError):
        load_dataset("stl10", data_root=tmp_path / "absent")
    assert calls == []
    with pytest.raises(DatasetNotFoundError):  # the fake download wrote nothing
        load_dataset("stl10", data_root=tmp_path / "absent", download=True)
    assert calls == [("stl10", (tmp_path / "absent").resolve())]


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="digits, mnist, svhn, cifar10, stl10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="valid names"):
        in_channels("imagenet")
    assert [in_channels(n) for n in DATASETS] == [1, 1, 1, 3, 3]


# ---- digits ----------------------------------------------------------------------------------


def test_digits_split_scaling_and_normalisation() -> None:
    data = load_dataset("digits", data_root="/nonexistent/ignored")
    assert data.train_x.shape == (1437, 1, 28, 28) and data.test_x.shape == (360, 1, 28, 28)
    assert data.train_y.shape == (1437,) and data.test_y.shape == (360,)
    assert data.in_channels == 1 and data.num_classes == 10
    rec = data.preprocessing
    json.dumps(rec)
    assert rec["input_scaling"]["divide_by"] == 16.0 and rec["grey_conversion"] is None
    assert rec["resize"]["original_size"] == [8, 8]

    split = rec["split"]
    train_idx, test_idx = split["train_indices"], split["test_indices"]
    assert split["seed"] == 0 and split["test_fraction"] == 0.2
    assert len(train_idx) == 1437 and len(test_idx) == 360
    assert set(train_idx).isdisjoint(test_idx) and set(train_idx) | set(test_idx) == set(range(1797))

    # Stratified: every class in test, each with ~20 % of its images.
    target = load_digits().target
    assert data.train_y.tolist() == target[train_idx].tolist()
    assert data.test_y.tolist() == target[test_idx].tolist()
    test_counts = np.bincount(data.test_y.numpy(), minlength=10)
    assert (test_counts > 0).all()
    assert (np.abs(test_counts - 0.2 * np.bincount(target)) <= 1).all()

    # Pixel scaling: original max 16 -> 1, reproducible from the record alone.
    images = torch.from_numpy(load_digits().images).to(torch.float32)[:, None] / 16
    assert images.max() == 1.0
    expected = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    torch.testing.assert_close(_denormalise(data.train_x, rec), expected[train_idx], atol=1e-5, rtol=0)
    torch.testing.assert_close(_denormalise(data.test_x, rec), expected[test_idx], atol=1e-5, rtol=0)
    assert _denormalise(data.train_x, rec).max() <= 1.0 + 1e-6

    assert abs(float(data.train_x.mean())) < 1e-5
    assert abs(float(data.train_x.std(correction=0)) - 1.0) < 1e-4


def test_digits_split_is_deterministic_per_seed() -> None:
    a = load_dataset("digits", split_seed=3)
    ds.clear_dataset_cache()
    b = load_dataset("digits", split_seed=3)
    c = load_dataset("digits", split_seed=4)
    assert a.train_x is not b.train_x  # really recomputed
    assert a.preprocessing["split"]["test_indices"] == b.preprocessing["split"]["test_indices"]
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.preprocessing["split"]["test_indices"] != c.preprocessing["split"]["test_indices"]
    assert not torch.equal(a.test_x, c.test_x)


def test_split_validation_holds_out_train_images_only() -> None:
    data = load_dataset("digits")
    original_test_x, original_train_x = data.test_x.clone(), data.train_x.clone()
    train_part, val_part = data.split_validation(0.2, seed=1)

    held = val_part.preprocessing["validation_split"]["validation_indices"]
    kept = val_part.preprocessing["validation_split"]["kept_train_indices"]
    assert len(held) == math.ceil(0.2 * 1437) and len(kept) == 1437 - len(held)
    assert set(held).isdisjoint(kept) and set(held) | set(kept) == set(range(1437))
    assert train_part.preprocessing["validation_split"]["kept_train_indices"] == kept

    # train part: the remaining training images; its test set is the real one, untouched.
    assert torch.equal(train_part.train_x, data.train_x[kept])
    assert torch.equal(train_part.train_y, data.train_y[kept])
    assert torch.equal(train_part.test_x, original_test_x)
    # val part: same training images; its "test" images are the held-out training images.
    assert torch.equal(val_part.train_x, data.train_x[kept])
    assert torch.equal(val_part.test_x, data.train_x[held])
    assert torch.equal(val_part.test_y, data.train_y[held])
    assert (np.bincount(val_part.test_y.numpy(), minlength=10) > 0).all()  # stratified
    # the source object is unchanged
    assert torch.equal(data.test_x, original_test_x) and torch.equal(data.train_x, original_train_x)
    json.dumps(val_part.preprocessing)

    again = data.split_validation(0.2, seed=1)[1].preprocessing["validation_split"]["validation_indices"]
    other = data.split_validation(0.2, seed=2)[1].preprocessing["validation_split"]["validation_indices"]
    assert again == held and other != held
    with pytest.raises(ValueError):
        data.split_validation(1.0, seed=0)


# ---- evaluation ------------------------------------------------------------------------------


class _FixedLogits(nn.Module):
    """Logits = a * one_hot(predicted class) read from the input; dropout checks eval mode is used."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(a))
        self.dropout = nn.Dropout(p=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.scale * F.one_hot(x.view(-1).long(), 10).float())


def test_evaluate_accuracy_known_outputs() -> None:
    a = 2.0
    model = _FixedLogits(a).train()
    x = torch.tensor([0, 1, 2, 3, 4]).view(5, 1, 1, 1).float()  # predicted classes
    y = torch.tensor([0, 1, 2, 9, 9])  # 3 of 5 right
    acc, loss = evaluate_accuracy(model, x, y, batch_size=2)
    right = -math.log(math.exp(a) / (math.exp(a) + 9))
    wrong = -math.log(1 / (math.exp(a) + 9))
    assert acc == pytest.approx(0.6)
    assert loss == pytest.approx((3 * right + 2 * wrong) / 5, rel=1e-6)
    assert model.training  # mode restored
    assert model.scale.grad is None
    with pytest.raises(ValueError):
        evaluate_accuracy(model, x[:0], y[:0])
