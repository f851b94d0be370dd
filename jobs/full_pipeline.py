"""The whole hyperrep_ray pipeline as one job: zoo -> autoencoders -> sampling/evaluation -> report.

Locally:        python jobs/full_pipeline.py                      (quick preset, embedded digits)
On a cluster:   ray job submit --working-dir . -- python jobs/full_pipeline.py --preset quick

It joins the Ray cluster it is submitted to (RAY_ADDRESS) or starts a local one, and reruns
finish an interrupted run: finished stages are skipped, changed ones redone. A second run on the
same --out stops at once naming the first; a killed run's lock is taken over by the rerun.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hyperrep_ray.config import PRESETS, ConfigError, load_json_config
from hyperrep_ray.pipeline import run_pipeline
from hyperrep_ray.remote_out import is_remote, staging_dir
from hyperrep_ray.run_lock import OutputLockError, writable_dir
from hyperrep_ray.store import StoreError
from hyperrep_ray.tracking import resolve_tracking_uri, ui_hint


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--preset", choices=PRESETS, default="quick", help="smoke (tests), quick (default), paper")
    p.add_argument("--out", help="output directory (default runs/PRESET)")
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or OUT/mlflow.db)"
    )
    p.add_argument("--data-root", help="directory of the torchvision data sets (paper preset)")
    p.add_argument(
        "--ae-config", help="JSON with AEConfig fields applied to both autoencoders (e.g. a sweep's best)"
    )
    p.add_argument("--tune", action="store_true", help="run the Ray Tune sweep first and use its best config")
    p.add_argument("--tune-samples", type=int, default=16, help="trials of the --tune sweep")
    return p.parse_args(argv)


def tracking_uri_for(out: str, given: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else a SQLite store in OUT; a remote --out keeps the
    store in its local staging directory, pushed with the outputs."""
    if given is not None:
        return given
    local = writable_dir(staging_dir(out) if is_remote(out) else Path(out))
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{local.resolve() / 'mlflow.db'}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or f"runs/{args.preset}"
    try:
        uri = tracking_uri_for(out, args.tracking_uri)
        override = load_json_config(args.ae_config) if args.ae_config else None
        summary = run_pipeline(
            args.preset,
            out,
            uri,
            args.data_root,
            ae_override=override,
            tune=args.tune,
            tune_samples=args.tune_samples,
        )
    except (ConfigError, StoreError, FileNotFoundError, OutputLockError) as e:
        print(f"full_pipeline: error: {e}", file=sys.stderr)
        return 2
    report = f"{str(summary['out']).rstrip('/')}/report"
    print(f"\nreport:  {report}/report.md (summary.json, figures)")
    print(f"mlflow:  {resolve_tracking_uri(uri)}  (parent run {summary['mlflow_run_id']});")
    hint = ui_hint(resolve_tracking_uri(uri), summary["mlflow_run_id"])
    print("         view with: " + hint.replace("\n", "\n         "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
