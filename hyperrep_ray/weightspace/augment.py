"""Weight-space augmentations: neuron permutation, random erasing of tokens, Gaussian noise.

Permutation is the symmetry of the 2021 paper (appendix A): reordering the output neurons of a
hidden layer together with the matching inputs of the next layer leaves the function unchanged,
so permuted copies are free positive pairs for the contrastive loss. Erasing and noise are
ordinary input corruptions. Everything takes an explicit ``torch.Generator`` so that a seed
gives the same views, and everything is batched (one gather per batch, no loop over samples).

Permutation convention everywhere (also in :mod:`hyperrep_ray.weightspace.align`): for a layer permutation
``p``, new neuron ``o`` is old neuron ``p[o]`` (``new = old[p]``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple, overload

import torch

from hyperrep_ray.weightspace.tokens import TokenLayout, token_layout, vectors_to_tokens
from hyperrep_ray.zoo.cnn import layer_shapes

__all__ = [
    "HIDDEN_LAYERS",
    "hidden_sizes",
    "random_permutations",
    "identity_permutations",
    "invert_permutations",
    "permutation_index",
    "apply_permutation",
    "permute_hidden_neurons",
    "random_erase",
    "gaussian_noise",
    "TwoViews",
    "TwoViewAugmenter",
]

# Hidden layers whose output neurons may be permuted; fc2's outputs are the classes and stay fixed.
HIDDEN_LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "fc1")
# Spatial positions of conv3's output (4 x 3 x 3 -> flatten 36): each conv3 channel owns a
# contiguous block of this many fc1 input columns.
_CONV3_POSITIONS = 9


@dataclass(frozen=True)
class _ParamSpec:
    """How one parameter tensor is indexed: viewed as [n_out, n_in, k] (biases: [n_out, 1, 1])."""

    offset: int
    out_layer: str | None  # permutation acting on dim 0 (None: fixed)
    in_layer: str | None  # permutation acting on dim 1 (None: fixed)
    n_out: int
    n_in: int
    k: int


@functools.lru_cache(maxsize=8)
def _param_specs(in_channels: int) -> tuple[tuple[_ParamSpec, ...], dict[str, int], int]:
    shapes = dict(layer_shapes(in_channels))
    sizes = {name: shapes[f"{name}.weight"][0] for name in HIDDEN_LAYERS}
    prev = {"conv1": None, "conv2": "conv1", "conv3": "conv2", "fc1": "conv3", "fc2": "fc1"}
    specs = []
    offset = 0
    for name, shape in layer_shapes(in_channels):
        layer, kind = name.rsplit(".", 1)
        out_layer = layer if layer in HIDDEN_LAYERS else None
        if kind == "bias":
            specs.append(_ParamSpec(offset, out_layer, None, shape[0], 1, 1))
        else:
            n_out, n_in = shape[0], shape[1]
            k = math.prod(shape[2:]) if len(shape) > 2 else 1
            if layer == "fc1":  # the flatten after conv3: 36 inputs = 4 channels x 9 positions
                if n_in != sizes["conv3"] * _CONV3_POSITIONS:
                    raise AssertionError("fc1 inputs do not match conv3 channels x 3 x 3")
                n_in, k = sizes["conv3"], _CONV3_POSITIONS
            specs.append(_ParamSpec(offset, out_layer, prev[layer], n_out, n_in, k))
        offset += math.prod(shape)
    return tuple(specs), sizes, offset


def hidden_sizes(in_channels: int = 1) -> dict[str, int]:
    """Number of permutable neurons per hidden layer: conv1 8, conv2 6, conv3 4, fc1 20."""
    return dict(_param_specs(in_channels)[1])


def identity_permutations(
    batch: int | None = None, in_channels: int = 1, device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """Identity permutation per hidden layer, ``[n]`` or ``[batch, n]``."""
    out = {}
    for name, n in hidden_sizes(in_channels).items():
        p = torch.arange(n, device=device)
        out[name] = p if batch is None else p.expand(batch, n).clone()
    return out


def random_permutations(
    batch: int, in_channels: int, generator: torch.Generator, device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """Independent uniform random permutations ``[batch, n]`` per hidden layer (argsort of uniforms).

    Drawn on the generator's device, then moved to ``device``, so results depend only on the seed."""
    out = {}
    for name, n in hidden_sizes(in_channels).items():
        u = torch.rand((batch, n), generator=generator, device=generator.device)
        out[name] = torch.argsort(u, dim=1).to(device if device is not None else u.device)
    return out


