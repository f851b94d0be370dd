"""Are sampled models new? Behavioural and weight-space distance of models to the train checkpoints.

A generative model of weights can score well by re-emitting (noisy copies of) what it was trained on.
Two measures tell a copy from a new model (Zeng et al. 2025, after p-diff's ``compute_wrong_iou``):

- ``max_wrong_iou``: for the set A of test images a model gets wrong and the set B of a reference
  checkpoint, IoU = |A and B| / |A or B|, maximised over the references. 1 = it errs exactly like some
  train checkpoint; independently trained models of the same zoo sit well below. Two perfect models
  (both sets empty) count as IoU 1: nothing tells them apart. ``novelty = 1 - max_wrong_iou``.
- ``nearest_l2``: the smallest L2 distance to a reference after putting both in the canonical neuron
  order (:mod:`hyperrep_ray.weightspace.align`), so a neuron-permuted copy is found at distance ~0;
  normalised by the median distance from a train checkpoint to the nearest checkpoint of a *different*
  model (1 = as far as a train model is from the other train models).

Reference set R: the train-split checkpoints the autoencoder saw. Reading the numbers needs two
reference points, both computed here: test-split models of the same zoo against R (what "as new as an
independently trained model" looks like) and each train checkpoint against the checkpoints of the
*other* train models.

Everything is vectorised: wrong-prediction masks come from the batched population evaluation
(:mod:`hyperrep_ray.zoo.population`), intersections and squared distances are matrix products over
chunks of models (exact for 0/1 masks in float32), on any torch device. Callers pass the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from hyperrep_ray.config import StrictModel
from hyperrep_ray.weightspace.align import align_to_reference, fit_reference
from hyperrep_ray.zoo.cnn import in_channels_for_length, vector_to_state_dict
from hyperrep_ray.zoo.population import CPU_MODEL_IMAGES, PopulationCNN

__all__ = [
    "ModelNovelty",
    "NoveltySummary",
    "NoveltyReference",
    "NoveltyScores",
    "Nearest",
    "wrong_masks",
    "max_wrong_iou",
    "nearest_pairs",
    "canonical_order",
    "nearest_l2",
    "l2_scale",
    "build_reference",
    "score_masks",
    "score_models",
    "train_vs_train",
]

#: Query models per matrix-product block: a block holds CHUNK x R floats (4 MB at R = 1000).
CHUNK = 1024
#: Models per batched population when computing wrong-prediction masks.
MODELS_PER_PASS = 256


class ModelNovelty(StrictModel):
    """How new one model is: its accuracy, most similar reference by errors, nearest by weights."""

    accuracy: float
    max_wrong_iou: float | None  # None: no reference to compare with
    novelty: float | None
    nearest_l2: float | None  # normalised; None for a non-finite weight vector
    nearest_l2_raw: float | None
    nearest_model_id: int | None
    nearest_epoch: int | None
    iou_model_id: int | None
    iou_epoch: int | None


class NoveltySummary(StrictModel):
    """A population in one line: mean accuracy, 1 - mean max_wrong_iou, median normalised nearest_l2."""

    accuracy: float
    novelty: float
    max_wrong_iou: float
    nearest_l2: float | None  # median over finite weight vectors; None if there are none
    n: int


class Nearest(NamedTuple):
    """Best value per query model and the reference row that attains it (-1: none)."""

    value: np.ndarray
    row: np.ndarray


@dataclass
class NoveltyReference:
    """The reference checkpoints, prepared once: wrong masks on the test images, weights in
    canonical order, the canonical reference used, and the L2 normaliser."""

    masks: np.ndarray  # (R, I) bool, True = predicted wrongly
    aligned: np.ndarray  # (R, N) float32, canonical neuron order
    model_id: np.ndarray  # (R,)
    epoch: np.ndarray  # (R,)
    canonical: np.ndarray  # (N,)
    scale: float  # median nearest distance between checkpoints of different models
    in_channels: int
    activation: str


@dataclass
class NoveltyScores:
    """Per-model measures of M models against a reference (arrays of length M)."""

    accuracy: np.ndarray
    max_wrong_iou: np.ndarray
    iou_index: np.ndarray
    nearest_l2_raw: np.ndarray
    nearest_index: np.ndarray
    scale: float

    @property
    def nearest_l2(self) -> np.ndarray:
        return self.nearest_l2_raw / self.scale

    def summary(self) -> NoveltySummary:
        iou = self.max_wrong_iou[np.isfinite(self.max_wrong_iou)]
        l2 = self.nearest_l2[np.isfinite(self.nearest_l2)]
        mean_iou = float(iou.mean()) if iou.size else float("nan")
        return NoveltySummary(
            accuracy=float(self.accuracy.mean()) if self.accuracy.size else float("nan"),
            novelty=1.0 - mean_iou,
            max_wrong_iou=mean_iou,
            nearest_l2=float(np.median(l2)) if l2.size else None,
            n=int(self.accuracy.size),
        )

    def records(self, reference: NoveltyReference) -> list[ModelNovelty]:
        return [self.record(i, reference) for i in range(self.accuracy.size)]

    def record(self, i: int, reference: NoveltyReference) -> ModelNovelty:
        iou, l2 = float(self.max_wrong_iou[i]), float(self.nearest_l2_raw[i])
        ii, li = int(self.iou_index[i]), int(self.nearest_index[i])
        return ModelNovelty(
            accuracy=float(self.accuracy[i]),
            max_wrong_iou=iou if ii >= 0 else None,
            novelty=1.0 - iou if ii >= 0 else None,
            nearest_l2=l2 / self.scale if li >= 0 else None,
            nearest_l2_raw=l2 if li >= 0 else None,
            nearest_model_id=int(reference.model_id[li]) if li >= 0 else None,
            nearest_epoch=int(reference.epoch[li]) if li >= 0 else None,
            iou_model_id=int(reference.model_id[ii]) if ii >= 0 else None,
            iou_epoch=int(reference.epoch[ii]) if ii >= 0 else None,
        )


# ------------------------------------------------------------------------------ behaviour: errors


@torch.no_grad()
def wrong_masks(
    weights: np.ndarray,
    x: torch.Tensor,
    y: torch.Tensor,
    activation: str,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """(M, I) bool: which of the I images each flat weight vector (M, N) classifies wrongly.

    Models run as batched populations of :data:`MODELS_PER_PASS`; a non-finite vector (a decoder can
    produce one) gets every image wrong instead of poisoning its population."""
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"weights must be (M, N), got shape {w.shape}")
    c = in_channels_for_length(w.shape[1])
    xs, ys = x.to(device), y.to(device)
    out = np.ones((w.shape[0], ys.shape[0]), dtype=bool)
    finite = np.flatnonzero(np.isfinite(w).all(axis=1))
    for start in range(0, finite.size, MODELS_PER_PASS):
        rows = finite[start : start + MODELS_PER_PASS]
        model = PopulationCNN([vector_to_state_dict(v, c) for v in w[rows]], c, activation).to(device)
        model.eval()
        chunked = model.path_for(xs.device) == "chunked"
        batch = max(64, CPU_MODEL_IMAGES // max(1, model.k)) if chunked else 512
        for i in range(0, xs.shape[0], batch):
            pred = model(xs[i : i + batch]).argmax(-1)  # (k, b)
            out[rows, i : i + batch] = (pred != ys[i : i + batch]).cpu().numpy()
    return out


def max_wrong_iou(
    masks: np.ndarray,
    ref_masks: np.ndarray,
    query_ids: Sequence[int] | np.ndarray | None = None,
    ref_ids: Sequence[int] | np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> Nearest:
    """Max over references of the wrong-set IoU, and its argmax, for each query mask (M, I) against
    reference masks (R, I). With ids, references of the query's own id (the same model) are skipped;
    a query with none left gets NaN and index -1."""
    a, b = np.asarray(masks, dtype=bool), np.asarray(ref_masks, dtype=bool)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"masks must be (M, I) and (R, I) over the same images, got {a.shape} and {b.shape}")
    bt = torch.from_numpy(b).to(device=device, dtype=torch.float32)
    nb = bt.sum(1)
    same = _same_id(query_ids, ref_ids, a.shape[0], b.shape[0], device)
    value, index = np.full(a.shape[0], np.nan), np.full(a.shape[0], -1, dtype=np.int64)
    for s in range(0, a.shape[0], CHUNK):
        at = torch.from_numpy(a[s : s + CHUNK]).to(device=device, dtype=torch.float32)
        inter = at @ bt.T  # exact: sums of 0/1 stay integers in float32 up to 2^24 images
        union = at.sum(1, keepdim=True) + nb - inter
        iou = torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(inter))
        if same is not None:
            iou.masked_fill_(same[0][s : s + CHUNK, None] == same[1][None, :], -torch.inf)
        if b.shape[0]:
            _keep_best(_exact_best(iou, inter, union), value, index, s)
    return Nearest(value, index)


def _exact_best(
    iou: torch.Tensor, inter: torch.Tensor, union: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and argmax of each row's IoU, the max recomputed in float64 from the winner's integer
    counts (the float32 division rounds); -inf (no allowed reference) stays -inf."""
    best, arg = iou.max(1)
    i_ = inter.gather(1, arg[:, None])[:, 0].double()
    u_ = union.gather(1, arg[:, None])[:, 0].double()
    exact = torch.where(u_ > 0, i_ / u_.clamp_min(1.0), torch.ones_like(i_))
    return torch.where(torch.isfinite(best), exact, best.double()), arg


