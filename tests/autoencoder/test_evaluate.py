"""What the stage measures on an autoencoder, checked against direct computations (no Ray)."""

import numpy as np
import pandas as pd
import pytest
import torch

from hyperrep_ray.autoencoder.bundle import HyperRepresentation, architecture_for
from hyperrep_ray.autoencoder.data import AEData, train_statistics
from hyperrep_ray.autoencoder.evaluate import evaluate_autoencoder
from hyperrep_ray.autoencoder.losses import reconstruction_r2
from hyperrep_ray.autoencoder.model import HyperAutoencoder
from hyperrep_ray.autoencoder.probes import TARGETS, metric_key, probe_key
from hyperrep_ray.autoencoder.scoring import dataset_scorer, zoo_scorer
from hyperrep_ray.config import ae_preset
from hyperrep_ray.data.images import evaluate_accuracy, load_dataset
from hyperrep_ray.evaluation.ray_pipeline import scratch_weights
from hyperrep_ray.zoo.cnn import vector_to_model

SIZES = {"train": 12, "val": 4, "test": 6}


@pytest.fixture(scope="module")
def synthetic():
    """Random zoo CNNs as a zoo's splits (two 'epochs' per model) and an untrained autoencoder."""
    rng = np.random.default_rng(0)
    weights, meta, first = {}, {}, 0
    for i, (split, n) in enumerate(SIZES.items()):
        weights[split] = scratch_weights(n, 1, "uniform_symmetric", seed=i)[0]
        meta[split] = pd.DataFrame(
            {
                "model_id": first + np.arange(n) // 2,
                "epoch": np.tile([2, 3], n // 2),
                "train_acc": rng.uniform(0.1, 0.9, n),
                "test_acc": rng.uniform(0.1, 0.9, n),
            }
        )
        first += n
    data = AEData(1, "tanh", "digits", weights, meta, None, **train_statistics(weights["train"], 1, "layer"))
    cfg = ae_preset("smoke")
    torch.manual_seed(0)
    model = HyperAutoencoder(architecture_for(cfg, 1))
    model.set_standardisation(torch.from_numpy(data.token_shift), torch.from_numpy(data.token_scale))
    bundle = HyperRepresentation(
        model.eval(), cfg, 1, "tanh", "digits", None, data.var_tokens, data.mean_params
    )
    return bundle, data


def test_metrics_agree_with_direct_computations(synthetic, tmp_path):
    bundle, data = synthetic
    ev = evaluate_autoencoder(
        bundle, data, "zoo", tmp_path, n_pairs=3, score=dataset_scorer("digits", "tanh")
    )
    m = ev.metrics
    assert (m["n_train"], m["n_val"], m["n_test"]) == (12, 4, 6)
    w = data.weights["test"]
    direct = reconstruction_r2(bundle.decode(bundle.encode(w, aligned=True)), w, data.mean_params)
    assert m["reconstruction_r2_test"] == pytest.approx(float(direct), rel=1e-6)
    assert {
        f"reconstruction_r2_val_{layer}" for layer in ("conv1", "conv2", "conv3", "fc1", "fc2")
    } <= m.keys()
    digits = load_dataset("digits")
    one_by_one = [evaluate_accuracy(vector_to_model(v), digits.test_x, digits.test_y)[0] for v in w]
    assert m["original_test_accuracy_mean"] == pytest.approx(np.mean(one_by_one), abs=1e-6)
    assert m["stored_test_accuracy_mean"] == pytest.approx(data.meta["test"]["test_acc"].mean())
    assert 0 <= m["reconstructed_test_accuracy_mean"] <= 1 and 0 <= m["noise_accuracy"] <= 1
    for fs in ("z", "W", "sW"):
        for target in TARGETS:
            assert metric_key(target, fs) in m and probe_key(target, fs) in ev.probes
    names = sorted(f.name for f in ev.figures)
    assert names == ["interpolation_accuracy.png", "noise_accuracy.png", "reconstruction_accuracy.png"]
    assert all(f.stat().st_size > 1000 for f in ev.figures)


def test_zoo_scorer_uses_the_zoo_s_recorded_images(tiny_zoo):
    """The tiny zoo records digits with the default split: the same test images as load_dataset."""
    w = scratch_weights(3, 1, "uniform_symmetric", seed=4)[0]
    np.testing.assert_array_equal(zoo_scorer(tiny_zoo, "tanh")(w), dataset_scorer("digits", "tanh")(w))


def test_dataset_scorer_equals_scoring_models_one_by_one(synthetic):
    _, data = synthetic
    w = data.weights["val"].copy()
    w[1, 0] = np.nan  # a decoder can produce one: it scores 0, the others are unaffected
    acc = dataset_scorer("digits", "tanh")(w)
    digits = load_dataset("digits")
    for i in (0, 2, 3):
        assert acc[i] == pytest.approx(
            evaluate_accuracy(vector_to_model(w[i]), digits.test_x, digits.test_y)[0]
        )
    assert acc[1] == 0.0
