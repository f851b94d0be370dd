#!/usr/bin/env python
"""Novelty measures: the vectorised code of ``weightspace/novelty.py`` against a plain per-pair loop.

Rows, measured side by side on the same weights and images:

- wrong masks: ``novelty.wrong_masks`` (models as batched populations) vs one ``ZooCNN`` per model;
- canonical order: ``novelty.canonical_order`` on the whole batch vs ``align_to_reference`` per model;
- max wrong IoU: ``novelty.max_wrong_iou`` (chunked matrix products) vs a Python loop over pairs with
  ``np.logical_and/or``;
- nearest L2: ``novelty.nearest_pairs`` (chunked ||a||^2 + ||b||^2 - 2ab) vs a loop over pairs with
  ``np.linalg.norm``.

Every row checks that both ways give the same answer ("max |diff|"). The quick scale is the quick
pipeline's: 300 sampled models (10 populations x 30) against 1,750 references (350 train models x
epochs 6-10) on the 360 digits test images. Without ``--zoo`` the weights come from a small zoo
trained in-process (30 models, epochs 0-5 on 512 digits images, about 20 s, no Ray); its checkpoints
are repeated with small noise (sigma 0.01) to the quick scale's counts, since the timings depend
only on the shapes. With ``--zoo`` the train checkpoints of ``--epochs`` are the references and the
test-split checkpoints (repeated to ``--models``) the queries. The last line extrapolates the
vectorised rates to the paper scale (5,000 samples x 3,500 references x 10,000 test images).

    python bench/novelty.py --quick          # 1-2 minutes on a 2-core CPU
    python bench/novelty.py --zoo runs/quick/zoo --epochs 6 10
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import emit, fmt, log, machine_lines  # noqa: E402

from hyperrep_ray import store  # noqa: E402
from hyperrep_ray.config import zoo_preset  # noqa: E402
from hyperrep_ray.data.images import ImageData, load_dataset  # noqa: E402
from hyperrep_ray.weightspace import novelty as nv  # noqa: E402
from hyperrep_ray.weightspace.align import align_to_reference, fit_reference  # noqa: E402
from hyperrep_ray.zoo.cnn import vector_to_model  # noqa: E402
from hyperrep_ray.zoo.train import train_models  # noqa: E402

PAPER = {"models": 5000, "references": 3500, "images": 10_000}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def repeat_to(w: np.ndarray, n: int, rng: np.random.Generator, sigma: float = 0.01) -> np.ndarray:
    """``n`` rows: the rows of ``w`` cycled, plus N(0, sigma^2) noise after the first pass."""
    out = w[np.arange(n) % len(w)].copy()
    out[len(w) :] += sigma * rng.standard_normal(out[len(w) :].shape).astype(np.float32)
    return out


def small_zoo(data: ImageData) -> tuple[np.ndarray, np.ndarray]:
    """(weights (30 x 6, N), model ids) of a small zoo trained in-process on 512 train images."""
    part = ImageData("digits", data.train_x[:512], data.train_y[:512], data.test_x, data.test_y, {})
    cfg = zoo_preset("quick", "digits", num_models=30, epochs=5, population_size=30)
    trained = train_models(cfg.seeds, part, cfg)
    w = trained.weights.reshape(-1, trained.weights.shape[-1])
    return w, np.repeat(np.arange(30), trained.weights.shape[1])


def inputs(args: argparse.Namespace, data: ImageData) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(queries (M, N), references (R, N), reference model ids (R,), where they came from)."""
    rng = np.random.default_rng(0)
    if args.zoo:
        lo, hi = args.epochs
        refs, meta = store.load_weights(args.zoo, epochs=range(lo, hi + 1), split="train")
        test, _ = store.load_weights(args.zoo, epochs=range(lo, hi + 1), split="test")
        ids = meta["model_id"].to_numpy()
        queries = repeat_to(test.numpy(), args.models, rng)
        return queries, refs.numpy(), ids, f"zoo {args.zoo}, epochs {lo}-{hi}"
    log("training a 30-model zoo in-process ...")
    (w, ids), secs = timed(lambda: small_zoo(data))
    refs = repeat_to(w, args.references, rng)
    ref_ids = np.concatenate([ids, 1000 + np.arange(args.references - len(w))])[: args.references]
    queries = repeat_to(w[::-1], args.models, rng, sigma=0.02)
    return (
        queries,
        refs,
        ref_ids,
        f"in-process zoo of 30 models x 6 checkpoints ({secs:.0f} s), repeated with noise",
    )


