"""SweepConfig: one set of defaults and bounds for `hyperrep tune`, jobs/tune_sweep.py and the pipeline."""

import pytest

from hyperrep_ray.config import ConfigError, ae_preset, make_config
from hyperrep_ray.tune.config import SweepConfig
from hyperrep_ray.tune.objective import DEFAULT_BANDWIDTHS
from hyperrep_ray.tune.space import default_point


def sweep(**values):
    return make_config(SweepConfig, {"zoo": "z", "out": "o", **values})


def test_defaults():
    c = sweep()
    assert (c.preset, c.num_samples, c.workers_per_trial, c.n_samples) == ("quick", 16, 1, 32)
    assert c.bandwidths == DEFAULT_BANDWIDTHS and c.early_stopping and c.cpus == 1.0
    assert sweep(workers_per_trial=3).cpus == 3.0 and sweep(cpus_per_trial=0.5).cpus == 0.5


def test_bandwidths_are_sorted_and_deduplicated():
    assert sweep(bandwidths=[1.0, 0.01, 0.1, 0.01]).bandwidths == (0.01, 0.1, 1.0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bandwidths": [0.1, -1.0]}, "positive, finite"),
        ({"bandwidths": []}, "positive, finite"),
        ({"bandwidths": [0.1, 0.10001]}, "3 significant digits"),
        ({"num_samples": 0}, "num_samples"),
        ({"workers_per_trial": 0}, "workers_per_trial"),
        ({"n_samples": 0}, "n_samples"),
        ({"cpus_per_trial": 0.0}, "some CPUs or GPUs"),
        ({"preset": "huge"}, "preset"),
        ({"search": "grid"}, "search"),
        ({"num_sample": 3}, "Extra inputs"),
    ],
)
def test_out_of_bounds_is_a_config_error(values, message):
    with pytest.raises(ConfigError, match=message):
        sweep(**values)


def test_gpus_alone_are_enough():
    assert sweep(cpus_per_trial=0.0, gpus_per_trial=1.0).gpus_per_trial == 1.0


def test_points_to_evaluate_default_to_the_preset():
    base = ae_preset("smoke")
    assert sweep().points(default_point(base)) == [default_point(base)]
    point = {**default_point(base), "lr": 1e30}
    assert sweep(points_to_evaluate=[point]).points(default_point(base)) == [point]
