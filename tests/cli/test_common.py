"""The CLI's shared pieces: the number parser, one-line errors, and flags that build the typed configs."""

import argparse
import re

import pytest
from pydantic import BaseModel, Field, ValidationError

from hyperrep_ray.cli.common import POSITIVE_FLOAT, POSITIVE_INT, Numbers, method_list
from hyperrep_ray.cli.experiments import experiments_config
from hyperrep_ray.cli.main import COMMAND_MODULES, build_parser, main, one_line
from hyperrep_ray.cli.tune import sweep_config
from hyperrep_ray.config import ConfigError, experiments_preset
from hyperrep_ray.tune.config import SweepConfig


@pytest.mark.parametrize(
    ("parser", "text", "value"),
    [
        (POSITIVE_INT, "3", 3),
        (POSITIVE_FLOAT, "0.5", 0.5),
        (Numbers(int, 0), "0", 0),
        (Numbers(int), "-4", -4),
        (Numbers(int, 0, many=True), " 0, 1,5 ,25", [0, 1, 5, 25]),
        (Numbers(float, many=True), "0.01,1", [0.01, 1.0]),
    ],
)
def test_numbers_parse(parser, text, value):
    assert parser(text) == value and type(parser(text)) is type(value)


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (POSITIVE_INT, "0", "a positive integer, got 0"),
        (POSITIVE_INT, "1.5", "a positive integer, got '1.5'"),
        (POSITIVE_FLOAT, "inf", "a positive, finite number, got inf"),
        (POSITIVE_FLOAT, "nan", "a positive, finite number, got nan"),
        (Numbers(float, 0), "-1", "a finite number >= 0, got -1"),
        (Numbers(int, 0), "-1", "an integer >= 0, got -1"),
        (Numbers(int, 0, many=True), "0,-1", "comma-separated integers >= 0 such as 0,1,5,25"),
        (Numbers(int, 1, many=True), "", "comma-separated integers >= 1"),
        (Numbers(float, many=True), "0.1,,x", "comma-separated finite numbers such as 0.01,0.1,1"),
    ],
)
def test_numbers_reject_with_what_they_expected(parser, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match="^expected " + re.escape(message)):
        parser(text)


def test_method_list():
    assert method_list("kde30, uniform") == ["kde30", "uniform"]
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown sampling method\(s\) \['x'\]"):
        method_list("kde30,x")


def test_every_command_has_a_name_a_parser_and_a_run():
    names = [m.NAME for m in COMMAND_MODULES]
    assert len(set(names)) == len(names) == 11 and all(callable(m.run) for m in COMMAND_MODULES)
    listed = re.findall(r"^    (\S+)", build_parser().format_help(), flags=re.MULTILINE)
    assert listed == names


class Point(BaseModel):
    x: int = Field(ge=0)
    y: int


def test_one_line_errors():
    assert one_line(ConfigError("invalid ZooConfig:\n  num_models: too small\n  lr: bad")) == (
        "invalid ZooConfig: num_models: too small; lr: bad"
    )
    with pytest.raises(ValidationError) as e:
        Point(x=-1)
    assert one_line(e.value) == (
        "invalid Point: x: Input should be greater than or equal to 0; y: Field required"
    )
    assert one_line(FileNotFoundError()) == "FileNotFoundError"


def test_experiments_defaults_are_the_configs():
    base = ["experiments", "--ae", "A", "--zoo", "Z", "--out", "o"]
    assert experiments_config(build_parser().parse_args(base)) == experiments_preset("paper")
    args = build_parser().parse_args([*base, "--n", "3", "--finetune-epochs", "0,1", "--decode-on-driver"])
    config = experiments_config(args)
    assert (config.n, config.finetune_epochs, config.decode_on_driver) == (3, (0, 1), True)
    assert experiments_preset("paper").decode_on_driver is None, "absent flag: the config decides"
    args = build_parser().parse_args([*base, "--methods", "kde30", "--ensemble-sizes", "1,2", "--seed", "4"])
    config = experiments_config(args)
    assert (config.methods, config.ensemble_sizes, config.seed) == (("kde30",), (1, 2), 4)


def test_tune_flags_build_the_sweep_config():
    base = ["tune", "--zoo", "Z", "--out", "o"]
    assert sweep_config(build_parser().parse_args(base)) == SweepConfig(zoo="Z", out="o")
    argv = [*base, "--preset", "smoke", "--num-samples", "3", "--samples-per-bandwidth", "8", "--seed", "2"]
    argv += ["--bandwidths", "1,0.1", "--no-early-stopping", "--epochs-window", "1", "2", "--max-epochs", "4"]
    argv += ["--workers-per-trial", "2", "--cpus-per-trial", "1", "--search", "random"]
    config = sweep_config(build_parser().parse_args(argv))
    assert config == SweepConfig(
        zoo="Z",
        out="o",
        preset="smoke",
        num_samples=3,
        n_samples=8,
        seed=2,
        bandwidths=(0.1, 1.0),
        early_stopping=False,
        epochs_window=(1, 2),
        max_epochs=4,
        workers_per_trial=2,
        cpus_per_trial=1.0,
        search="random",
    )


def test_tune_bounds_are_the_configs(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["tune", "--zoo", "Z", "--out", str(out), "--num-samples", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hyperrep tune: error: invalid SweepConfig: num_samples") and not out.exists()


def test_generate_defaults_to_the_joint_kde_and_sample_to_the_papers_sampler():
    parser = build_parser()
    assert parser.parse_args(["generate", "--ae", "A", "--out", "O"]).method == "kde-joint30"
    assert parser.parse_args(["sample", "--ae", "A", "--out", "O"]).method == "kde30"
