"""Losses and reconstruction metrics for the weight autoencoder.

- ``layerwise_normalized_mse``: layer-wise loss normalisation (LWLN, 2022 paper Eq. 2), so that
  narrow layers are not left at their mean (which makes decoded models guess at random).
- ``masked_mse``: plain MSE over real entries (the 2021 baseline, Eq. 1; ``--no-lwln``).
- ``nt_xent``: SimCLR's normalised temperature-scaled cross entropy for the contrastive term.
- ``combined_loss``: L = beta * L_rec + (1 - beta) * L_c.
- ``reconstruction_r2`` / ``reconstruction_r2_per_layer``: R^2 = 1 - mse(w_hat, w) / mse(w_mean, w)
  (2022 paper, App. C).

All losses compute in float32 and avoid host syncs, so they are safe under autocast and torch.compile.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_VAR_FLOOR = 1e-12


def lwln_entry_weights(
    mask: torch.Tensor,
    entry_var: torch.Tensor,
    layer_of_token: torch.Tensor,
    weighting: str = "params",
) -> torch.Tensor:
    """Per-entry weights W[T, D] such that LWLN = sum_{b,t,d} W[t,d] * err[b,t,d]^2 / B.

    ``weighting="params"`` is the 2022 paper's Eq. 2 as written: 1 / (N * sigma_l^2), N = number of
    real parameters, so each layer counts by its parameter count. ``weighting="layers"`` gives every
    layer equal weight: 1 / (L * N_l * sigma_l^2), i.e. the mean over layers of each layer's
    variance-normalised MSE. Both are 1.0 when every layer is predicted by its train mean.
    Padding entries (mask False) get weight 0; their variance is never read (no 0/0 in gradients).
    Variances are floored at 1e-12 so a constant layer cannot produce inf.
    """
    if mask.shape != entry_var.shape or mask.dim() != 2:
        raise ValueError(
            f"mask {tuple(mask.shape)} and entry_var {tuple(entry_var.shape)} must both be [T, D]"
        )
    if layer_of_token.shape != mask.shape[:1]:
        raise ValueError(f"layer_of_token {tuple(layer_of_token.shape)} must be [T] = [{mask.shape[0]}]")
    m = mask.to(torch.bool)
    mf = m.to(torch.float32)
    var = torch.where(m, entry_var.to(torch.float32).clamp_min(_VAR_FLOOR), torch.ones_like(mf))
    if weighting == "params":
        return mf / (var * mf.sum())
    if weighting == "layers":
        same = (layer_of_token[:, None] == layer_of_token[None, :]).to(torch.float32)  # [T, T]
        n_layer_of_token = same @ mf.sum(1)  # real entries in the token's layer, [T]
        n_layers = (1.0 / same.sum(1)).sum()  # each layer's tokens contribute 1 in total
        return mf / (var * n_layer_of_token.clamp_min(1.0)[:, None] * n_layers)
    raise ValueError(f"weighting must be 'params' or 'layers', got {weighting!r}")


def layerwise_normalized_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    entry_var: torch.Tensor,
    layer_of_token: torch.Tensor,
    *,
    weighting: str = "params",
) -> torch.Tensor:
    """LWLN (2022 Eq. 2): squared error of each layer divided by that layer's train-split variance.

    pred/target [B, T, D]; mask [T, D] (True = real weight); entry_var [T, D] (the variance of the
    entry's layer); layer_of_token [T]. Default ``weighting="params"`` is Eq. 2 as printed,
    (1 / (M N)) * sum_i sum_l ||w_hat_l - w_l||^2 / sigma_l^2, which equals the parameter-count-weighted
    mean over layers of per-layer normalised MSE; ``"layers"`` is the unweighted mean over layers.
    Either way predicting each layer's mean scores ~1.0, comparable to plain MSE on standardised data.
    """
    if pred.shape != target.shape or pred.dim() != 3 or tuple(pred.shape[1:]) != tuple(mask.shape):
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [B, T, D] with "
            f"[T, D] = mask {tuple(mask.shape)}"
        )
    w = lwln_entry_weights(mask, entry_var, layer_of_token, weighting)
    err = pred.to(torch.float32) - target.to(torch.float32)
    return (err.square() * w).sum() / pred.shape[0]


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain MSE over real entries only (2021 baseline, Eq. 1); padding never contributes."""
    if pred.shape != target.shape or pred.dim() != 3 or tuple(pred.shape[1:]) != tuple(mask.shape):
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [B, T, D] with "
            f"[T, D] = mask {tuple(mask.shape)}"
        )
    mf = mask.to(torch.float32)
    err = pred.to(torch.float32) - target.to(torch.float32)
    return (err.square() * mf).sum() / (mf.sum() * pred.shape[0])


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent (SimCLR): each of the 2B views must pick its partner among the other 2B - 1 views.

    Cosine similarities divided by ``temperature``, cross entropy averaged over all 2B anchors
    (symmetric in the two views). With B = 1 the only candidate is the positive, so the loss is
    exactly 0 (no negatives, no gradient signal); it is returned, not raised, so that a ragged last
    batch does not stop training.
    """
    if z1.shape != z2.shape or z1.dim() != 2 or z1.shape[0] < 1:
        raise ValueError(f"z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)} must both be [B >= 1, P]")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).to(torch.float32), dim=1)
    logits = z @ z.t() / temperature
    eye = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, -1e9)  # an anchor is never its own candidate
    idx = torch.arange(2 * b, device=z.device)
    targets = (idx + b) % (2 * b)
    return F.cross_entropy(logits, targets)


def combined_loss(beta: float, rec: torch.Tensor, con: torch.Tensor) -> torch.Tensor:
    """beta * reconstruction + (1 - beta) * contrastive (paper: beta 0.92-0.977)."""
    if not 0.0 <= float(beta) <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    return beta * rec + (1.0 - beta) * con


def latent_penalty(z: torch.Tensor) -> torch.Tensor:
    """mean(z^2) over batch and dimensions: independent of d_z, 1 when every z is saturated at +-1."""
    return z.float().pow(2).mean()


def saturated_fraction(z: torch.Tensor | np.ndarray, threshold: float = 0.9) -> float:
    """Share of z entries in tanh saturation (|z| > threshold): a near-binary code that memorises
    and that the per-dimension samplers cannot interpolate; ``latent_penalty`` counters it."""
    return float((torch.as_tensor(z).abs() > threshold).float().mean())


def _as_2d(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2:
        raise ValueError(f"{name} must be [B, N], got {tuple(t.shape)}")
    return t


@torch.no_grad()
def reconstruction_r2(
    pred_vec: torch.Tensor | np.ndarray,
    target_vec: torch.Tensor | np.ndarray,
    train_mean: torch.Tensor | np.ndarray,
) -> float:
    """R^2 = 1 - mse(pred, target) / mse(train_mean, target) over all parameters (App. C).

    1 for perfect reconstruction, 0 for predicting the train mean, negative if worse than the mean;
    nan if every target equals the mean.
    """
    p, t = _as_2d(pred_vec, "pred_vec"), _as_2d(target_vec, "target_vec")
    m = torch.as_tensor(train_mean).detach().to("cpu", torch.float64).reshape(-1)
    if p.shape != t.shape or m.shape[0] != t.shape[1]:
        raise ValueError(
            f"shapes differ: pred {tuple(p.shape)}, target {tuple(t.shape)}, mean {tuple(m.shape)}"
        )
    num = (p - t).square().sum()
    den = (m[None] - t).square().sum()
    return float(1.0 - num / den) if den > 0 else float("nan")


@torch.no_grad()
def reconstruction_r2_per_layer(
    pred_vec: torch.Tensor | np.ndarray,
    target_vec: torch.Tensor | np.ndarray,
    train_mean: torch.Tensor | np.ndarray,
    layer_of_param: torch.Tensor | np.ndarray,
) -> list[float]:
    """R^2 of each layer (list indexed by layer id 0..L-1), given the layer index of every parameter.

    Shows which layers a decoder leaves at the mean, the failure LWLN is meant to prevent.
    """
    p, t = _as_2d(pred_vec, "pred_vec"), _as_2d(target_vec, "target_vec")
    m = torch.as_tensor(train_mean).detach().to("cpu", torch.float64).reshape(-1)
    lay = torch.as_tensor(layer_of_param).detach().to("cpu", torch.long).reshape(-1)
    if p.shape != t.shape or m.shape[0] != t.shape[1] or lay.shape[0] != t.shape[1]:
        raise ValueError(
            f"shapes differ: pred {tuple(p.shape)}, target {tuple(t.shape)}, mean {tuple(m.shape)}, "
            f"layer_of_param {tuple(lay.shape)}"
        )
    n_layers = int(lay.max()) + 1
    num = torch.zeros(n_layers, dtype=torch.float64).index_add_(0, lay, (p - t).square().sum(0))
    den = torch.zeros(n_layers, dtype=torch.float64).index_add_(0, lay, (m[None] - t).square().sum(0))
    return [float(1.0 - n / d) if d > 0 else float("nan") for n, d in zip(num, den, strict=True)]


#: The 2022 code floors each layer's std here before dividing by it.
PAPER_STD_FLOOR = 1e-4


@torch.no_grad()
def paper_layer_std(
    train_vec: torch.Tensor | np.ndarray, layer_of_param: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Per-parameter divisor of the 2022 code's R^2: the std (unbiased, ``torch.std``) of all train
    weights of the parameter's layer, pooled over models and parameters, floored at 1e-4."""
    t = _as_2d(train_vec, "train_vec")
    lay = torch.as_tensor(layer_of_param).detach().to("cpu", torch.long).reshape(-1)
    if lay.shape[0] != t.shape[1]:
        raise ValueError(
            f"layer_of_param {tuple(lay.shape)} must have one entry per parameter ({t.shape[1]})"
        )
    std = torch.ones(t.shape[1], dtype=torch.float64)
    for layer in torch.unique(lay):
        cols = lay == layer
        std[cols] = t[:, cols].flatten().std().clamp_min(PAPER_STD_FLOOR)
    return std


