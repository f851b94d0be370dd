"""The paper's experiments (Figure 4, Table 1, Figure 5, Table 2, Table 3, Appendix F statistics) on the smoke
fixtures: the summary's shape, its numbers against independent recomputations, tables, figures, MLflow."""

import inspect
import json
import math

import numpy as np
import pandas as pd
import pytest

from hyperrep_ray.experiments import runner as E
from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.data.images import ImageData, load_dataset
from hyperrep_ray.evaluation.finetune import hyper_for_dataset
from hyperrep_ray.evaluation.stats import compare
from hyperrep_ray.sampling.generate import sample_embeddings
from hyperrep_ray.sampling.samplers import SAMPLERS
from hyperrep_ray.zoo.population import evaluate_weight_vectors

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
    """run_experiments once, every sampler, the tiny zoo as the unseen zoo; n=6, fine-tuning epochs 0, 1."""
    root = tmp_path_factory.mktemp("experiments")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ae = trained_ae[0]
    summary = E.run_experiments(
        ae,
        ae,  # the smoke fixtures have one autoencoder: it stands in for the no-LWLN baseline too
        tiny_zoo,
        root / "out",
        n=N,
        finetune_epochs=(0, 1),
        seed=0,
        other_zoo=tiny_zoo,
        tracking_uri=uri,
        data=small_digits,
        transfer_target=_slice(E.digits_transfer_target(0)),
        other_data=small_digits,
        methods=FIGURE4_METHODS,
        gan_epochs=5,
        ensemble_sizes=(1, 2, 5),
        ensemble_repeats=3,
        decode_on_driver=True,  # no decoder actor per population (test_cli_eval's evaluate uses them)
    )
    return summary, root / "out", uri


def _check_stats(s, n=None):
    assert set(s) == set(STATS)
    for k in ("mean", "median", "ci_low", "ci_high"):
        assert math.isfinite(s[k]) and 0.0 <= s[k] <= 1.0, (k, s)
    assert s["std"] >= 0 and s["ci_low"] <= s["median"] <= s["ci_high"]
    if n is not None:
        assert s["n"] == n


def test_summary_has_every_experiment_population_and_epoch(run):
    summary, out, _ = run
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert all(name in summary for name in E.EXPERIMENTS) and summary["skipped"] == {}

    ind = summary["in_dataset"]
    assert set(ind) == {"B_T", "B_KDE30", *(SAMPLERS[m] for m in FIGURE4_METHODS)}  # Figure 4 + Table 1
    for fn in (E.in_dataset, E.run_experiments):
        assert inspect.signature(fn).parameters["methods"].default == tuple(SAMPLERS)
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
    for name in E.EXPERIMENTS:
        for pop, per in summary[name].items():
            for key, s in per.items():
                expected = 3 if (name == "ensembles" and key != "1") or pop == "S_KDE30_ens5" else N
                _check_stats(s, expected)
    assert summary["meta"]["config"]["n"] == N and summary["meta"]["seconds"]["total"] > 0


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
    assert set(children) == set(E.EXPERIMENTS)
    tr = children["transfer"]
    assert tr.data.metrics["S_KDE30.1.mean"] == pytest.approx(summary["transfer"]["S_KDE30"]["1"]["mean"])
    assert "p_value.S_KDE30_vs_B_F.1" in tr.data.metrics and tr.data.params["target"] == "digits-transposed"
    assert {a.path for a in client.list_artifacts(tr.info.run_id)} >= {"transfer", "summary.json"}
    assert {a.path for a in client.list_artifacts(children["in_dataset"].info.run_id)} >= {
        "in_dataset",
        "table1",
    }
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"summary.json", "report.md"}


def test_ensembles_agree_with_the_ray_pipeline(run):
    """The ensemble path (decode + fine-tune locally, logits from PopulationCNN) and the Ray Data pipeline
    see the same models: size-1 ensembles reproduce Table 1's S_KDE30 and B_T means."""
    summary, _, _ = run
    ens, ind = summary["ensembles"], summary["in_dataset"]
    for pop, epoch in (("S_KDE30", "0"), ("S_KDE30", "1"), ("B_T", "1")):
        assert ens[f"{pop}_ep{epoch}"]["1"]["mean"] == pytest.approx(ind[pop][epoch]["mean"], abs=TOL)


