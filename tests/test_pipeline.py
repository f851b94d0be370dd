"""Pipeline orchestration: which stages run, which are skipped, what a changed input does.

The smoke pipeline itself runs end to end, as users run it, in ``test_job_submit.py``
(``ray job submit`` to a local cluster, stopped mid-run, resubmitted, rerun in-process)."""

import json

import pytest

from hyperrep_ray.config import ConfigError, experiments_preset
from hyperrep_ray.pipeline import fingerprint, mark_done, pipeline_configs, stage_done


def test_finished_stage_is_skipped_and_a_changed_one_moved_aside(tmp_path, capsys):
    stage = tmp_path / "ae"
    inputs = {"zoo": {"num_models": 8}, "ae": {"d_z": 16}}
    assert not stage_done(stage, inputs)  # never run
    stage.mkdir()
    (stage / "metrics.json").write_text("{}")
    assert not stage_done(stage, inputs)  # outputs without stage.json: unfinished, resumed in place
    assert (stage / "metrics.json").exists()
    mark_done(stage, inputs, seconds=1.5)
    marker = json.loads((stage / "stage.json").read_text())
    assert marker["fingerprint"] == fingerprint(inputs) and marker["seconds"] == 1.5
    assert stage_done(stage, inputs)
    assert stage_done(stage, {"ae": {"d_z": 16}, "zoo": {"num_models": 8}})  # key order is irrelevant

    changed = {**inputs, "ae": {"d_z": 32}}
    assert not stage_done(stage, changed)
    assert not stage.exists(), "a stage with other inputs must not be reused in place"
    (stale,) = tmp_path.glob("ae.stale-*")
    assert json.loads((stale / "stage.json").read_text())["inputs"] == inputs  # kept, not destroyed
    assert "moved to ae.stale-" in capsys.readouterr().out


def test_presets_configure_every_zoo_and_both_autoencoders():
    (quick,) = pipeline_configs("quick")
    zoo, ae, base = quick
    assert zoo.dataset == "digits" and ae.lwln and not base.lwln
    assert ae.model_copy(update={"lwln": False}) == base  # the baseline differs only in the loss
    paper = pipeline_configs("paper", data_root="/data")
    assert [z.dataset for z, _, _ in paper] == ["mnist", "svhn", "cifar10", "stl10"]
    assert all(z.num_models == 1000 and z.epochs == 50 and z.data_root == "/data" for z, _, _ in paper)
    assert [a.d_z for _, a, _ in paper] == [700, 1000, 700, 700]  # Table 8
    with pytest.raises(ConfigError, match="unknown preset"):
        pipeline_configs("huge")


def test_experiment_settings_are_validated():
    assert experiments_preset("smoke").n == 4
    assert experiments_preset("paper").finetune_epochs == (0, 1, 5, 25)
    with pytest.raises(ConfigError, match="kde31"):
        experiments_preset("quick", methods=("kde30", "kde31"))
    with pytest.raises(ConfigError, match="ensemble_repeat"):
        experiments_preset("quick", ensemble_repeat=3)  # typo of ensemble_repeats
