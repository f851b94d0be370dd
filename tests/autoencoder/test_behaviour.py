"""The behavioural loss: decoded models compared with their originals by what they compute."""

import numpy as np
import pytest
import torch

from hyperrep_ray.autoencoder.behaviour import BatchedCNN, BehaviourLoss, compare_logits, query_pool
from hyperrep_ray.autoencoder.data import TrainingPayload, train_statistics
from hyperrep_ray.autoencoder.loop import LoopConfig, TrainingRun
from hyperrep_ray.autoencoder.scoring import weights_accuracy
from hyperrep_ray.autoencoder.session import LocalSession
from hyperrep_ray.config import ae_preset, zoo_preset
from hyperrep_ray.data.image_data import ImageData
from hyperrep_ray.weightspace.augment import apply_permutation, random_permutations
from hyperrep_ray.weightspace.tokens import token_layout, tokens_to_vectors, vectors_to_tokens
from hyperrep_ray.zoo.cnn import build_model, model_to_vector, vector_to_model
from hyperrep_ray.zoo.train import train_population


def _models(k: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(
        np.stack([model_to_vector(build_model(1, "tanh", "default", seed + i)) for i in range(k)])
    )


def _loss(kind: str, n_queries: int = 16) -> BehaviourLoss:
    x = torch.randn(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)).numpy()
    return BehaviourLoss(x, token_layout(1), "tanh", kind, n_queries)


def test_the_batched_forward_is_each_zoo_cnn():
    w, x = _models(3), torch.randn(5, 1, 28, 28)
    out = BatchedCNN(1, "tanh")(w, x)
    for i in range(3):
        torch.testing.assert_close(out[i], vector_to_model(w[i]).eval()(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["logits_mse", "kl"])
def test_the_loss_is_zero_for_a_perfect_reconstruction_and_positive_otherwise(kind):
    tok = vectors_to_tokens(_models(4), token_layout(1))
    loss = _loss(kind)
    gen = torch.Generator().manual_seed(1)
    assert float(loss(tok.clone(), tok, gen)) == 0.0
    assert float(loss(tok + 0.05 * torch.randn_like(tok), tok, gen)) > 1e-4


def test_a_permuted_target_is_the_same_model():
    """Permutation augmentation preserves the function: the target logits are the original's."""
    w = _models(3)
    perms = random_permutations(3, 1, torch.Generator().manual_seed(2))
    permuted = apply_permutation(w, perms, 1)
    assert not torch.allclose(permuted, w)
    layout = token_layout(1)
    value = _loss("logits_mse")(vectors_to_tokens(w, layout), vectors_to_tokens(permuted, layout))
    assert float(value) < 1e-9


def test_the_loss_has_gradients_for_the_decoded_weights_only():
    tok = vectors_to_tokens(_models(2), token_layout(1))
    recon = (tok + 0.1).requires_grad_(True)
    target = tok.clone().requires_grad_(True)
    _loss("kl")(recon, target).backward()
    assert recon.grad is not None and float(recon.grad.abs().sum()) > 0
    assert target.grad is None


def test_compare_logits_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="behaviour_loss must be one of"):
        compare_logits(torch.zeros(1, 2, 10), torch.zeros(1, 2, 10), "l1")


def test_query_pool_is_a_seeded_subset_of_the_training_images():
    x = torch.arange(10 * 4, dtype=torch.float32).reshape(10, 1, 2, 2)
    pool = query_pool(x, seed=3, limit=4)
    assert pool.shape == (4, 1, 2, 2) and np.array_equal(pool, query_pool(x, seed=3, limit=4))
    assert {float(p[0, 0, 0]) for p in pool} <= {float(v[0, 0, 0]) for v in x}


@pytest.fixture(scope="module")
def toy_payload(digits):
    """12 digits CNNs trained 2 epochs on 512 images (accuracy ~0.4-0.6, each model its own function):
    the checkpoints of epochs 1 and 2 of 10 models train the autoencoder, 2 models validate it."""
    images = ImageData("digits", digits.train_x[:512], digits.train_y[:512], digits.test_x, digits.test_y)
    zoo = train_population(list(range(1, 13)), images, zoo_preset("smoke", epochs=2, lr=3e-3))
    w = zoo.weights[:, 1:].astype(np.float32)
    train, val = w[:10].reshape(-1, w.shape[-1]), w[10:, -1]
    payload = TrainingPayload(
        train=train,
        val=val,
        in_channels=1,
        activation="tanh",
        queries=query_pool(images.train_x),
        **{k: v for k, v in train_statistics(train, 1, "coordinate").items() if k != "layer_std"},
    )
    return payload, zoo.test_acc[:10, 1:].mean()


def _decoded(payload: TrainingPayload, weight: float) -> torch.Tensor:
    cfg = ae_preset(
        "smoke",
        epochs=10,  # measured (seeds 0-2): KL off/on 0.166/0.072-0.074, accuracy 0.10-0.11/0.33-0.39
        eval_every=10,
        checkpoint_every=10,
        lr=3e-3,
        batch_size=8,
        keep_best=False,
        standardize="coordinate",
        behaviour_weight=weight,
        behaviour_loss="kl",
        behaviour_queries=32,
    )
    run = TrainingRun(LoopConfig(cfg, payload), LocalSession())
    run.run()
    if weight > 0:
        assert all("train_behaviour" in m for m in run.history) and "val_behaviour" in run.history[-1]
    with torch.no_grad():
        return run.core.eval()(vectors_to_tokens(torch.from_numpy(payload.train), token_layout(1)))[1]


def test_a_behaviour_weight_makes_decoded_models_behave_like_their_originals(toy_payload, small_digits):
    payload, original_acc = toy_payload
    layout = token_layout(1)
    target = vectors_to_tokens(torch.from_numpy(payload.train), layout)
    judge = BehaviourLoss(payload.queries, layout, "tanh", "kl", len(payload.queries))
    out = {}
    for weight in (0.0, 10.0):
        recon = _decoded(payload, weight)
        acc = weights_accuracy(
            tokens_to_vectors(recon, layout), small_digits.test_x, small_digits.test_y, "tanh"
        )
        out[weight] = (float(judge(recon, target)), float(np.mean(acc)))
    (kl_off, acc_off), (kl_on, acc_on) = out[0.0], out[10.0]
    assert kl_on < 0.75 * kl_off, out
    assert acc_on > acc_off + 0.1 and acc_on > 0.5 * original_acc, (out, original_acc)
