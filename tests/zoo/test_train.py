"""Population training and the zoo on real Ray Tasks."""

import numpy as np
import pytest

from hyperrep_ray import store
from hyperrep_ray.config import zoo_preset
from hyperrep_ray.store import StoreError
from hyperrep_ray.zoo.train import (
    completed_shards,
    plan_shards,
    prepare_store,
    train_models,
    train_one_by_one,
    train_population,
    train_zoo,
    zoo_summary,
)


@pytest.mark.parametrize(
    "activation,init,optimizer,wd",
    [
        ("tanh", "uniform", "adam", 0.0),
        ("gelu", "kaiming_uniform", "adam", 1e-2),
        ("relu", "default", "sgd", 1e-3),
    ],
)
def test_population_equals_one_by_one(small_digits, activation, init, optimizer, wd):
    cfg = zoo_preset(
        "smoke", epochs=2, activation=activation, init=init, optimizer=optimizer, weight_decay=wd
    )
    seeds = [5, 6, 7]
    pop = train_population(seeds, small_digits, cfg)
    one = train_one_by_one(seeds, small_digits, cfg)
    assert pop.weights.shape == (3, 3, 2464)
    np.testing.assert_array_equal(pop.weights[:, 0], one.weights[:, 0])  # same init
    np.testing.assert_allclose(pop.weights, one.weights, atol=2e-4, rtol=0)
    np.testing.assert_allclose(pop.test_acc, one.test_acc, atol=1 / 128 + 1e-6)
    np.testing.assert_allclose(pop.train_loss, one.train_loss, atol=1e-3)
    assert (pop.train_loss[:, -1] < pop.train_loss[:, 0]).all(), "training must lower the training loss"


def test_result_does_not_depend_on_population_size(small_digits):
    seeds = [1, 2, 3, 4, 5]
    a = train_models(seeds, small_digits, zoo_preset("smoke", epochs=1, population_size=5))
    b = train_models(seeds, small_digits, zoo_preset("smoke", epochs=1, population_size=2))
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-5, rtol=0)
    assert a.seeds == b.seeds == seeds


def test_same_seed_same_weights(small_digits):
    cfg = zoo_preset("smoke", epochs=1)
    a = train_population([3, 4], small_digits, cfg)
    b = train_population([3, 4], small_digits, cfg)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights[0], a.weights[1])


def _cfg(**kw):
    return zoo_preset(
        "smoke", **{"num_models": 6, "epochs": 1, "population_size": 2, "models_per_shard": 2, **kw}
    )


def test_zoo_on_ray_resumes_after_interruption(tmp_path, small_digits, ray_session):
    out = str(tmp_path / "zoo")
    cfg = _cfg()
    assert len(plan_shards(cfg)) == 3

    def interrupt(index):
        raise KeyboardInterrupt  # as Ctrl-C right after the first shard is on disk

    with pytest.raises(KeyboardInterrupt):
        train_zoo(cfg, out, data=small_digits, progress=False, on_shard_written=interrupt)
    first = store.list_shards(out)
    assert len(first) == 1
    mtime = (tmp_path / "zoo" / "checkpoints" / first[0].rsplit("/", 1)[1]).stat().st_mtime_ns

    result = train_zoo(cfg, out, data=small_digits, progress=False)
    assert len(result.skipped_shards) == 1 and len(result.trained_shards) == 2
    assert (tmp_path / "zoo" / "checkpoints" / first[0].rsplit("/", 1)[1]).stat().st_mtime_ns == mtime

    w, df = store.load_weights(out)
    assert len(df) == 6 * 2 and not df.duplicated(["model_id", "epoch"]).any()
    assert sorted(df.model_id.unique()) == list(range(6)) and sorted(df.seed.unique()) == list(range(1, 7))
    # what Ray trained equals what the same models give when trained here, one by one
    ref = train_one_by_one([1, 2], small_digits, cfg)
    np.testing.assert_allclose(
        w.numpy()[(df.model_id < 2).to_numpy()].reshape(2, 2, -1), ref.weights, atol=2e-4
    )

    again = train_zoo(cfg, out, data=small_digits, progress=False)
    assert again.trained_shards == [] and len(completed_shards(out, again.meta)) == 3

    s = zoo_summary(out)
    assert s["models_stored"] == 6 and s["epochs"] == [0, 1] and sum(s["splits"].values()) == 6
    assert 0.0 <= s["test_acc"][0]["min"] <= s["test_acc"][0]["median"] <= s["test_acc"][0]["max"] <= 1.0


def test_rerun_with_other_settings_is_refused(tmp_path, small_digits, ray_session):
    out = str(tmp_path / "zoo")
    train_zoo(_cfg(num_models=2), out, data=small_digits, progress=False)
    with pytest.raises(StoreError, match="different settings.*lr"):
        train_zoo(_cfg(num_models=2, lr=0.1), out, data=small_digits, progress=False)
    # execution-only settings (population size) may change on resume
    train_zoo(_cfg(num_models=2, population_size=1), out, data=small_digits, progress=False)


def test_zoo_json_records_contract(tmp_path, small_digits, ray_session):
    out = str(tmp_path / "zoo")
    res = train_zoo(_cfg(num_models=2), out, data=small_digits, progress=False)
    meta = store.read_zoo_meta(out)
    assert meta == res.meta
    assert meta["num_params"] == 2464 and meta["dataset"] == "digits"
    assert [layer["name"] for layer in meta["architecture"]["layers"]][:2] == ["conv1.weight", "conv1.bias"]
    assert meta["hyperparameters"]["optimizer"] == "adam" and meta["epochs_recorded"] == [0, 1]
    assert meta["split_rule"]["by"] == "model" and meta["split_rule"]["fractions"]["train"] == 0.7
    pre = meta["preprocessing"]
    assert pre and "mean" in str(pre) and "interpolate" in str(pre)


@pytest.mark.parametrize("init,resumes", [("default", True), ("uniform", False)])
def test_stores_from_before_init_rules_resume_only_if_the_rule_is_unchanged(
    tmp_path, small_digits, init, resumes
):
    """zoo.json written before the identity named the image recipe and the init rule: "default" drew
    what it draws now, "uniform" drew U(-0.5, 0.5) then, so resuming it would mix two zoos."""
    out = str(tmp_path / "zoo")
    cfg = _cfg(num_models=2, init=init)
    meta = prepare_store(cfg, out, small_digits)
    for key in ("image_recipe", "init_rule"):
        del meta["identity"][key]
    store.write_json(store.zoo_json_path(out), meta)
    if resumes:
        assert prepare_store(cfg, out, small_digits)["identity"] == meta["identity"]
    else:
        with pytest.raises(StoreError, match="init_rule"):
            prepare_store(cfg, out, small_digits)