def invert_permutations(perms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse permutations (``apply(apply(w, p), invert(p)) == w``)."""
    return {name: torch.argsort(torch.as_tensor(p), dim=-1) for name, p in perms.items()}


def permutation_index(
    perms: dict[str, torch.Tensor], in_channels: int = 1, batch: int | None = None
) -> torch.Tensor:
    """Flat gather index ``[B, N]`` such that ``w_permuted = w.gather(1, index)``.

    ``perms`` maps hidden layer name -> ``[n]`` (shared) or ``[B, n]`` (per sample) long tensor;
    missing layers are left in place. Element (o, i, k) of a parameter viewed as [n_out, n_in, k]
    is read from (p_out[o], p_in[i], k), where p_in is the previous layer's permutation (conv3's
    channel permutation acts on fc1's column blocks of 9)."""
    specs, sizes, _ = _param_specs(in_channels)
    unknown = set(perms) - set(sizes)
    if unknown:
        raise ValueError(f"unknown layers in permutation dict: {sorted(unknown)}; permutable: {list(sizes)}")
    device = None
    batched: dict[str, torch.Tensor] = {}
    for name, p in perms.items():
        p = torch.as_tensor(p)
        if p.ndim == 1:
            p = p.unsqueeze(0)
        if p.ndim != 2 or p.shape[1] != sizes[name]:
            raise ValueError(
                f"permutation for {name} has shape {tuple(p.shape)}; "
                f"expected [{sizes[name]}] or [B, {sizes[name]}]"
            )
        if p.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"permutation for {name} must be an integer tensor, got {p.dtype}")
        p = p.long()
        if not torch.equal(
            torch.sort(p, dim=1).values, torch.arange(p.shape[1], device=p.device).expand_as(p)
        ):
            raise ValueError(f"permutation for {name} is not a permutation of 0..{p.shape[1] - 1}")
        batched[name] = p
        device = p.device
    sizes_seen = {p.shape[0] for p in batched.values()} - {1}
    if len(sizes_seen) > 1 or (batch is not None and sizes_seen and sizes_seen != {batch}):
        raise ValueError(
            f"permutations have batch sizes {sorted(sizes_seen)}; "
            f"expected 1 or {batch if batch else 'one common size'}"
        )
    if batch is None:
        batch = sizes_seen.pop() if sizes_seen else 1

    def perm(name: str | None, n: int) -> torch.Tensor:
        if name is None or name not in batched:
            return torch.arange(n, device=device).unsqueeze(0)
        return batched[name]

    parts = []
    for s in specs:
        p_out = perm(s.out_layer, s.n_out)[:, :, None, None]
        p_in = perm(s.in_layer, s.n_in)[:, None, :, None]
        k = torch.arange(s.k, device=device)[None, None, None, :]
        idx = s.offset + p_out * (s.n_in * s.k) + p_in * s.k + k
        parts.append(idx.expand(batch, s.n_out, s.n_in, s.k).reshape(batch, -1))
    return torch.cat(parts, dim=1)


def apply_permutation(w: torch.Tensor, perms: dict[str, torch.Tensor], in_channels: int = 1) -> torch.Tensor:
    """Permute hidden neurons of weight vectors ``[B, N]`` (or one ``[N]``) with explicit permutations.

    Function-preserving: each hidden layer's output channels (weight rows and bias) and the next
    layer's matching input channels move together. Differentiable in ``w``."""
    w = torch.as_tensor(w)
    n = _param_specs(in_channels)[2]
    if w.ndim not in (1, 2) or w.shape[-1] != n:
        raise ValueError(
            f"weight vectors have shape {tuple(w.shape)}; expected [B, {n}] or [{n}] for the zoo CNN "
            f"with {in_channels} input channel(s)"
        )
    single = w.ndim == 1
    wb = w.unsqueeze(0) if single else w
    perms = {k: torch.as_tensor(v).to(w.device) for k, v in perms.items()}
    idx = permutation_index(perms, in_channels, batch=wb.shape[0]).to(w.device)
    out = wb.gather(1, idx.expand(wb.shape[0], -1))
    return out[0] if single else out


