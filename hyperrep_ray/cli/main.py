"""`hyperrep`: one subcommand per stage of the pipeline (see DESIGN.md).

hyperrep zoo --preset quick --out runs/quick/zoo       train a model zoo into a Parquet store
hyperrep zoo-info runs/quick/zoo                        summarise a store
hyperrep sample --ae AE --method kde30 --n 50 --out s.parquet     sample embeddings z
hyperrep evaluate --samples s.parquet --ae AE --out DIR          decode, evaluate and fine-tune them
hyperrep generate --ae AE --n 10 --out DIR                       write sampled models as safetensors
hyperrep experiments --ae AE --baseline-ae AE0 --zoo Z --out DIR the paper's experiments (tables, figures)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.config import PRESETS, ConfigError, load_json_config, zoo_preset
from hyperrep_ray.io import write_with

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class CommandError(ValueError):
    """A problem with the user's input found while running a command (printed without a traceback)."""


def command(name: str):
    def wrap(fn):
        COMMANDS[name] = fn
        return fn

    return wrap


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive, finite number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _int_list(minimum: int):
    """argparse type: comma-separated integers >= minimum ("0,1,5,25")."""

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers such as 0,1,5,25, got {text!r}"
            ) from None
        if not values or min(values) < minimum:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers >= {minimum} such as 0,1,5,25, got {text!r}"
            )
        return values

    return parse


