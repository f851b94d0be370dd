"""Linear probes and s(W): they recover a linear signal, refuse to invent one, and are saved as arrays."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hyperrep_ray.autoencoder.artifacts import load_probes, save_probes
from hyperrep_ray.autoencoder.probes import (
    DEFAULT_ALPHAS,
    Probe,
    fit_probe,
    fit_probes,
    group_cv_alphas,
    metric_key,
    probe_r2,
    probe_targets,
    weight_statistic_names,
    weight_statistics,
)
from hyperrep_ray.weightspace.tokens import token_layout
from hyperrep_ray.zoo.cnn import num_params


def _linear_problem(n: int = 240, f: int = 12, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)) * rng.uniform(0.1, 10.0, size=f)  # very different feature scales
    coef = rng.normal(size=f)
    y = x @ coef / np.abs(x @ coef).std() + noise * rng.normal(size=n)
    return x, y


@pytest.mark.parametrize("use_groups", [False, True])
def test_probe_recovers_linear_target(use_groups):
    x, y = _linear_problem()
    groups = np.repeat(np.arange(40), 4)[:160] if use_groups else None
    probe = fit_probe(x[:160], y[:160], groups=groups)
    assert probe.selection == ("group-5-fold" if use_groups else "loo-gcv")
    assert probe_r2(probe, x[160:], y[160:]) > 0.9


def test_probe_on_random_target_is_not_better_than_the_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 50))
    y = rng.normal(size=300)
    probe = fit_probe(x[:200], y[:200])
    assert probe_r2(probe, x[200:], y[200:]) < 0.05
    # cross-validation should have noticed there is nothing to fit and regularised hard
    assert probe.alpha >= 100


def test_probe_fixed_alpha_and_input_checks():
    x, y = _linear_problem(n=50)
    probe = fit_probe(x, y, alpha=0.5)
    assert probe.alpha == 0.5 and probe.selection == "fixed"
    with pytest.raises(ValueError, match="fitted on 12 features"):
        probe.predict(x[:, :5])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_probe(bad, y)
    with pytest.raises(ValueError, match="values for"):
        fit_probe(x, y[:-1])


def test_probe_predicts_as_sklearn_and_survives_saving(tmp_path):
    x, y = _linear_problem()
    x[:, 3] = 2.0  # a constant feature: the scaler divides it by 1, not by 0
    probe = fit_probe(x[:160], y[:160], alpha=3.0)
    sk = make_pipeline(StandardScaler(), Ridge(alpha=3.0)).fit(x[:160], y[:160])
    np.testing.assert_allclose(probe.predict(x[160:]), sk.predict(x[160:]), rtol=1e-10, atol=1e-12)
    other = fit_probe(x[:160], -y[:160])
    save_probes(tmp_path, {"test_accuracy": probe, "epoch_W": other})
    assert not list(tmp_path.glob("*.pkl")), "no pickle on disk"
    restored = load_probes(tmp_path)
    assert set(restored) == {"test_accuracy", "epoch_W"}
    for key, original in (("test_accuracy", probe), ("epoch_W", other)):
        r = restored[key]
        assert isinstance(r, Probe) and (r.alpha, r.selection) == (original.alpha, original.selection)
        np.testing.assert_array_equal(r.predict(x[160:]), original.predict(x[160:]))


def test_missing_or_pickled_probes_say_to_retrain(tmp_path):
    with pytest.raises(FileNotFoundError, match="retrain"):
        load_probes(tmp_path)
    (tmp_path / "probes.pkl").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="older version"):
        load_probes(tmp_path)


def test_weight_statistics_shape_and_values():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(4, num_params(1))).astype(np.float32)
    s = weight_statistics(w)
    names = weight_statistic_names()
    assert s.shape == (4, 5 * 2 * 7) == (4, len(names))
    # fc1 by hand: weight is (20, 36) right after conv3.bias, bias (20,) after it
    fc1 = next(layer for layer in token_layout(1).layers if layer.name == "fc1")
    start = fc1.weight_offset
    weight = w[:, start : start + 20 * 36].astype(np.float64)
    bias = w[:, start + 20 * 36 : start + 20 * 36 + 20].astype(np.float64)
    col = names.index("fc1.weight.mean")
    expected_w = np.column_stack(
        [weight.mean(1), weight.var(1), *(np.percentile(weight, q, axis=1) for q in (0, 25, 50, 75, 100))]
    )
    np.testing.assert_allclose(s[:, col : col + 7], expected_w, rtol=1e-12)
    col_b = names.index("fc1.bias.mean")
    assert names[col_b : col_b + 7][-1] == "fc1.bias.q100"
    np.testing.assert_allclose(s[:, col_b], bias.mean(1), rtol=1e-12)
    np.testing.assert_allclose(s[:, col_b + 2], bias.min(1), rtol=1e-12)
    np.testing.assert_allclose(s[:, col_b + 6], bias.max(1), rtol=1e-12)
    assert weight_statistics(rng.normal(size=(2, num_params(3))), in_channels=3).shape == (2, 70)
    with pytest.raises(ValueError, match="2464"):
        weight_statistics(w[:, :100])


def test_fit_probes_keys_and_values():
    rng = np.random.default_rng(3)
    n_train, n_test = 120, 60
    acc_tr, acc_te = rng.uniform(0.5, 1, n_train), rng.uniform(0.5, 1, n_test)
    gap_tr, gap_te = rng.uniform(0, 0.1, n_train), rng.uniform(0, 0.1, n_test)
    ep_tr, ep_te = rng.integers(0, 25, n_train), rng.integers(0, 25, n_test)
    t_train = probe_targets(acc_tr + gap_tr, acc_tr, ep_tr)
    t_test = probe_targets(acc_te + gap_te, acc_te, ep_te)
    np.testing.assert_allclose(t_train["ggap"], gap_tr)  # ggap = train_acc - test_acc

    def informative(t):  # "z" sees the targets (plus noise); "W" is noise
        cols = np.column_stack([t["test_accuracy"], t["epoch"], t["ggap"]])
        return cols + 0.001 * rng.normal(size=cols.shape) * cols.std(0)

    train = {"z": informative(t_train), "W": rng.normal(size=(n_train, 30))}
    test = {"z": informative(t_test), "W": rng.normal(size=(n_test, 30))}
    metrics, probes = fit_probes(train, test, t_train, t_test)
    expected = {
        "probe_r2_test_test_accuracy",
        "probe_r2_test_epoch",
        "probe_r2_test_ggap",
        "probe_r2_test_test_accuracy_W",
        "probe_r2_test_epoch_W",
        "probe_r2_test_ggap_W",
    }
    assert set(metrics) == expected
    assert set(probes) == {k.removeprefix("probe_r2_test_") for k in expected}
    assert metric_key("ggap", "sW") == "probe_r2_test_ggap_sW"
    for target in ("test_accuracy", "epoch", "ggap"):
        assert metrics[metric_key(target)] > 0.95
        assert metrics[metric_key(target, "W")] < 0.2
    np.testing.assert_allclose(
        probe_r2(probes["ggap"], test["z"], t_test["ggap"]), metrics["probe_r2_test_ggap"]
    )
    with pytest.raises(KeyError, match="no test rows"):
        fit_probes(train, {"z": test["z"]}, t_train, t_test)


def test_group_cv_alphas_choose_what_the_grid_search_chooses():
    """The shared-SVD selection against sklearn's GridSearchCV of a scaler + Ridge with GroupKFold, on
    targets that want very different penalties (signal in few features, in many, and none)."""
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 60)) * rng.uniform(0.1, 5.0, size=60)
    groups = np.repeat(np.arange(30), 4)
    ys = np.stack(
        [
            x[:, 0] + 0.01 * rng.normal(size=120),
            x @ rng.normal(size=60) * 0.1 + rng.normal(size=120),
            rng.normal(size=120),
        ],
        axis=1,
    )
    ours, k = group_cv_alphas(x, ys, groups, DEFAULT_ALPHAS)
    assert k == 5
    for j in range(ys.shape[1]):
        search = GridSearchCV(
            Pipeline([("scale", StandardScaler()), ("ridge", Ridge())]),
            {"ridge__alpha": list(DEFAULT_ALPHAS)},
            cv=GroupKFold(n_splits=5),
            scoring="neg_mean_squared_error",
        ).fit(x, ys[:, j], groups=groups)
        assert ours[j] == search.best_params_["ridge__alpha"]
    assert len(set(ours)) > 1  # the toy does tell the penalties apart
    with pytest.raises(ValueError, match="groups"):
        group_cv_alphas(x, ys, groups[:-1], DEFAULT_ALPHAS)
