"""Each experiment's tables and figure, shaped like the paper's, and the experiments' ``report.md``.

An experiment computes an :class:`~hyperrep_ray.evaluation.results.ExperimentResult`; :func:`write_outputs`
draws it into ``out/<directory>/``: a Markdown table with its caption, the CI and test tables, CSVs of the
same and of the raw rows (:func:`~.experiment_tables.write_tables`), and a PNG figure. Everything a
caption says comes from the result's ``params``, so a table always describes the run that made it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hyperrep_ray.evaluation.results import EXPERIMENTS, ExperimentResult, population_order
from hyperrep_ray.report.experiment_figures import box_strip, curves
from hyperrep_ray.report.experiment_tables import by_epoch_markdown, wide_markdown, write_tables
from hyperrep_ray.report.novelty_tables import write_novelty


def write_table1(result: ExperimentResult, out: Path) -> list[Path]:
    """``table1/table1.{md,csv,png}``: paper Table 1, best mean per epoch in bold, and its curves."""
    dataset = result.params["dataset"]
    directory = out / "table1"
    caption = (
        f"Mean and std of test accuracy (%) on {dataset} of sampled populations with LWLN (S_KDE30; "
        "S_KDEJ30: joint KDE, ours) and without (B_KDE30) compared to models trained from scratch (B_T); "
        "Ep. = fine-tuning epochs with the zoo's hyperparameters. Best mean per epoch in bold."
    )
    main = by_epoch_markdown(result.summary, dataset)
    files = write_tables(
        directory, "table1", f"Table 1 ({dataset})", caption, main, result, "finetune_epoch", "Ep."
    )
    title = f"{dataset}: fine-tuning"
    return [*files, curves(result.summary, directory / "table1.png", title, "fine-tuning epochs")]


def figure4_groups(result: ExperimentResult) -> list[tuple[str, np.ndarray]]:
    """(label, accuracies) per box of Figure 4: every population at epoch 0, and B_T after training."""
    df = result.frame
    groups = []
    for p in population_order(df["population"].unique()):
        for e in sorted(df.loc[df["population"] == p, "finetune_epoch"].unique()):
            if e == 0 or p == "B_T":
                acc = df.loc[(df["population"] == p) & (df["finetune_epoch"] == e), "test_acc"].to_numpy()
                groups.append((p if e == 0 else f"{p} (ep {e})", acc))
    return groups


def write_in_dataset(result: ExperimentResult, out: Path) -> list[Path]:
    """``in_dataset/in_dataset.{md,csv}`` (Figure 4 and Table 1 populations) and ``figure4.png``."""
    dataset = result.params["dataset"]
    directory = out / "in_dataset"
    caption = (
        f"In-dataset sampling on {dataset} (paper Figure 4, Table 1): test accuracy (%) of sampled "
        "populations and baselines, mean ± std; epoch = fine-tuning epochs (0 = the weights as sampled)."
    )
    main = by_epoch_markdown(result.summary, dataset)
    title = f"In-dataset sampling ({dataset})"
    files = write_tables(directory, "in_dataset", title, caption, main, result, "finetune_epoch", "Ep.")
    figure_title = f"{dataset}: sampled weights (no fine-tuning) vs B_T"
    return [
        *files,
        box_strip(figure4_groups(result), directory / "figure4.png", figure_title, "test accuracy"),
    ]


def write_ensembles(result: ExperimentResult, out: Path) -> list[Path]:
    """``ensembles/ensembles.{md,csv}`` (one column per ensemble size) and ``figure5.png``."""
    dataset, repeats = result.params["dataset"], result.params["repeats"]
    directory = out / "ensembles"
    caption = (
        f"Ensembles evaluated on {dataset} (paper Figure 5): test accuracy (%) of averaged-logit "
        f"ensembles, mean ± std over {repeats} random ensembles per size (size 1: every model once). "
        "_epK = after K epochs of training/fine-tuning."
    )
    main = wide_markdown(result.summary, "size", "Population")
    title = f"Ensembles ({dataset})"
    files = write_tables(directory, "ensembles", title, caption, main, result, "ensemble_size", "size")
    figure_title = f"{dataset}: generated ensembles"
    return [*files, curves(result.summary, directory / "figure5.png", figure_title, "ensemble size")]


def write_transfer(result: ExperimentResult, out: Path) -> list[Path]:
    """``transfer/table2.{md,csv}`` (paper Table 2; says so when the target is derived) and
    ``transfer.png``."""
    source, target = result.params["source"], result.params["target"]
    directory = out / "transfer"
    caption = (
        f"Transfer learning {source} to {target} (paper Table 2): mean and std of the "
        f"test accuracy (%) on {target} after fine-tuning for Ep. epochs with the target's "
        "hyperparameters. B_T: trained from scratch on the target; B_F: the source zoo's models fine-tuned."
    )
    if result.params.get("target_derived_from") is not None and result.params.get("target_note"):
        caption += " " + str(result.params["target_note"])
    title = f"Table 2 ({source} to {target})"
    main = wide_markdown(result.summary, "Ep.")
    files = write_tables(directory, "table2", title, caption, main, result, "finetune_epoch", "Ep.")
    figure = curves(result.summary, directory / "transfer.png", f"{source} to {target}", "fine-tuning epochs")
    return [*files, figure]


def unseen_zoo_markdown(result: ExperimentResult) -> list[str]:
    """Paper Table 3: one row, mean / max (bold) of one model, an ensemble, the unseen zoo's own models."""
    df, p = result.frame, result.params

    def mean_max(pop: str) -> str:
        acc = df.loc[df["population"] == pop, "test_acc"].to_numpy()
        return f"{100 * acc.mean():.1f} / **{100 * acc.max():.1f}**" if len(acc) else "-"

    ensemble = f"S_KDE30_ens{p['ensemble_size']}"
    return [
        "| Training zoo | Conditioning (unseen) | One model | Ensemble | Unseen zoo's own models |",
        "|---|---|---:|---:|---:|",
        f"| {p['ae_dataset']} ({Path(str(p['ae'])).name}) | {p['other_dataset']} ({p['other_zoo_name']}) | "
        f"{mean_max('S_KDE30')} | {mean_max(ensemble)} | {mean_max('B_Zoo')} |",
    ]


