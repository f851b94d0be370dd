"""Tests for hyperrep_ray.data.images.

The file-based data sets are tested on tiny files written in each data set's real on-disk format
(idx, .mat, pickled batches, column-major binaries) and loaded through ``load_dataset``; the
expected 28x28 tensors are recomputed independently from the known pixels, so a wrong axis order,
scaling, grey conversion or label mapping shows up as a mismatch.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from hyperrep_ray.data import images as ds
from hyperrep_ray.data.images import (
    DATASETS,
    DatasetNotFoundError,
    ImageData,
    evaluate_accuracy,
    in_channels,
    load_dataset,
)

N_TRAIN, N_TEST = 6, 4


@pytest.fixture(autouse=True)
def _fresh_cache():
    ds.clear_dataset_cache()
    yield
    ds.clear_dataset_cache()


def _images(seed: int, n: int, c: int, size: int) -> np.ndarray:
    """Known uint8 images (N, C, H, W) with the full 0..255 range."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, c, size, size), dtype=np.uint8)


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


# ---- writers of the real on-disk formats -------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    """idx format: big-endian magic 0x000008<ndim> (ubyte), big-endian uint32 dims, raw bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path) -> tuple[tuple, tuple]:
    raw_dir = root / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    train, test = _images(1, N_TRAIN, 1, 28), _images(2, N_TEST, 1, 28)
    train_y, test_y = np.array([3, 1, 4, 1, 5, 9]), np.array([2, 6, 5, 0])
    _write_idx(raw_dir / "train-images-idx3-ubyte", train[:, 0])
    _write_idx(raw_dir / "train-labels-idx1-ubyte", train_y)
    _write_idx(raw_dir / "t10k-images-idx3-ubyte", test[:, 0])
    _write_idx(raw_dir / "t10k-labels-idx1-ubyte", test_y)
    assert (raw_dir / "train-images-idx3-ubyte").read_bytes()[:4] == b"\x00\x00\x08\x03"
    return (train, test), (train_y.tolist(), test_y.tolist())


def write_svhn(root: Path) -> tuple[tuple, tuple]:
    """train_32x32.mat / test_32x32.mat: X (32, 32, 3, N) uint8 indexed [row, col, channel, i]."""
    root.mkdir(parents=True, exist_ok=True)
    train, test = _images(3, N_TRAIN, 3, 32), _images(4, N_TEST, 3, 32)
    train_y, test_y = np.array([10, 1, 2, 3, 4, 5]), np.array([6, 7, 10, 9])  # 10 is the digit 0
    for fname, imgs, y in (("train_32x32.mat", train, train_y), ("test_32x32.mat", test, test_y)):
        scipy.io.savemat(root / fname, {"X": imgs.transpose(2, 3, 1, 0), "y": y.astype(np.uint8)[:, None]})
    return (train, test), ([0, 1, 2, 3, 4, 5], [6, 7, 0, 9])


def write_cifar10(root: Path) -> tuple[tuple, tuple]:
    """cifar-10-batches-py: pickled dicts, data (N, 3072) uint8 = R, G, B planes each row-major."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    train, test = _images(5, N_TRAIN, 3, 32), _images(6, N_TEST, 3, 32)
    train_y, test_y = [9, 8, 7, 6, 5, 4], [3, 2, 1, 0]
    sizes = [2, 1, 1, 1, 1]  # data_batch_1..5
    start = 0
    for i, size in enumerate(sizes, start=1):
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": train_y[start : start + size],
            b"data": train[start : start + size].reshape(size, 3072),
            b"filenames": [f"img{j}.png".encode() for j in range(size)],
        }
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch, f, protocol=2)
        start += size
    # The originals are Python 2 pickles whose keys load as str with encoding="latin1"; cover that too.
    with open(d / "test_batch", "wb") as f:
        pickle.dump({"labels": test_y, "data": test.reshape(N_TEST, 3072)}, f, protocol=2)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": 10000}, f, protocol=2)
    return (train, test), (train_y, test_y)


def write_stl10(root: Path) -> tuple[tuple, tuple]:
    """stl10_binary: *_X.bin uint8 images (3, 96, 96) stored column-major; *_y.bin labels 1..10."""
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    train, test = _images(7, N_TRAIN, 3, 96), _images(8, N_TEST, 3, 96)
    train_y, test_y = np.array([1, 2, 3, 4, 5, 10]), np.array([6, 7, 8, 9])
    for split, imgs, y in (("train", train, train_y), ("test", test, test_y)):
        (d / f"{split}_X.bin").write_bytes(np.ascontiguousarray(imgs.transpose(0, 1, 3, 2)).tobytes())
        (d / f"{split}_y.bin").write_bytes(y.astype(np.uint8).tobytes())
    return (train, test), ((train_y - 1).tolist(), (test_y - 1).tolist())


WRITERS = {"mnist": write_mnist, "svhn": write_svhn, "cifar10": write_cifar10, "stl10": write_stl10}


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
    monkeypatch.setattr(ds, "_download", lambda name, root: calls.append((name, root)))
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
