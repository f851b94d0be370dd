"""`hyperrep train-ae` refuses a zoo it cannot split before it starts Ray or writes anything."""

from __future__ import annotations

from hyperrep_ray import store
from hyperrep_ray.cli.main import main


def _zoo_json(root, num_models: int) -> None:
    rule = {"fractions": {"train": 0.7, "val": 0.15, "test": 0.15}, "seed": 0}
    meta = {"format_version": store.FORMAT_VERSION, "dataset": "digits", "num_params": 2464}
    store.write_json(store.zoo_json_path(str(root)), {**meta, "num_models": num_models, "split_rule": rule})


def test_zoo_too_small_for_the_split_is_one_line_before_training(tmp_path, capsys):
    _zoo_json(tmp_path / "zoo", 3)
    out = tmp_path / "ae"
    assert main(["train-ae", "--zoo", str(tmp_path / "zoo"), "--out", str(out), "--preset", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hyperrep train-ae: error: the zoo at ")
    assert "3 model(s) leave the val split empty" in err and "at least 6 models" in err
    assert not out.exists()
