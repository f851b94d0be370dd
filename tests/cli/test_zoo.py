"""`hyperrep zoo` says before training when the zoo will be too small for the autoencoder's split."""

from __future__ import annotations

from hyperrep_ray.cli.zoo import warn_small_zoo
from hyperrep_ray.config import zoo_preset


def test_small_zoo_is_warned_about_before_training(capsys):
    warn_small_zoo(zoo_preset("smoke", num_models=4))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 model(s) leave the test split empty" in err
    assert "--models 6 or more" in err
    warn_small_zoo(zoo_preset("smoke"))  # 8 models: 6 train, 1 val, 1 test
    assert capsys.readouterr().err == ""
