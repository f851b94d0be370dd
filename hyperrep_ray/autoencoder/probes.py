"""Linear probes: how much of a model's characteristics can be read off a representation of it.

The 2021 paper (Appendix B) scores a hyper-representation by how well a *linear* map from it predicts
model properties on held-out models (R^2): test accuracy, training epoch (a proxy for model
versioning) and generalisation gap. The same probe on the raw weights ``W`` and on the layer-wise
weight statistics ``s(W)`` (Unterthiner et al. 2020) gives the baselines the embeddings must beat.

Differences from the paper, and why:
- The paper solves plain least squares in closed form. With ``W`` (2464 features) and a few hundred
  train models that is ill-posed, so every probe here standardises its features and fits a ridge
  regression whose penalty is picked by cross-validation on the *train* split only (small alpha
  grid). The test split never influences the probe.
- Zoo rows are checkpoints, and checkpoints of one model at neighbouring epochs are near-duplicates.
  Pass ``groups`` (the model id of each train row) so that the penalty is chosen by group k-fold over
  models; otherwise efficient leave-one-out (generalised CV) over rows is used, which favours too
  little regularisation when several epochs per model are present.

Targets: ``test_accuracy`` (the row's ``test_acc``), ``epoch`` and ``ggap``, the generalisation gap
``train_acc - test_acc`` (accuracies as fractions; positive when the model does better on its own
training images), exactly as in the 2021 paper's Appendix B.2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from hyperrep_ray.weightspace.tokens import token_layout

__all__ = [
    "DEFAULT_ALPHAS",
    "QUANTILES",
    "STATISTICS",
    "TARGETS",
    "Probe",
    "fit_probe",
    "fit_probes",
    "group_cv_alphas",
    "metric_key",
    "probe_key",
    "probe_r2",
    "probe_targets",
    "weight_statistic_names",
    "weight_statistics",
]

# Ridge penalties tried by cross-validation (features are standardised, so these are comparable
# across feature sets of very different width).
DEFAULT_ALPHAS: tuple[float, ...] = (1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5)
QUANTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
STATISTICS: tuple[str, ...] = ("mean", "var", "q0", "q25", "q50", "q75", "q100")
TARGETS: tuple[str, ...] = ("test_accuracy", "epoch", "ggap")


# ------------------------------------------------------------------------------ s(W)


def weight_statistic_names(in_channels: int = 1) -> list[str]:
    """Column names of :func:`weight_statistics`, e.g. ``conv1.weight.mean``, ``fc2.bias.q100``."""
    names: list[str] = []
    for layer in token_layout(in_channels).layers:
        for part in ("weight", "bias"):
            names.extend(f"{layer.name}.{part}.{s}" for s in STATISTICS)
    return names


def weight_statistics(w: np.ndarray, in_channels: int = 1) -> np.ndarray:
    """s(W): per layer, weights and biases *separately*, mean, variance and the 0/25/50/75/100 %
    quantiles -> ``[M, 5 layers * 2 * 7 = 70]`` float64 (column order: :func:`weight_statistic_names`).

    Weights and biases are kept apart because their scales differ by design (the zoo's uniform init
    draws weights from +-0.5 but biases from +-0.1), so pooling them would blur both. Variance is the
    population variance (ddof 0); quantiles use numpy's default linear interpolation."""
    layout = token_layout(in_channels)
    x = np.asarray(w, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != layout.n_params:
        raise ValueError(
            f"weight_statistics needs weight vectors [M, {layout.n_params}] for the zoo CNN with "
            f"{in_channels} input channel(s); got shape {x.shape}"
        )
    cols = []
    for layer in layout.layers:
        n_w = layer.n_tokens * layer.fan_in
        blocks = (
            x[:, layer.weight_offset : layer.weight_offset + n_w],
            x[:, layer.bias_offset : layer.bias_offset + layer.n_tokens],
        )
        for block in blocks:
            cols.append(block.mean(axis=1))
            cols.append(block.var(axis=1))
            cols.extend(np.quantile(block, QUANTILES, axis=1))
    return np.stack(cols, axis=1)


def probe_targets(
    train_acc: Sequence[float] | np.ndarray,
    test_acc: Sequence[float] | np.ndarray,
    epoch: Sequence[int] | np.ndarray,
) -> dict[str, np.ndarray]:
    """The three probe targets from store columns: ``test_accuracy``, ``epoch`` and
    ``ggap = train_acc - test_acc`` (float64 arrays)."""
    tr = np.asarray(train_acc, dtype=np.float64).reshape(-1)
    te = np.asarray(test_acc, dtype=np.float64).reshape(-1)
    ep = np.asarray(epoch, dtype=np.float64).reshape(-1)
    if not (tr.shape == te.shape == ep.shape):
        raise ValueError(f"train_acc, test_acc, epoch lengths differ: {tr.shape}, {te.shape}, {ep.shape}")
    return {"test_accuracy": te, "epoch": ep, "ggap": tr - te}


# ------------------------------------------------------------------------------ probes


@dataclass
class Probe:
    """A fitted standardiser + ridge regression, kept as plain arrays (``mean``, ``scale`` of the
    features, ``coef`` and ``intercept`` of the ridge), so it can be stored next to an autoencoder
    as arrays and JSON and later predict properties of new models' embeddings."""

    mean: np.ndarray  # [F] feature means of the train rows
    scale: np.ndarray  # [F] feature standard deviations (1 where a feature is constant)
    coef: np.ndarray  # [F] ridge coefficients on standardised features
    intercept: float
    alpha: float
    n_features: int
    selection: str  # how alpha was chosen, e.g. "loo-gcv" or "group-5-fold"

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, alpha: float, selection: str) -> Probe:
        scaler, ridge = pipeline.named_steps["scale"], pipeline.named_steps["ridge"]
        return cls(
            mean=np.asarray(scaler.mean_, np.float64),
            scale=np.asarray(scaler.scale_, np.float64),
            coef=np.asarray(ridge.coef_, np.float64).reshape(-1),
            intercept=float(ridge.intercept_),
            alpha=float(alpha),
            n_features=int(scaler.n_features_in_),
            selection=selection,
        )

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted target for each row of ``features [M, n_features]`` (float64 ``[M]``)."""
        x = _features(features, "features")
        if x.shape[1] != self.n_features:
            raise ValueError(f"probe was fitted on {self.n_features} features, got {x.shape[1]}")
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


def _features(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array [rows, features], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf (a diverged model or a failed encoding?)")
    return arr


def _target(y: np.ndarray, rows: int, name: str) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if arr.shape[0] != rows:
        raise ValueError(f"{name} has {arr.shape[0]} values for {rows} feature rows")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def fit_probe(
    features_train: np.ndarray,
    target_train: np.ndarray,
    alpha: float | None = None,
    groups: np.ndarray | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    n_splits: int = 5,
) -> Probe:
    """Standardise ``features_train`` and fit ridge regression to ``target_train``.

    ``alpha`` fixes the penalty; ``None`` picks it from ``alphas`` by cross-validation on these rows
    only: group k-fold over ``groups`` (e.g. model ids, so a model's epochs never straddle a fold)
    when given and there are at least 2 groups, else leave-one-out via sklearn's efficient GCV."""
    x = _features(features_train, "features_train")
    y = _target(target_train, x.shape[0], "target_train")
    if alpha is not None:
        return refit(x, y, float(alpha), "fixed")
    grid = [float(a) for a in alphas]
    n_groups = 0 if groups is None else len(np.unique(np.asarray(groups)))
    if groups is not None and len(np.asarray(groups).reshape(-1)) != x.shape[0]:
        raise ValueError(f"groups has {len(np.asarray(groups).reshape(-1))} entries for {x.shape[0]} rows")
    if n_groups >= 2:
        (best,), k = group_cv_alphas(x, y[:, None], np.asarray(groups).reshape(-1), grid, n_splits)
        return refit(x, y, best, f"group-{k}-fold")
    if x.shape[0] < 2:
        raise ValueError("need at least 2 train rows to choose alpha by cross-validation; pass alpha=")
    pipe = Pipeline([("scale", StandardScaler()), ("ridge", RidgeCV(alphas=grid))]).fit(x, y)
    return Probe.from_pipeline(pipe, float(pipe.named_steps["ridge"].alpha_), "loo-gcv")


def refit(x: np.ndarray, y: np.ndarray, alpha: float, selection: str) -> Probe:
    """Standardiser + ridge with penalty ``alpha`` on all the rows."""
    pipe = Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=alpha))]).fit(x, y)
    return Probe.from_pipeline(pipe, alpha, selection)


