"""Tiny files in each data set's real on-disk format (idx, .mat, pickled batches, column-major
binaries), with the pixels and labels they hold, for the data tests."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import scipy.io

N_TRAIN, N_TEST = 6, 4


def known_images(seed: int, n: int, c: int, size: int) -> np.ndarray:
    """Known uint8 images (N, C, H, W) with the full 0..255 range."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, c, size, size), dtype=np.uint8)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """idx format: big-endian magic 0x000008<ndim> (ubyte), big-endian uint32 dims, raw bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path) -> tuple[tuple, tuple]:
    raw_dir = root / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    train, test = known_images(1, N_TRAIN, 1, 28), known_images(2, N_TEST, 1, 28)
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
    train, test = known_images(3, N_TRAIN, 3, 32), known_images(4, N_TEST, 3, 32)
    train_y, test_y = np.array([10, 1, 2, 3, 4, 5]), np.array([6, 7, 10, 9])  # 10 is the digit 0
    for fname, imgs, y in (("train_32x32.mat", train, train_y), ("test_32x32.mat", test, test_y)):
        scipy.io.savemat(root / fname, {"X": imgs.transpose(2, 3, 1, 0), "y": y.astype(np.uint8)[:, None]})
    return (train, test), ([0, 1, 2, 3, 4, 5], [6, 7, 0, 9])


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official CIFAR-10 batches (protocol 2): bytes as
    py2 ``str`` opcodes (SHORT_BINSTRING/BINSTRING, not Python 3's ``_codecs.encode`` call) and numpy's
    array reconstruction under its numpy-1 name ``numpy.core.multiarray._reconstruct``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is np.zeros(0).__reduce__()[0]:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_cifar10(root: Path) -> tuple[tuple, tuple]:
    """cifar-10-batches-py: pickled dicts, data (N, 3072) uint8 = R, G, B planes each row-major, written
    as Python 2 wrote the official ones (keys and strings load as str with encoding="latin1")."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    train, test = known_images(5, N_TRAIN, 3, 32), known_images(6, N_TEST, 3, 32)
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
        (d / f"data_batch_{i}").write_bytes(py2_pickle(batch))
        start += size
    # A batch written by Python 3 (bytes keys, protocol 4: no call besides the array's) loads too.
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"labels": test_y, b"data": test.reshape(N_TEST, 3072)}, f, protocol=4)
    meta = {b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": 10000}
    (d / "batches.meta").write_bytes(py2_pickle(meta))
    return (train, test), (train_y, test_y)


def write_stl10(root: Path) -> tuple[tuple, tuple]:
    """stl10_binary: *_X.bin uint8 images (3, 96, 96) stored column-major; *_y.bin labels 1..10."""
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    train, test = known_images(7, N_TRAIN, 3, 96), known_images(8, N_TEST, 3, 96)
    train_y, test_y = np.array([1, 2, 3, 4, 5, 10]), np.array([6, 7, 8, 9])
    for split, imgs, y in (("train", train, train_y), ("test", test, test_y)):
        (d / f"{split}_X.bin").write_bytes(np.ascontiguousarray(imgs.transpose(0, 1, 3, 2)).tobytes())
        (d / f"{split}_y.bin").write_bytes(y.astype(np.uint8).tobytes())
    return (train, test), ((train_y - 1).tolist(), (test_y - 1).tolist())


WRITERS = {"mnist": write_mnist, "svhn": write_svhn, "cifar10": write_cifar10, "stl10": write_stl10}
