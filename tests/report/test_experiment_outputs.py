"""Tables drawn from hand-built experiment results: the populations in order, the best mean in bold, the
test statistics, the captions that say what was run, the CSVs, and the experiments' report.md."""

import pandas as pd
import pytest

from hyperrep_ray.evaluation.results import ExperimentResult
from hyperrep_ray.experiments.data import DERIVED_CAPTION
from hyperrep_ray.experiments.statistics import summarize_frame
from hyperrep_ray.report.experiment_outputs import experiments_markdown, write_outputs

PNG = b"\x89PNG\r\n\x1a\n"
STATS = ["mean", "std", "median", "ci_low", "ci_high", "n"]


def stats(mean: float, std: float = 0.05, n: int = 4) -> dict:
    return {"mean": mean, "std": std, "median": mean, "ci_low": mean - 0.02, "ci_high": mean + 0.02, "n": n}


def rows(accuracies: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"population": p, "sample_id": i, "finetune_epoch": e, "test_acc": a}
            for (p, e), accs in accuracies.items()
            for i, a in enumerate(accs)
        ]
    )


def by_epoch_result(name: str, **params) -> ExperimentResult:
    """S_KDE30 beats B_T at both epochs; the sampled population is listed first on purpose."""
    summary = {
        "S_KDE30": {"0": stats(0.55), "1": stats(0.72)},
        "B_T": {"0": stats(0.10), "1": stats(0.60)},
    }
    frame = rows(
        {
            ("B_T", 0): [0.1, 0.1, 0.1, 0.1],
            ("B_T", 1): [0.6, 0.6, 0.6, 0.6],
            ("S_KDE30", 0): [0.55] * 4,
            ("S_KDE30", 1): [0.72] * 4,
        }
    )
    tests = [
        {"population": "S_KDE30", "baseline": "B_T", "epoch": "0", "p_value": 0.0012, "cles": 0.9375}
        | {"n_a": 4, "n_b": 4},
        {"population": "S_KDE30", "baseline": "B_T", "epoch": "1", "p_value": 0.034, "cles": 0.75}
        | {"n_a": 4, "n_b": 4},
    ]
    return ExperimentResult(
        name, summary, frame, tests, params={"dataset": "digits", **params}, notes=["a note"]
    )


def test_table1_has_populations_bold_best_mean_and_p_values(tmp_path):
    files = write_outputs(by_epoch_result("table1"), tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "table1/table1.md",
        "table1/table1.csv",
        "table1/table1_tests.csv",
        "table1/table1_rows.csv",
        "table1/table1.png",
    ]
    md = (tmp_path / "table1/table1.md").read_text()
    assert md.startswith("## Table 1 (digits)") and "| Method | Ep. | digits |" in md
    assert "| B_T | 0 | 10.0 ± 5.0 |" in md and "| S_KDE30 | 0 | **55.0 ± 5.0** |" in md
    assert "| B_T | 1 | 60.0 ± 5.0 |" in md and "| S_KDE30 | 1 | **72.0 ± 5.0** |" in md
    assert md.index("| B_T | 0 |") < md.index("| S_KDE30 | 0 |")  # baselines first
    assert (
        "| S_KDE30 vs. B_T | 0 | 1.2e-03 | 0.9375 |" in md
        and "| S_KDE30 vs. B_T | 1 | 3.4e-02 | 0.7500 |" in md
    )
    assert "| S_KDE30 | 1 | 72.0 [70.0, 74.0] | 72.0 ± 5.0 | 4 |" in md  # median [CI] table
    assert "- a note" in md
    csv = pd.read_csv(tmp_path / "table1/table1.csv")
    assert list(csv.columns) == ["population", "finetune_epoch", *STATS] and len(csv) == 4
    assert csv.loc[(csv.population == "S_KDE30") & (csv.finetune_epoch == 1), "mean"].item() == pytest.approx(
        0.72
    )
    tests = pd.read_csv(tmp_path / "table1/table1_tests.csv")
    assert tests["p_value"].tolist() == pytest.approx([0.0012, 0.034])
    assert len(pd.read_csv(tmp_path / "table1/table1_rows.csv")) == 16
    png = (tmp_path / "table1/table1.png").read_bytes()
    assert png[:8] == PNG and len(png) > 1000


