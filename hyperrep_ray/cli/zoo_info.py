"""`hyperrep zoo-info`: summarise a weight store (models, epochs, splits, accuracy quantiles)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hyperrep_ray.zoo.figures import zoo_summary_markdown
from hyperrep_ray.zoo.train import zoo_summary

NAME = "zoo-info"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        NAME, help="summarise a weight store: models, epochs, splits, accuracy quantiles"
    )
    p.add_argument("store", help="store directory or URI")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    summary = zoo_summary(args.store)
    print(json.dumps(summary, indent=2) if args.json else zoo_summary_markdown(summary))
    return 0
