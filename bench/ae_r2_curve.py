#!/usr/bin/env python
"""Train-split vs test-split reconstruction R^2 of one autoencoder config, every few epochs.

Runs the package's own training loop (``train_ae.run_training_loop``) in this process (one
worker, no Ray) on a zoo's epoch window, with AE-config overrides given as JSON, and prints R^2
on 500 train checkpoints and on the whole test split every ``--every`` epochs: the curve that shows
whether a setting generalises or memorises (issue 3's table was made with it).

    python bench/ae_r2_curve.py --zoo runs/qp/zoo \
        --set '{"compression": "sequence", "standardize": "coordinate"}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from _common import ROOT

sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", required=True)
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "paper"])
    p.add_argument("--set", default="{}", help="JSON of AEConfig overrides")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch
    from ae_training import LocalSession  # the in-process session of the training benchmark

    from hyperrep_ray.ae_data import prepare_ae_data
    from hyperrep_ray.config import ae_preset
    from hyperrep_ray.tokens import token_layout
    from hyperrep_ray.train_ae import _losses, evaluate_reconstruction, run_training_loop

    cfg = ae_preset(args.preset, **{**json.loads(args.set), "epochs": args.epochs, "eval_every": args.every})
    data = prepare_ae_data(args.zoo, cfg)
    layout = token_layout(data.in_channels)
    train = torch.from_numpy(data.weights["train"][:500])
    test = torch.from_numpy(data.weights["test"])
    mean = torch.from_numpy(data.mean_params)
    rec_fn = _losses(cfg, layout, torch.from_numpy(data.var_tokens))
    print("| epoch | train R² | test R² | val R² | s |\n|---:|---:|---:|---:|---:|", flush=True)

    def hook(model, epoch, metrics):
        if epoch % args.every and epoch != cfg.epochs:
            return {}
        with torch.no_grad():
            r_train = evaluate_reconstruction(model, train, mean, layout, rec_fn)["r2"]
            r_test = evaluate_reconstruction(model, test, mean, layout, rec_fn)["r2"]
        val = metrics.get("reconstruction_r2_val", float("nan"))
        secs = metrics["seconds"]
        print(f"| {epoch} | {r_train:.4f} | {r_test:.4f} | {val:.4f} | {secs:.0f} |", flush=True)
        return {"train_r2": r_train, "test_r2": r_test}

    loop_config = {"cfg": cfg.model_dump(), "payload": data.worker_payload(), "epoch_hook": hook}
    run_training_loop(loop_config, LocalSession())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
