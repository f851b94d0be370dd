"""Inputs of `hyperrep novelty`: safetensors files, samples Parquet, generate directories; bad files are
refused with the file named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.evaluation.novelty_inputs import NoveltyInputError, weights_from_paths
from hyperrep_ray.sampling.samples_io import SamplerRecord, write_samples
from hyperrep_ray.zoo.weights_io import save_weights


@pytest.fixture(scope="module")
def bundle(trained_ae):
    return HyperRepresentation.load(trained_ae[0])


def test_safetensors_parquet_and_generate_directory(bundle, tiny_zoo, tmp_path):
    w, _ = store.load_weights(tiny_zoo, epochs=[3], split="train")
    w = w.numpy()[:2]
    files = [save_weights(v, tmp_path / f"m{i}.safetensors") for i, v in enumerate(w)]
    gen = tmp_path / "gen"
    gen.mkdir()
    save_weights(w[0], gen / "model_000.safetensors")
    (gen / "generated.json").write_text(json.dumps({"files": ["model_000.safetensors"]}))
    z = bundle.encode(w)
    rec = SamplerRecord(method="kde30", population="S_KDE30", seed=0, bandwidth=0.002, ae="x")
    samples = write_samples(tmp_path / "s.parquet", z, rec)

    names, got = weights_from_paths([*files, gen, samples], bundle)
    assert len(names) == len(got) == 2 + 1 + 2
    np.testing.assert_array_equal(got[:3], np.stack([w[0], w[1], w[0]]))
    np.testing.assert_allclose(got[3:], bundle.decode(z), rtol=0, atol=1e-6)
    assert names[3].endswith("s.parquet#0")


def test_bad_inputs_name_the_file(bundle, tmp_path):
    n = bundle.mean_params.size
    nan = np.zeros(n, np.float32)
    nan[5] = np.nan
    with pytest.raises(NoveltyInputError, match=r"nan\.safetensors: NaN or inf values in conv1\.weight"):
        weights_from_paths([save_weights(nan, tmp_path / "nan.safetensors")], bundle)
    rgb = save_weights(np.zeros(2864, np.float32), tmp_path / "rgb.safetensors")
    with pytest.raises(NoveltyInputError, match="rgb.safetensors: weight vectors of length 2864"):
        weights_from_paths([rgb], bundle)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(NoveltyInputError, match="empty.safetensors is not a readable"):
        weights_from_paths([tmp_path / "empty.safetensors"], bundle)
    (tmp_path / "dir").mkdir()
    with pytest.raises(NoveltyInputError, match="without generated.json"):
        weights_from_paths([tmp_path / "dir"], bundle)
    with pytest.raises(NoveltyInputError, match="does not exist"):
        weights_from_paths([tmp_path / "missing.safetensors"], bundle)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(NoveltyInputError, match="expected .safetensors"):
        weights_from_paths([tmp_path / "x.txt"], bundle)
