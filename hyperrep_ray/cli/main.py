"""`hyperrep`: one subcommand per stage of the pipeline (see DESIGN.md), one module per command.

hyperrep zoo --preset quick --out runs/quick/zoo       train a model zoo into a Parquet store
hyperrep zoo-info runs/quick/zoo                        summarise a store
hyperrep sample --ae AE --method kde30 --n 50 --out s.parquet     sample embeddings z
hyperrep evaluate --samples s.parquet --ae AE --out DIR          decode, evaluate and fine-tune them
hyperrep generate --ae AE --n 10 --out DIR                       write sampled models as safetensors
hyperrep novelty --ae AE DIR_OR_FILES                            how new models are (nearest train checkpoint)
hyperrep experiments --ae AE --baseline-ae AE0 --zoo Z --out DIR the paper's experiments (tables, figures)
hyperrep tune --zoo Z --out DIR                                  Ray Tune sweep of the autoencoder

A mistake in the user's input (a bad config value, a missing file, a store or data set that is not
there) is one line on stderr and exit status 2, like argparse's own usage errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from pydantic import ValidationError

from hyperrep_ray.autoencoder.bundle import NotABundleError
from hyperrep_ray.cli import (
    embed,
    evaluate,
    experiments,
    generate,
    novelty,
    predict,
    sample,
    train_ae,
    tune,
    zoo,
    zoo_info,
)
from hyperrep_ray.cli.common import CommandError
from hyperrep_ray.config import ConfigError
from hyperrep_ray.data.images import DatasetNotFoundError
from hyperrep_ray.data.readers import DatasetFormatError
from hyperrep_ray.sampling.samples_io import SamplesFormatError
from hyperrep_ray.store import StoreError
from hyperrep_ray.zoo.weights_io import WeightsFileError

#: The commands, in the order `hyperrep --help` lists them.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    zoo,
    train_ae,
    embed,
    predict,
    sample,
    evaluate,
    generate,
    novelty,
    experiments,
    zoo_info,
    tune,
)
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {m.NAME: m.run for m in COMMAND_MODULES}
#: Errors that mean "your input is wrong" rather than "the program is wrong": no traceback.
USER_ERRORS = (
    CommandError,
    ConfigError,
    StoreError,
    DatasetNotFoundError,
    DatasetFormatError,
    NotABundleError,
    WeightsFileError,
    FileNotFoundError,
    SamplesFormatError,
    ValidationError,
)
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hyperrep",
        description="Hyper-representations of neural-network weights on Ray: train model zoos, learn a "
        "weight autoencoder, sample and evaluate new weights. Every stage is tracked in MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return parser


def one_line(error: BaseException) -> str:
    """The error as one line: pydantic's per-field errors and multi-line messages joined with "; "."""
    if isinstance(error, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}" for e in error.errors()]
        return f"invalid {error.title}: " + "; ".join(parts)
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = ""
    for ln in lines:
        text += ln if not text else (f" {ln}" if text.endswith(":") else f"; {ln}")
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as e:
        print(f"hyperrep {args.command}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