def test_ensembles_of_size_one_are_the_individual_models(
    trained_ae, tiny_zoo, small_digits, tmp_path, ray_session
):
    ae = trained_ae[0]
    res = E.ensembles(ae, small_digits, 4, (1, 3, 9), 5, seed=2, out=tmp_path, zoo=tiny_zoo, train_epochs=1)
    assert set(res.summary) == {"S_KDE30_ep0", "S_KDE30_ep1", "B_T_ep1"}
    assert all(set(per) == {"1", "3"} for per in res.summary.values()) and "size 9" in res.notes[0]
    decoded = HyperRepresentation.load(ae).decode(sample_embeddings(ae, 4, "kde30", seed=2))
    np.testing.assert_array_equal(res.extra["weights"]["S_KDE30_ep0"], decoded)
    for pop, w in res.extra["weights"].items():
        acc, _ = evaluate_weight_vectors(w, small_digits.test_x, small_digits.test_y, "tanh")
        rows = res.frame[(res.frame.population == pop) & (res.frame.ensemble_size == 1)]
        assert rows["members"].tolist() == ["0", "1", "2", "3"]
        np.testing.assert_allclose(rows["test_acc"], acc, atol=TOL)
        assert res.summary[pop]["1"]["mean"] == pytest.approx(acc.mean(), abs=TOL)
    # the same member sets for every population, 5 of them per size
    sets = res.frame[res.frame.ensemble_size == 3].groupby("population")["members"].apply(list)
    assert len({tuple(v) for v in sets}) == 1 and all(len(v) == 5 for v in sets)
    assert (tmp_path / "ensembles" / "figure5.png").read_bytes()[:8] == PNG


def test_ensemble_helpers():
    members = E.random_ensembles(5, (1, 2, 7), repeats=4, seed=0)
    assert set(members) == {1, 2} and [m.tolist() for m in members[1]] == [[i] for i in range(5)]
    assert all(len(set(m.tolist())) == 2 for m in members[2]) and len(members[2]) == 4
    assert [m.tolist() for m in members[2]] == [m.tolist() for m in E.random_ensembles(5, (2,), 4, 0)[2]]

    y = np.array([0, 1, 2])
    logits = np.zeros((3, 3, 10), np.float32)
    logits[0, np.arange(3), [0, 1, 0]] = 1.0  # 2/3 right
    logits[1, np.arange(3), [0, 0, 2]] = 3.0  # 2/3 right, more confident
    logits[2] = np.nan  # a model whose weights were not finite
    assert E.ensemble_accuracy(logits, y, [0]) == pytest.approx(2 / 3)
    # averaged logits: image 1 -> class 0 (3 > 1), image 2 -> class 2 (3 > 1)
    assert E.ensemble_accuracy(logits, y, [0, 1]) == pytest.approx(2 / 3)
    assert E.ensemble_accuracy(logits, y, [0, 2]) == E.ensemble_accuracy(logits, y, [0])
    assert E.ensemble_accuracy(logits, y, [2]) == 0.0


def test_digits_transfer_target_is_mirrored_rotated_digits():
    src, tgt = load_dataset("digits"), E.digits_transfer_target(0)
    assert tgt.name == E.TRANSFER_TARGET_NAME and tgt.preprocessing["derived_from"] == "digits"
    assert tgt.train_x.shape == src.train_x.shape and tgt.test_x.shape == src.test_x.shape
    assert (tgt.train_y == src.train_y).all() and (tgt.test_y == src.test_y).all()  # same labels, same split
    # mirror left-right then rotate 90 degrees = transpose (bilinear resizing commutes with it)
    np.testing.assert_allclose(tgt.train_x, src.train_x.transpose(-1, -2), atol=1e-5)
    np.testing.assert_allclose(tgt.test_x, src.test_x.transpose(-1, -2), atol=1e-5)
    assert not np.allclose(tgt.test_x, src.test_x, atol=0.1)
    hyper, init = E.target_hyper(tgt)
    assert hyper["lr"] == hyper_for_dataset("digits")["lr"] and init == hyper_for_dataset("digits")["init"]


def test_experiments_check_their_inputs(trained_ae, tiny_zoo, small_digits, tmp_path):
    ae = trained_ae[0]
    with pytest.raises(ValueError, match="unknown sampling method"):
        E.in_dataset(ae, tiny_zoo, small_digits, 2, methods=["kde31"], out=tmp_path)
    with pytest.raises(ValueError, match="n .* must be >= 1"):
        E.table1(ae, None, tiny_zoo, small_digits, 0, out=tmp_path)
    colour = ImageData(
        "cifar10",
        *(
            t.repeat(1, 3, 1, 1) if t.ndim == 4 else t
            for t in (small_digits.train_x, small_digits.train_y, small_digits.test_x, small_digits.test_y)
        ),
    )
    with pytest.raises(ValueError, match="3 channel"):
        E.transfer(ae, tiny_zoo, small_digits, colour, 2, (0,), out=tmp_path)
    with pytest.raises(FileNotFoundError, match="not a trained autoencoder"):
        E.unseen_zoo(str(tmp_path), tiny_zoo, small_digits, 2, out=tmp_path)