def _method_list(text: str) -> list[str]:
    from hyperrep_ray.sampling.samplers import SAMPLERS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in SAMPLERS]
    if not methods or bad:
        raise argparse.ArgumentTypeError(
            f"unknown sampling method(s) {bad or [text]}; choose from {', '.join(SAMPLERS)} (comma-separated)"
        )
    return methods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperrep",
        description="Hyper-representations of neural-network weights on Ray: train model zoos, learn a "
        "weight autoencoder, sample and evaluate new weights. Every stage is tracked in MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    z = sub.add_parser(
        "zoo",
        help="train a population of zoo CNNs into a Parquet weight store (Ray Tasks)",
        description="Train a model zoo (paper Tables 5-7) into a Parquet weight store. Rerunning the same "
        "command resumes: finished shards are kept, missing ones are trained.",
    )
    z.add_argument(
        "--preset", choices=PRESETS, default="quick", help="sizes: smoke (tests), quick (default), paper"
    )
    z.add_argument(
        "--dataset", default="digits", help="digits (embedded, default), mnist, svhn, cifar10, stl10"
    )
    z.add_argument("--data-root", help="directory with the torchvision data set (not needed for digits)")
    z.add_argument(
        "--download", action="store_true", help="download the data set into --data-root (needs internet)"
    )
    z.add_argument("--out", required=True, help="store directory or URI (s3://, gs://)")
    z.add_argument("--models", type=int, dest="num_models", help="number of models (overrides the preset)")
    z.add_argument("--epochs", type=int, help="training epochs; checkpoints are kept for 0..EPOCHS")
    z.add_argument("--seed-offset", type=int, help="model i uses seed SEED_OFFSET + i + 1")
    z.add_argument("--lr", type=float)
    z.add_argument("--weight-decay", type=float)
    z.add_argument("--activation", choices=["tanh", "gelu", "relu", "sigmoid"])
    z.add_argument(
        "--init", choices=["uniform", "normal", "kaiming_uniform", "kaiming_normal", "xavier", "default"]
    )
    z.add_argument("--batch-size", type=int)
    z.add_argument("--population-size", type=int, help="models trained together as one batched module")
    z.add_argument("--models-per-shard", type=int, help="models per Ray Task and per Parquet file")
    z.add_argument("--gpus-per-task", type=float, dest="num_gpus_per_task")
    z.add_argument("--config", help="JSON file with ZooConfig fields (CLI flags win)")
    _add_common(z)

    a = sub.add_parser(
        "train-ae",
        help="train the hyper-representation autoencoder on a zoo (Ray Train DDP)",
        description="Train the transformer autoencoder on the train split of a zoo (checkpoints of the "
        "epoch window), validate on val, report on test; writes the model, metrics.json and figures.",
    )
    a.add_argument("--zoo", required=True, help="weight store written by `hyperrep zoo`")
    a.add_argument("--out", required=True, help="output directory for the trained autoencoder")
    a.add_argument("--preset", choices=PRESETS, default="quick")
    a.add_argument("--config", help="JSON file with AEConfig fields (e.g. best_config.json of a sweep)")
    a.add_argument("--epochs-window", type=int, nargs=2, metavar=("LO", "HI"), help="zoo epochs to train on")
    a.add_argument("--epochs", type=int, help="autoencoder training epochs")
    a.add_argument("--no-lwln", action="store_true", help="plain MSE instead of layer-wise normalisation")
    a.add_argument("--no-align", action="store_true", help="skip the canonical neuron order")
    a.add_argument("--permute", action="store_true", help="random permutation augmentation (the paper's)")
    a.add_argument("--workers", type=int, dest="num_workers", help="Ray Train workers (DDP)")
    a.add_argument("--gpus", action="store_true", help="one GPU per worker")
    a.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    a.add_argument(
        "--data-root", help="image data set directory (for accuracy metrics; not needed for digits)"
    )
    _add_common(a)

    e = sub.add_parser("embed", help="write the hyper-representation z of every checkpoint of a zoo")
    e.add_argument("--ae", required=True, help="trained autoencoder directory")
    e.add_argument("--zoo", required=True)
    e.add_argument("--out", required=True, help="Parquet file to write")
    e.add_argument("--epochs", type=int, nargs="*", help="only these zoo epochs (default: all)")

    p = sub.add_parser(
        "predict",
        help="predict test accuracy, epoch and generalisation gap of models from their weights alone",
    )
    p.add_argument("--ae", required=True, help="trained autoencoder directory (with its fitted probes)")
    p.add_argument("weights", nargs="+", help="zoo-CNN weight files (.safetensors or .pt state_dict)")
    p.add_argument("--json", action="store_true")

    from hyperrep_ray.sampling.samplers import SAMPLERS

    methods = ", ".join(f"{k} ({v})" for k, v in SAMPLERS.items())
    s = sub.add_parser(
        "sample",
        help="sample new embeddings z around a trained autoencoder's anchors (Parquet: sample_id, z)",
        description=f"Draw embeddings with one of the paper's samplers: {methods}.",
    )
    s.add_argument("--ae", required=True, help="trained autoencoder directory (with anchors.npz)")
    s.add_argument("--method", choices=list(SAMPLERS), default="kde30", help="sampler (default kde30)")
    s.add_argument("--n", type=_positive_int, default=50, help="number of samples (default 50)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--bandwidth", type=_positive_float, help="KDE bandwidth (default 0.002)")
    s.add_argument("--out", required=True, help="Parquet file to write (sample_id, z)")

    v = sub.add_parser(
        "evaluate",
        help="decode sampled embeddings, score them and fine-tune them (Ray Data)",
        description="Decode the embeddings of a `hyperrep sample` file with the autoencoder, score the "
        "models on the data set's test images as they are (epoch 0) and after each fine-tuning epoch given.",
    )
    v.add_argument("--samples", required=True, help="Parquet file written by `hyperrep sample`")
    v.add_argument("--ae", required=True, help="the autoencoder the samples were drawn from")
    v.add_argument("--dataset", help="digits, mnist, svhn, cifar10, stl10 (default: the autoencoder's)")
    v.add_argument("--data-root", help="directory with the torchvision data set (not needed for digits)")
    v.add_argument(
        "--finetune-epochs",
        type=_int_list(0),
        default=[0, 1, 5, 25],
        help="comma-separated fine-tuning epochs to record (default 0,1,5,25)",
    )
    v.add_argument("--seed", type=int, default=0, help="fine-tuning data-order seed")
    v.add_argument(
        "--population", help="population name in the results (default: the sampler's, e.g. S_KDE30)"
    )
    v.add_argument("--out", required=True, help="output directory (rows/, summary.json, table.md)")
    _add_common(v)

    g = sub.add_parser(
        "generate",
        help="sample, decode and write new models as safetensors files",
        description="Write N sampled, decoded zoo-CNN models (model_000.safetensors, ...) and "
        "generated.json.",
    )
    g.add_argument("--ae", required=True, help="trained autoencoder directory (with anchors.npz)")
    g.add_argument("--n", type=_positive_int, default=10, help="number of models (default 10)")
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--method", choices=list(SAMPLERS), default="kde30", help="sampler (default kde30)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--bandwidth", type=_positive_float, help="KDE bandwidth (default 0.002)")

    x = sub.add_parser(
        "experiments",
        help="the paper's experiments: samplers, Table 1, ensembles, transfer, unseen zoo",
        description="Run every experiment of the 2022 paper (Figure 4, Table 1, Figure 5, Table 2, "
        "Table 3 and the statistics of Appendix F) on one zoo and its autoencoders; writes DIR/summary.json, "
        "DIR/report.md and tables and figures per experiment, and logs to MLflow.",
    )
    x.add_argument("--ae", required=True, help="the autoencoder (with LWLN)")
    x.add_argument(
        "--baseline-ae", help="the baseline autoencoder without LWLN (B_KDE30; left out if absent)"
    )
    x.add_argument("--zoo", required=True, help="the zoo the autoencoders were trained on")
    x.add_argument("--out", required=True, help="output directory")
    x.add_argument(
        "--other-zoo", help="a zoo the autoencoder never saw (unseen-zoo experiment; skipped if absent)"
    )
    x.add_argument("--n", type=_positive_int, default=50, help="models per population (default 50)")
    x.add_argument("--finetune-epochs", type=_int_list(0), default=[0, 1, 5, 25], help="default 0,1,5,25")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--data-root", help="directory with the torchvision data sets (not needed for digits)")
    x.add_argument(
        "--methods", type=_method_list, default=list(SAMPLERS), help="samplers for Figure 4 (default: all)"
    )
    x.add_argument("--gan-epochs", type=_non_negative_int, help="latent GAN epochs (default 1000)")
    x.add_argument("--bandwidth", type=_positive_float, help="KDE bandwidth (default 0.002)")
    x.add_argument("--ensemble-sizes", type=_int_list(1), default=[1, 2, 3, 5, 10], help="default 1,2,3,5,10")
    x.add_argument(
        "--ensemble-repeats", type=_positive_int, default=15, help="ensembles per size (default 15)"
    )
    x.add_argument(
        "--decode-on-driver",
        action="store_true",
        help="decode sampled embeddings in this process instead of Ray Data decoder actors (same numbers; "
        "faster for small populations on a CPU)",
    )
    x.add_argument(
        "--gpus-per-task",
        type=_non_negative_float,
        default=0.0,
        dest="num_gpus",
        help="GPUs per decoding / fine-tuning task, e.g. 0.25 (default 0: CPU only)",
    )
    _add_common(x)

    i = sub.add_parser(
        "zoo-info", help="summarise a weight store: models, epochs, splits, accuracy quantiles"
    )
    i.add_argument("store", help="store directory or URI")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")

    from hyperrep_ray.tune.sweep import add_sweep_arguments

    t = sub.add_parser(
        "tune",
        help="Ray Tune sweep of beta, d_token, d_hidden, d_z, lr and KDE bandwidth; writes best_config.json",
        description="Sweep the autoencoder's hyperparameters on a zoo (ASHA + Optuna), scored on the zoo's "
        "val models and held-out training images. Rerunning the same command resumes an interrupted sweep.",
    )
    add_sweep_arguments(t)
    return parser


