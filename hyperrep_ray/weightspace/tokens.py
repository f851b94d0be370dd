"""Flat weight vector <-> neuron token sequence, and layer-wise statistics.

The autoencoder sees a model as a sequence of tokens, one per output neuron (a conv output
channel or a linear unit): the neuron's incoming weights flattened row-major, then its bias,
zero-padded to the longest token. For the zoo CNN that is 8 + 6 + 4 + 20 + 10 = 48 tokens of
width 201 (conv2: 8 * 5 * 5 + 1) whatever the number of input channels.

The conversion is a pure index gather precomputed once per layout, so it is exact, batched over
any leading dimensions, differentiable and device-agnostic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hyperrep_ray.zoo.cnn import in_channels_for_length, layer_shapes

__all__ = [
    "LayerTokens",
    "TokenLayout",
    "token_layout",
    "vectors_to_tokens",
    "tokens_to_vectors",
    "layer_stats",
    "broadcast_to_tokens",
    "broadcast_to_params",
]


@dataclass(frozen=True)
class LayerTokens:
    """Where one layer lives in the flat vector and in the token sequence."""

    name: str
    n_tokens: int  # output neurons = tokens of this layer
    fan_in: int  # incoming weights per neuron
    token_size: int  # fan_in + 1 (bias)
    token_offset: int  # index of the layer's first token
    weight_offset: int  # start of ``<name>.weight`` in the flat vector
    bias_offset: int  # start of ``<name>.bias`` in the flat vector
    weight_shape: tuple[int, ...]

    @property
    def n_params(self) -> int:
        return self.n_tokens * self.token_size

    @property
    def param_slice(self) -> slice:
        """Weights and bias of the layer are contiguous in the flat vector (state_dict order)."""
        return slice(self.weight_offset, self.weight_offset + self.n_params)

    @property
    def token_slice(self) -> slice:
        return slice(self.token_offset, self.token_offset + self.n_tokens)


@dataclass(frozen=True, eq=False)
class TokenLayout:
    """Token layout of the zoo CNN for one number of input channels (build with :func:`token_layout`).

    Index tensors (CPU, precomputed once):
    ``gather_index[T, D]``: flat-vector position of each token entry (``n_params`` for padding);
    ``scatter_index[N]``: position of each parameter in the flattened ``[T * D]`` token matrix;
    ``mask[T, D]``: True on real entries; ``layer_of_token[T]`` and ``layer_of_param[N]``: layer index.
    """

    in_channels: int
    layers: tuple[LayerTokens, ...]
    n_tokens: int
    token_dim: int
    n_params: int
    gather_index: torch.Tensor = field(repr=False)
    scatter_index: torch.Tensor = field(repr=False)
    mask: torch.Tensor = field(repr=False)
    layer_of_token: torch.Tensor = field(repr=False)
    layer_of_param: torch.Tensor = field(repr=False)
    _device_cache: dict = field(default_factory=dict, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def token_sizes(self) -> tuple[int, ...]:
        return tuple(layer.token_size for layer in self.layers)

    @property
    def tokens_per_layer(self) -> tuple[int, ...]:
        return tuple(layer.n_tokens for layer in self.layers)

    @property
    def token_offsets(self) -> tuple[int, ...]:
        return tuple(layer.token_offset for layer in self.layers)

    @property
    def param_offsets(self) -> tuple[int, ...]:
        return tuple(layer.weight_offset for layer in self.layers)

    def indices_on(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat gather index [T*D], scatter index [N]) on ``device``, cached so a GPU training loop
        does not copy them every step."""
        key = str(torch.device(device))
        if key not in self._device_cache:
            self._device_cache[key] = (
                self.gather_index.reshape(-1).to(device),
                self.scatter_index.to(device),
            )
        return self._device_cache[key]

    def mask_on(self, device: torch.device | str) -> torch.Tensor:
        key = "mask:" + str(torch.device(device))
        if key not in self._device_cache:
            self._device_cache[key] = self.mask.to(device)
        return self._device_cache[key]


def layer_tokens(in_channels: int) -> list[LayerTokens]:
    """One entry per layer of the zoo CNN: its neurons (tokens), their fan-in and where they sit."""
    shapes = layer_shapes(in_channels)
    layers: list[LayerTokens] = []
    offset = 0
    token_offset = 0
    for k in range(0, len(shapes), 2):
        (wname, wshape), (bname, bshape) = shapes[k], shapes[k + 1]
        name = wname.rsplit(".", 1)[0]
        if bname != f"{name}.bias" or bshape != (wshape[0],):
            raise AssertionError(f"unexpected parameter order in layer_shapes: {wname}, {bname}")
        n_out = wshape[0]
        fan_in = math.prod(wshape[1:])
        layers.append(
            LayerTokens(
                name=name,
                n_tokens=n_out,
                fan_in=fan_in,
                token_size=fan_in + 1,
                token_offset=token_offset,
                weight_offset=offset,
                bias_offset=offset + n_out * fan_in,
                weight_shape=tuple(wshape),
            )
        )
        offset += n_out * (fan_in + 1)
        token_offset += n_out
    return layers


