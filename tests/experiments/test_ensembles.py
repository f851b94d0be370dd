"""Figure 5's ensembles: size-1 ensembles are the individual models, every population shares the members."""

import numpy as np
import pytest

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.experiments.ensembles import ensembles
from hyperrep_ray.report.experiment_outputs import write_outputs
from hyperrep_ray.sampling.generate import sample_embeddings
from hyperrep_ray.zoo.population import evaluate_weight_vectors

TOL = 1 / 128 + 1e-9  # one test image of small_digits
PNG = b"\x89PNG\r\n\x1a\n"


def test_ensembles_of_size_one_are_the_individual_models(
    trained_ae, tiny_zoo, small_digits, tmp_path, ray_session
):
    ae = trained_ae[0]
    res = ensembles(ae, small_digits, 4, (1, 3, 9), 5, seed=2, zoo=tiny_zoo, train_epochs=1)
    assert set(res.summary) == {"S_KDE30_ep0", "S_KDE30_ep1", "B_T_ep1"}
    assert all(set(per) == {"1", "3"} for per in res.summary.values()) and "size 9" in res.notes[0]
    decoded = HyperRepresentation.load(ae).decode(sample_embeddings(ae, 4, "kde30", seed=2))
    np.testing.assert_array_equal(res.extra["weights"]["S_KDE30_ep0"], decoded)
    for pop, w in res.extra["weights"].items():
        acc, _ = evaluate_weight_vectors(w, small_digits.test_x, small_digits.test_y, "tanh")
        rows = res.frame[(res.frame.population == pop) & (res.frame.ensemble_size == 1)]
        assert rows["members"].tolist() == ["0", "1", "2", "3"]
        np.testing.assert_allclose(rows["test_acc"], acc, atol=TOL)
        assert res.summary[pop]["1"]["mean"] == pytest.approx(acc.mean(), abs=TOL)
    # the same member sets for every population, 5 of them per size
    sets = res.frame[res.frame.ensemble_size == 3].groupby("population")["members"].apply(list)
    assert len({tuple(v) for v in sets}) == 1 and all(len(v) == 5 for v in sets)
    assert not list(tmp_path.iterdir())  # an experiment computes; report/ draws
    assert (tmp_path / "ensembles" / "figure5.png") in write_outputs(res, tmp_path)
    assert (tmp_path / "ensembles" / "figure5.png").read_bytes()[:8] == PNG
