"""The latent GAN's fit reports its progress and lets a caller watch every epoch."""

from __future__ import annotations

import numpy as np

from hyperrep_ray.sampling.gan import train_latent_gan


def test_fit_calls_back_every_epoch_and_says_when_done(capsys):
    anchors = np.tanh(np.random.default_rng(0).normal(size=(40, 8))).astype(np.float32)
    seen: list[int] = []
    gen = train_latent_gan(anchors, seed=0, epochs=3, on_epoch=lambda e, g: seen.append(e))
    assert seen == [1, 2, 3]
    assert len(gen.loss_history) == 3
    out = capsys.readouterr().out
    assert "latent GAN (40 anchors): 3/3 epochs, done in" in out
