"""The latent GAN's fit reports its progress and lets a caller watch every epoch."""

from __future__ import annotations

import numpy as np
import pytest

from hyperrep_ray.sampling.gan import capped_epochs, train_latent_gan


def test_fit_calls_back_every_epoch_and_says_when_done(capsys):
    anchors = np.tanh(np.random.default_rng(0).normal(size=(40, 8))).astype(np.float32)
    seen: list[int] = []
    gen = train_latent_gan(anchors, seed=0, epochs=3, on_epoch=lambda e, g: seen.append(e))
    assert seen == [1, 2, 3]
    assert len(gen.loss_history) == 3
    out = capsys.readouterr().out
    assert "latent GAN (40 anchors): 3/3 epochs, done in" in out


def test_a_step_cap_stops_at_whole_epochs_and_gives_both_gans_the_same_steps():
    # 40 anchors in batches of 32: 2 steps per epoch; 7 steps allow 3 whole epochs
    anchors = np.tanh(np.random.default_rng(1).normal(size=(40, 8))).astype(np.float32)
    seen: list[int] = []
    train_latent_gan(anchors, seed=0, epochs=10, max_steps=7, on_epoch=lambda e, g: seen.append(e))
    assert seen == [1, 2, 3]
    assert capped_epochs(300, 1750, 32, 4000) == 72  # S_GAN: 55 steps per epoch
    assert capped_epochs(300, 525, 32, 4000) == 235  # S_GAN30: 17 steps per epoch
    assert capped_epochs(300, 525, 32, None) == 300
    assert capped_epochs(5, 1750, 32, 4000) == 5  # the epochs still bound it
    assert capped_epochs(300, 1750, 32, 3) == 1  # at least one epoch
    with pytest.raises(ValueError, match="max_steps"):
        capped_epochs(300, 1750, 32, 0)
