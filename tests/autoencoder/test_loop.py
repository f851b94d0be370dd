"""The training loop's model selection: the best-validation weights are kept and patience stops
a run whose validation R^2 no longer improves (in-process loop; Ray Train runs it in
test_ae_stage.py)."""

from pathlib import Path

import pytest
import torch

from hyperrep_ray.autoencoder.bundle import architecture_for
from hyperrep_ray.autoencoder.data import TrainingPayload, prepare_ae_data
from hyperrep_ray.autoencoder.loop import LoopConfig, build_losses, evaluate_reconstruction, run_training_loop
from hyperrep_ray.autoencoder.model import HyperAutoencoder
from hyperrep_ray.autoencoder.session import LocalSession, RayTrainSession, TrainSession
from hyperrep_ray.autoencoder.train_state import BestTracker, load_train_state
from hyperrep_ray.config import ae_preset
from hyperrep_ray.weightspace.tokens import token_layout


def _tiny_model(value: float) -> torch.nn.Module:
    m = torch.nn.Linear(2, 1)
    torch.nn.init.constant_(m.weight, value)
    return m


def test_tracker_keeps_the_best_weights_and_counts_patience():
    t = BestTracker(patience=2)
    assert not t.update(0.1, 1, _tiny_model(1.0))
    assert not t.update(0.3, 2, _tiny_model(2.0))
    assert not t.update(0.2, 3, _tiny_model(3.0)), "one evaluation without improvement is within patience"
    assert t.update(0.25, 4, _tiny_model(4.0)), "the second one exhausts it"
    assert (t.r2, t.epoch) == (0.3, 2)
    assert float(t.weights["weight"][0, 0]) == 2.0, "the weights are a copy taken at the best evaluation"
    again = BestTracker(patience=2)
    again.restore(t.summary(), t.weights)
    assert again.update(0.29, 5, _tiny_model(5.0)), "a resumed run keeps counting where it stopped"
    assert not BestTracker(patience=0).update(-1.0, 1, _tiny_model(0.0)), "patience 0 never stops"


def test_loop_keeps_the_best_validation_weights(tiny_zoo, tmp_path):
    cfg = ae_preset("smoke", epochs=8, eval_every=1, patience=2, lr=3e-3, epochs_window=(2, 3))
    data = prepare_ae_data(tiny_zoo, cfg)
    session = LocalSession(keep_checkpoints=str(tmp_path / "ckpt"))
    run_training_loop(LoopConfig(cfg, data.training_payload()), session)

    h = session.history
    r2s = [m["reconstruction_r2_val"] for m in h]
    assert [m["best_r2_val"] for m in h] == [max(r2s[: i + 1]) for i in range(len(r2s))]
    if len(h) < cfg.epochs:  # stopped early: only after `patience` evaluations without a better R^2
        assert h[-1]["early_stopped"] == 1.0
        assert max(r2s[-cfg.patience :]) <= max(r2s[: -cfg.patience])
    state = load_train_state(tmp_path / "ckpt")
    assert state.epoch == len(h), "a stopped run still writes its final checkpoint"
    assert [m["epoch"] for m in state.history] == [m["epoch"] for m in h], "the history travels as JSON"

    kept = state.final_weights(cfg)
    model = HyperAutoencoder(architecture_for(cfg, data.in_channels))
    model.load_state_dict(kept)
    layout = token_layout(data.in_channels)
    rec = build_losses(cfg, layout, torch.from_numpy(data.var_tokens))
    val = torch.from_numpy(data.weights["val"])
    r2 = evaluate_reconstruction(model, val, torch.from_numpy(data.mean_params), layout, rec)["r2"]
    assert abs(r2 - max(r2s)) < 1e-5, "the kept weights are the ones that scored the best validation R^2"
    last = state.final_weights(ae_preset("smoke", keep_best=False))
    assert all(torch.equal(last[k], state.model[k]) for k in last)


class ResumingSession(LocalSession):
    """An in-process session that hands the loop a checkpoint directory to resume from."""

    def __init__(self, resume_from: Path) -> None:
        super().__init__()
        self.resume_from = resume_from

    def get_checkpoint(self):
        class Checkpoint:
            def __init__(self, path: Path) -> None:
                self.path = path

            def as_directory(self):
                from contextlib import nullcontext

                return nullcontext(str(self.path))

        return Checkpoint(self.resume_from)


def test_a_resumed_run_continues_where_the_checkpoint_left_off(tiny_zoo, tmp_path):
    """4 epochs, then 2 more from the checkpoint, equal 6 epochs in one go: every epoch's data order
    and augmentation come from (seed, epoch), and without dropout nothing else draws randomness."""
    data = prepare_ae_data(tiny_zoo, ae_preset("smoke", epochs_window=(2, 3)))
    payload = data.training_payload()
    cfg6 = ae_preset("smoke", epochs=6, eval_every=2, checkpoint_every=2, epochs_window=(2, 3), dropout=0.0)
    whole = LocalSession(keep_checkpoints=str(tmp_path / "whole"))
    run_training_loop(LoopConfig(cfg6, payload), whole)
    first = LocalSession(keep_checkpoints=str(tmp_path / "first"))
    run_training_loop(LoopConfig(cfg6.model_copy(update={"epochs": 4}), payload), first)
    second = ResumingSession(tmp_path / "first")
    run_training_loop(LoopConfig(cfg6, payload.as_dict()), second)  # the dict form is accepted too

    assert [m["epoch"] for m in second.history] == [5, 6]
    assert second.history[0]["resumed_from_epoch"] == 4
    for resumed, direct in zip(second.history, whole.history[4:], strict=True):
        assert resumed["train_loss"] == pytest.approx(direct["train_loss"], rel=1e-4)
    for key in ("reconstruction_r2_val", "best_r2_val", "best_epoch"):  # epoch 6 is evaluated
        assert second.history[-1][key] == pytest.approx(whole.history[-1][key], rel=1e-4), key
    assert [m["epoch"] for m in load_train_state(tmp_path / "first").history] == [1, 2, 3, 4]


def test_checkpoint_without_json_is_a_clear_error(tmp_path):
    torch.save({"model": {}, "epoch": 3}, tmp_path / "train_state.pt")
    with pytest.raises(FileNotFoundError, match="older version"):
        load_train_state(tmp_path)


def test_sessions_satisfy_the_protocol():
    assert isinstance(LocalSession(), TrainSession)
    assert all(hasattr(RayTrainSession, m) for m in ("get_checkpoint", "prepare_model", "report"))
    p = TrainingPayload.from_mapping(
        {"train": [[0.0]], "val": [[0.0]], "var_tokens": [[1.0]], "mean_params": [0.0], "in_channels": 1}
    )
    assert p.token_shift.shape == p.var_tokens.shape and (p.token_scale == 1).all()
