"""Every bad input a user can hand the commands is one line on stderr and exit status 2, never a
traceback; files planted where a command reads (a model, the autoencoder's weights, old pickles)
run no code. The autoencoder is the session's ``trained_ae``, copied before anything is planted."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from hyperrep_ray.autoencoder.bundle import HyperRepresentation, NotABundleError
from hyperrep_ray.autoencoder.train_state import JSON_FILE, TENSORS_FILE, load_train_state
from hyperrep_ray.cli.main import main
from hyperrep_ray.zoo.cnn import build_model, model_to_vector, num_params, vector_to_state_dict
from hyperrep_ray.zoo.weights_io import save_weights
from tests.data.formats import write_cifar10


class Planted:
    """Unpickling this would create ``marker``: what a malicious file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def fails(argv: list[str], capsys, *fragments: str) -> str:
    """Run ``hyperrep argv``; it must exit 2 with one error line holding every fragment."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("hyperrep")]
    assert len(lines) == 1 and lines[0].startswith(f"hyperrep {argv[0]}: error: "), err
    assert err.strip().endswith(lines[0])
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def usage_error(argv: list[str], capsys, fragment: str) -> None:
    """argparse's refusal of a flag value: exit 2, usage plus one error line, no traceback."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert fragment in err.strip().splitlines()[-1]


@pytest.fixture
def ae_copy(trained_ae, tmp_path) -> Path:
    """The trained autoencoder's files, copied: tests plant files here, never in the shared one."""
    dst = tmp_path / "ae"
    dst.mkdir()
    for f in Path(trained_ae[0]).iterdir():
        if f.is_file():
            shutil.copy2(f, dst / f.name)
    return dst


@pytest.fixture
def good_model(tmp_path) -> Path:
    return save_weights(
        model_to_vector(build_model(1, "tanh", "default", seed=3)), tmp_path / "m.safetensors"
    )


def test_predict_refuses_bad_weight_files(ae_copy, good_model, tmp_path, capsys):
    ae = str(ae_copy)
    assert main(["predict", "--ae", ae, str(good_model), "--json"]) == 0
    capsys.readouterr()
    sd = vector_to_state_dict(model_to_vector(build_model(1, "tanh", "default", seed=3)), 1)
    save_file({**sd, "conv1.weight": torch.zeros(8, 1, 3, 3)}, str(tmp_path / "shape.safetensors"))
    shape = str(tmp_path / "shape.safetensors")
    fails(["predict", "--ae", ae, shape], capsys, "conv1.weight has shape (8, 1, 3, 3), the zoo CNN needs")
    for value, name in ((np.nan, "nan"), (np.inf, "inf")):
        vec = np.zeros(num_params(1), np.float32)
        vec[-1] = value
        path = save_weights(vec, tmp_path / f"{name}.safetensors")
        fails(["predict", "--ae", ae, str(path)], capsys, f"{path}: NaN or inf values in fc2.bias")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    empty = str(tmp_path / "empty.safetensors")
    fails(["predict", "--ae", ae, empty], capsys, "empty.safetensors is not a readable safetensors")
    (tmp_path / "empty.pt").write_bytes(b"")
    fails(["predict", "--ae", ae, str(tmp_path / "empty.pt")], capsys, "empty.pt is not a readable PyTorch")
    (tmp_path / "junk.pt").write_bytes(b"junk bytes")
    fails(["predict", "--ae", ae, str(tmp_path / "junk.pt")], capsys, "junk.pt is not a readable PyTorch")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    fails(["predict", "--ae", ae, str(tmp_path / "tensor.pt")], capsys, "holds a Tensor, not a state_dict")
    rgb = save_weights(np.zeros(num_params(3), np.float32), tmp_path / "rgb.safetensors")
    fails(["predict", "--ae", ae, str(rgb)], capsys, "2864 parameters", "2464 parameters")
    fails(["predict", "--ae", ae, str(tmp_path / "none.safetensors")], capsys, "no weights file at")


