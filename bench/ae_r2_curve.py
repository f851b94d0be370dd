#!/usr/bin/env python
"""Train-split vs test-split reconstruction R^2 of one autoencoder config, every few epochs.

Runs the package's own training loop (``autoencoder.loop.run_training_loop``) in this process (one
worker, no Ray) on a zoo's epoch window, with AE-config overrides given as JSON, and prints R^2
on 500 train checkpoints and on the whole test split every ``--every`` epochs: the curve that shows
whether a setting generalises or memorises.

    python bench/ae_r2_curve.py --zoo runs/qp/zoo \
        --set '{"compression": "sequence", "standardize": "coordinate"}'
    python bench/ae_r2_curve.py --quick     # smoke preset, 4 epochs, on a smoke digits zoo (built if needed)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import torch
from _common import ROOT
from zoo_size import train_subset

sys.path.insert(0, str(ROOT))

from hyperrep_ray.autoencoder.data import AEData, prepare_ae_data  # noqa: E402
from hyperrep_ray.autoencoder.loop import (  # noqa: E402
    LoopConfig,
    build_losses,
    evaluate_reconstruction,
    run_training_loop,
)
from hyperrep_ray.autoencoder.scoring import Score, zoo_scorer  # noqa: E402
from hyperrep_ray.autoencoder.session import LocalSession  # noqa: E402
from hyperrep_ray.config import AEConfig, ae_preset  # noqa: E402
from hyperrep_ray.weightspace.tokens import token_layout, tokens_to_vectors, vectors_to_tokens  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", default=None, help="a weight store (default with --quick: a smoke digits zoo)")
    p.add_argument("--quick", action="store_true", help="smoke preset, 4 epochs, R^2 every 2")
    p.add_argument("--preset", default="quick", choices=["smoke", "quick", "paper"])
    p.add_argument("--set", default="{}", help="JSON of AEConfig overrides")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--train-models",
        type=int,
        help="train on this many (random) train-split models only: does test R^2 grow with the zoo? "
        "(statistics are refitted on them; the alignment reference stays the whole split's)",
    )
    p.add_argument(
        "--accuracy",
        type=int,
        default=0,
        metavar="N",
        help="also decode N test models and report their mean test-image accuracy (and the originals')",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.preset, args.epochs, args.every = "smoke", 4, 2
    if args.zoo is None:
        if not args.quick:
            p.error("--zoo is required (or --quick, which builds a smoke zoo)")
        from _smoke import smoke_zoo

        args.zoo = smoke_zoo()
    return args


def r2_hook(args: argparse.Namespace, cfg: AEConfig, data: AEData, score: Score | None):
    """The loop's epoch hook: every ``--every`` epochs, one table row of train/test R^2 (and the
    decoded accuracy of ``--accuracy`` test models)."""
    layout = token_layout(data.in_channels)
    train = torch.from_numpy(data.weights["train"][:500])
    test = torch.from_numpy(data.weights["test"])
    mean = torch.from_numpy(data.mean_params)
    rec_fn = build_losses(cfg, layout, torch.from_numpy(data.var_tokens))
    acc_w = test[: args.accuracy]

    def hook(model: torch.nn.Module, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        if epoch % args.every and epoch != cfg.epochs:
            return {}
        with torch.no_grad():
            r_train = evaluate_reconstruction(model, train, mean, layout, rec_fn)["r2"]
            r_test = evaluate_reconstruction(model, test, mean, layout, rec_fn)["r2"]
            acc = float("nan")
            if score is not None:
                was = model.training
                model.eval()
                recon = tokens_to_vectors(model(vectors_to_tokens(acc_w, layout))[1], layout)
                model.train(was)
                acc = float(score(recon.numpy()).mean())
        val = metrics.get("reconstruction_r2_val", float("nan"))
        secs = metrics["seconds"]
        print(f"| {epoch} | {r_train:.4f} | {r_test:.4f} | {val:.4f} | {acc:.4f} | {secs:.0f} |", flush=True)
        return {"train_r2": r_train, "test_r2": r_test}

    return hook


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # the loop sets its threads from it
    cfg = ae_preset(args.preset, **{**json.loads(args.set), "epochs": args.epochs, "eval_every": args.every})
    data = prepare_ae_data(args.zoo, cfg)
    if args.train_models:
        data = train_subset(data, args.train_models, cfg, cfg.seed)
    score = None
    if args.accuracy:
        score = zoo_scorer(args.zoo, data.activation)
        acc_w = data.weights["test"][: args.accuracy]
        print(
            f"{len(acc_w)} test models: original accuracy {score(acc_w).mean():.4f}, "
            f"the train mean model's {score(data.mean_params[None])[0]:.4f}",
            flush=True,
        )
    print("| epoch | train R² | test R² | val R² | reconstructed acc | s |", flush=True)
    print("|---:|---:|---:|---:|---:|---:|", flush=True)
    loop = LoopConfig(cfg, data.training_payload(), epoch_hook=r2_hook(args, cfg, data, score))
    run_training_loop(loop, LocalSession())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
