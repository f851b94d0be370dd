"""generate(): sampled, decoded weights as safetensors files that load_zoo_cnn loads and that classify."""

import json

import numpy as np
import pytest
import torch

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.sampling.generate import generate, sample_embeddings
from hyperrep_ray.zoo.weights_io import load_weights, load_zoo_cnn


def test_generate_writes_loadable_models(trained_ae, digits, tmp_path):
    ae = trained_ae[0]
    paths = generate(ae, 4, str(tmp_path / "a"), method="kde30", seed=0)
    assert [p.name for p in paths] == [f"model_{i:03d}.safetensors" for i in range(4)]
    listing = json.loads((tmp_path / "a" / "generated.json").read_text())
    assert listing["files"] == [p.name for p in paths] and listing["population"] == "S_KDE30"
    assert listing["method"] == "kde30" and listing["seed"] == 0 and listing["n"] == 4

    for p in paths:
        model = load_zoo_cnn(p)
        with torch.no_grad():
            logits = model(digits.test_x)
        assert logits.shape == (len(digits.test_y), 10)
        acc = float((logits.argmax(1) == digits.test_y).float().mean())
        assert 0.0 <= acc <= 1.0
        _, meta = load_weights(p)
        assert meta["method"] == "kde30" and meta["seed"] == "0" and meta["ae"].endswith("ae")

    # what was written is the decoded sample, and the same seed gives the same files
    expected = HyperRepresentation.load(ae).decode(sample_embeddings(ae, 4, "kde30", seed=0))
    again = generate(ae, 4, str(tmp_path / "b"), method="kde30", seed=0)
    for i, (p, q) in enumerate(zip(paths, again, strict=True)):
        np.testing.assert_array_equal(load_weights(p)[0], load_weights(q)[0])
        np.testing.assert_array_equal(load_weights(p)[0], expected[i])
    other = generate(ae, 1, str(tmp_path / "c"), method="kde30", seed=1)
    assert not np.array_equal(load_weights(other[0])[0], expected[0])


def test_generate_checks_its_inputs(trained_ae, tmp_path):
    with pytest.raises(ValueError, match="unknown sampling method"):
        generate(trained_ae[0], 2, str(tmp_path / "x"), method="nope")
    assert not (tmp_path / "x").exists()
    with pytest.raises(FileNotFoundError, match="anchors.npz"):
        generate(str(tmp_path), 2, str(tmp_path / "y"))