def loop_masks(w: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    out = np.empty((len(w), len(y)), dtype=bool)
    with torch.no_grad():
        for i, v in enumerate(w):
            out[i] = (vector_to_model(v, 1, "tanh")(x).argmax(1) != y).numpy()
    return out


def loop_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    best = np.empty(len(a))
    for i in range(len(a)):
        vals = [
            np.logical_and(a[i], b[j]).sum() / max(1, np.logical_or(a[i], b[j]).sum()) for j in range(len(b))
        ]
        best[i] = max(vals)
    return best


def loop_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([min(np.linalg.norm(a[i] - b[j]) for j in range(len(b))) for i in range(len(a))])


def measure(queries: np.ndarray, refs: np.ndarray, data: ImageData, loop_models: int) -> list[dict[str, Any]]:
    """The four rows; the loops run on the first ``loop_models`` queries and are scaled to all."""
    x, y = data.test_x, data.test_y
    m, r, k = len(queries), len(refs), min(loop_models, len(queries))
    rows = []
    log(f"wrong masks of {m + r} models ...")
    masks, t_vec = timed(lambda: nv.wrong_masks(np.concatenate([queries, refs]), x, y, "tanh"))
    loop, t_loop = timed(lambda: loop_masks(queries[:k], x, y))
    rows.append(
        row(
            "wrong masks",
            f"{m + r} models x {len(y)} images",
            t_vec,
            t_loop * (m + r) / k,
            float((loop != masks[:k]).sum()),
        )
    )
    canonical = fit_reference(refs[: min(r, 200)], 1, iterations=2).reference
    log("canonical order ...")
    aligned, t_vec = timed(lambda: nv.canonical_order(np.concatenate([queries, refs]), canonical, 1))
    loop_al, t_loop = timed(
        lambda: np.stack([align_to_reference(v, canonical, 1).aligned for v in queries[:k]])
    )
    rows.append(
        row(
            "canonical order",
            f"{m + r} models",
            t_vec,
            t_loop * (m + r) / k,
            float(np.abs(loop_al - aligned[:k]).max()),
        )
    )
    qm, rm, qa, ra = masks[:m], masks[m:], aligned[:m], aligned[m:]
    log("max wrong IoU ...")
    iou, t_vec = timed(lambda: nv.max_wrong_iou(qm, rm))
    loop_v, t_loop = timed(lambda: loop_iou(qm[:k], rm))
    rows.append(
        row(
            "max wrong IoU",
            f"{m} x {r} pairs x {len(y)} images",
            t_vec,
            t_loop * m / k,
            float(np.abs(loop_v - iou.value[:k]).max()),
        )
    )
    log("nearest L2 ...")
    near, t_vec = timed(lambda: nv.nearest_pairs(qa, ra))
    loop_v, t_loop = timed(lambda: loop_l2(qa[:k].astype(np.float64), ra.astype(np.float64)))
    rows.append(
        row(
            "nearest L2",
            f"{m} x {r} pairs x {qa.shape[1]} weights",
            t_vec,
            t_loop * m / k,
            float(np.abs(loop_v - near.value[:k]).max()),
        )
    )
    return rows


def row(name: str, shape: str, vec: float, loop: float, diff: float) -> dict[str, Any]:
    return {"name": name, "shape": shape, "vec": vec, "loop": loop, "diff": diff}


def paper_estimate(rows: list[dict[str, Any]], m: int, r: int, images: int, n_params: int) -> str:
    """Minutes at the paper scale from the vectorised rates (each measure scales with its own shape)."""
    pm, pr, pi = PAPER["models"], PAPER["references"], PAPER["images"]
    t = {x["name"]: x["vec"] for x in rows}
    parts = {
        "wrong masks": t["wrong masks"] * (pm + pr) * pi / ((m + r) * images),
        "canonical order": t["canonical order"] * (pm + pr) / (m + r),
        "max wrong IoU": t["max wrong IoU"] * pm * pr * pi / (m * r * images),
        "nearest L2": t["nearest L2"] * pm * pr / (m * r),
    }
    total = sum(parts.values()) / 60
    detail = ", ".join(f"{k} {v / 60:.1f}" for k, v in parts.items())
    return (
        f"Paper scale ({pm:,} samples x {pr:,} references x {pi:,} images, {n_params} weights), extrapolated "
        f"from the vectorised rates above on this machine: about {total:.1f} min ({detail} min)."
    )


def report(rows: list[dict[str, Any]], source: str, k: int, estimate: str) -> str:
    lines = [
        "# Novelty measures: vectorised vs per-pair loop",
        "",
        *machine_lines(threads=torch.get_num_threads()),
    ]
    lines += [f"- weights: {source}", f"- loops timed on the first {k} query models, scaled to all", ""]
    lines += [
        "| measure | shape | vectorised (s) | loop (s) | speed-up | max diff |",
        "|---|---|---|---|---|---|",
    ]
    for x in rows:
        lines.append(
            f"| {x['name']} | {x['shape']} | {fmt(x['vec'], 3)} | {fmt(x['loop'], 2)} | "
            f"{fmt(x['loop'] / x['vec'], 0)}x | {x['diff']:.2g} |"
        )
    return "\n".join([*lines, "", estimate])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the quick pipeline's scale (default)")
    p.add_argument("--zoo", default=None, help="a weight store; default: a small zoo trained in-process")
    p.add_argument("--epochs", type=int, nargs=2, default=(6, 10), help="reference epochs of --zoo")
    p.add_argument("--models", type=int, default=300, help="query models (sampled populations)")
    p.add_argument("--references", type=int, default=1750, help="reference checkpoints (without --zoo)")
    p.add_argument("--loop-models", type=int, default=20, help="query models the loops are timed on")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the Markdown here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("digits")
    queries, refs, _, source = inputs(args, data)
    rows = measure(queries, refs, data, args.loop_models)
    estimate = paper_estimate(rows, len(queries), len(refs), len(data.test_y), refs.shape[1])
    emit(report(rows, source, min(args.loop_models, len(queries)), estimate), args.out)


if __name__ == "__main__":
    main()
