"""The search space around a preset and the AEConfig a point of it stands for."""

import pytest

from hyperrep_ray.config import ConfigError, ae_preset
from hyperrep_ray.tune.objective import DEFAULT_BANDWIDTHS
from hyperrep_ray.tune.space import SearchPoint, default_point, scaled_choices, search_space, trial_ae_config


def test_search_space_covers_the_ranges_around_the_preset():
    base = ae_preset("quick")
    space = search_space(base)
    assert space["one_minus_beta"].lower == pytest.approx(1e-3) and space["one_minus_beta"].upper == 0.5
    assert all(d % base.n_heads == 0 for d in space["d_token"].categories)
    assert base.d_token in space["d_token"].categories and base.d_z in space["d_z"].categories
    assert space["lr"].lower == pytest.approx(base.lr / 10) and space["lr"].upper == pytest.approx(
        3 * base.lr
    )
    assert DEFAULT_BANDWIDTHS[0] == 0.002 and DEFAULT_BANDWIDTHS[-1] == 1.0


def test_scaled_choices_are_multiples_around_the_value():
    assert scaled_choices(64, 4) == [32, 64, 128]
    assert scaled_choices(6, 4) == [4, 8, 12]  # 3 rounds up to the multiple 4
    assert scaled_choices(1, 1) == [1, 2]


def test_a_point_becomes_the_preset_with_its_values():
    base = ae_preset("quick")
    assert trial_ae_config(base, default_point(base)) == base
    cfg = trial_ae_config(base, {**default_point(base), "one_minus_beta": 0.01, "d_z": 2 * base.d_z})
    assert cfg.beta == pytest.approx(0.99) and cfg.d_z == 2 * base.d_z and cfg.d_token == base.d_token
    assert cfg.epochs == base.epochs


def test_a_point_that_makes_no_autoencoder_is_a_config_error():
    base = ae_preset("quick")
    with pytest.raises(ConfigError, match="AEConfig"):
        trial_ae_config(base, {**default_point(base), "d_token": base.n_heads + 1})


def test_search_point_keeps_integer_widths():
    point = SearchPoint(**default_point(ae_preset("smoke")))
    assert isinstance(point.model_dump()["d_token"], int)
    with pytest.raises(ValueError, match="lr"):
        SearchPoint(**{**default_point(ae_preset("smoke")), "lr": 0.0})