def group_cv_alphas(
    x: np.ndarray, ys: np.ndarray, groups: np.ndarray, alphas: Sequence[float], n_splits: int = 5
) -> tuple[list[float], int]:
    """(the best of ``alphas`` for each target column of ``ys`` [rows, T], the number of folds k):
    lowest mean squared error over group k-fold, the choice ``GridSearchCV`` makes for a standardiser +
    ``Ridge`` pipeline with ``GroupKFold`` (ties go to the first alpha, as there). One SVD of each fold's
    standardised train rows gives every alpha's solution for every target, where the grid search fits
    a ridge per (alpha, fold, target): the same choice in about half the time on 2,464 weights
    (``bench/probe_fit.py``)."""
    if len(groups) != x.shape[0]:
        raise ValueError(f"groups has {len(groups)} entries for {x.shape[0]} rows")
    k = min(n_splits, len(np.unique(groups)))
    mse = np.zeros((len(alphas), ys.shape[1]))
    for tr, te in GroupKFold(n_splits=k).split(x, groups=groups):
        scaler = StandardScaler().fit(x[tr])
        a, b = scaler.transform(x[tr]), scaler.transform(x[te])
        centre, y_mean = a.mean(axis=0), ys[tr].mean(axis=0)
        u, sv, vt = np.linalg.svd(a - centre, full_matrices=False)
        uty = u.T @ (ys[tr] - y_mean)
        for i, alpha in enumerate(alphas):
            coef = vt.T @ ((sv / (sv**2 + float(alpha)))[:, None] * uty)
            mse[i] += (((b - centre) @ coef + y_mean - ys[te]) ** 2).mean(axis=0)
    return [float(alphas[j]) for j in mse.argmin(axis=0)], k