def _overrides(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


@command("zoo")
def _zoo(args: argparse.Namespace) -> int:
    from hyperrep_ray.zoo.figures import zoo_summary_markdown
    from hyperrep_ray.zoo.stage import run_zoo_stage

    values = load_json_config(args.config) if args.config else {}
    values.update(
        _overrides(
            args,
            [
                "data_root",
                "num_models",
                "epochs",
                "seed_offset",
                "lr",
                "weight_decay",
                "activation",
                "init",
                "batch_size",
                "population_size",
                "models_per_shard",
                "num_gpus_per_task",
            ],
        )
    )
    if args.download:
        values["download"] = True
    cfg = zoo_preset(args.preset, values.pop("dataset", args.dataset), **values)
    result, summary = run_zoo_stage(cfg, args.out, args.tracking_uri, progress=not args.no_progress)
    print(zoo_summary_markdown(summary, [0, 1, 5, 10, 25, 50]))
    print(
        f"\nstore: {args.out} ({len(result.trained_shards)} shard(s) trained, "
        f"{len(result.skipped_shards)} already complete) in {result.seconds:.1f} s"
    )
    return 0


@command("zoo-info")
def _zoo_info(args: argparse.Namespace) -> int:
    from hyperrep_ray.zoo.figures import zoo_summary_markdown
    from hyperrep_ray.zoo.train import zoo_summary

    summary = zoo_summary(args.store)
    print(json.dumps(summary, indent=2) if args.json else zoo_summary_markdown(summary))
    return 0


def _ae_config(args: argparse.Namespace, dataset: str):
    from hyperrep_ray.config import ae_preset

    values = load_json_config(args.config) if args.config else {}
    values.update(_overrides(args, ["epochs", "num_workers"]))
    if args.epochs_window:
        values["epochs_window"] = tuple(args.epochs_window)
    if args.no_lwln:
        values["lwln"] = False
    if args.no_align:
        values["align"] = False
    if args.permute:
        values["permute"] = True
    if args.gpus:
        values["use_gpu"] = True
    return ae_preset(args.preset, dataset, **values)


@command("train-ae")
def _train_ae(args: argparse.Namespace) -> int:
    from hyperrep_ray.autoencoder.stage import run_ae_stage
    from hyperrep_ray.store import read_zoo_meta

    cfg = _ae_config(args, read_zoo_meta(args.zoo)["dataset"])
    metrics = run_ae_stage(
        args.zoo, args.out, cfg, args.tracking_uri, resume=args.resume, data_root=args.data_root
    )
    keys = [k for k in metrics if not k.startswith("reconstruction_r2_") or k.count("_") == 3]
    width = max(len(k) for k in keys)
    for k in keys:
        v = metrics[k]
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print(f"\nautoencoder: {args.out} (metrics.json, figures, model)")
    return 0


@command("embed")
def _embed(args: argparse.Namespace) -> int:
    from hyperrep_ray.autoencoder.embed import embed_store

    n = embed_store(args.ae, args.zoo, args.out, epochs=args.epochs)
    print(f"wrote {n} embeddings to {args.out}")
    return 0


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from hyperrep_ray.autoencoder.embed import predict_properties

    rows = predict_properties(args.ae, args.weights)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'file':<40} {'test_accuracy':>13} {'epoch':>7} {'ggap':>7}")
        for r in rows:
            print(f"{r['file'][-40:]:<40} {r['test_accuracy']:>13.3f} {r['epoch']:>7.1f} {r['ggap']:>7.3f}")
    return 0