@overload
def permute_hidden_neurons(
    w: torch.Tensor, in_channels: int, generator: torch.Generator, return_perms: Literal[False] = False
) -> torch.Tensor: ...


@overload
def permute_hidden_neurons(
    w: torch.Tensor, in_channels: int, generator: torch.Generator, return_perms: Literal[True]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


def permute_hidden_neurons(
    w: torch.Tensor, in_channels: int, generator: torch.Generator, return_perms: bool = False
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A random function-preserving permutation per sample and hidden layer (conv1, conv2, conv3, fc1).

    The 2021 paper's permutation augmentation: one of 8! 6! 4! 20! equivalent copies of each model."""
    w = torch.as_tensor(w)
    if w.ndim != 2:
        raise ValueError(f"expected a batch of weight vectors [B, N], got shape {tuple(w.shape)}")
    perms = random_permutations(w.shape[0], in_channels, generator, device=w.device)
    out = apply_permutation(w, perms, in_channels)
    return (out, perms) if return_perms else out


def random_erase(
    tokens: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.33),
    value: float = 0.0,
    mask: torch.Tensor | None = None,
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Erase one random rectangle of each sample's ``[T, D]`` token matrix with probability ``p``.

    torchvision's RandomErasing transferred to the token matrix, with a rule that always fits:
    per sample draw the area fraction ``s ~ U(scale)`` and an aspect ``r`` log-uniform in ``ratio``;
    the rectangle spans a fraction ``sqrt(s * r)`` of the rows (clipped to [s, 1]) -> ``h`` rows
    (rounded, at least ``lo * T`` and 1), then ``w = round(s * T * D / h)`` columns, clamped so
    that ``h * w / (T * D)`` stays inside ``scale`` where whole entries allow it and ``w <= D``;
    the top-left corner is uniform over the positions that keep the rectangle inside ``[T, D]``.
    Aspect ``r`` is relative to the matrix shape (r = 1: the matrix's own shape, scaled down).
    Erased entries are set to ``value``; if ``mask`` (``[T, D]`` bool, e.g. ``layout.mask``) is
    given, only True entries are touched, so padding stays zero. Rows are neurons, so the block
    removes a run of consecutive neurons' leading inputs. Returns a new tensor (input untouched)."""
    if tokens.ndim != 3:
        raise ValueError(f"expected tokens [B, T, D], got shape {tuple(tokens.shape)}")
    lo, hi = float(scale[0]), float(scale[1])
    if not (0.0 < lo <= hi <= 1.0):
        raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {scale}")
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"p must be in [0, 1], got {p}")
    if not (0.0 < ratio[0] <= ratio[1]):
        raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {ratio}")
    b, t, d = tokens.shape
    gdev = generator.device
    u = torch.rand((b, 5), generator=generator, device=gdev, dtype=torch.float64)
    apply = u[:, 0] < p
    s = lo + (hi - lo) * u[:, 1]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 2]
    frac_h = torch.sqrt(s * torch.exp(log_r)).clamp(max=1.0)
    frac_h = torch.maximum(frac_h, s)  # so the width fraction s / frac_h is at most 1
    area = float(t * d)
    h = torch.round(frac_h * t).clamp(max(1, math.ceil(lo * t - 1e-9)), t)  # h >= lo*T: width fits
    w_min = torch.ceil(lo * area / h - 1e-9)
    w_max = torch.floor(hi * area / h + 1e-9)
    wdt = torch.round(s * area / h)
    wdt = torch.minimum(torch.maximum(wdt, w_min), w_max).clamp(1, d)
    top = torch.floor(u[:, 3] * (t - h + 1)).clamp(max=t - h)
    left = torch.floor(u[:, 4] * (d - wdt + 1)).clamp(max=d - wdt)

    dev = tokens.device
    h, wdt, top, left, apply = (x.to(dev) for x in (h, wdt, top, left, apply))
    rows = torch.arange(t, device=dev, dtype=torch.float64)[None, :]
    cols = torch.arange(d, device=dev, dtype=torch.float64)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None]) & apply[:, None]
    in_cols = (cols >= left[:, None]) & (cols < (left + wdt)[:, None])
    erase = in_rows[:, :, None] & in_cols[:, None, :]
    if mask is not None:
        mask = torch.as_tensor(mask, device=dev)
        if mask.shape != (t, d):
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected ({t}, {d})")
        erase = erase & mask.bool()[None]
    return tokens.masked_fill(erase, value)