@functools.lru_cache(maxsize=8)
def token_layout(in_channels: int = 1) -> TokenLayout:
    """The (cached, immutable) token layout of the zoo CNN with ``in_channels`` input channels."""
    if not isinstance(in_channels, (int, np.integer)) or isinstance(in_channels, bool) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    in_channels = int(in_channels)
    layers = layer_tokens(in_channels)
    offset = layers[-1].bias_offset + layers[-1].n_tokens
    token_offset = layers[-1].token_offset + layers[-1].n_tokens
    n_params, n_tokens = offset, token_offset
    token_dim = max(layer.token_size for layer in layers)

    gather = torch.full((n_tokens, token_dim), n_params, dtype=torch.long)
    layer_of_token = torch.empty(n_tokens, dtype=torch.long)
    layer_of_param = torch.empty(n_params, dtype=torch.long)
    for li, layer in enumerate(layers):
        rows = layer.token_slice
        # token o = [weight[o, :] flattened, bias[o]]
        w_idx = layer.weight_offset + torch.arange(layer.n_tokens * layer.fan_in).reshape(layer.n_tokens, -1)
        b_idx = layer.bias_offset + torch.arange(layer.n_tokens).unsqueeze(1)
        gather[rows, : layer.token_size] = torch.cat([w_idx, b_idx], dim=1)
        layer_of_token[rows] = li
        layer_of_param[layer.param_slice] = li
    mask = gather < n_params
    scatter = torch.empty(n_params, dtype=torch.long)
    flat = gather.reshape(-1)
    real = torch.nonzero(flat < n_params).squeeze(1)
    scatter[flat[real]] = real
    return TokenLayout(
        in_channels=in_channels,
        layers=tuple(layers),
        n_tokens=n_tokens,
        token_dim=token_dim,
        n_params=n_params,
        gather_index=gather,
        scatter_index=scatter,
        mask=mask,
        layer_of_token=layer_of_token,
        layer_of_param=layer_of_param,
    )


def _resolve(layout: TokenLayout | None, in_channels: int | None) -> TokenLayout:
    if layout is not None:
        return layout
    return token_layout(1 if in_channels is None else in_channels)


def vectors_to_tokens(
    w: torch.Tensor, layout: TokenLayout | None = None, in_channels: int | None = None
) -> torch.Tensor:
    """Weight vectors ``[..., N]`` -> token sequences ``[..., T, D]`` (padding entries are 0).

    Pass ``layout`` (or ``in_channels``; default 1 channel). Works on any leading batch shape,
    keeps dtype and device, and is differentiable (a single ``index_select``)."""
    layout = _resolve(layout, in_channels)
    w = torch.as_tensor(w)
    if w.ndim < 1 or w.shape[-1] != layout.n_params:
        raise ValueError(
            f"weight vectors have shape {tuple(w.shape)}; expected [..., {layout.n_params}] for the zoo CNN "
            f"with {layout.in_channels} input channel(s)"
        )
    gather, _ = layout.indices_on(w.device)
    padded = torch.cat([w, w.new_zeros((*w.shape[:-1], 1))], dim=-1)
    out = torch.index_select(padded, -1, gather)
    return out.reshape(*w.shape[:-1], layout.n_tokens, layout.token_dim)


def tokens_to_vectors(
    t: torch.Tensor, layout: TokenLayout | None = None, in_channels: int | None = None
) -> torch.Tensor:
    """Token sequences ``[..., T, D]`` -> weight vectors ``[..., N]``; padding entries are ignored.

    Exact inverse of :func:`vectors_to_tokens` on the real entries; differentiable."""
    layout = _resolve(layout, in_channels)
    t = torch.as_tensor(t)
    if t.ndim < 2 or tuple(t.shape[-2:]) != (layout.n_tokens, layout.token_dim):
        raise ValueError(
            f"token tensor has shape {tuple(t.shape)}; expected [..., {layout.n_tokens}, {layout.token_dim}] "
            f"for the zoo CNN with {layout.in_channels} input channel(s)"
        )
    _, scatter = layout.indices_on(t.device)
    flat = t.reshape(*t.shape[:-2], layout.n_tokens * layout.token_dim)
    return torch.index_select(flat, -1, scatter)


