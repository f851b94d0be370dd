"""The paper's experiments (Figure 4, Table 1, Figure 5, Table 2, Table 3, Appendix F statistics) run as one
suite on the smoke fixtures: the summary's shape, its numbers against independent recomputations, tables,
figures, MLflow."""

import inspect
import json
import math

import pandas as pd
import pytest

from hyperrep_ray.config import ExperimentsConfig
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.evaluation.stats import compare
from hyperrep_ray.experiments.data import digits_transfer_target
from hyperrep_ray.experiments.in_dataset import in_dataset
from hyperrep_ray.experiments.runner import EXPERIMENTS, resolve_decode_on_driver, run_experiments
from hyperrep_ray.sampling.samplers import SAMPLERS

TOL = 1 / 128 + 1e-9  # one test image of small_digits
N = 6
STATS = ("mean", "std", "median", "ci_low", "ci_high", "n")
PNG = b"\x89PNG\r\n\x1a\n"
# Every sampler but UMAP's: its numba compilation takes 10-40 s on a busy 2-core machine (test_sampling
# covers S_Neigh); the experiments default to all of SAMPLERS (checked below).
FIGURE4_METHODS = tuple(m for m in SAMPLERS if not m.startswith("neigh"))


def _slice(data: ImageData, train: int = 256, test: int = 128) -> ImageData:
    return ImageData(
        data.name,
        data.train_x[:train],
        data.train_y[:train],
        data.test_x[:test],
        data.test_y[:test],
        dict(data.preprocessing),
    )


@pytest.fixture(scope="module")
def run(trained_ae, tiny_zoo, small_digits, tmp_path_factory, ray_session):
    """run_experiments once, every sampler but UMAP's, the tiny zoo as the unseen zoo; n=6, fine-tuning
    epochs 0, 1."""
    root = tmp_path_factory.mktemp("experiments")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ae = trained_ae[0]
    config = ExperimentsConfig(
        n=N,
        finetune_epochs=(0, 1),
        seed=0,
        methods=FIGURE4_METHODS,
        gan_epochs=5,
        ensemble_sizes=(1, 2, 5),
        ensemble_repeats=3,
        decode_on_driver=True,  # no decoder actor per population (test_cli_eval's evaluate uses them)
    )
    summary = run_experiments(
        ae,
        ae,  # the smoke fixtures have one autoencoder: it stands in for the no-LWLN baseline too
        tiny_zoo,
        root / "out",
        config,
        other_zoo=tiny_zoo,
        tracking_uri=uri,
        data=small_digits,
        transfer_target=_slice(digits_transfer_target(0)),
        other_data=small_digits,
    )
    return summary, root / "out", uri


def _check_stats(s, n=None):
    assert set(s) == set(STATS)
    for k in ("mean", "median", "ci_low", "ci_high"):
        assert math.isfinite(s[k]) and 0.0 <= s[k] <= 1.0, (k, s)
    assert s["std"] >= 0 and s["ci_low"] <= s["median"] <= s["ci_high"]
    if n is not None:
        assert s["n"] == n


@pytest.mark.slow
def test_summary_has_every_experiment_population_and_epoch(run):
    summary, out, _ = run
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert all(name in summary for name in EXPERIMENTS) and summary["skipped"] == {}

    ind = summary["in_dataset"]
    assert set(ind) == {"B_T", "B_KDE30", *(SAMPLERS[m] for m in FIGURE4_METHODS)}  # Figure 4 + Table 1
    assert inspect.signature(in_dataset).parameters["methods"].default == tuple(SAMPLERS)
    for pop in ("B_T", "B_KDE30", "S_KDE30", "S_KDEJ30"):
        assert set(ind[pop]) == {"0", "1"}
    assert all(set(ind[p]) == {"0"} for p in ind if p not in ("B_T", "B_KDE30", "S_KDE30", "S_KDEJ30"))
    assert set(summary["ensembles"]) == {"S_KDE30_ep0", "S_KDE30_ep1", "B_KDE30_ep0", "B_T_ep1"}
    assert all(set(per) == {"1", "2", "5"} for per in summary["ensembles"].values())
    assert {p: set(per) for p, per in summary["transfer"].items()} == {
        "B_T": {"0", "1"},
        "B_F": {"0", "1"},
        "S_KDE30": {"0", "1"},
    }
    assert {p: set(per) for p, per in summary["unseen_zoo"].items()} == {
        "B_Zoo": {"0"},
        "S_KDE30": {"0"},
        "S_KDE30_ens5": {"0"},
    }
    for name in (e for e in EXPERIMENTS if e != "novelty"):  # novelty's shape: test_novelty_section
        for pop, per in summary[name].items():
            for key, s in per.items():
                expected = 3 if (name == "ensembles" and key != "1") or pop == "S_KDE30_ens5" else N
                _check_stats(s, expected)
    assert summary["meta"]["config"]["n"] == N and summary["meta"]["seconds"]["total"] > 0


