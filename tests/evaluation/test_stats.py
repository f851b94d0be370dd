"""Tests for evaluation.stats: agreement with scipy / brute force, bootstrap CI sanity, input checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from hyperrep_ray.evaluation import stats


def _cles_brute(a, b) -> float:
    total = 0.0
    for x in a:
        for y in b:
            total += 1.0 if x > y else 0.5 if x == y else 0.0
    return total / (len(a) * len(b))


A = [0.91, 0.93, 0.90, 0.95, 0.92, 0.94]
B = [0.88, 0.90, 0.89, 0.91, 0.87]
# ties inside and across populations: exercises the tie correction / mid-ranks
C = [0.5, 0.5, 0.6, 0.7, 0.7, 0.7, 0.8]
D = [0.5, 0.6, 0.6, 0.7, 0.9]


@pytest.mark.parametrize("a,b", [(A, B), (C, D), (B, A)])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mann_whitney_matches_scipy(a, b, alternative):
    expected = mannwhitneyu(a, b, alternative=alternative).pvalue
    assert stats.mann_whitney(a, b, alternative=alternative) == pytest.approx(expected, rel=1e-12)


def test_mann_whitney_known_separation():
    # completely separated populations of 5 vs 5: exact two-sided p = 2 / C(10, 5) = 2/252
    p = stats.mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert p == pytest.approx(2 / 252)


def test_mann_whitney_identical_constant_populations_is_one():
    assert stats.mann_whitney([0.5] * 4, [0.5] * 6) == 1.0


def test_mann_whitney_rejects_bad_alternative():
    with pytest.raises(ValueError, match="alternative"):
        stats.mann_whitney(A, B, alternative="bigger")


@pytest.mark.parametrize("a,b", [(A, B), (C, D), (D, C), ([1.0], [1.0, 2.0, 0.0])])
def test_cles_equals_brute_force(a, b):
    assert stats.cles(a, b) == pytest.approx(_cles_brute(a, b), abs=1e-12)


def test_cles_random_with_ties_equals_brute_force():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, size=23) / 5
    b = rng.integers(0, 6, size=17) / 5
    assert stats.cles(a, b) == pytest.approx(_cles_brute(a, b), abs=1e-12)


def test_cles_identical_and_dominating():
    x = np.linspace(0.1, 0.9, 11)
    assert stats.cles(x, x) == pytest.approx(0.5)
    assert stats.cles(x + 1.0, x) == 1.0
    assert stats.cles(x, x + 1.0) == 0.0
    # CLES(a, b) + CLES(b, a) = 1
    assert stats.cles(C, D) + stats.cles(D, C) == pytest.approx(1.0)


def test_summarize_fields_and_values():
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    s = stats.summarize(x, n_boot=500, seed=1)
    assert set(s) == {"mean", "std", "median", "ci_low", "ci_high", "n"}
    assert s["n"] == 5
    assert s["mean"] == pytest.approx(x.mean())
    assert s["std"] == pytest.approx(x.std(ddof=1))
    assert s["median"] == pytest.approx(0.4)
    assert s == stats.summarize(x, n_boot=500, seed=1)  # seeded -> reproducible


def test_summarize_single_value():
    s = stats.summarize([0.7])
    assert s["std"] == 0.0
    assert s["ci_low"] == s["median"] == s["ci_high"] == pytest.approx(0.7)


def test_bootstrap_ci_contains_median_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200, 2000):
        x = rng.normal(0.9, 0.02, size=n)
        s = stats.summarize(x, n_boot=1000, seed=0)
        assert s["ci_low"] <= s["median"] <= s["ci_high"]
        widths.append(s["ci_high"] - s["ci_low"])
    assert widths[0] > widths[1] > widths[2]
    # width should shrink roughly like 1/sqrt(n): a factor ~3 per 10x
    assert widths[0] / widths[2] > 4


def test_compare_rows():
    pops = {"B_T": B, "S_KDE30": A, "S_U": C, "B_F": D}
    rows = stats.compare(pops, baselines=["B_T", "B_F"])
    assert [(r["population"], r["baseline"]) for r in rows] == [
        ("S_KDE30", "B_T"),
        ("S_KDE30", "B_F"),
        ("S_U", "B_T"),
        ("S_U", "B_F"),
    ]
    first = rows[0]
    assert first["p_value"] == pytest.approx(mannwhitneyu(A, B).pvalue)
    assert first["cles"] == pytest.approx(_cles_brute(A, B))
    assert (first["n_a"], first["n_b"]) == (len(A), len(B))
    with pytest.raises(ValueError, match="B_X"):
        stats.compare(pops, baselines=["B_X"])


@pytest.mark.parametrize(
    "call",
    [
        lambda x: stats.summarize(x),
        lambda x: stats.mann_whitney(x, B),
        lambda x: stats.mann_whitney(B, x),
        lambda x: stats.cles(x, B),
        lambda x: stats.compare({"S": x, "B": B}, ["B"]),
    ],
)
def test_nan_and_empty_raise(call):
    with pytest.raises(ValueError, match="NaN"):
        call([0.5, float("nan"), 0.7])
    with pytest.raises(ValueError, match="empty"):
        call([])
