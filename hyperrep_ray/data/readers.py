"""Readers of the data sets' files in the layouts torchvision uses, and the one place that downloads.

Why own readers: torchvision's ``SVHN``, ``CIFAR10`` and ``STL10`` classes refuse any file whose
md5 differs from the official release (and ``STL10`` additionally requires the 2.7 GB
``unlabeled_X.bin`` even to read train/test), so they cannot read a partial copy or small test
fixtures. For those three we read the documented on-disk formats ourselves (the same decoding and
label mapping as torchvision) and use torchvision only to download. Whether the files match the
official md5s is recorded in ``source["official_md5_match"]``. MNIST is read through
``torchvision.datasets.MNIST``, which only checks that the raw idx files exist.

Each reader returns :class:`RawImages`: uint8 ``(N, C, H, W)`` images and int64 labels in 0..9.

The CIFAR-10 batches are Python pickles. They are read by :class:`CifarUnpickler`, which builds only
what the official batches contain (dicts, lists, strings, numbers and numpy arrays) and refuses any
other object a file asks for, so a planted file cannot run code when it is read.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from hyperrep_ray.data.preprocess import NUM_CLASSES

# Sub-directory of data_root and the files we read, per data set (torchvision's layouts).
LAYOUT: dict[str, tuple[str, tuple[str, ...]]] = {
    "mnist": (
        "MNIST/raw",
        (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ),
    ),
    "svhn": (".", ("train_32x32.mat", "test_32x32.mat")),
    "cifar10": (
        "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"),
    ),
    "stl10": ("stl10_binary", ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")),
}


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are not where they were looked for (and no download was asked for)."""


class DatasetFormatError(ValueError):
    """A data set's file is there but is not in the format its layout promises."""


#: numpy's array reconstruction function, whatever module this numpy keeps it in.
ARRAY_RECONSTRUCT = np.zeros(0).__reduce__()[0]
#: The globals an official CIFAR-10 python batch refers to: numpy's array reconstruction (under its
#: numpy 1 and numpy 2 module names). Dicts, lists, strings and numbers need no global.
CIFAR_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): ARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): ARRAY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches only: any global outside :data:`CIFAR_GLOBALS` (a function to call,
    a class to build) is refused before it is imported, so reading a planted file runs nothing."""

    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in CIFAR_GLOBALS:
            raise DatasetFormatError(
                f"{self.path} is not a CIFAR-10 batch: it asks to load {module}.{name}, which the official "
                f"batches never do (refused; nothing was run). Re-download the data set (--download into "
                f"an empty --data-root) or remove the file"
            )
        return CIFAR_GLOBALS[(module, name)]


def read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """Images (N, 3, 32, 32) uint8 and labels of one CIFAR-10 python batch, read by
    :class:`CifarUnpickler`; a file of any other shape is a :class:`DatasetFormatError`."""
    try:
        with open(path, "rb") as f:
            entry = CifarUnpickler(f, path).load()
    except DatasetFormatError:
        raise
    except Exception as e:  # truncated or garbled bytes fail in many ways; all mean "not a batch"
        raise DatasetFormatError(
            f"{path} is not a CIFAR-10 batch ({type(e).__name__}: {e}); re-download the data set"
        ) from None
    data = entry.get("data", entry.get(b"data")) if isinstance(entry, dict) else None
    labels = entry.get("labels", entry.get(b"labels")) if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(f"{path} is not a CIFAR-10 batch: no (N, 3072) 'data' array")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(y) is int for y in labels):
        raise DatasetFormatError(f"{path} is not a CIFAR-10 batch: 'labels' is not {len(data)} integers")
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32), labels


@dataclass
class RawImages:
    """A data set's official train and test parts as stored: uint8 (N, C, H, W), labels int64 0..9."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: dict[str, Any]


def resolve_root(name: str, data_root: str | Path | None) -> Path:
    if data_root is None:
        sub, _ = LAYOUT[name]
        raise DatasetNotFoundError(
            f"data set {name!r} needs image files, but no data directory was given (none searched). "
            f"Pass --data-root DIR pointing at the directory that contains {_expected_hint(name, sub)}, "
            f"or add --download (with --data-root DIR to download into) on a machine with internet."
        )
    return Path(data_root).expanduser().resolve()


def _expected_hint(name: str, sub: str) -> str:
    files = LAYOUT[name][1]
    prefix = "" if sub == "." else f"{sub}/"
    return f"{prefix}{files[0]} (torchvision's {name} layout)"


def missing_files(name: str, root: Path) -> list[str]:
    sub, files = LAYOUT[name]
    return [f for f in files if not (root / sub / f).is_file()]


def not_found_message(name: str, root: Path, missing: list[str]) -> str:
    sub, _ = LAYOUT[name]
    directory = root / sub
    msg = (
        f"data set {name!r} not found: searched {directory} and missing {', '.join(missing)}. "
        f"Pass --data-root DIR pointing at the directory that contains {_expected_hint(name, sub)}, "
        f"or add --download on a machine with internet."
    )
    gz = [f for f in missing if (directory / f"{f}.gz").is_file()]
    if gz:
        msg += f" Found compressed {', '.join(g + '.gz' for g in gz)}: decompress them (gunzip)."
    return msg