def _quiet_ray_data(args: argparse.Namespace) -> None:
    if getattr(args, "no_progress", False):
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False


def _load_samples(path: str) -> tuple[Any, Any, dict[str, str]]:
    """(sample_id (M,), z (M, d_z), metadata) of a `hyperrep sample` file; a clear error otherwise."""
    from pathlib import Path

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise CommandError(f"no samples file at {path}; write one with `hyperrep sample --out {path}`")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise CommandError(f"{path} is not a Parquet file: {e}") from None
    missing = [c for c in ("sample_id", "z") if c not in table.column_names]
    if missing:
        raise CommandError(
            f"{path} lacks column(s) {missing}; it was not written by `hyperrep sample` "
            f"(columns: {table.column_names})"
        )
    z = np.asarray(table.column("z").to_pylist(), dtype=np.float32)
    ids = table.column("sample_id").to_numpy().astype(np.int64)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return ids, z.reshape(len(ids), -1), meta


@command("sample")
def _sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hyperrep_ray.sampling.generate import sample_embeddings
    from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH, SAMPLERS

    try:
        z = sample_embeddings(args.ae, args.n, args.method, args.seed, args.bandwidth)
    except FileNotFoundError as e:
        raise CommandError(str(e)) from None
    h = DEFAULT_BANDWIDTH if args.bandwidth is None else args.bandwidth
    meta = {
        "method": args.method,
        "population": SAMPLERS[args.method],
        "seed": str(args.seed),
        "bandwidth": repr(h),
        "ae": str(Path(args.ae).resolve()),
    }
    table = pa.table(
        {
            "sample_id": pa.array(np.arange(len(z), dtype=np.int64)),
            "z": pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1), pa.float32()), z.shape[1]),
        }
    ).replace_schema_metadata(meta)
    out = write_with(args.out, lambda tmp: pq.write_table(table, tmp))
    print(f"wrote {len(z)} {SAMPLERS[args.method]} embeddings (d_z {z.shape[1]}) to {out}")
    return 0


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    import json as _json
    from pathlib import Path

    from hyperrep_ray import tracking
    from hyperrep_ray.data.images import load_dataset
    from hyperrep_ray.evaluation.finetune import hyper_for_dataset
    from hyperrep_ray.evaluation.ray_pipeline import evaluate_embeddings
    from hyperrep_ray.experiments.runner import summarize_frame
    from hyperrep_ray.report.experiment_tables import by_epoch_markdown

    ids, z, meta = _load_samples(args.samples)
    _quiet_ray_data(args)
    try:
        dataset = args.dataset or read_ae_info(args.ae)["dataset"]
    except FileNotFoundError as e:
        raise CommandError(str(e)) from None
    try:
        hyper = hyper_for_dataset(dataset)
    except ValueError as e:
        raise CommandError(str(e)) from None
    data = load_dataset(dataset, args.data_root)
    population = args.population or meta.get("population", "sampled")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "samples": args.samples,
        "ae": args.ae,
        "dataset": dataset,
        "finetune_epochs": args.finetune_epochs,
        "seed": args.seed,
        "population": population,
        "n": len(ids),
        "sampler": meta,
    }
    with tracking.run("evaluate", config, args.tracking_uri, tags={"stage": "evaluate"}):
        try:
            df = evaluate_embeddings(
                z,
                args.ae,
                data,
                hyper,
                args.finetune_epochs,
                population,
                args.seed,
                out=str(out / "rows"),
                sample_ids=ids,
            )
        except ValueError as e:
            raise CommandError(str(e)) from None
        summary = summarize_frame(df, seed=args.seed)
        (out / "summary.json").write_text(_json.dumps(summary, indent=2) + "\n")
        table = "\n".join(by_epoch_markdown(summary, dataset))
        (out / "table.md").write_text(table + "\n")
        tracking.log_metrics(
            {
                f"{p}.{e}.{k}": v[k]
                for p, per in summary.items()
                for e, v in per.items()
                for k in ("mean", "std")
            }
        )
        import mlflow

        mlflow.log_artifacts(str(out), artifact_path="evaluate")
    print(table)
    print(f"\nresults: {out} (rows/ as Parquet, summary.json, table.md)")
    return 0


