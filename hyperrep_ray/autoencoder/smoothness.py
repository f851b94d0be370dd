"""Is the latent space smooth between models? Measured by the accuracy of decoded models.

Sampling (KDE, neighbourhoods, GAN) draws embeddings *between* the train anchors, so it only works
if decoding such in-between points still gives working models. Reconstruction loss does not show
this: DESIGN.md records an autoencoder that decodes its anchors to 0.65-0.76 accuracy but whose
straight line between two good models dips to 0.11. Following the 2022 paper (Sec. 4.2.1, Fig. 3)
we measure two things directly, on held-out embeddings:

- smoothness: decode linear interpolations ``(1 - t) z_a + t z_b`` between pairs of embeddings and
  score the decoded models along the path (:func:`interpolation_accuracy`);
- robustness: decode embeddings with increasing *relative* noise (:func:`noise_accuracy`).

Both take the decoder and the scorer as plain callables (``decode(z [M, D]) -> weights [M, N]``,
``score(weights [M, N]) -> accuracy [M]``), so they work for any autoencoder and any data set, and
batch every point into one decode call (``max_batch`` splits it when memory is short).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "NOISE_RULES",
    "interpolation_accuracy",
    "noise_accuracy",
    "pairs_for_interpolation",
    "plot_interpolation",
    "plot_noise",
]

Decode = Callable[[np.ndarray], np.ndarray]
Score = Callable[[np.ndarray], np.ndarray]

NOISE_RULES = {
    "element": "z + level * |z| * n, n ~ N(0, I): each coordinate perturbed by level times its own magnitude "
    "(in distribution z * (1 + level * n), multiplicative noise)",
    "norm": "z + level * (||z|| / sqrt(D)) * n, n ~ N(0, I): isotropic noise whose per-coordinate std is "
    "level times the embedding's RMS (noise norm ~ level * ||z||)",
}

# Largest number of candidate pairs enumerated explicitly (2 int64 arrays: 32 MiB); above it pairs are
# drawn by rejection, which is cheap because then n_pairs is tiny next to the number of pairs.
_ENUMERATE_PAIRS = 2_000_000


def _float(z: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(z)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array [rows, dims], got shape {arr.shape}")
    return arr


def _decode_and_score(z: np.ndarray, decode: Decode, score: Score, max_batch: int | None) -> np.ndarray:
    """Scores of all rows of ``z``, in one decode/score call unless ``max_batch`` splits it."""
    step = z.shape[0] if not max_batch else int(max_batch)
    out = []
    for i in range(0, z.shape[0], step):
        chunk = z[i : i + step]
        w = np.asarray(decode(chunk))
        if w.ndim != 2 or w.shape[0] != chunk.shape[0]:
            raise ValueError(f"decode returned shape {w.shape} for {chunk.shape[0]} embeddings; want [M, N]")
        s = np.asarray(score(w), dtype=np.float64).reshape(-1)
        if s.shape[0] != chunk.shape[0]:
            raise ValueError(f"score returned {s.shape[0]} values for {chunk.shape[0]} weight vectors")
        out.append(s)
    return np.concatenate(out)


def interpolation_accuracy(
    z_a: np.ndarray,
    z_b: np.ndarray,
    decode: Decode,
    score: Score,
    steps: int = 9,
    max_batch: int | None = None,
) -> dict[str, Any]:
    """Decoded-model score along the straight lines ``(1 - t) z_a[p] + t z_b[p]``, t in linspace(0, 1).

    Returns (JSON-ready) ``t``; ``mean_accuracy`` per t (mean over the P pairs);
    ``min_over_path_mean``: mean over pairs of each pair's minimum along its path (the typical dip);
    ``interpolation_accuracy_min``: min over t of ``mean_accuracy`` (the worst point of the mean
    curve; >= the former); ``endpoint_mean_accuracy``: mean score at t = 0 and 1; ``accuracy``:
    the full ``[P][steps]`` table; ``n_pairs``. t = 0 and t = 1 decode exactly ``z_a`` and ``z_b``."""
    a, b = _float(z_a, "z_a"), _float(z_b, "z_b")
    if a.shape != b.shape:
        raise ValueError(f"z_a and z_b must have the same shape, got {a.shape} and {b.shape}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (both endpoints), got {steps}")
    dtype = np.result_type(a.dtype, b.dtype)
    t = np.linspace(0.0, 1.0, steps)
    path = (1.0 - t)[None, :, None] * a[:, None, :] + t[None, :, None] * b[:, None, :]  # [P, S, D]
    path[:, 0], path[:, -1] = a, b  # exact endpoints whatever the arithmetic
    p, d = a.shape
    acc = _decode_and_score(path.reshape(p * steps, d).astype(dtype), decode, score, max_batch)
    acc = acc.reshape(p, steps)
    mean = acc.mean(axis=0)
    return {
        "t": t.tolist(),
        "mean_accuracy": mean.tolist(),
        "min_over_path_mean": float(acc.min(axis=1).mean()),
        "interpolation_accuracy_min": float(mean.min()),
        "endpoint_mean_accuracy": float(acc[:, [0, -1]].mean()),
        "accuracy": acc.tolist(),
        "n_pairs": int(p),
    }


def noise_accuracy(
    z: np.ndarray,
    decode: Decode,
    score: Score,
    levels: Sequence[float] = (0.01, 0.05, 0.1, 0.2),
    seed: int = 0,
    rule: Literal["element", "norm"] = "element",
    max_batch: int | None = None,
) -> dict[str, Any]:
    """Mean decoded-model score of ``z [P, D]`` under relative Gaussian noise of each level.

    Relative noise (2022 paper, Fig. 3 a/c: "relative noise >10 % is required to affect
    performance"; the paper gives no formula) is read as noise proportional to the signal:
    ``rule="element"`` (default) perturbs each coordinate by ``level`` times its own magnitude,
    ``z + level * |z| * n``, i.e. multiplicative noise ``z * (1 + level * n)`` in distribution, the
    same convention as ``augment.gaussian_noise(relative=True)``; ``rule="norm"`` adds isotropic
    noise with per-coordinate std ``level * ||z|| / sqrt(D)``. Noisy embeddings are not clipped.

    One draw ``n ~ N(0, I)`` from ``seed`` is shared by all levels (common random numbers), so the
    curve changes only with the level and is deterministic under the seed. Level 0 is always
    included and decodes ``z`` itself. Returns ``levels`` (0 first), ``mean_accuracy`` and
    ``std_accuracy`` per level (over the P embeddings), ``clean_accuracy`` (the level-0 mean),
    ``accuracy`` (``[levels][P]``), ``rule`` (text) and ``seed``."""
    x = _float(z, "z")
    if rule not in NOISE_RULES:
        raise ValueError(f"unknown noise rule {rule!r}; choose one of {sorted(NOISE_RULES)}")
    lv = [float(v) for v in levels]
    if any(not np.isfinite(v) or v < 0 for v in lv):
        raise ValueError(f"noise levels must be finite and >= 0, got {list(levels)}")
    all_levels = [0.0] + [v for i, v in enumerate(lv) if v > 0 and v not in lv[:i]]
    n = np.random.default_rng(seed).standard_normal(x.shape)
    x64 = x.astype(np.float64)
    if rule == "element":
        scale = np.abs(x64)
    else:
        scale = np.broadcast_to(np.linalg.norm(x64, axis=1, keepdims=True) / np.sqrt(x.shape[1]), x.shape)
    noisy = [x] + [(x64 + level * scale * n).astype(x.dtype) for level in all_levels[1:]]
    p = x.shape[0]
    acc = _decode_and_score(np.concatenate(noisy), decode, score, max_batch).reshape(len(all_levels), p)
    return {
        "levels": all_levels,
        "mean_accuracy": acc.mean(axis=1).tolist(),
        "std_accuracy": acc.std(axis=1).tolist(),
        "clean_accuracy": float(acc[0].mean()),
        "accuracy": acc.tolist(),
        "rule": f"{rule}: {NOISE_RULES[rule]}",
        "seed": int(seed),
    }


def pairs_for_interpolation(
    n: int, n_pairs: int, seed: int | None = 0, groups: np.ndarray | Sequence[Any] | None = None
) -> np.ndarray:
    """``[n_pairs, 2]`` int64 index pairs ``(i, j)``, ``i < j < n``, all distinct as unordered pairs,
    drawn uniformly without replacement. With ``groups`` (e.g. the model id of each row), only pairs
    from different groups are drawn: the paper interpolates "between different models", and two
    checkpoints of one model would measure the trajectory instead."""
    n, n_pairs = int(n), int(n_pairs)
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    g = None
    if groups is not None:
        g = np.asarray(groups).reshape(-1)
        if g.shape[0] != n:
            raise ValueError(f"groups has {g.shape[0]} entries, expected n = {n}")
    total = n * (n - 1) // 2
    if g is None:
        available = total
    else:
        _, counts = np.unique(g, return_counts=True)
        available = total - int((counts * (counts - 1) // 2).sum())
    if n_pairs > available:
        what = "pairs from different groups" if g is not None else "distinct pairs"
        raise ValueError(f"asked for {n_pairs} pairs but only {available} {what} exist among {n} rows")
    rng = np.random.default_rng(seed)
    if n_pairs == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if total <= _ENUMERATE_PAIRS:
        i, j = np.triu_indices(n, k=1)
        if g is not None:
            keep = g[i] != g[j]
            i, j = i[keep], j[keep]
        pick = rng.choice(i.shape[0], size=n_pairs, replace=False)
        return np.stack([i[pick], j[pick]], axis=1).astype(np.int64)
    chosen: dict[tuple[int, int], None] = {}  # insertion-ordered set
    while len(chosen) < n_pairs:
        a, b = rng.integers(0, n, size=(2, 2 * (n_pairs - len(chosen)) + 16))
        for x, y in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True):
            if x != y and (g is None or g[x] != g[y]):
                chosen.setdefault((x, y))
                if len(chosen) == n_pairs:
                    break
    return np.asarray(list(chosen), dtype=np.int64).reshape(n_pairs, 2)


# ------------------------------------------------------------------------------ figures


def _curves(result: Mapping[str, Any], key: str) -> dict[str, Mapping[str, Any]]:
    """One result (has ``key``) or several keyed by label, e.g. {"baseline": r1, "ours": r2}."""
    if key in result:
        return {"": result}
    return dict(result)


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def plot_interpolation(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """PNG of decoded accuracy along the interpolation: the mean curve over pairs (bold) and up to
    30 individual pairs (thin). ``result`` is one :func:`interpolation_accuracy` output or a mapping
    label -> output to compare autoencoders, as in the paper's Fig. 3 b/d."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, safe in workers

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for idx, (label, res) in enumerate(_curves(result, "t").items()):
        color = f"C{idx}"
        t = np.asarray(res["t"])
        for row in res.get("accuracy", [])[:30]:
            ax.plot(t, row, color=color, lw=0.5, alpha=0.3)
        name = f"{label}: " if label else ""
        worst = res["interpolation_accuracy_min"]
        text = f"{name}mean of {res.get('n_pairs', '?')} pairs (min {worst:.2f})"
        ax.plot(t, res["mean_accuracy"], color=color, lw=2, marker="o", label=text)
    ax.axhline(0.1, color="grey", ls="--", lw=1, label="random guessing (10 classes)")
    ax.set_xlabel("t  (z = (1 - t) z_a + t z_b)")
    ax.set_ylabel("decoded model accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title or "interpolation between embeddings")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_noise(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """PNG of mean decoded accuracy (+- std over embeddings) against the relative noise level;
    ``result`` is one :func:`noise_accuracy` output or a mapping label -> output (Fig. 3 a/c)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    rules = set()
    for idx, (label, res) in enumerate(_curves(result, "levels").items()):
        lv = np.asarray(res["levels"], dtype=float)
        mean = np.asarray(res["mean_accuracy"], dtype=float)
        std = np.asarray(res.get("std_accuracy", np.zeros_like(mean)), dtype=float)
        ax.errorbar(lv, mean, yerr=std, color=f"C{idx}", marker="o", capsize=3, label=label or None)
        rules.add(str(res.get("rule", "")).split(":")[0])
    ax.axhline(0.1, color="grey", ls="--", lw=1)
    ax.set_xlabel(f"relative noise level ({', '.join(sorted(r for r in rules if r)) or 'element'} rule)")
    ax.set_ylabel("decoded model accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title or "robustness to noise on z")
    if len(_curves(result, "levels")) > 1:
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