NOVELTY_KEYS = {"accuracy", "novelty", "max_wrong_iou", "nearest_l2", "n"}


@pytest.mark.slow
def test_novelty_section_scores_every_population_beside_its_accuracy(run):
    summary, out, _ = run
    ind, nov = summary["in_dataset"], summary["novelty"]
    assert set(nov) == set(ind), "every in-dataset population carries its novelty"
    for pop, s in nov.items():
        assert set(s) == NOVELTY_KEYS and s["n"] == N
        assert s["novelty"] == pytest.approx(1 - s["max_wrong_iou"]) and 0 <= s["novelty"] <= 1
        # the same models on the same test images as the in-dataset table's epoch 0
        assert s["accuracy"] == pytest.approx(ind[pop]["0"]["mean"], abs=TOL), pop
    refs = summary["novelty_reference"]
    assert set(refs) == {"test_split", "train_vs_train"}
    assert all(set(r) == NOVELTY_KEYS for r in refs.values())
    fr = summary["frontier"]
    assert {"B_NOISE", "B_NOISE_ORIG", "S_KDE30", "S_KDEJ30", "S_KDE30code", "S_GAN"} <= set(fr)
    sigma0 = [p for p in fr["B_NOISE_ORIG"] if p["knob"] == "sigma" and p["value"] == 0]
    assert sigma0 and sigma0[0]["nearest_l2"] == pytest.approx(0, abs=1e-4), "sigma 0: the train weights"
    assert sigma0[0]["novelty"] == pytest.approx(0, abs=1e-6), "a train checkpoint's own wrong set: IoU 1"
    assert [p["value"] for p in fr["S_KDE30"]] == sorted(p["value"] for p in fr["S_KDE30"])
    assert len(fr["S_GAN"]) == 1 and fr["S_GAN"][0]["knob"] is None
    assert set(summary["frontier_vs_noise"]) == set(fr) - {"B_NOISE"}
    md = (out / "novelty/novelty.md").read_text()
    assert "test-split models" in md and "| S_KDE30 |" in md and "noise baseline" in md
    assert (out / "novelty/frontier.png").read_bytes()[:8] == PNG
    rows = pd.read_csv(out / "novelty/novelty_rows.csv")
    assert len(rows) == N * len(nov) and rows["nearest_model_id"].notna().all()


@pytest.mark.slow
def test_statistics_match_stats_compare_on_the_raw_rows(run):
    summary, out, _ = run
    raw = {
        "in_dataset": ("in_dataset/in_dataset_rows.csv", "finetune_epoch", "epoch"),
        "ensembles": ("ensembles/ensembles_rows.csv", "ensemble_size", "ensemble_size"),
        "transfer": ("transfer/table2_rows.csv", "finetune_epoch", "epoch"),
        "unseen_zoo": ("unseen_zoo/table3_rows.csv", "finetune_epoch", "epoch"),
    }
    for name, (path, key, label) in raw.items():
        df = pd.read_csv(out / path)
        expected = []
        for k in sorted(df[key].unique()):
            sub = df[df[key] == k].sort_values("population", kind="stable")
            pops = {p: g["test_acc"].to_numpy() for p, g in sub.groupby("population", sort=False)}
            baselines = [p for p in pops if p.startswith("B_")]
            rows = compare(pops, baselines)
            assert len(rows) == (len(pops) - len(baselines)) * len(baselines)  # every sampled vs every B
            expected += [{**r, label: str(k)} for r in rows]
        got = summary["tests"][name]

        def key_of(r, label=label):
            return (r["population"], r["baseline"], r[label])

        assert sorted(map(key_of, got)) == sorted(map(key_of, expected)) and got
        want = {key_of(r): r for r in expected}
        for r in got:
            w = want[key_of(r)]
            assert r["p_value"] == pytest.approx(w["p_value"]) and r["cles"] == pytest.approx(w["cles"])
            assert (r["n_a"], r["n_b"]) == (w["n_a"], w["n_b"]) and 0 <= r["p_value"] <= 1
        # and the summary numbers are those of the raw rows
        for pop, per in summary[name].items():
            for k, s in per.items():
                acc = df.loc[(df["population"] == pop) & (df[key] == int(k)), "test_acc"]
                assert s["mean"] == pytest.approx(acc.mean()) and s["median"] == pytest.approx(acc.median())


