"""Transformer autoencoder over neuron tokens (2022 paper, Sec. 2 and App. B / Fig. 8).

Encoder: per-layer embedders (token_dim -> d_token), learned position embeddings, a learned
compression (CLS) token, ``n_layers`` self-attention layers, CLS output -> linear/MLP -> d_z -> tanh
(``compression="sequence"``: no CLS, the flattened output sequence -> linear -> d_z, as the 2022
authors' code does for its "linear" compression),
so that hyper-representations live in the box [-1, 1]^d_z that the samplers assume.
Decoder (symmetric): linear/MLP d_z -> n_tokens * d_token (one embedding per token, as the paper
"maps the bottleneck to a sequence of token embeddings"), learned position embeddings added,
``n_layers`` self-attention layers, per-layer debedders d_token -> token_dim.
Projection head: MLP on z for the contrastive loss (paper: 4 layers of 400, output 50).

Choices not fixed by the paper:
- Pre-LayerNorm transformer layers (``norm_first=True``) with a final LayerNorm per stack, GELU by
  default: pre-LN trains stably at Adam 1e-4 without a learning-rate warm-up.
- The CLS token is prepended (index 0) and gets no position embedding; where it sits does not
  matter to self-attention, which sees positions only through the embeddings.
- Dropout is applied after adding position embeddings and inside every transformer layer.
- Decoded padding entries are not forced to zero; the losses mask them and vector conversion drops them.

The forward pass has no data-dependent Python control flow (only static shape checks), so it
works under ``torch.compile`` and autocast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

# Layer of each of the 48 neuron tokens of the zoo CNN: conv1 8, conv2 6, conv3 4, fc1 20, fc2 10.
ZOO_CNN_LAYER_OF_TOKEN: tuple[int, ...] = (0,) * 8 + (1,) * 6 + (2,) * 4 + (3,) * 20 + (4,) * 10

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


@dataclass
class AEArchitecture:
    """Sizes of the autoencoder; Table 8 of the 2022 paper gives the paper-scale values
    (e.g. MNIST: d_token 972, d_hidden 1140, n_layers 2, n_heads 12, d_z 700, linear, dropout 0.1)."""

    n_tokens: int = 48
    token_dim: int = 201
    layer_of_token: list[int] = field(default_factory=lambda: list(ZOO_CNN_LAYER_OF_TOKEN))
    d_token: int = 128
    d_hidden: int = 512
    n_layers: int = 2
    n_heads: int = 4
    d_z: int = 64
    dropout: float = 0.1
    compression: str = "linear"
    proj_layers: int = 4
    proj_width: int = 400
    proj_dim: int = 50
    activation: str = "gelu"

    def __post_init__(self) -> None:
        if isinstance(self.layer_of_token, torch.Tensor):
            self.layer_of_token = self.layer_of_token.tolist()
        self.layer_of_token = [int(v) for v in self.layer_of_token]
        for name in (
            "n_tokens",
            "token_dim",
            "d_token",
            "d_hidden",
            "n_layers",
            "n_heads",
            "d_z",
            "proj_width",
            "proj_dim",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AEArchitecture.{name} must be >= 1, got {getattr(self, name)}")
        if self.proj_layers < 0:
            raise ValueError(f"AEArchitecture.proj_layers must be >= 0, got {self.proj_layers}")
        if self.d_token % self.n_heads != 0:
            raise ValueError(
                f"d_token ({self.d_token}) must be divisible by n_heads ({self.n_heads}) for multi-head "
                f"attention; e.g. use d_token={self.n_heads * max(1, round(self.d_token / self.n_heads))}"
            )
        if len(self.layer_of_token) != self.n_tokens:
            raise ValueError(
                f"layer_of_token has {len(self.layer_of_token)} entries but n_tokens is {self.n_tokens}"
            )
        present = set(self.layer_of_token)
        if present != set(range(len(present))):
            raise ValueError(
                f"layer_of_token must use every layer id 0..L-1 at least once, got ids {sorted(present)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.compression not in ("linear", "mlp", "sequence"):
            raise ValueError(f"compression must be 'linear', 'mlp' or 'sequence', got {self.compression!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")

    @property
    def n_weight_layers(self) -> int:
        """Number of distinct layers of the zoo model (one embedder/debedder each)."""
        return max(self.layer_of_token) + 1


class PerLayerLinear(nn.Module):
    """One nn.Linear per zoo layer, applied to that layer's tokens.

    Tokens of different layers have different meanings (a conv1 kernel vs an fc2 row), so they get
    their own (de)embedding. The grouping is fixed at construction: tokens are gathered into layer
    order, each group is mapped by its Linear, and the result is scattered back by a fixed inverse
    permutation — no data-dependent control flow.
    """

    order: torch.Tensor
    inverse: torch.Tensor

    def __init__(self, layer_of_token: Sequence[int], in_features: int, out_features: int) -> None:
        super().__init__()
        layers = [int(v) for v in layer_of_token]
        n_layers = max(layers) + 1
        order = sorted(range(len(layers)), key=lambda t: (layers[t], t))
        inverse = [0] * len(order)
        for pos, t in enumerate(order):
            inverse[t] = pos
        self.group_sizes = [layers.count(layer) for layer in range(n_layers)]
        self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        self.register_buffer("inverse", torch.tensor(inverse, dtype=torch.long), persistent=False)
        self.linears = nn.ModuleList(nn.Linear(in_features, out_features) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x[B, T, in_features] -> [B, T, out_features]."""
        groups = x.index_select(1, self.order).split(self.group_sizes, dim=1)
        out = torch.cat([lin(g) for lin, g in zip(self.linears, groups, strict=True)], dim=1)
        return out.index_select(1, self.inverse)


