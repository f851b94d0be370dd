"""A trained autoencoder on disk: save/load gives the same encoder and decoder, and a directory that
is not one is a clear error."""

import json

import numpy as np
import pytest
import torch

from hyperrep_ray.autoencoder.bundle import BUNDLE_FILES, HyperRepresentation, architecture_for, read_ae_info
from hyperrep_ray.autoencoder.model import HyperAutoencoder
from hyperrep_ray.config import ae_preset
from hyperrep_ray.weightspace.augment import permute_hidden_neurons
from hyperrep_ray.weightspace.tokens import token_layout
from hyperrep_ray.zoo.cnn import num_params


def _bundle(reference: bool = True) -> HyperRepresentation:
    cfg = ae_preset("smoke")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = num_params(1)
    return HyperRepresentation(
        model=HyperAutoencoder(architecture_for(cfg, 1)).eval(),
        cfg=cfg,
        in_channels=1,
        activation="tanh",
        dataset="digits",
        reference=rng.normal(0, 0.1, n).astype(np.float32) if reference else None,
        var_tokens=np.ones((token_layout(1).n_tokens, token_layout(1).token_dim), np.float32),
        mean_params=np.zeros(n, np.float32),
    )


@pytest.mark.parametrize("reference", [True, False])
def test_save_load_round_trip(tmp_path, reference):
    bundle = _bundle(reference)
    bundle.save(tmp_path, extra={"zoo": "/some/zoo"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BUNDLE_FILES), "no temporary files left"
    info = read_ae_info(tmp_path)
    assert info["zoo"] == "/some/zoo" and info["config"]["d_z"] == 16
    loaded = HyperRepresentation.load(tmp_path)
    assert (loaded.reference is None) == (not reference)
    w = np.random.default_rng(1).normal(0, 0.1, (5, num_params(1))).astype(np.float32)
    np.testing.assert_array_equal(loaded.encode(w), bundle.encode(w))
    z = bundle.encode(w)
    np.testing.assert_array_equal(loaded.decode(z), bundle.decode(z))
    assert json.loads((tmp_path / "ae.json").read_text())["architecture"]["d_z"] == 16


def test_encoding_is_blind_to_neuron_order_when_aligned(tmp_path):
    bundle = _bundle(reference=True)
    w = torch.from_numpy(np.random.default_rng(2).normal(0, 0.1, (4, num_params(1))).astype(np.float32))
    permuted = permute_hidden_neurons(w, 1, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(bundle.encode(permuted), bundle.encode(w.numpy()), atol=1e-5)


def test_a_directory_that_is_not_an_autoencoder_says_how_to_train_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a trained autoencoder.*hyperrep train-ae"):
        HyperRepresentation.load(tmp_path)
    _bundle().save(tmp_path)
    (tmp_path / "normalisation.npz").unlink()
    with pytest.raises(FileNotFoundError, match="missing normalisation.npz"):
        read_ae_info(tmp_path)


def test_shapes_are_checked():
    bundle = _bundle()
    with pytest.raises(ValueError, match=r"\(M, 2464\)"):
        bundle.encode(np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError, match=r"\(M, 16\)"):
        bundle.decode(np.zeros((1, 3), np.float32))
