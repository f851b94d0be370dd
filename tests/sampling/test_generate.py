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


def test_generate_records_each_models_novelty(trained_ae, tiny_zoo, digits, tmp_path):
    from hyperrep_ray import store
    from hyperrep_ray.zoo.population import evaluate_weight_vectors

    ae = trained_ae[0]
    paths = generate(ae, 3, str(tmp_path / "n"), method="kde-joint30", seed=0)
    novelty = json.loads((tmp_path / "n" / "generated.json").read_text())["novelty"]
    ref = novelty["reference"]
    _, train = store.load_weights(tiny_zoo, epochs=range(2, 4), split="train")
    assert ref["zoo"] == tiny_zoo and ref["epochs_window"] == [2, 3] and ref["n_checkpoints"] == len(train)
    assert set(novelty["summary"]) == {"accuracy", "novelty", "max_wrong_iou", "nearest_l2", "n"}
    assert list(novelty["models"]) == [p.name for p in paths]
    acc = evaluate_weight_vectors(
        np.stack([load_weights(p)[0] for p in paths]), digits.test_x, digits.test_y, "tanh"
    )[0]
    train_keys = set(zip(train["model_id"], train["epoch"], strict=True))
    for p, a in zip(paths, acc, strict=True):
        rec = novelty["models"][p.name]
        assert rec["accuracy"] == pytest.approx(float(a), abs=1e-6)
        assert (rec["nearest_model_id"], rec["nearest_epoch"]) in train_keys
        assert (rec["iou_model_id"], rec["iou_epoch"]) in train_keys
        assert rec["novelty"] == pytest.approx(1 - rec["max_wrong_iou"]) and rec["nearest_l2"] >= 0
    assert novelty["summary"]["n"] == 3


def test_generate_without_the_zoo_says_why(trained_ae, tmp_path):
    import shutil

    ae = tmp_path / "ae-moved"
    shutil.copytree(trained_ae[0], ae, ignore=shutil.ignore_patterns("ray_train", "*.png"))
    info = json.loads((ae / "ae.json").read_text())
    (ae / "ae.json").write_text(json.dumps({**info, "zoo": str(tmp_path / "gone")}))
    generate(str(ae), 2, str(tmp_path / "x"), method="kde30", seed=0)
    listing = json.loads((tmp_path / "x" / "generated.json").read_text())
    assert listing["novelty"] is None and "cannot be read" in listing["novelty_note"]
    generate(str(ae), 2, str(tmp_path / "y"), method="kde30", seed=0, novelty=False)
    assert "novelty" not in json.loads((tmp_path / "y" / "generated.json").read_text())
