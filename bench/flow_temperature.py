#!/usr/bin/env python
"""The latent flow's temperature as a novelty knob: accuracy, novelty and diversity per temperature.

Trains S_FLOW once on an autoencoder's anchors (the package's ``fit_flow``, a Ray task), draws ``--n``
embeddings at each starting-noise temperature from the same trained flow, decodes them and scores the
models on the zoo's test images: accuracy, novelty against the train checkpoints, within-population
novelty (``diversity.py``) and the nearest L2 in units of the distance between trained models.

    python bench/flow_temperature.py --ae runs/q/ae --temperatures 1 1.5 2 3
    python bench/flow_temperature.py --quick      # a smoke autoencoder built here
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from _common import ROOT, emit, log, machine_lines
from diversity import within_novelty

sys.path.insert(0, str(ROOT))

from hyperrep_ray.autoencoder.artifacts import load_anchors  # noqa: E402
from hyperrep_ray.autoencoder.bundle import HyperRepresentation, read_ae_info  # noqa: E402
from hyperrep_ray.sampling.flow import FlowConfig, fit_flow, sample_flow  # noqa: E402
from hyperrep_ray.sampling.novelty_setup import novelty_setup  # noqa: E402
from hyperrep_ray.weightspace.novelty import score_masks, wrong_masks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ae", help="trained autoencoder directory")
    p.add_argument("--quick", action="store_true", help="a smoke autoencoder when --ae is not given")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the table here")
    args = p.parse_args(argv)
    ae = args.ae
    if ae is None:
        if not args.quick:
            raise SystemExit("give --ae, or --quick")
        from _smoke import smoke_ae

        ae = smoke_ae(tempfile.mkdtemp(prefix="flow_temperature_"))
    activation = str(read_ae_info(ae)["activation"])
    anchors = load_anchors(ae)
    cfg = FlowConfig()
    log(f"training the flow on {len(anchors.z)} anchors")
    flow = fit_flow(anchors.z, cfg, seed=args.seed)
    bundle = HyperRepresentation.load(ae)
    setup = novelty_setup(ae)
    lines = ["# S_FLOW temperature", "", *machine_lines(), "", f"- autoencoder {ae}, n {args.n}", ""]
    lines += ["| temperature | accuracy | novelty vs train | within-population novelty | nearest L2 |"]
    lines += ["|---:|---:|---:|---:|---:|"]
    for t in args.temperatures:
        z = sample_flow(flow, cfg.model_copy(update={"temperature": t}), args.n, args.seed)
        w = bundle.decode(z)
        masks = wrong_masks(w, setup.x, setup.y, activation)  # once: for both novelties
        s = score_masks(masks, w, setup.reference).summary()
        acc = 1.0 - float(masks.mean())
        lines.append(
            f"| {t:g} | {acc:.3f} | {s.novelty:.3f} | {within_novelty(masks):.3f} | {s.nearest_l2:.3f} |"
        )
        log(lines[-1])
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
