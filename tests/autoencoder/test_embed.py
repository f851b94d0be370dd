"""embed and predict with a trained autoencoder, through the CLI."""

import json

import numpy as np
import pyarrow.parquet as pq

from hyperrep_ray.cli.main import main
from hyperrep_ray.store import load_weights
from hyperrep_ray.zoo.weights_io import save_weights


def test_embed_writes_every_checkpoint(trained_ae, tiny_zoo, tmp_path):
    ae_dir, _, _ = trained_ae
    out = tmp_path / "emb.parquet"
    assert main(["embed", "--ae", ae_dir, "--zoo", tiny_zoo, "--out", str(out)]) == 0
    t = pq.read_table(out)
    assert t.num_rows == 10 * 4 and {"model_id", "epoch", "split", "test_acc", "z"} <= set(t.column_names)
    assert not t.select(["model_id", "epoch"]).to_pandas().duplicated().any()
    z = np.stack(t.column("z").to_numpy(zero_copy_only=False))
    assert z.shape[1] == 16 and np.isfinite(z).all() and np.abs(z).max() <= 1


def test_predict_from_weight_files(trained_ae, tiny_zoo, tmp_path, capsys):
    ae_dir, _, _ = trained_ae
    w, df = load_weights(tiny_zoo, epochs=[3])
    files = [str(save_weights(w[i].numpy(), tmp_path / f"m{i}.safetensors")) for i in range(3)]
    assert main(["predict", "--ae", ae_dir, *files, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in rows] == files
    for r in rows:
        assert all(np.isfinite(r[k]) for k in ("test_accuracy", "epoch", "ggap"))