def write_unseen_zoo(result: ExperimentResult, out: Path) -> list[Path]:
    """``unseen_zoo/table3.{md,csv}`` (paper Table 3) and ``unseen_zoo.png`` (every population's models)."""
    p, df = result.params, result.frame
    directory = out / "unseen_zoo"
    caption = (
        f"Test accuracy (%) on {p['dataset']} of models generated conditioned on the models of an unseen "
        f"zoo (paper Table 3), mean / max (bold): {p['conditioning_models']} train-split models of epoch "
        f"{p['conditioning_epoch']} encoded, per-dimension KDE on the top {p['fraction']:.0%}, {p['n']} "
        f"samples decoded, no fine-tuning; ensembles of {p['ensemble_size']} averaged logits, "
        f"{p['repeats']} random ensembles."
    )
    main = unseen_zoo_markdown(result)
    title = "Table 3 (unseen zoo)"
    files = write_tables(directory, "table3", title, caption, main, result, "finetune_epoch", "Ep.")
    groups = [
        (pop, df.loc[df["population"] == pop, "test_acc"].to_numpy())
        for pop in population_order(df["population"].unique())
    ]
    figure_title = f"conditioned on unseen zoo ({p['dataset']})"
    return [*files, box_strip(groups, directory / "unseen_zoo.png", figure_title, "test accuracy")]


#: Writer of each kind of result (``ExperimentResult.name``).
WRITERS: dict[str, Callable[[ExperimentResult, Path], list[Path]]] = {
    "table1": write_table1,
    "in_dataset": write_in_dataset,
    "novelty": write_novelty,
    "ensembles": write_ensembles,
    "transfer": write_transfer,
    "unseen_zoo": write_unseen_zoo,
}


def write_outputs(result: ExperimentResult, out: str | Path) -> list[Path]:
    """Draw ``result``'s tables and figure under ``out``; returns the files written."""
    if result.name not in WRITERS:
        raise ValueError(f"no tables for a result named {result.name!r}; known: {', '.join(WRITERS)}")
    return WRITERS[result.name](result, Path(out))


def experiments_markdown(summary: Mapping[str, Any], files: Mapping[str, Sequence[Path]], out: Path) -> str:
    """``report.md`` of a run of the experiments: each experiment's Markdown tables and figures (linked
    relative to ``out``) in the order of EXPERIMENTS, or why it was skipped."""
    lines = ["# Experiments", ""]
    for name in EXPERIMENTS:
        if name in summary.get("skipped", {}):
            lines += [f"## {name}: skipped", "", summary["skipped"][name], ""]
            continue
        for f in files.get(name, []):
            if f.suffix == ".md":
                lines += [f.read_text(), ""]
            elif f.suffix == ".png":
                lines += [f"![{f.stem}]({f.relative_to(out).as_posix()})", ""]
    return "\n".join(lines)