def probe_r2(probe: Probe, features_test: np.ndarray, target_test: np.ndarray) -> float:
    """R^2 of the probe's predictions on held-out rows (sklearn ``r2_score``: 1 is perfect, 0 is
    no better than predicting the test mean, negative is worse). NaN for fewer than 2 rows."""
    x = _features(features_test, "features_test")
    y = _target(target_test, x.shape[0], "target_test")
    if y.shape[0] < 2:
        return float("nan")
    return float(r2_score(y, probe.predict(x)))


def probe_key(target: str, featureset: str = "z") -> str:
    """``target`` for the embeddings ``z``, ``{target}_{featureset}`` for baselines (``W``, ``sW``)."""
    return target if featureset == "z" else f"{target}_{featureset}"


def metric_key(target: str, featureset: str = "z") -> str:
    """The metric name of a probe's test R^2, e.g. ``probe_r2_test_ggap_sW``."""
    return f"probe_r2_test_{probe_key(target, featureset)}"


def fit_probes(
    train: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    targets_train: Mapping[str, np.ndarray],
    targets_test: Mapping[str, np.ndarray],
    groups_train: np.ndarray | None = None,
    alpha: float | None = None,
) -> tuple[dict[str, float], dict[str, Probe]]:
    """Fit one probe per (feature set, target) on the train rows and score it on the test rows.

    ``train``/``test`` map a feature-set name (``"z"``, ``"W"``, ``"sW"``, ...) to ``[rows, F]``
    features; ``targets_*`` map a target name to ``[rows]`` values (see :func:`probe_targets`).
    Returns ``(metrics, probes)``: metrics keyed by :func:`metric_key` (``probe_r2_test_{target}``
    for ``z``, ``probe_r2_test_{target}_{featureset}`` otherwise) and probes keyed by
    :func:`probe_key` (the metric key without ``probe_r2_test_``)."""
    missing = [k for k in train if k not in test]
    if missing:
        raise KeyError(f"feature sets {missing} have train rows but no test rows")
    missing = [k for k in targets_train if k not in targets_test]
    if missing:
        raise KeyError(f"targets {missing} have train values but no test values")
    metrics: dict[str, float] = {}
    probes: dict[str, Probe] = {}
    names = list(targets_train)
    grouped = alpha is None and groups_train is not None and len(np.unique(groups_train)) >= 2
    for featureset, x_train in train.items():
        if grouped:  # one set of fold SVDs for every target of this feature set
            x = _features(x_train, featureset)
            ys = np.stack([_target(targets_train[t], x.shape[0], t) for t in names], axis=1)
            best, k = group_cv_alphas(x, ys, np.asarray(groups_train).reshape(-1), DEFAULT_ALPHAS)
            fitted = [refit(x, ys[:, j], best[j], f"group-{k}-fold") for j in range(len(names))]
        else:
            fitted = [fit_probe(x_train, targets_train[t], alpha=alpha, groups=groups_train) for t in names]
        for target, probe in zip(names, fitted, strict=True):
            metrics[metric_key(target, featureset)] = probe_r2(probe, test[featureset], targets_test[target])
            probes[probe_key(target, featureset)] = probe
    return metrics, probes
