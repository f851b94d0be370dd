"""Canonical neuron order: permute every model's hidden neurons to match a common reference.

Not in the papers. Models of different seeds sit in unrelated permutations of the same function
family, so their weight vectors are nearly orthogonal; matching each model's neurons to a
reference (``weight matching``: per hidden layer a linear assignment on the similarity of
incoming weights + bias and outgoing weights) removes that symmetry without changing any
model's function. DESIGN.md measured it as a large lever for a small zoo (PCA variance explained,
weight-space midpoints, decoded accuracy of the autoencoder).

The objective is the squared distance ``||pi(w) - reference||^2``. The first sweep goes
conv1 -> fc1 on incoming weights only (each layer's inputs already in the order chosen for the
previous layer; fc1 also uses fc2's columns, whose class order is fixed): outgoing weights of a
not-yet-aligned next layer are noise, and including them made noisy copies of one model fail to
align (5-8 % of copies stuck in a wrong order, 0 % without). Later sweeps add the outgoing
weights; each such per-layer assignment minimises the objective exactly with the other layers
fixed (coordinate descent), so they never increase it. Similarities are computed for the whole
batch with one matmul per layer; the only per-model work is
``scipy.optimize.linear_sum_assignment`` on matrices of at most 20 x 20.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from hyperrep_ray.weightspace.augment import HIDDEN_LAYERS, apply_permutation
from hyperrep_ray.zoo.cnn import layer_shapes, num_params

__all__ = ["Alignment", "ReferenceFit", "align_to_reference", "fit_reference", "matching_cost"]

_LAYERS = ("conv1", "conv2", "conv3", "fc1", "fc2")
_CONV3_POSITIONS = 9  # fc1 sees conv3's 4 channels x 3 x 3: a block of 9 columns per channel


class Alignment(NamedTuple):
    """Aligned vectors (same type and shape as the input) and the permutations that produced them
    (``aligned = apply_permutation(w, perms)``; new neuron o = old neuron ``perms[layer][b, o]``)."""

    aligned: np.ndarray | torch.Tensor
    perms: dict[str, np.ndarray] | dict[str, torch.Tensor]


class ReferenceFit(NamedTuple):
    """Fitted reference ``[N]`` and one history entry per iteration (entry 0 = before alignment)."""

    reference: np.ndarray
    history: list[dict[str, float]]


def _views(x: np.ndarray, in_channels: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Weights as ``[B, n_out, n_in, k]`` (fc1: n_in = 4 conv3 channels, k = 9), biases ``[B, n_out]``."""
    weights, biases = {}, {}
    offset = 0
    b = x.shape[0]
    for name, shape in layer_shapes(in_channels):
        layer, kind = name.rsplit(".", 1)
        size = math.prod(shape)
        block = x[:, offset : offset + size]
        if kind == "bias":
            biases[layer] = block
        elif layer == "fc1":
            weights[layer] = block.reshape(b, shape[0], shape[1] // _CONV3_POSITIONS, _CONV3_POSITIONS)
        else:
            weights[layer] = block.reshape(
                b, shape[0], shape[1], math.prod(shape[2:]) if len(shape) > 2 else 1
            )
        offset += size
    return weights, biases


def _take(arr: np.ndarray, idx: np.ndarray | None, axis: int) -> np.ndarray:
    """Per-sample permutation of ``arr`` along ``axis`` (idx ``[B, n]``; None = identity)."""
    if idx is None:
        return arr
    shape = [1] * arr.ndim
    shape[0], shape[axis] = idx.shape[0], idx.shape[1]
    return np.take_along_axis(arr, idx.reshape(shape), axis=axis)


def _as_batch(w: np.ndarray | torch.Tensor, in_channels: int, what: str) -> np.ndarray:
    x = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
    n = num_params(in_channels)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(
            f"{what} has shape {tuple(np.shape(w))}; expected [B, {n}] or [{n}] for the zoo CNN with "
            f"{in_channels} input channel(s)"
        )
    return x


def _match(
    x: np.ndarray,
    reference: np.ndarray,
    in_channels: int,
    sweeps: int,
    outgoing_first_sweep: bool,
) -> dict[str, np.ndarray]:
    b = x.shape[0]
    w_a, b_a = _views(x.astype(np.float64, copy=False), in_channels)
    w_r, b_r = _views(reference[None].astype(np.float64, copy=False), in_channels)
    sizes = {name: w_a[name].shape[1] for name in HIDDEN_LAYERS}
    perms = {name: np.tile(np.arange(n), (b, 1)) for name, n in sizes.items()}
    active = np.arange(b)  # models whose permutations still changed in the last sweep
    for sweep in range(max(1, sweeps)):
        changed = np.zeros(len(active), dtype=bool)
        for li, name in enumerate(HIDDEN_LAYERS):
            prev = _LAYERS[li - 1] if li > 0 else None
            nxt = _LAYERS[li + 1]
            n = sizes[name]
            # incoming: this layer's rows in the model's original order, inputs already permuted
            w_in = _take(w_a[name][active], perms[prev][active] if prev else None, axis=2)
            inc_a = np.concatenate([w_in.reshape(len(active), n, -1), b_a[name][active][:, :, None]], axis=2)
            inc_r = np.concatenate([w_r[name].reshape(n, -1), b_r[name][0][:, None]], axis=1)
            sim = np.matmul(inc_a, inc_r.T)  # [B, j (model neuron), i (reference neuron)]
            if nxt == "fc2" or sweep > 0 or outgoing_first_sweep:
                # outgoing: next layer's columns; its rows in their current (aligned) order
                w_out = _take(w_a[nxt][active], perms[nxt][active] if nxt in perms else None, axis=1)
                out_a = np.moveaxis(w_out, 2, 1).reshape(len(active), n, -1)
                out_r = np.moveaxis(w_r[nxt][0], 1, 0).reshape(n, -1)
                sim += np.matmul(out_a, out_r.T)
            new = np.empty((len(active), n), dtype=np.int64)
            for k in range(len(active)):
                # cost[i, j]: reference neuron i <- model neuron j; rows come back sorted 0..n-1
                _, cols = linear_sum_assignment(sim[k].T, maximize=True)
                new[k] = cols
            changed |= (new != perms[name][active]).any(axis=1)
            perms[name][active] = new
        if sweep > 0 or outgoing_first_sweep:  # a full coordinate-descent sweep: unchanged = converged
            active = active[changed]
        if len(active) == 0:
            break
    return perms


def align_to_reference(
    w: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor,
    in_channels: int = 1,
    sweeps: int = 3,
    outgoing_first_sweep: bool = False,
) -> Alignment:
    """Permute each model's hidden neurons (conv1, conv2, conv3, fc1) to best match ``reference``.

    Weight matching by coordinate descent on ``||pi(w) - reference||^2``: for each hidden layer in
    order a linear assignment maximising the inner product of incoming weights + bias (inputs
    already in the permuted order of the previous layer) plus outgoing weights (the next layer's
    columns; conv3 -> fc1 as blocks of 9), repeated for up to ``sweeps`` sweeps or until no model's
    permutation changes. The first sweep ignores outgoing weights of not-yet-aligned next layers
    unless ``outgoing_first_sweep`` (plain coordinate descent from the identity; worse, see module
    docstring). A model whose result would be farther from the reference than its input order keeps
    its input order, so alignment never increases the distance. Functions are unchanged (pure
    neuron permutations).

    ``w``: ``[B, N]`` or ``[N]`` array/tensor; the result has the same type, dtype and shape."""
    x = _as_batch(w, in_channels, "weights")
    ref = _as_batch(reference, in_channels, "reference")
    if ref.shape[0] != 1:
        raise ValueError(f"reference must be one vector, got {ref.shape[0]}")
    perms_np = _match(x, ref[0], in_channels, sweeps, outgoing_first_sweep)
    aligned = apply_permutation(
        torch.from_numpy(np.ascontiguousarray(x)),
        {k: torch.from_numpy(v) for k, v in perms_np.items()},
        in_channels,
    ).numpy()
    # Never worse than the order the model came in (the first sweep is not pure coordinate descent).
    worse = ((aligned - ref) ** 2).sum(axis=1, dtype=np.float64) > ((x - ref) ** 2).sum(
        axis=1, dtype=np.float64
    )
    if worse.any():
        aligned[worse] = x[worse]
        for v in perms_np.values():
            v[worse] = np.arange(v.shape[1])
    single = np.ndim(w) == 1
    if single:
        aligned = aligned[0]
        perms_np = {k: v[0] for k, v in perms_np.items()}
    if isinstance(w, torch.Tensor):
        return Alignment(
            torch.from_numpy(aligned).to(device=w.device, dtype=w.dtype),
            {k: torch.from_numpy(v).to(w.device) for k, v in perms_np.items()},
        )
    return Alignment(aligned, perms_np)


def matching_cost(w: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor) -> float:
    """Mean squared Euclidean distance of the vectors ``w`` ``[B, N]`` to ``reference`` ``[N]``."""
    x = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float64)
    r = np.asarray(reference.detach().cpu() if isinstance(reference, torch.Tensor) else reference, np.float64)
    return float(((np.atleast_2d(x) - r) ** 2).sum(axis=1).mean())


