"""`hyperrep` as a user runs it: the zoo command end to end, and clear errors for bad input."""

import json

import pytest

from hyperrep_ray.cli.main import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "zoo" in out and "zoo-info" in out


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


def test_invalid_value_is_a_clear_error(tmp_path, capsys):
    assert main(["zoo", "--out", str(tmp_path / "z"), "--models", "0"]) == 2
    assert "num_models" in capsys.readouterr().err


def test_missing_dataset_names_the_flag(tmp_path, capsys):
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