@torch.no_grad()
def reconstruction_r2_paper(
    pred_vec: torch.Tensor | np.ndarray,
    target_vec: torch.Tensor | np.ndarray,
    train_vec: torch.Tensor | np.ndarray,
    layer_of_param: torch.Tensor | np.ndarray,
) -> float:
    """R^2 as the 2022 code reports it (``LayerWiseReconLoss``, reduction ``global_mean``), so our
    numbers can be read against the paper's.

    Outputs and targets are divided by their layer's train std (:func:`paper_layer_std`) and the
    pooled MSE over all parameters is taken; R^2 = 1 - that MSE / the same MSE of the per-coordinate
    train mean against the *train* weights (their ``set_mean_loss``). Ours
    (:func:`reconstruction_r2`) uses raw weights and the test split's distance to the train mean, so
    the two differ when layers have different scales or the test split is spread differently.
    """
    p, t, tr = _as_2d(pred_vec, "pred_vec"), _as_2d(target_vec, "target_vec"), _as_2d(train_vec, "train_vec")
    if p.shape != t.shape or tr.shape[1] != t.shape[1]:
        raise ValueError(
            f"shapes differ: pred {tuple(p.shape)}, target {tuple(t.shape)}, train {tuple(tr.shape)}"
        )
    std = paper_layer_std(tr, layer_of_param)
    loss = ((p - t) / std).square().mean()
    loss_mean = ((tr.mean(0, keepdim=True) - tr) / std).square().mean()
    return float(1.0 - loss / loss_mean) if loss_mean > 0 else float("nan")
