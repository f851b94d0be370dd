"""The autoencoder stage on real Ray Train (2 DDP workers, gloo), its outputs, MLflow; worker loss (slow)."""

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hyperrep_ray.autoencoder.bundle import HyperRepresentation
from hyperrep_ray.autoencoder.stage import run_ae_stage
from hyperrep_ray.config import ae_preset
from hyperrep_ray.data.images import evaluate_accuracy
from hyperrep_ray.store import StoreError, load_weights
from hyperrep_ray.zoo.cnn import vector_to_model


def test_ddp_training_learns_and_keeps_its_history(trained_ae):
    ae_dir, metrics, _ = trained_ae
    history = json.loads((Path(ae_dir) / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert not any("resumed_from_epoch" in h for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"], "the loss must fall"
    assert metrics["epochs_trained"] == 4
    assert (Path(ae_dir) / "ray_train" / "ae").is_dir()
    assert not list(Path(ae_dir).glob("*.pkl")), "nothing on disk needs unpickling"


@pytest.mark.slow
def test_ddp_training_survives_a_killed_worker(tiny_zoo, tmp_path, mlflow_uri):
    """Worker rank 1 is killed at epoch 5, so the run must come back from a checkpoint (epoch 2 or
    4; the drill fires only in a run that restored none, so a restart from scratch would die again)."""
    cfg = ae_preset("smoke", epochs=6, checkpoint_every=2, num_workers=2, epochs_window=(2, 3))
    metrics = run_ae_stage(tiny_zoo, str(tmp_path / "ae"), cfg, mlflow_uri, kill_worker_at_epoch=5)
    history = json.loads((tmp_path / "ae" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6], "resumed without gaps or repeats"
    assert [h["resumed_from_epoch"] for h in history if "resumed_from_epoch" in h] in ([2], [4])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert metrics["epochs_trained"] == 6


def test_metrics_json_has_every_metric(trained_ae, tiny_zoo, digits):
    ae_dir, metrics, _ = trained_ae
    on_disk = json.loads((Path(ae_dir) / "metrics.json").read_text())
    assert on_disk.keys() == metrics.keys()
    for key in [
        "reconstruction_r2_val",
        "reconstruction_r2_test",
        "reconstruction_r2_test_conv2",
        "original_test_accuracy_mean",
        "reconstructed_test_accuracy_mean",
        "probe_r2_test_test_accuracy",
        "probe_r2_test_epoch",
        "probe_r2_test_ggap",
        "probe_r2_test_test_accuracy_W",
        "probe_r2_test_test_accuracy_sW",
        "interpolation_accuracy_min",
        "noise_accuracy",
    ]:
        assert key in metrics and np.isfinite(metrics[key]), key
    assert 0 <= metrics["reconstructed_test_accuracy_mean"] <= 1
    history = json.loads((Path(ae_dir) / "history.json").read_text())
    evaluated = {h["epoch"]: h["reconstruction_r2_val"] for h in history if "reconstruction_r2_val" in h}
    assert metrics["kept_epoch"] == max(evaluated, key=evaluated.get), "the best-validation weights are kept"
    # original accuracy = the test-split models, one by one, on all held-out digits test images
    w, df = load_weights(tiny_zoo, epochs=[2, 3], split="test")
    accs = [evaluate_accuracy(vector_to_model(v.numpy()), digits.test_x, digits.test_y)[0] for v in w]
    assert metrics["original_test_accuracy_mean"] == pytest.approx(np.mean(accs), abs=1e-6)
    for fig in ("interpolation_accuracy.png", "noise_accuracy.png", "reconstruction_accuracy.png"):
        assert (Path(ae_dir) / fig).stat().st_size > 1000


def test_saved_bundle_loads_and_embeds_like_the_trained_one(trained_ae, tiny_zoo):
    ae_dir, _, _ = trained_ae
    bundle = HyperRepresentation.load(ae_dir)
    w, df = load_weights(tiny_zoo, epochs=[3])
    z = bundle.encode(w.numpy())
    assert z.shape == (len(df), bundle.cfg.d_z) and np.abs(z).max() <= 1
    np.testing.assert_array_equal(z, HyperRepresentation.load(ae_dir).encode(w.numpy()))
    assert bundle.decode(z).shape == w.shape
    with pytest.raises(ValueError, match="NaN"):
        bundle.encode(np.full((1, 2464), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\(M, 2464\)"):
        bundle.encode(np.zeros((1, 100), np.float32))


def test_stage_is_tracked_in_mlflow(trained_ae, tiny_zoo):
    _, metrics, uri = trained_ae
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hyperrep_ray")
    (run,) = client.search_runs([exp.experiment_id], "tags.stage = 'ae'")
    assert run.data.params["d_token"] == "32" and run.data.params["lwln"] == "True"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert steps[-1] == 4 and 1 in steps
    # final metrics are grouped by split in the UI: test/..., val/..., train/...
    assert run.data.metrics["test/reconstruction_r2"] == pytest.approx(metrics["reconstruction_r2_test"])
    assert run.data.metrics["val/reconstruction_r2"] == pytest.approx(metrics["reconstruction_r2_val"])
    note = run.data.tags["mlflow.note.content"]
    assert (
        f"test R² {metrics['reconstruction_r2_test']:.3f}" in note
        and f"epoch {metrics['kept_epoch']}" in note
    )
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.source_type == "local" and tiny_zoo in dataset.dataset.source
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "config.json", "ae.json", "interpolation_accuracy.png"} <= artifacts
    # the autoencoder is an MLflow model of this run that loads back and embeds weights
    import mlflow

    mlflow.set_tracking_uri(uri)
    (model,) = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
    assert model.source_run_id == run.info.run_id
    (version,) = client.search_model_versions("name = 'hyperrep-digits-smoke'")
    assert version.run_id == run.info.run_id and version.description == note
    w, _ = load_weights(tiny_zoo, epochs=[3])
    z = mlflow.pyfunc.load_model(f"models:/hyperrep-digits-smoke/{version.version}").predict(w.numpy())
    np.testing.assert_allclose(z, HyperRepresentation.load(trained_ae[0]).encode(w.numpy()), atol=1e-6)


def test_existing_run_needs_resume(trained_ae, tiny_zoo):
    ae_dir, _, uri = trained_ae
    with pytest.raises(StoreError, match="--resume"):
        run_ae_stage(tiny_zoo, ae_dir, ae_preset("smoke"), uri)


def test_window_outside_the_store_is_a_clear_error(tiny_zoo, tmp_path, mlflow_uri):
    with pytest.raises(StoreError, match="outside the epochs recorded"):
        run_ae_stage(tiny_zoo, str(tmp_path / "ae"), ae_preset("smoke", epochs_window=(21, 25)), mlflow_uri)
