"""What the `hyperrep` commands share: the argparse number type, shared flags, input errors.

Bounds that a config also knows (``ExperimentsConfig.n``, ``SweepConfig.num_samples``, ...) are left to
the config, so the CLI, the pipeline and the Python API accept the same values; the CLI checks only
what it alone decides (the syntax of a number or a list, and the bounds of flags no config holds).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hyperrep_ray.config import SAMPLERS
from hyperrep_ray.sampling.samplers import DEFAULT_BANDWIDTH


class CommandError(ValueError):
    """A problem with the user's input found while running a command (printed without a traceback)."""


@dataclass(frozen=True)
class Numbers:
    """argparse type: one number, or a comma-separated list of them (``many``), of type ``kind``,
    at least ``low`` (above it if ``strict``); floats must be finite."""

    kind: type[int] | type[float] = int
    low: float | None = None
    strict: bool = False
    many: bool = False

    def __call__(self, text: str) -> Any:
        parts = [p.strip() for p in text.split(",") if p.strip()] if self.many else [text.strip()]
        try:
            values = [self.kind(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        if not values or not all(self.accepts(v) for v in values):
            shown = repr(text) if self.many else text
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {shown}")
        return values if self.many else values[0]

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is None:
            return True
        return value > self.low if self.strict else value >= self.low

    def describe(self) -> str:
        """What the flag takes: "a positive integer", "comma-separated integers >= 0 such as 0,1,5,25"."""
        positive = self.low == 0 and self.strict
        adjectives = ["positive"] if positive else []
        adjectives += ["finite"] if self.kind is float else []
        noun = ("integer" if self.kind is int else "number") + ("s" if self.many else "")
        words = [", ".join(adjectives), noun] if adjectives else [noun]
        if self.low is not None and not positive:
            words.append(f"{'>' if self.strict else '>='} {self.low:g}")
        if self.many:
            return " ".join(["comma-separated", *words, "such as", self.example()])
        return " ".join(["an" if words[0][0] in "aeiou" else "a", *words])

    def example(self) -> str:
        if self.kind is float:
            return "0.01,0.1,1"
        return "1,2,5,10" if self.low is not None and self.low >= 1 else "0,1,5,25"


POSITIVE_INT = Numbers(int, 0, strict=True)
NON_NEGATIVE_INT = Numbers(int, 0)
POSITIVE_FLOAT = Numbers(float, 0, strict=True)
NON_NEGATIVE_FLOAT = Numbers(float, 0)
INTEGER = Numbers(int)
NUMBER = Numbers(float)
INTEGER_LIST = Numbers(int, many=True)
NUMBER_LIST = Numbers(float, many=True)


def method_list(text: str) -> list[str]:
    """argparse type: comma-separated sampler names (``kde30,uniform``)."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in SAMPLERS]
    if not methods or bad:
        raise argparse.ArgumentTypeError(
            f"unknown sampling method(s) {bad or [text]}; choose from {', '.join(SAMPLERS)} (comma-separated)"
        )
    return methods


def add_sampler_flags(p: argparse.ArgumentParser, n_default: int, n_help: str, method: str = "kde30") -> None:
    """--method, --n, --seed and --bandwidth: how `sample` and `generate` draw embeddings."""
    p.add_argument("--method", choices=list(SAMPLERS), default=method, help=f"sampler (default {method})")
    p.add_argument("--n", type=POSITIVE_INT, default=n_default, help=f"{n_help} (default {n_default})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bandwidth", type=POSITIVE_FLOAT, help=f"KDE bandwidth (default {DEFAULT_BANDWIDTH})")


def add_tracking_uri(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"
    )


def add_tracking(p: argparse.ArgumentParser) -> None:
    """``--tracking-uri`` and ``--no-progress``: the flags of every command that logs a run."""
    add_tracking_uri(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_data_root(p: argparse.ArgumentParser, what: str = "the torchvision data set") -> None:
    p.add_argument("--data-root", help=f"directory with {what} (not needed for digits)")


def add_epochs_window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs-window", type=int, nargs=2, metavar=("LO", "HI"), help="zoo epochs to train on")


def overrides(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    """The flags among ``keys`` the user gave (None = not given: the config's default applies)."""
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def quiet_ray_data(args: argparse.Namespace) -> None:
    """``--no-progress`` for Ray Data's progress bars."""
    if getattr(args, "no_progress", False):
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
