"""Experiments check their arguments on the driver, before any Ray work, with messages that name them."""

import pytest

from hyperrep_ray.data.images import ImageData
from hyperrep_ray.experiments.in_dataset import in_dataset, table1
from hyperrep_ray.experiments.transfer import transfer
from hyperrep_ray.experiments.unseen_zoo import unseen_zoo


def test_experiments_check_their_inputs(trained_ae, tiny_zoo, small_digits, tmp_path):
    ae = trained_ae[0]
    with pytest.raises(ValueError, match="unknown sampling method"):
        in_dataset(ae, tiny_zoo, small_digits, 2, methods=["kde31"])
    with pytest.raises(ValueError, match="n .* must be >= 1"):
        table1(ae, None, tiny_zoo, small_digits, 0)
    colour = ImageData(
        "cifar10",
        *(
            t.repeat(1, 3, 1, 1) if t.ndim == 4 else t
            for t in (small_digits.train_x, small_digits.train_y, small_digits.test_x, small_digits.test_y)
        ),
    )
    with pytest.raises(ValueError, match="3 channel"):
        transfer(ae, tiny_zoo, small_digits, colour, 2, (0,))
    with pytest.raises(FileNotFoundError, match="not a trained autoencoder"):
        unseen_zoo(str(tmp_path), tiny_zoo, small_digits, 2)