@command("generate")
def _generate(args: argparse.Namespace) -> int:
    from hyperrep_ray.sampling.generate import generate

    try:
        paths = generate(args.ae, args.n, args.out, args.method, args.seed, args.bandwidth)
    except FileNotFoundError as e:
        raise CommandError(str(e)) from None
    print(f"wrote {len(paths)} models to {args.out} (generated.json lists them)")
    print("load one with: from hyperrep_ray.zoo.weights_io import load_zoo_cnn; model = load_zoo_cnn(path)")
    return 0


@command("experiments")
def _experiments(args: argparse.Namespace) -> int:

    from hyperrep_ray.experiments.runner import run_experiments
    from hyperrep_ray.sampling.samplers import DEFAULT_GAN_EPOCHS

    _quiet_ray_data(args)
    for flag, path in (("--ae", args.ae), ("--baseline-ae", args.baseline_ae)):
        if path is not None:
            try:
                read_ae_info(path)
            except FileNotFoundError as e:
                raise CommandError(f"{flag}: {e}") from None
    try:
        summary = run_experiments(
            args.ae,
            args.baseline_ae,
            args.zoo,
            args.out,
            n=args.n,
            finetune_epochs=args.finetune_epochs,
            seed=args.seed,
            other_zoo=args.other_zoo,
            tracking_uri=args.tracking_uri,
            data_root=args.data_root,
            methods=args.methods,
            gan_epochs=DEFAULT_GAN_EPOCHS if args.gan_epochs is None else args.gan_epochs,
            bandwidth=args.bandwidth,
            ensemble_sizes=args.ensemble_sizes,
            ensemble_repeats=args.ensemble_repeats,
            decode_on_driver=args.decode_on_driver,
            num_gpus=args.num_gpus,
        )
    except FileNotFoundError as e:
        raise CommandError(str(e)) from None
    done = [k for k in ("in_dataset", "ensembles", "transfer", "unseen_zoo") if k in summary]
    print(f"experiments: {', '.join(done)} in {summary['meta']['seconds']['total']:.0f} s")
    for name, why in summary["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"\nresults: {args.out}/summary.json, {args.out}/report.md, tables and figures per experiment")
    return 0


@command("tune")
def _tune(args: argparse.Namespace) -> int:
    from hyperrep_ray.tune.sweep import sweep_from_args

    return sweep_from_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if not args.command:
        parser.print_help()
        return 2
    from hyperrep_ray.data.images import DatasetNotFoundError
    from hyperrep_ray.store import StoreError

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, StoreError, DatasetNotFoundError, CommandError) as e:
        print(f"hyperrep {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