def _check_per_layer(values: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    values = torch.as_tensor(values)
    if values.shape != (len(layout.layers),):
        raise ValueError(
            f"expected one value per layer ({len(layout.layers)}), got shape {tuple(values.shape)}"
        )
    return values


def broadcast_to_tokens(values: torch.Tensor, layout: TokenLayout, pad_value: float = 0.0) -> torch.Tensor:
    """Per-layer values ``[L]`` -> per-entry ``[T, D]`` aligned with the tokens; padding = pad_value."""
    values = _check_per_layer(values, layout)
    out = values[layout.layer_of_token.to(values.device)].unsqueeze(1).expand(-1, layout.token_dim).clone()
    out[~layout.mask.to(values.device)] = pad_value
    return out


def broadcast_to_params(values: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Per-layer values ``[L]`` -> per-parameter tensor ``[N]`` in flat-vector order."""
    values = _check_per_layer(values, layout)
    return values[layout.layer_of_param.to(values.device)].clone()


def layer_stats(
    w: torch.Tensor | np.ndarray, layout: TokenLayout | None = None, eps: float = 1e-12
) -> dict[str, Any]:
    """Per-layer mean and std over all weights and biases of the layer across the models in ``w``.

    These are the mu_l, sigma_l of the layer-wise normalised reconstruction loss (2022 paper, Eq. 2),
    which divides each layer's squared error by sigma_l^2 so that narrow layers are not neglected.
    Estimate them on the train split only. std is the population std (``np.std``), computed in float64.

    Returns a dict with
      ``layers``: layer names; ``mean``, ``std``: float32 ``[L]``;
      ``var_tokens`` ``[T, D]``: sigma_l^2 per token entry, 1 on padding (masked anyway, never / 0);
      ``var_params`` ``[N]``: sigma_l^2 per parameter; ``mean_tokens`` ``[T, D]`` (0 on padding),
      ``mean_params`` ``[N]``. Variances are floored at ``eps`` so a constant layer cannot give inf.
    """
    x = torch.as_tensor(w).detach()
    if layout is None:
        layout = token_layout(in_channels_for_length(int(x.shape[-1]) if x.ndim else 0))
    if x.ndim != 2 or x.shape[1] != layout.n_params or x.shape[0] < 1:
        raise ValueError(
            f"layer_stats needs weight vectors of shape [M, {layout.n_params}] (M >= 1) for the zoo CNN with "
            f"{layout.in_channels} input channel(s); got {tuple(x.shape)}"
        )
    x = x.cpu()
    means, stds = [], []
    for layer in layout.layers:
        block = x[:, layer.param_slice].to(torch.float64)
        m = block.mean()
        means.append(m)
        stds.append(((block - m) ** 2).mean().sqrt())
    mean = torch.stack(means)
    std = torch.stack(stds)
    var = (std**2).clamp_min(eps)
    return {
        "layers": layout.names,
        "mean": mean.float(),
        "std": std.float(),
        "var_tokens": broadcast_to_tokens(var, layout, pad_value=1.0).float(),
        "var_params": broadcast_to_params(var, layout).float(),
        "mean_tokens": broadcast_to_tokens(mean, layout, pad_value=0.0).float(),
        "mean_params": broadcast_to_params(mean, layout).float(),
    }


def standardisation(
    w: torch.Tensor | np.ndarray, layout: TokenLayout, mode: str, floor: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-shaped shift and scale ``[T, D]`` that z-score weights with train-split statistics.

    ``"layer"``: one mean/std per layer; ``"coordinate"``: per-weight mean/std across the models,
    the std floored at ``floor`` x its layer's std so that a near-constant weight (a bias all models
    share after alignment) is not blown up into noise; ``"none"``: identity. Padding: 0 and 1."""
    n_tok, dim = layout.n_tokens, layout.token_dim
    if mode == "none":
        return torch.zeros(n_tok, dim), torch.ones(n_tok, dim)
    stats = layer_stats(w, layout)
    layer_std = broadcast_to_params(stats["std"].double(), layout)
    if mode == "layer":
        shift, scale = broadcast_to_params(stats["mean"].double(), layout), layer_std
    elif mode == "coordinate":
        x = torch.as_tensor(w).detach().cpu().double()
        shift = x.mean(0)
        scale = torch.maximum(x.std(0, correction=0), floor * layer_std)
    else:
        raise ValueError(f"standardisation mode must be 'none', 'layer' or 'coordinate', got {mode!r}")
    scale = scale.clamp_min(1e-8)
    tok_shift = vectors_to_tokens(shift.float()[None], layout)[0]
    tok_scale = vectors_to_tokens(scale.float()[None], layout)[0]
    tok_scale[~layout.mask] = 1.0
    return tok_shift, tok_scale
