"""The zoo's accuracy per epoch as a figure and a Markdown table (zoo stage, `zoo-info`, report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hyperrep_ray.plotting import pyplot, save_figure


def plot_zoo_accuracy(summary: dict[str, Any], path: str | Path) -> Path:
    """Test-accuracy quantile bands of the zoo per recorded epoch."""
    plt = pyplot()
    per = summary["test_acc"]
    epochs = sorted(int(e) for e in per)
    get = lambda k: [per[e][k] if e in per else per[str(e)][k] for e in epochs]  # noqa: E731
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.fill_between(epochs, get("q05"), get("q95"), alpha=0.2, label="5-95 %")
    ax.fill_between(epochs, get("q25"), get("q75"), alpha=0.4, label="25-75 %")
    ax.plot(epochs, get("median"), marker="o", label="median")
    ax.axhline(0.1, color="grey", ls="--", lw=1, label="random guessing")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"zoo {summary['name']}: {summary['models_stored']} models")
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def zoo_summary_markdown(summary: dict[str, Any], epochs: list[int] | None = None) -> str:
    per = summary["test_acc"]
    keys = sorted(int(e) for e in per)
    rows = [e for e in keys if epochs is None or e in epochs or e == keys[-1]]
    lines = [
        f"zoo **{summary['name']}** ({summary['dataset']}): "
        f"{summary['models_stored']}/{summary['models_planned']} models, {summary['num_params']} parameters, "
        f"splits {summary['splits']}, {summary['rows']} checkpoints",
        "",
        "| epoch | n | mean | std | q05 | q25 | median | q75 | q95 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in rows:
        s = per[e]
        lines.append(
            f"| {e} | {s['n']} | {s['mean']:.3f} | {s['std']:.3f} | {s['q05']:.3f} | {s['q25']:.3f} | "
            f"{s['median']:.3f} | {s['q75']:.3f} | {s['q95']:.3f} |"
        )
    return "\n".join(lines)
