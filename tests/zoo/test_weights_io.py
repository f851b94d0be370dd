import numpy as np
import pytest
import torch

from hyperrep_ray.zoo.cnn import build_model, model_to_vector
from hyperrep_ray.zoo.weights_io import load_weights, load_zoo_cnn, save_weights


@pytest.mark.parametrize("c,act", [(1, "tanh"), (3, "gelu")])
def test_safetensors_round_trip_gives_a_working_model(tmp_path, c, act):
    model = build_model(c, act, "kaiming_uniform", seed=4)
    vec = model_to_vector(model)
    path = save_weights(vec, tmp_path / "m.safetensors", activation=act, source="test")
    back, meta = load_weights(path)
    assert np.array_equal(back, vec) and meta["activation"] == act and meta["source"] == "test"
    loaded = load_zoo_cnn(path)
    x = torch.randn(3, c, 28, 28)
    assert torch.equal(loaded(x), model(x))


def test_pt_state_dict_and_bad_files(tmp_path):
    model = build_model(1, "tanh", "uniform", seed=1)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    assert np.array_equal(load_weights(tmp_path / "m.pt")[0], model_to_vector(model))
    torch.save({"fc1.weight": torch.zeros(2, 2)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="missing"):
        load_weights(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "none.safetensors")