def _mlp(d_in: int, d_hidden: int, d_out: int, n_hidden: int, activation: str) -> nn.Sequential:
    """n_hidden (Linear + activation) layers of width d_hidden, then a Linear to d_out."""
    mods: list[nn.Module] = []
    width = d_in
    for _ in range(n_hidden):
        mods += [nn.Linear(width, d_hidden), _ACTIVATIONS[activation]()]
        width = d_hidden
    mods.append(nn.Linear(width, d_out))
    return nn.Sequential(*mods)


def _stack(arch: AEArchitecture) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model=arch.d_token,
        nhead=arch.n_heads,
        dim_feedforward=arch.d_hidden,
        dropout=arch.dropout,
        activation=arch.activation,
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(
        layer, num_layers=arch.n_layers, norm=nn.LayerNorm(arch.d_token), enable_nested_tensor=False
    )


class HyperAutoencoder(nn.Module):
    """Transformer autoencoder: neuron tokens [B, T, D] <-> hyper-representation z [B, d_z] in [-1, 1]."""

    token_shift: torch.Tensor
    token_scale: torch.Tensor

    def __init__(self, arch: AEArchitecture) -> None:
        super().__init__()
        self.arch = arch
        a = arch
        # Encoder.
        self.embed = PerLayerLinear(a.layer_of_token, a.token_dim, a.d_token)
        self.enc_pos = nn.Parameter(torch.randn(1, a.n_tokens, a.d_token) * 0.02)
        self.from_sequence = a.compression == "sequence"
        if not self.from_sequence:  # no unused parameter: DDP would refuse it
            self.cls = nn.Parameter(torch.randn(1, 1, a.d_token) * 0.02)
        self.enc_drop = nn.Dropout(a.dropout)
        self.encoder = _stack(a)
        n_hidden = 1 if a.compression == "mlp" else 0
        d_in = a.n_tokens * a.d_token if self.from_sequence else a.d_token
        self.compress = _mlp(d_in, a.d_hidden, a.d_z, n_hidden, a.activation)
        # Decoder.
        self.decompress = _mlp(a.d_z, a.d_hidden, a.n_tokens * a.d_token, n_hidden, a.activation)
        self.dec_pos = nn.Parameter(torch.randn(1, a.n_tokens, a.d_token) * 0.02)
        self.dec_drop = nn.Dropout(a.dropout)
        self.decoder = _stack(a)
        self.debed = PerLayerLinear(a.layer_of_token, a.d_token, a.token_dim)
        # Projection head for the contrastive loss.
        self.projection = _mlp(a.d_z, a.proj_width, a.proj_dim, a.proj_layers, a.activation)
        # Input standardisation (identity until set_standardisation): saved with the weights so
        # every loaded model encodes and decodes in the units it was trained in.
        self.register_buffer("token_shift", torch.zeros(1, a.n_tokens, a.token_dim))
        self.register_buffer("token_scale", torch.ones(1, a.n_tokens, a.token_dim))

    def set_standardisation(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Encode (tokens - shift) / scale and decode back to raw weights.

        Raw zoo weights differ in scale between layers and share a large common part (the zoo
        mean, especially after alignment); standardising lets the network spend its capacity on
        what distinguishes models instead of re-learning the mean."""
        shape = self.token_shift.shape
        shift = torch.as_tensor(shift, dtype=torch.float32).reshape(shape)
        scale = torch.as_tensor(scale, dtype=torch.float32).reshape(shape)
        if not torch.isfinite(shift).all() or not (torch.isfinite(scale) & (scale > 0)).all():
            raise ValueError("standardisation needs a finite shift and a finite, positive scale")
        self.token_shift.copy_(shift)
        self.token_scale.copy_(scale)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens[B, T, D] -> z[B, d_z], bounded in [-1, 1] by tanh."""
        a = self.arch
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != (a.n_tokens, a.token_dim):
            raise ValueError(
                f"expected tokens of shape [B, {a.n_tokens}, {a.token_dim}], got {tuple(tokens.shape)}"
            )
        h = self.embed((tokens - self.token_shift) / self.token_scale) + self.enc_pos
        if self.from_sequence:  # the 2022 code's "linear" compression: the whole output sequence -> z
            return torch.tanh(self.compress(self.encoder(self.enc_drop(h)).flatten(1)))
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.encoder(self.enc_drop(h))
        return torch.tanh(self.compress(h[:, 0]))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z[B, d_z] -> reconstructed tokens[B, T, D] (padding entries are unconstrained)."""
        a = self.arch
        if z.dim() != 2 or z.shape[1] != a.d_z:
            raise ValueError(f"expected z of shape [B, {a.d_z}], got {tuple(z.shape)}")
        h = self.decompress(z).view(z.shape[0], a.n_tokens, a.d_token) + self.dec_pos
        h = self.decoder(self.dec_drop(h))
        return self.debed(h) * self.token_scale + self.token_shift

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """z[B, d_z] -> [B, proj_dim], the space the contrastive loss acts in."""
        return self.projection(z)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens -> (z, reconstructed tokens, projection of z)."""
        z = self.encode(tokens)
        return z, self.decode(z), self.project(z)
