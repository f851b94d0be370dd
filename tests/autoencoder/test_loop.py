"""The training loop's model selection: the best-validation weights are kept and patience stops
a run whose validation R^2 no longer improves (in-process loop; Ray Train runs it in
test_ae_stage.py)."""

import shutil
from pathlib import Path

import torch

from hyperrep_ray.autoencoder.bundle import architecture_for
from hyperrep_ray.autoencoder.data import prepare_ae_data
from hyperrep_ray.autoencoder.loop import (
    _BestTracker,
    build_losses,
    evaluate_reconstruction,
    final_weights,
    run_training_loop,
)
from hyperrep_ray.autoencoder.model import HyperAutoencoder
from hyperrep_ray.config import ae_preset
from hyperrep_ray.weightspace.tokens import token_layout


def _tiny_model(value: float) -> torch.nn.Module:
    m = torch.nn.Linear(2, 1)
    torch.nn.init.constant_(m.weight, value)
    return m


def test_tracker_keeps_the_best_weights_and_counts_patience():
    t = _BestTracker(patience=2)
    assert not t.update(0.1, 1, _tiny_model(1.0))
    assert not t.update(0.3, 2, _tiny_model(2.0))
    assert not t.update(0.2, 3, _tiny_model(3.0)), "one evaluation without improvement is within patience"
    assert t.update(0.25, 4, _tiny_model(4.0)), "the second one exhausts it"
    assert (t.r2, t.epoch) == (0.3, 2)
    assert float(t.weights["weight"][0, 0]) == 2.0, "the weights are a copy taken at the best evaluation"
    again = _BestTracker(patience=2)
    again.restore(t.state())
    assert again.update(0.29, 5, _tiny_model(5.0)), "a resumed run keeps counting where it stopped"
    assert not _BestTracker(patience=0).update(-1.0, 1, _tiny_model(0.0)), "patience 0 never stops"


class _KeepingSession:
    """Rank 0 of 1 in this process; keeps the last checkpoint's directory contents."""

    rank, world, device = 0, 1, torch.device("cpu")

    def __init__(self, keep: Path) -> None:
        self.keep, self.history = keep, []

    def get_checkpoint(self):
        return None

    def prepare_model(self, model):
        return model

    def checkpoint_from_directory(self, path: str):
        shutil.copytree(path, self.keep, dirs_exist_ok=True)
        return path

    def report(self, metrics, checkpoint=None):  # noqa: ARG002
        self.history.append(metrics)


def test_loop_keeps_the_best_validation_weights(tiny_zoo, tmp_path):
    cfg = ae_preset("smoke", epochs=8, eval_every=1, patience=2, lr=3e-3, epochs_window=(2, 3))
    data = prepare_ae_data(tiny_zoo, cfg)
    session = _KeepingSession(tmp_path / "ckpt")
    run_training_loop({"cfg": cfg.model_dump(), "payload": data.worker_payload()}, session)

    h = session.history
    r2s = [m["reconstruction_r2_val"] for m in h]
    assert [m["best_r2_val"] for m in h] == [max(r2s[: i + 1]) for i in range(len(r2s))]
    if len(h) < cfg.epochs:  # stopped early: only after `patience` evaluations without a better R^2
        assert h[-1]["early_stopped"] == 1.0
        assert max(r2s[-cfg.patience :]) <= max(r2s[: -cfg.patience])
    state = torch.load(tmp_path / "ckpt" / "train_state.pt", weights_only=False)
    assert state["epoch"] == len(h), "a stopped run still writes its final checkpoint"

    kept = final_weights(cfg, state)
    model = HyperAutoencoder(architecture_for(cfg, data.in_channels))
    model.load_state_dict(kept)
    layout = token_layout(data.in_channels)
    rec = build_losses(cfg, layout, torch.from_numpy(data.var_tokens))
    val = torch.from_numpy(data.weights["val"])
    r2 = evaluate_reconstruction(model, val, torch.from_numpy(data.mean_params), layout, rec)["r2"]
    assert abs(r2 - max(r2s)) < 1e-5, "the kept weights are the ones that scored the best validation R^2"
    last = final_weights(ae_preset("smoke", keep_best=False), state)
    assert all(torch.equal(last[k], state["model"][k]) for k in last)