@pytest.mark.slow
def test_tables_and_figures_are_written(run):
    summary, out, _ = run
    for stem in ("in_dataset/figure4", "table1/table1", "ensembles/figure5", "transfer/transfer"):
        assert (out / f"{stem}.png").read_bytes()[:8] == PNG
    assert (out / "unseen_zoo/unseen_zoo.png").read_bytes()[:8] == PNG

    t1 = (out / "table1/table1.md").read_text()
    assert "| Method | Ep. | digits |" in t1 and "| S_KDE30 | 1 |" in t1 and "p-value | CLES" in t1
    csv = pd.read_csv(out / "table1/table1.csv")
    assert list(csv.columns) == ["population", "finetune_epoch", *STATS] and len(csv) == 4 * 2
    t2 = (out / "transfer/table2.md").read_text()
    assert "| Method | Ep. 0 | Ep. 1 |" in t2 and "| B_F |" in t2
    assert "derived target, not an independent data set" in t2 and "digits-transposed" in t2
    t3 = (out / "unseen_zoo/table3.md").read_text()
    assert "| Training zoo | Conditioning (unseen) | One model | Ensemble |" in t3
    ens = pd.read_csv(out / "ensembles/ensembles.csv")
    assert set(ens["ensemble_size"]) == {1, 2, 5} and (ens["mean"].between(0, 1)).all()
    report = (out / "report.md").read_text()
    assert "Table 2" in report and "figure5.png" in report and "Table 3" in report


@pytest.mark.slow
def test_mlflow_parent_with_one_child_per_experiment(run):
    from mlflow.tracking import MlflowClient

    summary, _, uri = run
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hyperrep_ray")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.info.run_name == "experiments"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.params["n"] == str(N)
    children = {
        r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == set(EXPERIMENTS)
    tr = children["transfer"]
    assert tr.data.metrics["S_KDE30.1.mean"] == pytest.approx(summary["transfer"]["S_KDE30"]["1"]["mean"])
    assert "p_value.S_KDE30_vs_B_F.1" in tr.data.metrics and tr.data.params["target"] == "digits-transposed"
    assert {a.path for a in client.list_artifacts(tr.info.run_id)} >= {"transfer", "summary.json"}
    assert {a.path for a in client.list_artifacts(children["in_dataset"].info.run_id)} >= {
        "in_dataset",
        "table1",
    }
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"summary.json", "report.md"}


@pytest.mark.slow
def test_ensembles_agree_with_the_ray_pipeline(run):
    """The ensemble path (decode + fine-tune locally, logits from PopulationCNN) and the Ray Data pipeline
    see the same models: size-1 ensembles reproduce Table 1's S_KDE30 and B_T means."""
    summary, _, _ = run
    ens, ind = summary["ensembles"], summary["in_dataset"]
    for pop, epoch in (("S_KDE30", "0"), ("S_KDE30", "1"), ("B_T", "1")):
        assert ens[f"{pop}_ep{epoch}"]["1"]["mean"] == pytest.approx(ind[pop][epoch]["mean"], abs=TOL)


def test_decode_on_driver_follows_the_config_else_the_cluster(ray_session):
    assert resolve_decode_on_driver(ExperimentsConfig(decode_on_driver=True)) is True
    assert resolve_decode_on_driver(ExperimentsConfig(decode_on_driver=False)) is False
    no_gpus = ray_session.cluster_resources().get("GPU", 0) == 0
    assert resolve_decode_on_driver(ExperimentsConfig()) is no_gpus  # None: decoder actors only on GPUs