def _same_id(
    query_ids: Sequence[int] | np.ndarray | None,
    ref_ids: Sequence[int] | np.ndarray | None,
    m: int,
    r: int,
    device: str | torch.device,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    if query_ids is None and ref_ids is None:
        return None
    if query_ids is None or ref_ids is None or len(query_ids) != m or len(ref_ids) != r:
        raise ValueError(f"exclusion needs both id arrays, of lengths {m} and {r}")
    return (
        torch.as_tensor(np.asarray(query_ids, dtype=np.int64), device=device),
        torch.as_tensor(np.asarray(ref_ids, dtype=np.int64), device=device),
    )


def _keep_best(best: tuple[torch.Tensor, torch.Tensor], value: np.ndarray, index: np.ndarray, s: int) -> None:
    """Write one chunk's (values, argmax) into the outputs; +-inf marks "no allowed reference"."""
    v, i = best[0].cpu().double().numpy(), best[1].cpu().numpy()
    ok = np.isfinite(v)
    value[s : s + v.size] = np.where(ok, v, np.nan)
    index[s : s + v.size] = np.where(ok, i, -1)


# ------------------------------------------------------------------------- weights: L2 distance


def nearest_pairs(
    weights: np.ndarray,
    references: np.ndarray,
    query_ids: Sequence[int] | np.ndarray | None = None,
    ref_ids: Sequence[int] | np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> Nearest:
    """Smallest L2 distance from each row of ``weights`` (M, N) to a row of ``references`` (R, N),
    as given (no alignment), and its index. The search uses ||a||^2 + ||b||^2 - 2ab in float32
    blocks; the winning pair's distance is then recomputed exactly (float64 difference), so a copy
    reads 0. Non-finite rows get inf and index -1; ids exclude pairs as in :func:`max_wrong_iou`."""
    a, b = np.asarray(weights, dtype=np.float32), np.asarray(references, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"weights must be (M, N) and (R, N), got {a.shape} and {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("references contain NaN or infinite values")
    bt = torch.from_numpy(b).to(device)
    nb = (bt * bt).sum(1)
    same = _same_id(query_ids, ref_ids, a.shape[0], b.shape[0], device)
    finite = np.asarray(np.isfinite(a).all(axis=1), dtype=bool)
    value, index = np.full(a.shape[0], np.nan), np.full(a.shape[0], -1, dtype=np.int64)
    for s in range(0, a.shape[0], CHUNK):
        at = torch.from_numpy(np.where(finite[s : s + CHUNK, None], a[s : s + CHUNK], 0.0)).to(device)
        d2 = (at * at).sum(1, keepdim=True) + nb - 2.0 * (at @ bt.T)
        d2.masked_fill_(torch.from_numpy(~finite[s : s + CHUNK]).to(device)[:, None], torch.inf)
        if same is not None:
            d2.masked_fill_(same[0][s : s + CHUNK, None] == same[1][None, :], torch.inf)
        if b.shape[0]:
            _keep_best(d2.min(1), value, index, s)
    found = index >= 0
    diff = a[found].astype(np.float64) - b[index[found]].astype(np.float64)
    value[found] = np.sqrt((diff * diff).sum(axis=1))
    value[~found] = np.inf
    return Nearest(value, index)


def canonical_order(weights: np.ndarray, canonical: np.ndarray, in_channels: int) -> np.ndarray:
    """Weights (M, N) with every model's hidden neurons permuted to match ``canonical`` (float32);
    non-finite rows are returned as they are (they cannot be matched)."""
    w = np.array(weights, dtype=np.float32)
    finite = np.isfinite(w).all(axis=1)
    if finite.any():
        w[finite] = np.asarray(align_to_reference(w[finite], canonical, in_channels).aligned, np.float32)
    return w


def nearest_l2(
    weights: np.ndarray,
    references: np.ndarray,
    canonical: np.ndarray | None = None,
    scale: float = 1.0,
    device: str | torch.device = "cpu",
) -> Nearest:
    """Nearest reference by L2 distance / ``scale`` after putting both in the canonical neuron order
    (``canonical``, default: a reference fitted to ``references``), so a permuted copy reads ~0."""
    w = np.asarray(weights, dtype=np.float32)
    c = in_channels_for_length(w.shape[1])
    ref = np.asarray(references, dtype=np.float32)
    canon = fit_reference(ref, c, iterations=3).reference if canonical is None else canonical
    found = nearest_pairs(canonical_order(w, canon, c), canonical_order(ref, canon, c), device=device)
    return Nearest(found.value / scale, found.row)


def l2_scale(
    aligned: np.ndarray, model_id: Sequence[int] | np.ndarray, device: str | torch.device = "cpu"
) -> float:
    """Median distance from a checkpoint to the nearest checkpoint of a *different* model (aligned
    weights): the unit of the normalised nearest_l2."""
    ids = np.asarray(model_id)
    if np.unique(ids).size < 2:
        raise ValueError("the L2 scale needs checkpoints of at least two different models")
    d = nearest_pairs(aligned, aligned, ids, ids, device=device).value
    return float(np.median(d))


# ---------------------------------------------------------------------------- one call each


def build_reference(
    weights: np.ndarray,
    model_id: Sequence[int] | np.ndarray,
    epoch: Sequence[int] | np.ndarray,
    x: torch.Tensor,
    y: torch.Tensor,
    activation: str,
    canonical: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> NoveltyReference:
    """Prepare the reference checkpoints (R, N) once: wrong masks on the test images (x, y), weights
    in the canonical order (``canonical``: the autoencoder's alignment reference; default: one fitted
    to these weights) and the L2 scale."""
    w = np.asarray(weights, dtype=np.float32)
    c = in_channels_for_length(w.shape[1])
    canon = fit_reference(w, c, iterations=3).reference if canonical is None else np.asarray(canonical)
    aligned = canonical_order(w, canon, c)
    ids = np.asarray(model_id, dtype=np.int64)
    return NoveltyReference(
        masks=wrong_masks(w, x, y, activation, device),
        aligned=aligned,
        model_id=ids,
        epoch=np.asarray(epoch, dtype=np.int64),
        canonical=np.asarray(canon, dtype=np.float32),
        scale=l2_scale(aligned, ids, device),
        in_channels=c,
        activation=activation,
    )


def score_masks(
    masks: np.ndarray,
    weights: np.ndarray,
    reference: NoveltyReference,
    model_ids: Sequence[int] | np.ndarray | None = None,
    aligned: bool = False,
    device: str | torch.device = "cpu",
) -> NoveltyScores:
    """Novelty of models whose wrong masks (M, I) are known; ``model_ids`` skip references of the same
    model; ``aligned`` says the weights are already in the reference's canonical order."""
    w = np.asarray(weights, dtype=np.float32)
    if not aligned:
        w = canonical_order(w, reference.canonical, reference.in_channels)
    ids = None if model_ids is None else reference.model_id
    iou = max_wrong_iou(masks, reference.masks, model_ids, ids, device)
    near = nearest_pairs(w, reference.aligned, model_ids, ids, device)
    return NoveltyScores(
        accuracy=1.0 - np.asarray(masks, dtype=bool).mean(axis=1),
        max_wrong_iou=iou.value,
        iou_index=iou.row,
        nearest_l2_raw=near.value,
        nearest_index=near.row,
        scale=reference.scale,
    )


def score_models(
    weights: np.ndarray,
    reference: NoveltyReference,
    x: torch.Tensor,
    y: torch.Tensor,
    model_ids: Sequence[int] | np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> NoveltyScores:
    """Novelty of weight vectors (M, N) against the reference, on the same test images (x, y)."""
    masks = wrong_masks(weights, x, y, reference.activation, device)
    return score_masks(masks, weights, reference, model_ids, device=device)


def train_vs_train(reference: NoveltyReference, device: str | torch.device = "cpu") -> NoveltyScores:
    """Reference point: every train checkpoint against the checkpoints of the *other* models."""
    return score_masks(reference.masks, reference.aligned, reference, reference.model_id, True, device)
