#!/usr/bin/env python
"""Does a sampler beat the noise baseline *at equal novelty*? Model by model, with Mann-Whitney U.

The frontier (``hyperrep experiments``) compares mean accuracies per noise level. This script draws the
comparison a reader can test: for each sampled population it finds the noise level sigma at which
B_NOISE (noise on the autoencoder's decoded top-30 % anchors) and B_NOISE_ORIG (noise on their
original weights) are exactly as new as the population (bisection on sigma until the mean novelty is
within ``--tol``), then scores every model of every population at epoch 0 and after each fine-tuning
epoch (the zoo's own hyperparameters, common data order per sample index, as Table 1), next to B_T
(random init), B_KDE30 (kde30 of the no-LWLN autoencoder, ``--baseline-ae``) and the zoo's
independently trained test-split models (the target), and gives two-sided Mann-Whitney p of every
sampled population against each. Novelty = 1 - max wrong-prediction IoU against every train
checkpoint of the autoencoder's window, on the zoo's test images (``hyperrep novelty``).

    python bench/equal_novelty.py --ae runs/q/ae_beh --baseline-ae runs/qp/digits/ae-nolwln \\
        --methods kde30 flow --flow-temperature 3
    python bench/equal_novelty.py --quick      # a smoke autoencoder, kde30, 6 models
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np
from _common import ROOT, emit, log, machine_lines

sys.path.insert(0, str(ROOT))

from hyperrep_ray import store  # noqa: E402
from hyperrep_ray.autoencoder.bundle import HyperRepresentation  # noqa: E402
from hyperrep_ray.config import SAMPLERS  # noqa: E402
from hyperrep_ray.evaluation.finetune import finetune_population, finetune_seeds  # noqa: E402
from hyperrep_ray.evaluation.ray_pipeline import scratch_weights  # noqa: E402
from hyperrep_ray.evaluation.stats import mann_whitney  # noqa: E402
from hyperrep_ray.experiments.data import zoo_data, zoo_hyper  # noqa: E402
from hyperrep_ray.sampling.flow import FlowConfig, condition_quantiles, sample_flow, train_flow  # noqa: E402
from hyperrep_ray.sampling.gan import derived_seed  # noqa: E402
from hyperrep_ray.sampling.generate import load_anchors, sample_embeddings  # noqa: E402
from hyperrep_ray.sampling.noise import decoded_top_anchors, noise_baseline, original_top_weights  # noqa: E402
from hyperrep_ray.sampling.novelty_setup import NoveltySetup, novelty_setup  # noqa: E402

#: Populations every sampled one is compared with, besides its two noise baselines.
REFERENCES = ("B_T", "B_KDE30", "test-split models")


@dataclass
class Population:
    name: str
    weights: np.ndarray
    sigma: float | None = None
    target: float | None = None  # the novelty a noise baseline was matched to
    novelty: float = float("nan")
    acc: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def sampled(ae: str, method: str, n: int, seed: int, temperature: float) -> np.ndarray:
    """Decoded weights of ``n`` samples of ``method`` as ``hyperrep sample`` draws them; the flows at
    ``temperature``, trained here (not as a Ray task: this script may share the machine)."""
    if method.startswith("flow"):
        anchors, acc = load_anchors(ae)
        conditional = method == "flow-top10"
        cfg = FlowConfig.model_validate({"temperature": temperature, "conditional": conditional})
        condition = condition_quantiles(acc) if conditional else None
        flow, _ = train_flow(anchors, cfg, seed=seed, condition=condition)
        z = sample_flow(flow, cfg, n, seed=derived_seed(seed, 3))
    else:
        z = sample_embeddings(ae, n, method, seed)
    return HyperRepresentation.load(ae).decode(z)


def mean_novelty(setup: NoveltySetup, weights: np.ndarray) -> float:
    return float(setup.score(weights).summary().novelty)


def matched_noise(
    setup: NoveltySetup, source: np.ndarray, target: float, n: int, seed: int, tol: float
) -> tuple[float, np.ndarray, float]:
    """(sigma, weights, novelty) of noise on ``source`` whose mean novelty is within ``tol`` of
    ``target`` (bisection on sigma in [0, 0.64]; novelty rises with sigma); sigma 0 when the source
    itself is already as new."""
    lo, hi = 0.0, 0.64
    w = noise_baseline(source, n, 0.0, seed)
    nov = mean_novelty(setup, w)
    if nov >= target - tol:
        return 0.0, w, nov
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        w = noise_baseline(source, n, mid, seed)
        nov = mean_novelty(setup, w)
        log(f"  sigma {mid:.4f}: novelty {nov:.3f} (target {target:.3f})")
        if abs(nov - target) <= tol:
            return mid, w, nov
        lo, hi = (mid, hi) if nov < target else (lo, mid)
    return mid, w, nov


def test_split(zoo: str, epoch: int, n: int, seed: int) -> np.ndarray:
    w, _ = store.load_weights(zoo, epochs=[epoch], split="test")
    pick = np.random.default_rng(seed).choice(len(w), min(n, len(w)), replace=False)
    return w.numpy()[np.sort(pick)]


def p_cell(a: np.ndarray, b: np.ndarray) -> str:
    """Two-sided p, with the direction of the mean difference."""
    sign = "+" if a.mean() > b.mean() else "−"
    return f"{mann_whitney(a, b):.2g} ({sign})"


def report(
    pops: list[Population], sampled_names: list[str], epochs: list[int], header: list[str], tol: float
) -> str:
    lines = [*header, "| population | sigma | novelty |" + "".join(f" acc ep {e} |" for e in epochs)]
    lines.append("|---|---:|---:|" + "---:|" * len(epochs))
    for p in pops:
        s = "" if p.sigma is None else f"{p.sigma:.4f}"
        if p.target is not None and abs(p.novelty - p.target) > tol:
            s += " (not matched: novelty out of reach)"
        accs = "".join(f" {p.acc[:, j].mean():.3f} ± {p.acc[:, j].std():.3f} |" for j in range(len(epochs)))
        lines.append(f"| {p.name} | {s} | {p.novelty:.3f} |{accs}")
    lines += [
        "",
        "Mann-Whitney U, two-sided p (sign: the sampled population's mean is higher + or lower −)",
        "",
    ]
    for name in sampled_names:
        a = next(p for p in pops if p.name == name)
        against = (f"B_NOISE@{name}", f"B_NOISE_ORIG@{name}", *REFERENCES)
        others = [p for p in pops if p.name in against]
        lines += [f"**{name}**", "", "| against |" + "".join(f" ep {e} |" for e in epochs)]
        lines.append("|---|" + "---|" * len(epochs))
        for b in others:
            cells = "".join(f" {p_cell(a.acc[:, j], b.acc[:, j])} |" for j in range(len(epochs)))
            lines.append(f"| {b.name} |{cells}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--ae", help="the autoencoder whose samplers are compared")
    p.add_argument("--baseline-ae", help="the no-LWLN autoencoder (B_KDE30); left out when not given")
    p.add_argument("--methods", nargs="+", default=["kde30"], choices=list(SAMPLERS))
    p.add_argument("--flow-temperature", type=float, default=1.0)
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--finetune-epochs", type=int, nargs="+", default=[0, 1])
    p.add_argument("--tol", type=float, default=0.01, help="novelty tolerance of the noise match")
    p.add_argument("--quick", action="store_true", help="a smoke autoencoder, 6 models")
    p.add_argument("--out", help="also write the Markdown here")
    args = p.parse_args(argv)
    ae, n = args.ae, args.n
    if ae is None:
        if not args.quick:
            raise SystemExit("give --ae, or --quick")
        from _smoke import smoke_ae

        ae, n = smoke_ae(tempfile.mkdtemp(prefix="equal_novelty_")), 6
    setup = novelty_setup(ae)
    zoo, data = setup.zoo, zoo_data(setup.zoo)
    hyper, init = zoo_hyper(zoo)
    pops: list[Population] = []
    names = []
    for method in args.methods:
        name = SAMPLERS[method] + (f"(T={args.flow_temperature:g})" if method.startswith("flow") else "")
        log(f"{name}: sampling and scoring novelty")
        pop = Population(name, sampled(ae, method, n, args.seed, args.flow_temperature))
        pop.novelty = mean_novelty(setup, pop.weights)
        pops.append(pop)
        names.append(name)
        sources = (("B_NOISE", decoded_top_anchors(ae)), ("B_NOISE_ORIG", original_top_weights(ae)))
        for base, source in sources:
            log(f"{base} at the novelty of {name}")
            sigma, w, nov = matched_noise(setup, source, pop.novelty, n, args.seed, args.tol)
            pops.append(Population(f"{base}@{name}", w, sigma, pop.novelty, nov))
    pops.append(Population("B_T", scratch_weights(n, data.in_channels, init, args.seed)[0]))
    if args.baseline_ae:
        pops.append(Population("B_KDE30", sampled(args.baseline_ae, "kde30", n, args.seed, 1.0)))
    pops.append(Population("test-split models", test_split(zoo, setup.epochs_window[1], n, args.seed)))
    seeds = finetune_seeds(args.seed, range(n))
    epochs = sorted(set(args.finetune_epochs))
    for pop in pops:
        log(f"{pop.name}: fine-tuning and scoring")
        if np.isnan(pop.novelty):
            pop.novelty = mean_novelty(setup, pop.weights)
        m = len(pop.weights)
        pop.acc = finetune_population(pop.weights, data, hyper, max(epochs), seeds[:m], epochs)
    header = ["# Samplers against the noise baseline at equal novelty", "", *machine_lines(), ""]
    header += [f"- autoencoder {ae}; baseline {args.baseline_ae}; zoo {zoo}; n {n}; seed {args.seed}", ""]
    emit(report(pops, names, epochs, header, args.tol), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
