"""Fine-tuning populations of given weights: equal to one-model loops, exact epoch 0, NaN-safe."""

import numpy as np
import pytest
import torch

from hyperrep_ray.data.images import evaluate_accuracy
from hyperrep_ray.evaluation.finetune import (
    check_hyper,
    finetune_population,
    finetune_seeds,
    hyper_for_dataset,
)
from hyperrep_ray.evaluation.ray_pipeline import scratch_weights
from hyperrep_ray.zoo.cnn import model_to_vector, vector_to_model
from hyperrep_ray.zoo.population import data_order_generator, evaluate_weight_vectors, make_optimizer


def _one_by_one(w, data, hyper, epochs, seeds, record):
    """Reference: one ZooCNN and one plain PyTorch loop per model."""
    h = check_hyper(hyper)
    acc = np.zeros((len(w), len(record)), np.float32)
    final = np.zeros_like(w)
    n, bs = len(data.train_y), h["batch_size"]
    for j, (v, seed) in enumerate(zip(w, seeds, strict=True)):
        model = vector_to_model(v, data.in_channels, h["activation"])
        opt = make_optimizer(model.parameters(), h["optimizer"], h["lr"], h["weight_decay"])
        g = data_order_generator(seed)
        for epoch in range(epochs + 1):
            if epoch > 0:
                model.train()
                order = torch.randperm(n, generator=g)
                for i in range(0, n, bs):
                    idx = order[i : i + bs]
                    loss = torch.nn.functional.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            for col, e in enumerate(record):
                if e == epoch:
                    acc[j, col] = evaluate_accuracy(model, data.test_x, data.test_y)[0]
        final[j] = model_to_vector(model)
    return acc, final


@pytest.mark.parametrize(
    "overrides,init",
    [
        ({}, "uniform_symmetric"),
        ({"activation": "gelu", "optimizer": "sgd", "weight_decay": 1e-3}, "kaiming_uniform"),
    ],
)
def test_population_equals_one_by_one(small_digits, overrides, init):
    hyper = hyper_for_dataset("digits", **overrides)
    w, _ = scratch_weights(3, 1, init, seed=0)
    seeds = finetune_seeds(7, [0, 1, 2])
    record = [0, 1, 2]
    acc, final = finetune_population(
        w, small_digits, hyper, 2, seeds, record, population_size=2, return_weights=True
    )
    ref_acc, ref_final = _one_by_one(w, small_digits, hyper, 2, seeds, record)
    assert acc.shape == (3, 3) and final.shape == w.shape
    np.testing.assert_allclose(final, ref_final, atol=2e-4, rtol=0)
    np.testing.assert_allclose(acc, ref_acc, atol=1 / 128 + 1e-6)
    assert acc[:, -1].mean() > acc[:, 0].mean(), "fine-tuning random inits must help"
    # the population size only changes float rounding
    acc64 = finetune_population(w, small_digits, hyper, 2, seeds, record, population_size=64)
    np.testing.assert_allclose(acc64, acc, atol=1 / 128 + 1e-6)


def test_epoch0_equals_evaluate_weight_vectors_and_record_order(small_digits):
    hyper = hyper_for_dataset("digits")
    w, _ = scratch_weights(5, 1, "uniform", seed=1)
    acc = finetune_population(w, small_digits, hyper, 1, list(range(5)), [1, 0, 0])
    ref, _ = evaluate_weight_vectors(w, small_digits.test_x, small_digits.test_y, hyper["activation"])
    np.testing.assert_array_equal(acc[:, 1], ref)
    np.testing.assert_array_equal(acc[:, 2], ref)
    assert ((acc >= 0) & (acc <= 1)).all()


def test_a_labelled_fine_tuning_says_how_far_it_is(small_digits, capsys):
    w, _ = scratch_weights(4, 1, "uniform", seed=3)
    hyper = hyper_for_dataset("digits")
    labelled = finetune_population(
        w, small_digits, hyper, 1, [1, 2, 3, 4], [0, 1], population_size=2, label="B_T"
    )
    assert "B_T: 2/2 epochs, done in" in capsys.readouterr().out  # 2 populations x 1 epoch
    np.testing.assert_array_equal(
        labelled, finetune_population(w, small_digits, hyper, 1, [1, 2, 3, 4], [0, 1], population_size=2)
    )


def test_non_finite_initial_weights_score_zero(small_digits):
    hyper = hyper_for_dataset("digits")
    w, _ = scratch_weights(3, 1, "uniform", seed=2)
    bad = w.copy()
    bad[1, 5] = np.nan
    bad[2, -1] = np.inf
    seeds = [11, 12, 13]
    acc, final = finetune_population(bad, small_digits, hyper, 1, seeds, [0, 1], return_weights=True)
    assert (acc[1:] == 0).all()
    np.testing.assert_array_equal(final[1:], bad[1:])  # left untouched
    alone = finetune_population(w[:1], small_digits, hyper, 1, seeds[:1], [0, 1])
    np.testing.assert_array_equal(acc[:1], alone)
    # all non-finite: still no crash
    assert (finetune_population(bad[1:], small_digits, hyper, 1, seeds[1:], [0, 1]) == 0).all()


def test_arguments_are_checked(small_digits):
    hyper = hyper_for_dataset("digits")
    w, _ = scratch_weights(2, 1, "uniform")
    with pytest.raises(ValueError, match="record epochs"):
        finetune_population(w, small_digits, hyper, 1, [1, 2], [0, 2])
    with pytest.raises(ValueError, match="seeds"):
        finetune_population(w, small_digits, hyper, 1, [1], [0])
    with pytest.raises(ValueError, match=r"\(M, 2464\)"):
        finetune_population(w[:, :10], small_digits, hyper, 1, [1, 2], [0])
    with pytest.raises(ValueError, match="batch_size"):
        finetune_population(w, small_digits, {"activation": "tanh", "lr": 1e-3}, 1, [1, 2], [0])
    assert finetune_seeds(0, [0, 1]) == finetune_seeds(0, [0, 1]) != finetune_seeds(1, [0, 1])