def test_planted_files_run_no_code(ae_copy, good_model, tiny_zoo, tmp_path, capsys):
    marker = tmp_path / "planted_marker"
    torch.save(Planted(marker), tmp_path / "evil.pt")  # a real torch.save file holding the payload
    evil = ["predict", "--ae", str(ae_copy), str(tmp_path / "evil.pt")]
    line = fails(evil, capsys, "evil.pt is not a readable")
    assert "Python objects besides tensors, which are refused" in line and "\x1b" not in line
    assert not marker.exists()

    (ae_copy / "probes.pkl").write_bytes(pickle.dumps(Planted(marker)))
    for name in ("probes.json", "probes.npz"):
        (ae_copy / name).unlink()
    fails(["predict", "--ae", str(ae_copy), str(good_model)], capsys, "only probes.pkl", "not loaded")
    assert not marker.exists()

    torch.save(Planted(marker), ae_copy / "model.pt")
    line = fails(["predict", "--ae", str(ae_copy), str(good_model)], capsys, "model.pt is not the weights")
    assert "retrain" in line and "Python objects besides tensors" in line and "trust" not in line
    out = tmp_path / "z.parquet"
    fails(
        ["embed", "--ae", str(ae_copy), "--zoo", tiny_zoo, "--out", str(out)], capsys, "model.pt is not the"
    )
    assert not out.exists()
    with pytest.raises(NotABundleError):
        HyperRepresentation.load(ae_copy)
    assert not marker.exists()


def test_planted_training_state_runs_no_code(tmp_path):
    """A checkpoint's tensors file is read with weights_only; an old pickled state is not read."""
    marker = tmp_path / "planted_marker"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save(Planted(marker), ckpt / TENSORS_FILE)
    with pytest.raises(FileNotFoundError, match="older version"):
        load_train_state(ckpt)
    (ckpt / JSON_FILE).write_text('{"epoch": 1, "history": [], "best": null}')
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_train_state(ckpt)
    assert not marker.exists()


def test_embed_and_predict_refuse_what_is_not_theirs(ae_copy, tiny_zoo, tmp_path, capsys):
    not_ae = tmp_path / "not_ae"
    not_ae.mkdir()
    out = str(tmp_path / "z.parquet")
    for argv in (
        ["predict", "--ae", str(not_ae), "x.safetensors"],
        ["embed", "--ae", str(not_ae), "--zoo", tiny_zoo, "--out", out],
    ):
        fails(argv, capsys, f"{not_ae} is not a trained autoencoder (missing model.pt, ae.json")
    (ae_copy / "ae.json").write_text("{not json")
    fails(["embed", "--ae", str(ae_copy), "--zoo", tiny_zoo, "--out", out], capsys, "ae.json is not JSON")
    assert not Path(out).exists()


def test_planted_cifar_batch_is_refused_by_evaluate(trained_ae, tmp_path, capsys):
    marker = tmp_path / "planted_marker"
    write_cifar10(tmp_path / "data")
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Planted(marker)))
    samples = str(tmp_path / "s.parquet")
    assert main(["sample", "--ae", trained_ae[0], "--n", "2", "--out", samples]) == 0
    argv = ["evaluate", "--samples", samples, "--ae", trained_ae[0], "--out", str(tmp_path / "o")]
    argv += ["--dataset", "cifar10", "--data-root", str(tmp_path / "data")]
    fails(argv, capsys, "test_batch is not a CIFAR-10 batch: it asks to load", "Re-download")
    assert not marker.exists()


def test_embed_epochs_must_be_in_the_zoo(trained_ae, tiny_zoo, tmp_path, capsys):
    out = tmp_path / "z.parquet"
    base = ["embed", "--ae", trained_ae[0], "--zoo", tiny_zoo, "--out", str(out)]
    fails([*base, "--epochs", "1", "99"], capsys, "no checkpoints of epoch(s) [99]", "records epochs 0..3")
    usage_error([*base, "--epochs", "-1"], capsys, "expected an integer >= 0, got -1")
    fails([*base[:3], "--zoo", str(tmp_path / "nozoo"), "--out", str(out)], capsys, "no weight store at")
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["sample", "--ae", "A", "--out", "s.parquet", "--n", "0"], "expected a positive integer, got 0"),
        (["sample", "--ae", "A", "--out", "s", "--bandwidth", "0"], "expected a positive, finite number"),
        (["sample", "--ae", "A", "--out", "s.parquet", "--bandwidth", "nan"], "got nan"),
        (["generate", "--ae", "A", "--out", "g", "--n", "-3"], "expected a positive integer, got -3"),
        (["evaluate", "--samples", "s", "--ae", "A", "--out", "o", "--finetune-epochs", "0,-1"], ">= 0"),
        (["embed", "--ae", "A", "--zoo", "Z", "--out", "o", "--epochs", "x"], "expected an integer >= 0"),
    ],
)
def test_non_positive_sizes_and_counts_are_refused(argv, fragment, capsys):
    usage_error(argv, capsys, fragment)