def fit_reference(
    w_train: np.ndarray | torch.Tensor,
    in_channels: int = 1,
    iterations: int = 5,
    seed: int = 0,
    init: str = "model",
    sweeps: int = 3,
    outgoing_first_sweep: bool = False,
) -> ReferenceFit:
    """Fit a canonical reference: start from one model (``init="model"``, chosen by ``seed``) or the
    plain mean (``init="mean"``), then repeat: align all models to it, reference = aligned mean.

    Deterministic for a given input and seed. Stops early once the permutations stop changing.
    History entries: ``iteration``, ``cost`` (mean squared distance of the aligned models to the
    reference they were aligned to), ``spread`` (mean squared distance to the new aligned mean),
    ``ref_norm`` (norm of the new reference; it grows as alignment stops averaging unrelated neurons),
    ``changed`` (fraction of models whose permutation differs from the previous iteration).
    Entry 0 describes the unaligned models: cost to the starting reference, spread around and norm
    of their plain mean."""
    x = _as_batch(w_train, in_channels, "w_train").astype(np.float32, copy=False)
    if init == "model":
        ref = x[int(np.random.default_rng(seed).integers(x.shape[0]))].copy()
    elif init == "mean":
        ref = x.mean(axis=0)
    else:
        raise ValueError(f"init must be 'model' or 'mean', got {init!r}")
    mean0 = x.mean(axis=0)
    history = [
        {
            "iteration": 0,
            "cost": matching_cost(x, ref),
            "spread": matching_cost(x, mean0),
            "ref_norm": float(np.linalg.norm(mean0)),
            "changed": 1.0,
        }
    ]
    previous = None
    for it in range(1, iterations + 1):
        aligned, perms = align_to_reference(x, ref, in_channels, sweeps, outgoing_first_sweep)
        stacked = np.concatenate([perms[k] for k in HIDDEN_LAYERS], axis=1)
        changed = 1.0 if previous is None else float((stacked != previous).any(axis=1).mean())
        new_ref = np.asarray(aligned).mean(axis=0)
        history.append(
            {
                "iteration": it,
                "cost": matching_cost(aligned, ref),
                "spread": matching_cost(aligned, new_ref),
                "ref_norm": float(np.linalg.norm(new_ref)),
                "changed": changed,
            }
        )
        ref = new_ref.astype(np.float32)
        if changed == 0.0:
            break
        previous = stacked
    return ReferenceFit(ref, history)
