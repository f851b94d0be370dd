"""A zoo's images rebuilt from its zoo.json record, and refused when the files differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hyperrep_ray.data import images as ds
from hyperrep_ray.data.images import load_dataset
from hyperrep_ray.data.zoo_images import images_for_zoo
from tests.data.formats import write_mnist, write_svhn


@pytest.fixture(autouse=True)
def _fresh_cache():
    ds.clear_dataset_cache()
    yield
    ds.clear_dataset_cache()


def _meta(data) -> dict:
    """What zoo.json holds about the images (after a JSON round trip, as read from disk)."""
    return json.loads(json.dumps({"dataset": data.name, "preprocessing": data.preprocessing}))


def test_digits_come_back_with_the_recorded_split() -> None:
    made = load_dataset("digits", split_seed=5, test_fraction=0.25)
    again = images_for_zoo(_meta(made))
    assert torch.equal(again.train_x, made.train_x) and torch.equal(again.test_y, made.test_y)
    assert not torch.equal(load_dataset("digits").test_y[:50], made.test_y[:50])  # the default split differs


@pytest.mark.parametrize("recipe", ["ours", "authors"])
def test_file_data_sets_come_back_with_the_recorded_recipe(tmp_path: Path, recipe: str) -> None:
    write_svhn(tmp_path)
    made = load_dataset("svhn", data_root=tmp_path, recipe=recipe)
    ds.clear_dataset_cache()
    again = images_for_zoo(_meta(made), tmp_path)
    assert again.preprocessing["recipe"] == recipe
    assert torch.equal(again.train_x, made.train_x) and torch.equal(again.test_x, made.test_x)


def test_other_files_under_the_root_are_refused(tmp_path: Path) -> None:
    write_mnist(tmp_path / "a")
    meta = _meta(load_dataset("mnist", data_root=tmp_path / "a"))
    (tmp_path / "b" / "MNIST").mkdir(parents=True)
    raw = tmp_path / "b" / "MNIST" / "raw"
    raw.mkdir()
    for f in (tmp_path / "a" / "MNIST" / "raw").iterdir():
        data = bytearray(f.read_bytes())
        if f.name.startswith("train-images"):
            data[-200:] = bytes(200)  # other pixels: the fitted normalisation moves
        (raw / f.name).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not the ones this zoo was trained on.*normalisation"):
        images_for_zoo(meta, tmp_path / "b")


def test_records_from_before_recipes_read_as_ours(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    meta = _meta(load_dataset("mnist", data_root=tmp_path))
    del meta["preprocessing"]["recipe"]
    assert images_for_zoo(meta, tmp_path).preprocessing["recipe"] == "ours"
