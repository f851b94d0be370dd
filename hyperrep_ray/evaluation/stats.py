"""Statistics for comparing populations of model accuracies (paper Appendix F, Tables 10-13).

The paper reports, per population, the median with a bootstrapped 95 % confidence interval, and per
(sampled population, baseline) pair a Mann-Whitney U p-value and the common-language effect size
(CLES). Populations are small (50-200 models) and far from normal, hence rank statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as _sps

__all__ = ["summarize", "mann_whitney", "cles", "compare", "ALTERNATIVES"]

ALTERNATIVES = ("two-sided", "less", "greater")

# Largest number of resampled values held in memory at once by the bootstrap (float64: 32 MiB).
_BOOT_CHUNK_ELEMENTS = 4_000_000


def _clean(x: Any, name: str) -> np.ndarray:
    """Return `x` as a finite 1-d float64 array; reject empty or NaN/inf inputs loudly.

    A NaN accuracy usually means an evaluation failed; silently dropping it would bias the comparison.
    """
    arr = np.asarray(x, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one value to compute statistics")
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s) out of {arr.size}; "
            "remove or fix failed evaluations before computing statistics"
        )
    return arr


def summarize(
    x: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float | int]:
    """Mean, std, median and a percentile-bootstrap CI of the median (the paper's Tables 10/12).

    `std` is the sample standard deviation (ddof=1; 0.0 for a single value). The CI resamples `x`
    with replacement `n_boot` times (vectorised, seeded, so reruns give the same interval) and takes
    the (1-confidence)/2 and (1+confidence)/2 percentiles of the resampled medians.
    """
    arr = _clean(x, "x")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = arr.size
    rng = np.random.default_rng(seed)
    medians = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        medians[start:stop] = np.median(arr[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    ci_low, ci_high = np.quantile(medians, [alpha, 1.0 - alpha])
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if n > 1 else 0.0,
        "median": float(np.median(arr)),
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "n": int(n),
    }


def mann_whitney(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    alternative: str = "two-sided",
) -> float:
    """p-value of the Mann-Whitney U test of `a` vs `b` (scipy.stats.mannwhitneyu, method 'auto').

    Rank-based, so it makes no normality assumption about accuracy populations. If every value in
    both populations is identical (zero rank variance) we return 1.0 explicitly, so that report
    tables never get a NaN from the normal approximation, whatever the scipy version.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    xa = _clean(a, "a")
    xb = _clean(b, "b")
    if np.all(xa == xa[0]) and np.all(xb == xa[0]):
        return 1.0
    return float(_sps.mannwhitneyu(xa, xb, alternative=alternative).pvalue)


def cles(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Common-language effect size P(a > b) + 0.5 P(a == b) over all (a_i, b_j) pairs, exactly.

    Computed from mid-ranks of the pooled sample, U_a / (n_a n_b), which equals the pairwise count
    with ties counted half, in O((n_a + n_b) log(n_a + n_b)) instead of a double loop.
    0.5 = no effect, 1.0 = every `a` beats every `b`.
    """
    xa = _clean(a, "a")
    xb = _clean(b, "b")
    ranks = _sps.rankdata(np.concatenate([xa, xb]), method="average")
    n_a, n_b = xa.size, xb.size
    u_a = ranks[:n_a].sum() - n_a * (n_a + 1) / 2.0
    return float(u_a / (n_a * n_b))


def compare(
    populations: Mapping[str, Sequence[float] | np.ndarray],
    baselines: Sequence[str],
    alternative: str = "two-sided",
) -> list[dict[str, Any]]:
    """Test every non-baseline population against every baseline (the paper's Tables 11/13).

    Returns one row per (population, baseline) pair, in the order of `populations` then `baselines`:
    {population, baseline, p_value, cles, n_a, n_b}; CLES > 0.5 means the population beats the baseline.
    """
    missing = [name for name in baselines if name not in populations]
    if missing:
        raise ValueError(f"baselines {missing} not found among populations {list(populations)}")
    rows: list[dict[str, Any]] = []
    for name, values in populations.items():
        if name in baselines:
            continue
        xa = _clean(values, f"population {name!r}")
        for base in baselines:
            xb = _clean(populations[base], f"baseline {base!r}")
            rows.append(
                {
                    "population": name,
                    "baseline": base,
                    "p_value": mann_whitney(xa, xb, alternative=alternative),
                    "cles": cles(xa, xb),
                    "n_a": int(xa.size),
                    "n_b": int(xb.size),
                }
            )
    return rows
