"""Image data sets for the model zoos, preprocessed once into 28x28 normalised tensors.

Every zoo CNN sees 28x28 inputs (DESIGN.md, "Contracts"), so every data set is brought to that
size here, in one place, and the exact recipe is returned as a JSON-serialisable ``preprocessing``
record. The weight store writes that record into ``zoo.json`` so that anyone can re-evaluate a
stored model on exactly the images it was trained and tested on.

Recipe (in this order): scale to [0, 1] -> grey conversion (SVHN only) -> resize to 28x28 with
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` -> per-channel
``(x - mean) / std`` with the mean and (population) std of the *training* images after resizing.

``digits`` (scikit-learn's bundled 8x8 handwritten digits) needs no files or network and is the
default for quick runs. The other data sets are read from ``data_root`` in the layouts torchvision
uses; nothing is downloaded unless ``download=True`` is passed.

Why own readers: torchvision's ``SVHN``, ``CIFAR10`` and ``STL10`` classes refuse any file whose
md5 differs from the official release (and ``STL10`` additionally requires the 2.7 GB
``unlabeled_X.bin`` even to read train/test), so they cannot read a partial copy or small test
fixtures. For those three we read the documented on-disk formats ourselves (the same decoding and
label mapping as torchvision) and use torchvision only to download. Whether the files match the
official md5s is recorded in ``preprocessing["source"]["official_md5_match"]``. MNIST is read
through ``torchvision.datasets.MNIST``, which only checks that the raw idx files exist.

Security note: the CIFAR-10 format is Python pickle; only point ``data_root`` at trusted files.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DATASETS = ("digits", "mnist", "svhn", "cifar10", "stl10")
NUM_CLASSES = 10
IMAGE_SIZE = 28
PREPROCESSING_VERSION = 1

# ITU-R BT.601 luma weights (R, G, B); the same as PIL's "L" conversion, without its rounding.
GREY_WEIGHTS = (0.299, 0.587, 0.114)

# Images per chunk when converting/resizing, so that e.g. STL-10 (5000 x 3 x 96 x 96) never exists
# in float32 at full resolution all at once.
_CHUNK = 2048

_CHANNELS = {"digits": 1, "mnist": 1, "svhn": 1, "cifar10": 3, "stl10": 3}

# Sub-directory of data_root and the files we read, per data set (torchvision's layouts).
_LAYOUT: dict[str, tuple[str, tuple[str, ...]]] = {
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


def in_channels(name: str) -> int:
    """Input channels the zoo CNN needs for data set ``name`` (SVHN is converted to grey)."""
    _check_name(name)
    return _CHANNELS[name]


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")


@dataclass
class ImageData:
    """Preprocessed train/test images of one data set.

    ``train_x``/``test_x`` are float32 ``(N, C, 28, 28)`` and already normalised; ``train_y``/``test_y``
    are int64 class indices in ``0..9``. ``preprocessing`` is the JSON-serialisable recipe.

    Objects returned by :func:`load_dataset` share their tensors with an in-process cache: treat the
    tensors as read-only (no in-place ops); clone them first if you need to modify them.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if x.ndim != 4 or y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{self.name}: {part}_x must be (N, C, H, W) and {part}_y (N,), "
                    f"got {tuple(x.shape)} and {tuple(y.shape)}"
                )

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    def split_validation(self, fraction: float, seed: int) -> tuple[ImageData, ImageData]:
        """Hold out a stratified ``fraction`` of the *training* images for validation.

        Returns ``(train_part, val_part)``:

        - ``train_part``: the remaining training images as ``train_x``; ``test_x`` is the real test
          set, unchanged.
        - ``val_part``: the same remaining training images as ``train_x``, and the held-out training
          images as ``test_x``/``test_y``. So code that trains on ``train_x`` and reports on
          ``test_x`` can be pointed at ``val_part`` for model selection without ever touching the
          real test images.

        Normalisation is left as it is (statistics of the full training set) so that both parts use
        the preprocessing recorded for the data set. The split is ``train_test_split(arange(N),
        test_size=fraction, stratify=train_y, random_state=seed)`` (unstratified if some class is too
        small to stratify); the indices are recorded in ``preprocessing["validation_split"]``.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        n = int(self.train_y.shape[0])
        keep, held = _split_indices(self.train_y.numpy(), fraction, seed)
        if len(keep) == 0 or len(held) == 0:
            raise ValueError(f"validation fraction {fraction} of {n} training images leaves an empty part")
        record = {
            "rule": "sklearn.model_selection.train_test_split(arange(n_train), test_size=fraction, "
            "stratify=train_y, random_state=seed); unstratified if a class is too small",
            "fraction": float(fraction),
            "seed": int(seed),
            "n_train_before": n,
            "kept_train_indices": keep.tolist(),
            "validation_indices": held.tolist(),
        }
        keep_t, held_t = torch.from_numpy(keep), torch.from_numpy(held)
        train_x, train_y = self.train_x[keep_t], self.train_y[keep_t]
        train_part = ImageData(
            name=self.name,
            train_x=train_x,
            train_y=train_y,
            test_x=self.test_x,
            test_y=self.test_y,
            preprocessing={
                **copy.deepcopy(self.preprocessing),
                "validation_split": {**record, "role": "train"},
            },
        )
        val_part = ImageData(
            name=self.name,
            train_x=train_x,
            train_y=train_y,
            test_x=self.train_x[held_t],
            test_y=self.train_y[held_t],
            preprocessing={
                **copy.deepcopy(self.preprocessing),
                "validation_split": {**record, "role": "validation (test_x/y: held-out train images)"},
            },
        )
        return train_part, val_part


def _split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of ``arange(len(labels))``; falls back to unstratified for tiny sets."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        keep, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError:  # a class with < 2 members, or fewer held-out images than classes
        keep, held = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.asarray(keep, dtype=np.int64), np.asarray(held, dtype=np.int64)


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    download: bool = False,
    split_seed: int = 0,
    test_fraction: float = 0.2,
) -> ImageData:
    """Load data set ``name`` as 28x28 normalised tensors plus its preprocessing record.

    ``digits`` ignores ``data_root``/``download`` and splits its 1797 images into train/test with a
    seeded stratified split (``split_seed``, ``test_fraction``; 0.2 gives 1437/360). The other data
    sets use their official train/test splits (``split_seed``/``test_fraction`` are ignored) and are
    read from ``data_root``; a missing data set raises :class:`DatasetNotFoundError` unless
    ``download=True``, in which case torchvision downloads it into ``data_root``.

    Results are cached per process; the returned object is fresh but its tensors are shared with the
    cache (do not modify them in place). :func:`clear_dataset_cache` frees the memory.
    """
    _check_name(name)
    if name == "digits":
        data = _load_cached("digits", None, int(split_seed), float(test_fraction))
    else:
        root = _resolve_root(name, data_root)
        missing = _missing_files(name, root)
        if missing and download:
            _download(name, root)
            missing = _missing_files(name, root)
        if missing:
            raise DatasetNotFoundError(_not_found_message(name, root, missing))
        data = _load_cached(name, str(root), 0, 0.0)
    return ImageData(
        name=data.name,
        train_x=data.train_x,
        train_y=data.train_y,
        test_x=data.test_x,
        test_y=data.test_y,
        preprocessing=copy.deepcopy(data.preprocessing),
    )


def clear_dataset_cache() -> None:
    """Drop the in-process cache of loaded data sets (e.g. in a long-lived worker)."""
    _load_cached.cache_clear()


def _resolve_root(name: str, data_root: str | Path | None) -> Path:
    if data_root is None:
        sub, _ = _LAYOUT[name]
        raise DatasetNotFoundError(
            f"data set {name!r} needs image files, but no data directory was given (none searched). "
            f"Pass --data-root DIR pointing at the directory that contains {_expected_hint(name, sub)}, "
            f"or add --download (with --data-root DIR to download into) on a machine with internet."
        )
    return Path(data_root).expanduser().resolve()


def _expected_hint(name: str, sub: str) -> str:
    files = _LAYOUT[name][1]
    prefix = "" if sub == "." else f"{sub}/"
    return f"{prefix}{files[0]} (torchvision's {name} layout)"


def _missing_files(name: str, root: Path) -> list[str]:
    sub, files = _LAYOUT[name]
    return [f for f in files if not (root / sub / f).is_file()]


def _not_found_message(name: str, root: Path, missing: list[str]) -> str:
    sub, _ = _LAYOUT[name]
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


def _download(name: str, root: Path) -> None:
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


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, root: str | None, split_seed: int, test_fraction: float) -> ImageData:
    if name == "digits":
        return load_digits_images(split_seed, test_fraction)
    root_path = Path(root)  # type: ignore[arg-type]
    readers = {"mnist": _read_mnist, "svhn": _read_svhn, "cifar10": _read_cifar10, "stl10": _read_stl10}
    (tr_x, tr_y), (te_x, te_y), source = readers[name](root_path)
    for labels, part in ((tr_y, "train"), (te_y, "test")):
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise ValueError(f"{name} {part} labels outside 0..9 after mapping; are the files corrupt?")
    grey = name == "svhn"
    train_x = _to_28(tr_x, 255.0, grey)
    test_x = _to_28(te_x, 255.0, grey)
    mean, std = _normalise(train_x, test_x)
    record = _record(
        name,
        source=source,
        scaling={"divide_by": 255.0, "expression": "uint8 pixels .to(float32) / 255"},
        grey=grey,
        original_size=list(tr_x.shape[-2:]),
        mean=mean,
        std=std,
        split={"rule": "official train/test split of the data set"},
        n_train=len(tr_y),
        n_test=len(te_y),
    )
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=torch.as_tensor(tr_y, dtype=torch.int64),
        test_x=test_x,
        test_y=torch.as_tensor(te_y, dtype=torch.int64),
        preprocessing=record,
    )


def load_digits_images(
    split_seed: int,
    test_fraction: float,
    name: str = "digits",
    transform: tuple[Callable[[np.ndarray], np.ndarray], str] | None = None,
) -> ImageData:
    """The embedded digits, optionally with ``transform = (fn, description)`` applied to the 8x8
    images (N, 8, 8) before the usual preprocessing: a derived data set with the same labels, split
    and preprocessing (the transfer target of ``experiments.digits_transfer_target``)."""
    import sklearn
    from sklearn.datasets import load_digits

    digits = load_digits()
    source = {"loader": "sklearn.datasets.load_digits()", "sklearn_version": sklearn.__version__}
    raw = digits.images
    if transform is not None:
        raw = np.ascontiguousarray(transform[0](raw))
        source["transform"] = transform[1]
    images = raw[:, None, :, :]  # (1797, 1, 8, 8) float64 in 0..16
    labels = np.asarray(digits.target, dtype=np.int64)
    train_idx, test_idx = _split_indices(labels, test_fraction, split_seed)
    x = _to_28(images, 16.0, grey=False)
    train_x, test_x = x[torch.from_numpy(train_idx)], x[torch.from_numpy(test_idx)]
    mean, std = _normalise(train_x, test_x)
    record = _record(
        name,
        source=source,
        scaling={
            "divide_by": 16.0,
            "expression": ("transformed " if transform else "") + "load_digits().images / 16",
        },
        grey=False,
        original_size=[8, 8],
        mean=mean,
        std=std,
        split={
            "rule": "sklearn.model_selection.train_test_split(arange(1797), test_size=test_fraction, "
            "stratify=load_digits().target, random_state=seed); indices index load_digits() order",
            "seed": int(split_seed),
            "test_fraction": float(test_fraction),
            "train_indices": train_idx.tolist(),
            "test_indices": test_idx.tolist(),
        },
        n_train=len(train_idx),
        n_test=len(test_idx),
    )
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=torch.from_numpy(labels[train_idx]),
        test_x=test_x,
        test_y=torch.from_numpy(labels[test_idx]),
        preprocessing=record,
    )


def _to_28(images: np.ndarray, divide_by: float, grey: bool) -> torch.Tensor:
    """Scale, optionally grey-convert and resize ``(N, C, H, W)`` images to float32 ``(N, C', 28, 28)``."""
    n = images.shape[0]
    out = torch.empty((n, 1 if grey else images.shape[1], IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    for start in range(0, n, _CHUNK):
        chunk = np.ascontiguousarray(images[start : start + _CHUNK])
        x = torch.as_tensor(chunk).to(torch.float32) / divide_by
        if grey:
            r, g, b = GREY_WEIGHTS
            x = (r * x[:, 0] + g * x[:, 1] + b * x[:, 2]).unsqueeze(1)
        out[start : start + _CHUNK] = F.interpolate(
            x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
        )
    return out


def _normalise(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Normalise both sets in place with the per-channel train mean and population std."""
    c = train_x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, train_x.shape[0], _CHUNK):
        chunk = train_x[start : start + _CHUNK].to(torch.float64)
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = train_x.shape[0] * train_x.shape[2] * train_x.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel is left unscaled
    mean_f, std_f = mean.to(torch.float32).view(1, c, 1, 1), std.to(torch.float32).view(1, c, 1, 1)
    for x in (train_x, test_x):
        x.sub_(mean_f).div_(std_f)
    return [float(v) for v in mean], [float(v) for v in std]


def _record(
    name: str,
    *,
    source: dict[str, Any],
    scaling: dict[str, Any],
    grey: bool,
    original_size: list[int],
    mean: list[float],
    std: list[float],
    split: dict[str, Any],
    n_train: int,
    n_test: int,
) -> dict[str, Any]:
    return {
        "format_version": PREPROCESSING_VERSION,
        "dataset": name,
        "source": source,
        "order": ["input_scaling", "grey_conversion", "resize", "normalisation"],
        "input_scaling": scaling,
        "grey_conversion": (
            {
                "weights_rgb": list(GREY_WEIGHTS),
                "standard": "ITU-R BT.601 luma",
                "expression": "0.299 * R + 0.587 * G + 0.114 * B on the [0, 1] scaled image",
            }
            if grey
            else None
        ),
        "resize": {
            "function": "torch.nn.functional.interpolate",
            "size": [IMAGE_SIZE, IMAGE_SIZE],
            "mode": "bilinear",
            "align_corners": False,
            "antialias": False,
            "original_size": [int(s) for s in original_size],
        },
        "normalisation": {
            "expression": "(x - mean[c]) / std[c]",
            "mean": mean,
            "std": std,
            "computed_on": "training images after scaling, grey conversion and resize (population std)",
        },
        "channels": len(mean),
        "torch_version": torch.__version__,
        "split": split,
        "num_train": int(n_train),
        "num_test": int(n_test),
    }


# ---------------------------------------------------------------------------------------------
# Readers: each returns ((train_images uint8 (N,C,H,W), train_labels int64 0..9), (test ...), source)


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
        "files": list(_LAYOUT["mnist"][1]),
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
        "files": list(_LAYOUT["svhn"][1]),
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
            with open(directory / filename, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            data = entry["data"] if "data" in entry else entry[b"data"]
            images.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry["labels"] if "labels" in entry else entry[b"labels"])
            official = official and _md5_matches(directory / filename, md5)
        parts.append((np.concatenate(images), np.asarray(labels, dtype=np.int64)))
    source = {
        "loader": "hyperrep_ray reader of cifar-10-batches-py (data_batch_1..5, test_batch)",
        "files": list(_LAYOUT["cifar10"][1]),
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
            raise ValueError(f"{directory / f'{split}_X.bin'} is not a whole number of 3x96x96 images")
        images = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)  # column-major -> (N, C, H, W)
        labels = np.fromfile(directory / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
        if len(labels) != len(images):
            raise ValueError(f"STL-10 {split}: {len(images)} images but {len(labels)} labels")
        parts.append((images, labels))
        for filename in (f"{split}_X.bin", f"{split}_y.bin"):
            official = official and _md5_matches(directory / filename, md5s[filename])
    source = {
        "loader": "hyperrep_ray reader of stl10_binary (train/test _X.bin, _y.bin; labels 1..10 -> 0..9)",
        "files": list(_LAYOUT["stl10"][1]),
        "official_md5_match": official,
    }
    return parts[0], parts[1], source


# ---------------------------------------------------------------------------------------------


def evaluate_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> tuple[float, float]:
    """Return ``(accuracy in [0, 1], mean cross-entropy)`` of ``model`` on ``(x, y)``.

    Runs under ``torch.no_grad()`` in eval mode on the model's device, in batches to bound memory;
    the model's previous train/eval mode is restored afterwards.
    """
    n = int(y.shape[0])
    if n == 0 or x.shape[0] != n:
        raise ValueError(f"need matching, non-empty x and y; got {tuple(x.shape)} and {tuple(y.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                xb = x[start : start + batch_size].to(device)
                yb = y[start : start + batch_size].to(device)
                logits = model(xb)
                loss_sum += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
                correct += int((logits.argmax(dim=1) == yb).sum())
    finally:
        model.train(was_training)
    return correct / n, loss_sum / n
