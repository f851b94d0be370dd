"""The pipeline report (Markdown): zoo accuracy, the autoencoders side by side, Table 1."""

from __future__ import annotations

from typing import Any

from hyperrep_ray.report.experiment_tables import by_epoch_markdown
from hyperrep_ray.report.novelty_tables import answer, novelty_markdown
from hyperrep_ray.zoo.figures import zoo_summary_markdown

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
            lines += [
                f"### sampled models vs baselines on {name} (paper Table 1 / Figure 4; test accuracy, %)",
                "",
                *by_epoch_markdown(exp["in_dataset"], name),
                "",
            ]
        if exp.get("novelty"):
            lines += [
                f"### are the sampled models new? (epoch 0, against the train checkpoints of {name})",
                "",
                *novelty_markdown(exp),
                "",
                answer(exp),
                "",
            ]
        if exp:
            lines += [f"All experiments, frontiers, CIs and tests: `experiments_{name}.md`.", ""]
    lines += ["## wall time per stage (s)", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in summary["stage_seconds"].items()]
    lines += ["", f"total: {summary.get('wall_seconds', 0):.0f} s"]
    return "\n".join(lines)