def download(name: str, root: Path) -> None:
    """Download through torchvision (the only place the network is used)."""
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    if name == "mnist":
        for train in (True, False):
            tvd.MNIST(str(root), train=train, download=True)
    elif name == "svhn":
        for split in ("train", "test"):
            tvd.SVHN(str(root), split=split, download=True)
    elif name == "cifar10":
        tvd.CIFAR10(str(root), train=True, download=True)
    elif name == "stl10":
        tvd.STL10(str(root), split="test", download=True)


def read_raw(name: str, root: Path) -> RawImages:
    """The official train/test images and labels of ``name`` under ``root``, labels checked."""
    readers = {"mnist": _read_mnist, "svhn": _read_svhn, "cifar10": _read_cifar10, "stl10": _read_stl10}
    (tr_x, tr_y), (te_x, te_y), source = readers[name](root)
    for labels, part in ((tr_y, "train"), (te_y, "test")):
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise DatasetFormatError(
                f"{name} {part} labels outside 0..9 after mapping; are the files under {root} corrupt? "
                f"Re-download them"
            )
    return RawImages(tr_x, tr_y, te_x, te_y, source)


def _md5_matches(path: Path, md5: str) -> bool:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest() == md5


def _read_mnist(root: Path) -> tuple[Any, Any, dict[str, Any]]:
    from torchvision.datasets import MNIST

    parts = []
    for train in (True, False):
        ds = MNIST(str(root), train=train, download=False)
        parts.append((ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64)))
    source = {
        "loader": "torchvision.datasets.MNIST (raw idx files in MNIST/raw)",
        "files": list(LAYOUT["mnist"][1]),
        "official_md5_match": None,  # torchvision only knows the md5s of the .gz archives
    }
    return parts[0], parts[1], source


def _read_svhn(root: Path) -> tuple[Any, Any, dict[str, Any]]:
    """SVHN .mat files: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1) with labels 1..10 where 10 is digit 0."""
    import scipy.io
    from torchvision.datasets import SVHN

    parts, official = [], True
    for split in ("train", "test"):
        _, filename, md5 = SVHN.split_list[split]
        mat = scipy.io.loadmat(str(root / filename))
        images = np.transpose(mat["X"], (3, 2, 0, 1))  # -> (N, C, H, W), as torchvision does
        labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
        labels[labels == 10] = 0
        parts.append((images, labels))
        official = official and _md5_matches(root / filename, md5)
    source = {
        "loader": "hyperrep_ray reader of SVHN train_32x32.mat / test_32x32.mat (label 10 -> 0)",
        "files": list(LAYOUT["svhn"][1]),
        "official_md5_match": official,
    }
    return parts[0], parts[1], source


def _read_cifar10(root: Path) -> tuple[Any, Any, dict[str, Any]]:
    """CIFAR-10 python pickles: dicts with ``data`` (N, 3072) uint8 (RGB planes, row-major) and ``labels``."""
    from torchvision.datasets import CIFAR10

    directory = root / CIFAR10.base_folder
    official = True
    parts = []
    for file_list in (CIFAR10.train_list, CIFAR10.test_list):
        images, labels = [], []
        for filename, md5 in file_list:
            batch_images, batch_labels = read_cifar_batch(directory / filename)
            images.append(batch_images)
            labels.extend(batch_labels)
            official = official and _md5_matches(directory / filename, md5)
        parts.append((np.concatenate(images), np.asarray(labels, dtype=np.int64)))
    source = {
        "loader": "hyperrep_ray reader of cifar-10-batches-py (data_batch_1..5, test_batch)",
        "files": list(LAYOUT["cifar10"][1]),
        "official_md5_match": official,
    }
    return parts[0], parts[1], source


def _read_stl10(root: Path) -> tuple[Any, Any, dict[str, Any]]:
    """STL-10 binaries: ``*_X.bin`` uint8 (N, 3, 96, 96) stored column-major, ``*_y.bin`` labels 1..10."""
    from torchvision.datasets import STL10

    directory = root / STL10.base_folder
    md5s = dict(STL10.train_list + STL10.test_list)
    official = True
    parts = []
    for split in ("train", "test"):
        raw = np.fromfile(directory / f"{split}_X.bin", dtype=np.uint8)
        if raw.size % (3 * 96 * 96):
            raise DatasetFormatError(
                f"{directory / f'{split}_X.bin'} is not a whole number of 3x96x96 images; re-download it"
            )
        images = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)  # column-major -> (N, C, H, W)
        labels = np.fromfile(directory / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
        if len(labels) != len(images):
            raise DatasetFormatError(
                f"STL-10 {split}: {len(images)} images but {len(labels)} labels in {directory}; re-download"
            )
        parts.append((images, labels))
        for filename in (f"{split}_X.bin", f"{split}_y.bin"):
            official = official and _md5_matches(directory / filename, md5s[filename])
    source = {
        "loader": "hyperrep_ray reader of stl10_binary (train/test _X.bin, _y.bin; labels 1..10 -> 0..9)",
        "files": list(LAYOUT["stl10"][1]),
        "official_md5_match": official,
    }
    return parts[0], parts[1], source
