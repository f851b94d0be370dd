"""The Ray Data evaluation pipeline (decode -> evaluate -> fine-tune) and the baselines B_T, B_F."""

import numpy as np
import pandas as pd
import pytest

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.evaluation.finetune import finetune_population, finetune_seeds, hyper_for_dataset
from hyperrep_ray.evaluation.ray_pipeline import (
    COLUMNS,
    baseline_finetune_zoo,
    baseline_from_scratch,
    decode_plain_loop,
    evaluate_embeddings,
    evaluate_weights,
    scratch_seeds,
    scratch_weights,
    zoo_models,
)
from hyperrep_ray.sampling.generate import load_anchors, sample_embeddings
from hyperrep_ray.zoo.cnn import build_model, model_to_vector
from hyperrep_ray.zoo.population import evaluate_weight_vectors

TOL = 1 / 128 + 1e-9  # one test image of small_digits


@pytest.fixture(scope="module")
def hyper():
    return hyper_for_dataset("digits")


def test_pipeline_equals_plain_loop_and_direct_finetuning(trained_ae, small_digits, hyper, tmp_path):
    ae = trained_ae[0]
    anchors, _ = load_anchors(ae)
    z = np.concatenate([anchors[:5], sample_embeddings(ae, 3, "kde-joint", seed=1)])
    out = tmp_path / "s_kdej"
    # batch_size 3: 8 samples in 3 blocks -> 3 decoder calls and 3 fine-tuning populations
    df = evaluate_embeddings(
        z, ae, small_digits, hyper, [1], "S_KDEJ", seed=3, batch_size=3, concurrency=1, out=str(out)
    )
    assert list(df.columns) == list(COLUMNS) and len(df) == 8 * 2
    assert (df.population == "S_KDEJ").all() and df.sample_id.tolist() == np.repeat(np.arange(8), 2).tolist()
    assert df.finetune_epoch.tolist() == [0, 1] * 8
    acc = df.pivot(index="sample_id", columns="finetune_epoch", values="test_acc").to_numpy()
    assert ((acc >= 0) & (acc <= 1)).all()

    plain = decode_plain_loop(z, ae, small_digits, hyper["activation"])
    np.testing.assert_allclose(acc[:, 0], plain, atol=TOL)
    direct = finetune_population(
        HyperRepresentation.load(ae).decode(z), small_digits, hyper, 1, finetune_seeds(3, range(8)), [0, 1]
    )
    np.testing.assert_allclose(acc, direct, atol=TOL)

    back = pd.read_parquet(out).sort_values(["sample_id", "finetune_epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back[list(COLUMNS)], df, check_dtype=False)


def test_non_finite_weights_do_not_crash_the_pipeline(small_digits, hyper, ray_session):
    w, _ = scratch_weights(4, 1, "uniform", seed=5)
    w[1, 0] = np.nan
    w[3, 100] = np.inf
    df = evaluate_weights(
        w,
        small_digits,
        hyper,
        [1],
        "B_T",
        seed=0,
        batch_size=2,
        sample_ids=[10, 11, 12, 13],
        finetune_concurrency=1,
    )
    acc = df.pivot(index="sample_id", columns="finetune_epoch", values="test_acc")
    assert acc.index.tolist() == [10, 11, 12, 13]
    assert (acc.loc[[11, 13]].to_numpy() == 0).all()
    direct = finetune_population(w[[0, 2]], small_digits, hyper, 1, finetune_seeds(0, [10, 12]), [0, 1])
    np.testing.assert_allclose(acc.loc[[10, 12]].to_numpy(), direct, atol=TOL)


def test_b_t_seeds_disjoint_from_zoo_and_deterministic(tiny_zoo, small_digits, hyper):
    _, df = store.load_weights(tiny_zoo, epochs=[0])
    zoo_seeds = set(df.seed.tolist())
    assert zoo_seeds == set(range(1, 11))
    for seed in (0, 1):
        assert zoo_seeds.isdisjoint(scratch_seeds(1000, seed))
    assert set(scratch_seeds(50, 0)).isdisjoint(scratch_seeds(50, 1))
    assert scratch_seeds(3, 0) == scratch_seeds(3, 0) == [10**6, 10**6 + 1, 10**6 + 2]

    w, seeds = scratch_weights(3, 1, "uniform", seed=0)
    for v, s in zip(w, seeds, strict=True):  # exactly how zoo training initialises a model
        np.testing.assert_array_equal(v, model_to_vector(build_model(1, "tanh", "uniform", s)))

    a = baseline_from_scratch(3, small_digits, hyper, "uniform", [1], seed=0, batch_size=2)
    b = baseline_from_scratch(3, small_digits, hyper, "uniform", [1], seed=0, batch_size=2)
    pd.testing.assert_frame_equal(a, b)
    assert (a.population == "B_T").all() and len(a) == 6
    ref, _ = evaluate_weight_vectors(w, small_digits.test_x, small_digits.test_y, "tanh")
    np.testing.assert_allclose(a[a.finetune_epoch == 0].test_acc, ref, atol=TOL)


def test_b_f_uses_last_epoch_test_split_first(tiny_zoo, small_digits, hyper):
    w, rows = zoo_models(tiny_zoo, 3)
    assert w.shape == (3, 2464) and (rows.epoch == 3).all()
    splits = rows.split.tolist()
    assert splits[0] == "test" and splits == sorted(splits, key=["test", "val", "train"].index)
    df = baseline_finetune_zoo(tiny_zoo, 3, small_digits, hyper, [1], seed=0)
    assert (df.population == "B_F").all() and len(df) == 6
    # the zoo was trained and scored on small_digits: epoch 0 reproduces the stored accuracy
    np.testing.assert_allclose(df[df.finetune_epoch == 0].test_acc, rows.test_acc, atol=TOL)


def test_arguments_are_checked_on_the_driver(trained_ae, small_digits, hyper, tmp_path):
    ae = trained_ae[0]
    z, _ = load_anchors(ae)
    with pytest.raises(ValueError, match=r"z must be \(M, "):
        evaluate_embeddings(z[:, :3], ae, small_digits, hyper, [], "S", seed=0)
    with pytest.raises(FileNotFoundError, match="not a trained autoencoder"):
        evaluate_embeddings(z, str(tmp_path), small_digits, hyper, [], "S", seed=0)
    with pytest.raises(ValueError, match="distinct"):
        evaluate_embeddings(z[:2], ae, small_digits, hyper, [], "S", seed=0, sample_ids=[1, 1])
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_weights(scratch_weights(2, 1, "uniform")[0], small_digits, {"lr": 1.0}, [], "B_T", seed=0)
    empty = evaluate_weights(np.zeros((0, 2464), np.float32), small_digits, hyper, [1], "B_T", seed=0)
    assert list(empty.columns) == list(COLUMNS) and len(empty) == 0
