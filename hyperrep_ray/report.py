"""Figures and tables people would rather look at than logs (PNG, Markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure as PNG (creating its folder) and release it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def plot_zoo_accuracy(summary: dict[str, Any], path: str | Path) -> Path:
    """Test-accuracy quantile bands of the zoo per recorded epoch."""
    plt = _plt()
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


AE_ROWS = (
    ("reconstruction_r2_val", "reconstruction R² (val)"),
    ("reconstruction_r2_test", "reconstruction R² (test)"),
    ("original_test_accuracy_mean", "test models, original accuracy"),
    ("reconstructed_test_accuracy_mean", "test models, reconstructed accuracy"),
    ("probe_r2_test_test_accuracy", "probe R² accuracy from z"),
    ("probe_r2_test_test_accuracy_W", "probe R² accuracy from W"),
    ("probe_r2_test_test_accuracy_sW", "probe R² accuracy from s(W)"),
    ("probe_r2_test_epoch", "probe R² epoch from z"),
    ("probe_r2_test_ggap", "probe R² generalisation gap from z"),
    ("interpolation_accuracy_min", "interpolation, min mean accuracy"),
    ("noise_accuracy", "accuracy under 1-20 % noise on z"),
    ("wall_seconds", "wall time (s)"),
)


def pipeline_markdown(summary: dict[str, Any]) -> str:
    """The report of one pipeline run: zoo accuracy and the autoencoders side by side."""
    lines = [f"# hyperrep_ray report: preset `{summary['preset']}`", ""]
    for name, entry in summary["zoos"].items():
        lines += [f"## zoo {name}", "", zoo_summary_markdown(entry["zoo"], [0, 1, 5, 10, 25, 50]), ""]
        aes = [k for k in ("ae", "ae-nolwln") if k in entry]
        if aes:
            lines += ["| metric | " + " | ".join(aes) + " |", "|---|" + "---:|" * len(aes)]
            for key, label in AE_ROWS:
                vals = [entry[a].get(key) for a in aes]
                cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in vals]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
        exp = entry.get("experiments") or {}
        if exp.get("in_dataset"):
            from hyperrep_ray.experiments import _by_epoch_markdown

            lines += [
                f"### sampled models vs baselines on {name} (paper Table 1 / Figure 4; test accuracy, %)",
                "",
                *_by_epoch_markdown(exp["in_dataset"], name),
                "",
                f"All experiments, CIs and tests: `experiments_{name}.md`.",
                "",
            ]
    lines += ["## wall time per stage (s)", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in summary["stage_seconds"].items()]
    lines += ["", f"total: {summary.get('wall_seconds', 0):.0f} s"]
    return "\n".join(lines)
