"""Ray Tune sweep of the autoencoder (beta, d_token, d_hidden, d_z, lr, KDE bandwidth) on one zoo.

Locally:
    python jobs/tune_sweep.py --zoo runs/quick/zoo --preset quick --num-samples 16 --out runs/quick/tune
On a cluster:
    ray job submit --working-dir . -- python jobs/tune_sweep.py --zoo s3://bucket/zoo --preset paper \\
        --num-samples 32 --out tune-out --storage s3://bucket/tune --workers-per-trial 2 --gpus-per-trial 2

It joins the Ray cluster it is submitted to (RAY_ADDRESS) or starts a local one. Rerunning the same
command after an interruption continues the sweep (Tuner.restore). Writes OUT/best_config.json, which
`hyperrep train-ae --config` and `jobs/full_pipeline.py --ae-config` accept as is.
"""

from __future__ import annotations

import argparse
import sys

from hyperrep_ray.cli import tune
from hyperrep_ray.cli.main import EXIT_USAGE, USER_ERRORS, one_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tune.add_arguments(p)
    args = p.parse_args(argv)
    try:
        return tune.run(args)
    except USER_ERRORS as e:
        print(f"tune_sweep: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
