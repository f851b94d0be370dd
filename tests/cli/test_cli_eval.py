"""`hyperrep sample | evaluate | generate | experiments` as a user runs them (slow: a trained autoencoder,
Ray Data), and clear argument and input errors (quick)."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from hyperrep_ray import store
from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.cli.main import main
from hyperrep_ray.data.images import load_dataset
from hyperrep_ray.evaluation.ray_pipeline import decode_plain_loop
from hyperrep_ray.sampling.generate import sample_embeddings
from hyperrep_ray.zoo.cnn import vector_to_state_dict
from hyperrep_ray.zoo.weights_io import save_weights

TOL_DIGITS = 1 / 360 + 1e-9  # one test image of digits


@pytest.mark.slow
def test_sample_then_evaluate(trained_ae, tmp_path, mlflow_uri, ray_session, capsys):
    ae = trained_ae[0]
    samples = tmp_path / "s.parquet"
    assert (
        main(["sample", "--ae", ae, "--method", "kde30", "--n", "3", "--seed", "4", "--out", str(samples)])
        == 0
    )
    assert "3 S_KDE30 embeddings" in capsys.readouterr().out
    table = pq.read_table(samples)
    assert table.column_names == ["sample_id", "z"] and table.column("sample_id").to_pylist() == [0, 1, 2]
    z = np.asarray(table.column("z").to_pylist(), np.float32)
    np.testing.assert_array_equal(z, sample_embeddings(ae, 3, "kde30", seed=4))
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["population"] == "S_KDE30" and meta["seed"] == "4" and meta["bandwidth"] == "0.002"

    out = tmp_path / "eval"
    argv = ["evaluate", "--samples", str(samples), "--ae", ae, "--finetune-epochs", "0,1", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "| Method | Ep. | digits |" in text and "| S_KDE30 | 1 |" in text
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"S_KDE30"} and set(summary["S_KDE30"]) == {"0", "1"}
    rows = pd.read_parquet(out / "rows").sort_values(["sample_id", "finetune_epoch"])
    assert len(rows) == 6 and rows["test_acc"].between(0, 1).all()
    # epoch 0 is the decoded samples scored on the autoencoder's data set (digits), one by one
    plain = decode_plain_loop(z, ae, load_dataset("digits"), "tanh")
    np.testing.assert_allclose(rows[rows.finetune_epoch == 0]["test_acc"], plain, atol=TOL_DIGITS)
    assert summary["S_KDE30"]["0"]["mean"] == pytest.approx(float(plain.mean()), abs=TOL_DIGITS)


@pytest.mark.slow
def test_generate_then_novelty_finds_a_copied_checkpoint(trained_ae, tiny_zoo, tmp_path, capsys):
    ae, out = trained_ae[0], tmp_path / "gen"
    assert main(["generate", "--ae", ae, "--n", "2", "--out", str(out), "--method", "kde30"]) == 0
    text = capsys.readouterr().out
    assert "wrote 2 models" in text and "novelty" in text
    listing = json.loads((out / "generated.json").read_text())
    assert listing["files"] == ["model_000.safetensors", "model_001.safetensors"]
    assert all((out / f).is_file() for f in listing["files"])
    assert set(listing["novelty"]["models"]) == set(listing["files"])
    assert listing["novelty"]["summary"]["n"] == 2

    # a train checkpoint the autoencoder saw, copied with its neurons permuted: found as that checkpoint
    hi = read_ae_info(ae)["config"]["epochs_window"][1]
    w, meta = store.load_weights(tiny_zoo, epochs=[hi], split="train")
    copy = save_weights(permute_fc1(w[0].numpy()), tmp_path / "copy.safetensors")
    csv = tmp_path / "novelty.csv"
    assert main(["novelty", "--ae", ae, str(out), str(copy), "--out", str(csv)]) == 0
    text = capsys.readouterr().out
    assert "reference, test split" in text and "copy.safetensors" in text
    rows = pd.read_csv(csv)
    assert len(rows) == 3
    found = rows.iloc[-1]
    assert (found["nearest_model_id"], found["nearest_epoch"]) == (meta["model_id"][0], hi)
    assert found["nearest_l2"] == pytest.approx(0, abs=1e-4)
    assert found["novelty"] == pytest.approx(0, abs=0.01), "it makes the same mistakes as the original"
    assert (rows.iloc[:2]["nearest_l2"] > 1e-3).all(), "decoded samples are not copies"


def permute_fc1(vec: np.ndarray) -> np.ndarray:
    """The same function: fc1's 20 units reversed, with fc2's input columns to match."""
    sd = vector_to_state_dict(vec, 1)
    order = torch.arange(19, -1, -1)
    sd["fc1.weight"], sd["fc1.bias"] = sd["fc1.weight"][order], sd["fc1.bias"][order]
    sd["fc2.weight"] = sd["fc2.weight"][:, order]
    return torch.cat([v.reshape(-1) for v in sd.values()]).numpy()


@pytest.mark.slow
def test_experiments_command_end_to_end(trained_ae, tiny_zoo, tmp_path, mlflow_uri, ray_session, capsys):
    """No --other-zoo: the unseen-zoo experiment is skipped with a note; no --baseline-ae: B_KDE30 too."""
    out = tmp_path / "exp"
    argv = [
        "experiments",
        "--ae",
        trained_ae[0],
        "--zoo",
        tiny_zoo,
        "--out",
        str(out),
        "--n",
        "3",
        "--finetune-epochs",
        "0,1",
        "--methods",
        "kde30,uniform",
        "--ensemble-sizes",
        "1,2",
        "--ensemble-repeats",
        "2",
        "--decode-on-driver",
        "--no-progress",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "skipped unseen_zoo" in text and "experiments: in_dataset, novelty, ensembles, transfer in" in text
    summary = json.loads((out / "summary.json").read_text())
    assert {"in_dataset", "ensembles", "transfer"} <= set(summary) and "unseen_zoo" not in summary
    assert "other zoo" in summary["skipped"]["unseen_zoo"]
    assert set(summary["in_dataset"]) == {"B_T", "S_KDE30", "S_KDEJ30", "S_U"}
    assert any("B_KDE30" in n for n in summary["notes"]["in_dataset"])
    assert set(summary["transfer"]) == {"B_T", "B_F", "S_KDE30"}
    config = summary["meta"]["config"]
    assert config["n"] == 3 and config["dataset"] == "digits" and config["decode_on_driver"] is True
    assert (out / "report.md").is_file() and (out / "transfer" / "table2.md").is_file()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("hyperrep_ray").experiment_id])
    parent = next(r for r in runs if r.info.run_name == "experiments")
    assert parent.data.tags["skipped.unseen_zoo"].startswith("no other zoo")
    kids = {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert kids == {"in_dataset", "novelty", "ensembles", "transfer"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sample", "--ae", "A", "--method", "kde31", "--out", "x"], "invalid choice: 'kde31'"),
        (["sample", "--ae", "A", "--n", "0", "--out", "x"], "expected a positive integer, got 0"),
        (["sample", "--ae", "A", "--bandwidth", "-1", "--out", "x"], "expected a positive, finite number"),
        (["evaluate", "--samples", "s", "--ae", "A", "--finetune-epochs", "0,x", "--out", "o"], "0,1,5,25"),
        (["evaluate", "--samples", "s", "--ae", "A", "--finetune-epochs", "0,-1", "--out", "o"], ">= 0"),
        (
            ["experiments", "--ae", "A", "--zoo", "Z", "--out", "o", "--methods", "kde30,x"],
            "unknown sampling",
        ),
        (["experiments", "--ae", "A", "--zoo", "Z", "--out", "o", "--ensemble-sizes", "0"], ">= 1"),
        (
            ["experiments", "--ae", "A", "--zoo", "Z", "--out", "o", "--n", "two"],
            "expected an integer, got 'two'",
        ),
        (["tune", "--zoo", "Z", "--out", "o", "--bandwidths", "0.1,x"], "comma-separated finite numbers"),
        (["generate", "--ae", "A", "--out", "o", "--n", "two"], "expected a positive integer, got 'two'"),
    ],
)
def test_argument_errors_are_clear(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n", "1"], "n: Input should be greater than or equal to 2"),
        (["--gan-epochs", "0"], "gan_epochs: Input should be greater than or equal to 1"),
        (["--ensemble-repeats", "0"], "ensemble_repeats"),
        (["--bandwidth", "0"], "bandwidth: Input should be greater than 0"),
        (["--finetune-epochs", "0,-1"], "finetune_epochs must be non-negative"),
    ],
)
def test_experiments_bounds_are_the_configs(argv, message, tmp_path, capsys):
    """The same bounds as ExperimentsConfig (pipeline, Python API): checked before anything runs."""
    out = tmp_path / "exp"
    assert main(["experiments", "--ae", "A", "--zoo", "Z", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hyperrep experiments: error: invalid ExperimentsConfig") and message in err
    assert not out.exists()


def test_input_errors_are_clear(tmp_path, capsys):
    ae = str(tmp_path / "not-an-ae")
    missing = tmp_path / "none.parquet"
    assert main(["evaluate", "--samples", str(missing), "--ae", ae, "--out", str(tmp_path / "o")]) == 2
    assert "hyperrep sample --out" in capsys.readouterr().err
    wrong = tmp_path / "wrong.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(wrong)
    assert main(["evaluate", "--samples", str(wrong), "--ae", ae, "--out", str(tmp_path / "o")]) == 2
    assert "not written by `hyperrep sample`" in capsys.readouterr().err
    assert main(["sample", "--ae", str(tmp_path), "--out", str(tmp_path / "s.parquet")]) == 2
    assert "anchors.npz" in capsys.readouterr().err
    argv = ["experiments", "--ae", str(tmp_path), "--zoo", "z", "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "--ae" in (err := capsys.readouterr().err) and "not a trained autoencoder" in err
    assert main(["generate", "--ae", str(tmp_path), "--out", str(tmp_path / "g")]) == 2
    assert "anchors.npz" in capsys.readouterr().err
