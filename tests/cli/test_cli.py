"""`hyperrep` as a user runs it: the commands, the zoo command end to end (slow), clear input errors."""

import json

import pytest

from hyperrep_ray.cli.main import build_parser, main
from hyperrep_ray.cli.train_ae import ae_config
from hyperrep_ray.cli.zoo import zoo_config
from hyperrep_ray.config import ae_preset, zoo_preset

COMMANDS = [
    "zoo",
    "train-ae",
    "embed",
    "predict",
    "sample",
    "evaluate",
    "generate",
    "novelty",
    "experiments",
    "zoo-info",
]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(f"    {name}" in out for name in [*COMMANDS, "tune"])


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.slow
def test_zoo_then_zoo_info(tmp_path, mlflow_uri, ray_session, capsys):
    out = str(tmp_path / "zoo")
    assert (
        main(["zoo", "--preset", "smoke", "--out", out, "--models", "2", "--epochs", "1", "--no-progress"])
        == 0
    )
    text = capsys.readouterr().out
    assert "digits-smoke" in text and "| 1 | 2 |" in text
    assert main(["zoo-info", out, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["models_stored"] == 2 and info["epochs"] == [0, 1] and info["num_params"] == 2464


def test_config_typo_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "zoo.json"
    cfg.write_text(json.dumps({"num_model": 5}))
    assert main(["zoo", "--out", str(tmp_path / "z"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "num_model" in err and "Extra inputs are not permitted" in err
    assert err.startswith("hyperrep zoo: error: invalid ZooConfig: ") and err.count("\n") == 1, "one line"


def test_zoo_flags_then_config_file_then_preset(tmp_path):
    cfg = tmp_path / "zoo.json"
    cfg.write_text(json.dumps({"epochs": 7, "lr": 0.5}))
    argv = ["zoo", "--preset", "smoke", "--out", "z", "--config", str(cfg), "--lr", "0.25", "--models", "3"]
    zoo = zoo_config(build_parser().parse_args(argv))
    assert (zoo.num_models, zoo.epochs, zoo.lr) == (3, 7, 0.25)
    assert zoo.population_size == zoo_preset("smoke").population_size and not zoo.download


def test_train_ae_flags_override_the_preset():
    argv = ["train-ae", "--zoo", "z", "--out", "a", "--preset", "smoke", "--epochs", "3", "--no-lwln"]
    args = build_parser().parse_args([*argv, "--permute", "--epochs-window", "1", "2", "--workers", "1"])
    cfg = ae_config(args, "digits")
    assert (cfg.epochs, cfg.lwln, cfg.permute, cfg.epochs_window, cfg.num_workers) == (
        3,
        False,
        True,
        (1, 2),
        1,
    )
    assert cfg.align == ae_preset("smoke").align and not cfg.use_gpu


def test_invalid_value_is_a_clear_error(tmp_path, capsys):
    assert main(["zoo", "--out", str(tmp_path / "z"), "--models", "0"]) == 2
    assert "num_models" in capsys.readouterr().err


def test_missing_dataset_names_the_flag(tmp_path, mlflow_uri, capsys):
    assert (
        main(
            ["zoo", "--dataset", "mnist", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "z")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--download" in err and str(tmp_path / "none") in err


def test_zoo_info_on_missing_store(tmp_path, capsys):
    assert main(["zoo-info", str(tmp_path / "nothing")]) == 2
    assert "hyperrep zoo --out" in capsys.readouterr().err