def gaussian_noise(
    x: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator, relative: bool = False
) -> torch.Tensor:
    """``x + sigma * eps`` (or ``x * (1 + sigma * eps)`` if ``relative``), eps ~ N(0, 1).

    ``sigma`` may be a tensor broadcastable to ``x`` (e.g. a per-parameter std to scale noise
    per layer). Noise is drawn on the generator's device in float32 for reproducibility."""
    if isinstance(sigma, (int, float)) and sigma == 0:
        return x.clone()
    eps = torch.randn(x.shape, generator=generator, device=generator.device).to(
        device=x.device, dtype=x.dtype
    )
    sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    return x * (1 + sigma * eps) if relative else x + sigma * eps


class TwoViews(NamedTuple):
    """Inputs of both views (augmented tokens) and their reconstruction targets (permuted, clean)."""

    view1: torch.Tensor
    view2: torch.Tensor
    target1: torch.Tensor
    target2: torch.Tensor


@dataclass
class TwoViewAugmenter:
    """Two independently augmented token views of a batch of weight vectors (for NT-Xent).

    Per view: random hidden-neuron permutation (if ``permute``), Gaussian noise on the vector
    (``noise_sigma``, relative if ``noise_relative``), conversion to tokens, random erasing with
    probability ``erase_p`` and area ``erase_scale`` on real entries only (padding stays 0).
    ``return_targets=True`` also gives the permuted but un-noised, un-erased tokens of each view,
    which is what a reconstruction loss on augmented inputs should compare against."""

    in_channels: int = 1
    permute: bool = True
    noise_sigma: float = 0.0
    noise_relative: bool = False
    erase_p: float = 0.5
    erase_scale: tuple[float, float] = (0.02, 0.33)
    erase_value: float = 0.0

    @property
    def layout(self) -> TokenLayout:
        return token_layout(self.in_channels)

    def _view(self, w: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        layout = self.layout
        if self.permute:
            w = permute_hidden_neurons(w, self.in_channels, generator)
        target = vectors_to_tokens(w, layout)
        if self.noise_sigma > 0:
            w = gaussian_noise(w, self.noise_sigma, generator, relative=self.noise_relative)
        view = vectors_to_tokens(w, layout)
        if self.erase_p > 0:
            view = random_erase(
                view,
                generator,
                self.erase_p,
                self.erase_scale,
                self.erase_value,
                mask=layout.mask_on(w.device),
            )
        return view, target

    def views(self, w: torch.Tensor, generator: torch.Generator) -> TwoViews:
        """Both views of the batch ``w`` [B, N] and their reconstruction targets."""
        w = torch.as_tensor(w)
        if w.ndim != 2 or w.shape[1] != self.layout.n_params:
            raise ValueError(
                f"expected weight vectors [B, {self.layout.n_params}] for {self.in_channels} "
                f"input channel(s), got {tuple(w.shape)}"
            )
        v1, t1 = self._view(w, generator)
        v2, t2 = self._view(w, generator)
        return TwoViews(v1, v2, t1, t2)

    def __call__(
        self, w: torch.Tensor, generator: torch.Generator, return_targets: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | TwoViews:
        """:meth:`views`, or only the two inputs unless ``return_targets``."""
        v = self.views(w, generator)
        return v if return_targets else (v.view1, v.view2)
