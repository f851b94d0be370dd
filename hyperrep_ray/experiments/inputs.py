"""Checks of an experiment's arguments, made on the driver before any Ray work starts, so a wrong
argument fails in a second with a message that names it instead of deep inside a task."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hyperrep_ray.autoencoder.bundle import read_ae_info
from hyperrep_ray.data.images import ImageData
from hyperrep_ray.sampling.samplers import SAMPLERS


def check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n (models per population) must be >= 1, got {n}")
    return int(n)


def check_epochs(finetune_epochs: Iterable[int]) -> list[int]:
    """The fine-tuning epochs to score, sorted, always with epoch 0 (the weights as sampled)."""
    epochs = sorted({0, *(int(e) for e in finetune_epochs)})
    if epochs[0] < 0:
        raise ValueError(f"fine-tuning epochs must be >= 0, got {list(finetune_epochs)}")
    return epochs


def check_methods(methods: Sequence[str]) -> None:
    unknown = [m for m in methods if m not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampling method(s) {unknown}; valid methods: {', '.join(SAMPLERS)}")


def check_channels(ae_dir: str, *datas: ImageData) -> None:
    """The autoencoder's models take as many input channels as each data set has."""
    c = int(read_ae_info(ae_dir)["in_channels"])
    for d in datas:
        if d.in_channels != c:
            raise ValueError(
                f"the autoencoder at {ae_dir} makes {c}-channel models, {d.name} has {d.in_channels} "
                f"channel(s); pair data sets of the same kind "
                f"(grey: digits, mnist, svhn; colour: cifar10, stl10)"
            )
