"""A zoo's images rebuilt from its zoo.json record: the one way every stage gets them back.

Zoo training records how its images were made (``preprocessing`` in zoo.json: data set, recipe,
split). Evaluating, fine-tuning or sweeping over a stored zoo must use the same images, so they are
rebuilt here from that record and checked against it: a data root that holds different files (a
smaller copy, another release) is a clear error instead of silently different test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hyperrep_ray.data.image_data import ImageData
from hyperrep_ray.data.images import load_dataset

#: Record fields that must agree between zoo.json and the rebuilt images.
_CHECKED = ("dataset", "recipe", "num_train", "num_test", "split", "normalisation")


def images_for_zoo(meta: dict[str, Any], data_root: str | Path | None = None) -> ImageData:
    """The train/test images a zoo was trained and tested on, from its zoo.json ``meta``.

    Digits are re-split with the recorded seed and test fraction; the file-based data sets are read
    from ``data_root`` with the recorded recipe. Raises ``ValueError`` naming the fields that differ
    when the rebuilt record does not match the stored one (normalisation compared to 1e-6)."""
    record = meta.get("preprocessing") or {}
    dataset = str(meta.get("dataset", record.get("dataset", "")))
    split = record.get("split") or {}
    if dataset == "digits":
        data = load_dataset(
            "digits",
            split_seed=int(split.get("seed", 0)),
            test_fraction=float(split.get("test_fraction", 0.2)),
        )
    else:
        data = load_dataset(dataset, data_root, recipe=str(record.get("recipe", "ours")))
    if record:
        _check_same(record, data.preprocessing, dataset, data_root)
    return data


def _check_same(stored: dict[str, Any], rebuilt: dict[str, Any], dataset: str, root: Any) -> None:
    stored = {"recipe": "ours", **stored}  # zoo.json written before recipes existed
    differ = [k for k in _CHECKED if k in stored and not _close(stored[k], rebuilt.get(k))]
    if differ:
        details = "; ".join(
            f"{k}: stored {_short(stored[k])}, rebuilt {_short(rebuilt.get(k))}" for k in differ
        )
        raise ValueError(
            f"the {dataset} images under {root} are not the ones this zoo was trained on ({details}); "
            "point --data-root at the copy the zoo was made from"
        )


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-6
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "..."