def test_in_dataset_and_transfer_tables(tmp_path):
    ind = write_outputs(by_epoch_result("in_dataset"), tmp_path)
    assert (tmp_path / "in_dataset/figure4.png") in ind
    assert (
        "In-dataset sampling on digits (paper Figure 4, Table 1)"
        in (tmp_path / "in_dataset/in_dataset.md").read_text()
    )

    derived = by_epoch_result(
        "transfer",
        source="digits",
        target="digits-transposed",
        target_derived_from="digits",
        target_note=DERIVED_CAPTION.format(name="digits-transposed"),
    )
    write_outputs(derived, tmp_path / "derived")
    md = (tmp_path / "derived/transfer/table2.md").read_text()
    assert "## Table 2 (digits to digits-transposed)" in md and "| Method | Ep. 0 | Ep. 1 |" in md
    assert "| B_T | 10.0 ± 5.0 | 60.0 ± 5.0 |" in md and "| S_KDE30 | 55.0 ± 5.0 | 72.0 ± 5.0 |" in md
    assert "digits-transposed is a derived target, not an independent data set" in md
    real = by_epoch_result("transfer", source="mnist", target="svhn", target_derived_from=None)
    write_outputs(real, tmp_path / "real")
    assert "derived target" not in (tmp_path / "real/transfer/table2.md").read_text()
    assert (tmp_path / "real/transfer/transfer.png").read_bytes()[:8] == PNG


def test_ensembles_table_has_one_column_per_size(tmp_path):
    summary = {
        "B_T_ep1": {"1": stats(0.6), "3": stats(0.65)},
        "S_KDE30_ep0": {"1": stats(0.5), "3": stats(0.7)},
    }
    frame = pd.DataFrame(
        {
            "population": ["B_T_ep1"],
            "ensemble_size": [1],
            "ensemble_id": [0],
            "members": ["0"],
            "test_acc": [0.6],
        }
    )
    tests = [
        {
            "population": "S_KDE30_ep0",
            "baseline": "B_T_ep1",
            "ensemble_size": "3",
            "p_value": 0.5,
            "cles": 0.6,
        }
    ]
    result = ExperimentResult("ensembles", summary, frame, tests, params={"dataset": "digits", "repeats": 7})
    write_outputs(result, tmp_path)
    md = (tmp_path / "ensembles/ensembles.md").read_text()
    assert "| Population | size 1 | size 3 |" in md and "| S_KDE30_ep0 | 50.0 ± 5.0 | 70.0 ± 5.0 |" in md
    assert "over 7 random ensembles" in md and "| S_KDE30_ep0 vs. B_T_ep1 | 3 | 5.0e-01 | 0.6000 |" in md
    assert list(pd.read_csv(tmp_path / "ensembles/ensembles.csv").columns)[:2] == [
        "population",
        "ensemble_size",
    ]
    assert (tmp_path / "ensembles/figure5.png").read_bytes()[:8] == PNG


def test_unseen_zoo_table_shows_mean_and_bold_max(tmp_path):
    frame = rows({("S_KDE30", 0): [0.5, 0.6, 0.7], ("S_KDE30_ens5", 0): [0.8], ("B_Zoo", 0): [0.75, 0.85]})
    params = {
        "ae": "/runs/quick/ae",
        "ae_dataset": "digits",
        "other_dataset": "digits",
        "other_zoo_name": "z2",
    }
    params |= {
        "dataset": "digits",
        "conditioning_models": 70,
        "conditioning_epoch": 25,
        "fraction": 0.3,
        "n": 3,
    }
    params |= {"ensemble_size": 5, "repeats": 1}
    result = ExperimentResult("unseen_zoo", summarize_frame(frame), frame, [], params=params)
    write_outputs(result, tmp_path)
    md = (tmp_path / "unseen_zoo/table3.md").read_text()
    assert "| digits (ae) | digits (z2) | 60.0 / **70.0** | 80.0 / **80.0** | 80.0 / **85.0** |" in md
    assert "70 train-split models of epoch 25 encoded, per-dimension KDE on the top 30%, 3 samples" in md
    assert (tmp_path / "unseen_zoo/unseen_zoo.png").read_bytes()[:8] == PNG


def test_report_markdown_has_every_experiment_or_why_it_was_skipped(tmp_path):
    files = {"in_dataset": write_outputs(by_epoch_result("in_dataset"), tmp_path)}
    summary = {"skipped": {"transfer": "no target", "unseen_zoo": "no other zoo"}}
    md = experiments_markdown(summary, files, tmp_path)
    assert md.startswith("# Experiments") and "## In-dataset sampling (digits)" in md
    assert "![figure4](in_dataset/figure4.png)" in md
    assert "## transfer: skipped\n\nno target" in md and "## unseen_zoo: skipped\n\nno other zoo" in md
    assert md.index("In-dataset") < md.index("transfer: skipped") < md.index("unseen_zoo: skipped")


def test_unknown_result_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no tables for a result named 'figure9'"):
        write_outputs(by_epoch_result("figure9"), tmp_path)
