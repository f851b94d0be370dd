"""The experiments' tables: Markdown shaped like the paper's (Tables 1, 2, 11, 13) and CSVs of the same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hyperrep_ray.evaluation.results import STATS, ExperimentResult, population_order


def fmt_mean_std(s: Mapping[str, Any]) -> str:
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def fmt_median_ci(s: Mapping[str, Any]) -> str:
    return f"{100 * s['median']:.1f} [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"


def summary_frame(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], key: str) -> pd.DataFrame:
    rows = [
        {"population": p, key: int(k), **{s: v[s] for s in STATS}}
        for p, per in summary.items()
        for k, v in per.items()
    ]
    return pd.DataFrame(rows, columns=["population", key, *STATS])


def stats_markdown(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], key_label: str) -> list[str]:
    """Paper Tables 10/12: median with bootstrapped 95 % CI (and mean ± std, n), in %."""
    lines = [
        f"| Population | {key_label} | median [95 % CI] | mean ± std | n |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in population_order(summary):
        for k in sorted(summary[p], key=int):
            s = summary[p][k]
            lines.append(f"| {p} | {k} | {fmt_median_ci(s)} | {fmt_mean_std(s)} | {s['n']} |")
    return lines


def tests_markdown(tests: Sequence[Mapping[str, Any]], key: str, key_label: str) -> list[str]:
    """Paper Tables 11/13: Mann-Whitney U p-value | CLES of each sampled population vs each baseline."""
    if not tests:
        return ["(no sampled population and baseline share a key: no tests)"]
    lines = [f"| Population pair | {key_label} | p-value | CLES |", "|---|---:|---:|---:|"]
    for r in tests:
        lines.append(
            f"| {r['population']} vs. {r['baseline']} | {r[key]} | {r['p_value']:.1e} | {r['cles']:.4f} |"
        )
    return lines


def by_epoch_markdown(summary: Mapping[str, Mapping[str, Mapping[str, Any]]], column: str) -> list[str]:
    """Paper Table 1: Method | Ep. | <data set>, mean ± std in %, best mean of each epoch in bold."""
    epochs = sorted({int(k) for per in summary.values() for k in per})
    lines = [f"| Method | Ep. | {column} |", "|---|---:|---:|"]
    for e in epochs:
        pops = [p for p in population_order(summary) if str(e) in summary[p]]
        best = max(summary[p][str(e)]["mean"] for p in pops)
        for p in pops:
            cell = fmt_mean_std(summary[p][str(e)])
            bold = summary[p][str(e)]["mean"] == best and len(pops) > 1
            lines.append(f"| {p} | {e} | {'**' + cell + '**' if bold else cell} |")
    return lines


def wide_markdown(
    summary: Mapping[str, Mapping[str, Mapping[str, Any]]], key_prefix: str, first: str = "Method"
) -> list[str]:
    """Paper Table 2: one row per population, one column per key (Ep. 0, Ep. 1, ...), mean ± std in %."""
    keys = sorted({int(k) for per in summary.values() for k in per})
    lines = [
        f"| {first} | " + " | ".join(f"{key_prefix} {k}" for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for p in population_order(summary):
        cells = [fmt_mean_std(summary[p][str(k)]) if str(k) in summary[p] else "-" for k in keys]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def write_tables(
    directory: Path,
    stem: str,
    title: str,
    caption: str,
    main: list[str],
    result: ExperimentResult,
    key: str,
    key_label: str,
) -> list[Path]:
    """``<stem>.md`` (main table, CI table, tests), ``<stem>.csv`` (one row per population and key,
    fractions), ``<stem>_tests.csv`` and ``<stem>_rows.csv`` (the raw rows, for re-analysis)."""
    directory.mkdir(parents=True, exist_ok=True)
    test_key = "ensemble_size" if key == "ensemble_size" else "epoch"
    lines = [f"## {title}", "", f"*{caption}*", "", *main, ""]
    lines += ["Median and bootstrapped 95 % CI of the median (test accuracy, %):", ""]
    lines += [*stats_markdown(result.summary, key_label), ""]
    lines += ["Mann-Whitney U test of sampled populations vs baselines: p-value and CLES:", ""]
    lines += [*tests_markdown(result.tests, test_key, key_label), ""]
    if result.notes:
        lines += ["Notes:", "", *[f"- {n}" for n in result.notes], ""]
    md = directory / f"{stem}.md"
    md.write_text("\n".join(lines))
    csv = directory / f"{stem}.csv"
    summary_frame(result.summary, key).to_csv(csv, index=False)
    tests_csv = directory / f"{stem}_tests.csv"
    pd.DataFrame(
        result.tests, columns=["population", "baseline", test_key, "p_value", "cles", "n_a", "n_b"]
    ).to_csv(tests_csv, index=False)
    rows_csv = directory / f"{stem}_rows.csv"
    result.frame.to_csv(rows_csv, index=False)
    return [md, csv, tests_csv, rows_csv]
