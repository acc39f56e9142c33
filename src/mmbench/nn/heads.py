"""Decoders and heads: feature levels (bottleneck last) → logits, one kind per output family. Mask-free.

A *level list* is what a level encoder returns (``mmbench.nn.backbones``): ``[f_0, …, f_{L−1}]`` with the
bottleneck ``f_{L−1}`` last; vector encoders return one level ``[[B, C]]``.

* ``MLPHead``: vector outputs, ``levels[-1]`` ``[B, C_in]`` → ``[B, C_out]`` through optional activation,
  dropout and hidden layer.
* ``FusedUNetDecoder``: dense outputs, a U-Net decoder whose level ``l`` input has ``level_channels[l]`` channels
  (e.g. ``M·widths[l]`` after concatenating M modalities) → ``[B, C_out, D, H, W]``.
* ``UpDecoder``: skip-free 3-D decoder (bottleneck only).
* ``TokenTransformerHead``: per-modality vectors as tokens → self-attention → mean pooling → MLP head.
* ``MLPDecoder``: ``[B, D] → [B, *shape]`` (autoencoder decoders of vector inputs).

Example:
    >>> import torch
    >>> head = MLPHead(8, 3, hidden=16)
    >>> tuple(head([torch.zeros(2, 8)]).shape)
    (2, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmbench.nn.unet3d import ConvBlock3d, UNet3DDecoder

__all__ = ["FusedUNetDecoder", "MLPDecoder", "MLPHead", "TokenTransformerHead", "UpDecoder"]


class MLPHead(nn.Module):
    """``levels[-1]`` ``[B, in_dim]`` → ``[B, out_dim]``.

    Layers: ``[ReLU] [Dropout] [Linear(in, hidden) ReLU [Dropout]] Linear(·, out)``.

    Args:
        in_dim: input features.
        out_dim: outputs (classes, labels, targets).
        hidden: hidden width; ``None`` = a single linear layer.
        dropout: dropout before each linear layer (0 = none).
        act_first: start with a ReLU (the input is a linear feature).
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.0, act_first: bool = False
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReLU()] if act_first else []
        width = in_dim
        if hidden is not None:
            layers += [nn.Dropout(dropout)] if dropout else []
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers += [nn.Dropout(dropout)] if dropout else []
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, levels: Sequence[Tensor]) -> Tensor:  # noqa: D102
        return self.net(levels[-1])


class FusedUNetDecoder(nn.Module):
    """``[f_0 … f_{L−1}]`` (``f_l``: ``[B, level_channels[l], *S_l]``) → ``[B, out_channels, *S_0]``.

    A ``UNet3DDecoder`` with bottleneck ``f_{L−1}`` and skips ``f_0 … f_{L−2}``.

    Args:
        widths: U-Net channels per level (as the encoders).
        out_channels: output channels (e.g. 3 BraTS regions).
        level_channels: channels of each input level (default ``widths``).
    """

    def __init__(self, widths: Sequence[int], out_channels: int, level_channels: Sequence[int] | None = None) -> None:
        super().__init__()
        levels = tuple(level_channels) if level_channels is not None else tuple(widths)
        self.decoder = UNet3DDecoder(widths, out_channels, in_channels=levels[-1], skip_channels=levels[:-1])

    def forward(self, levels: Sequence[Tensor]) -> Tensor:  # noqa: D102
        return self.decoder(levels[-1], levels[:-1])


class UpDecoder(nn.Module):
    """Skip-free 3-D decoder ``[B, C_in, d, h, w] → [B, C_out, d·2^(L−1), …]``.

    Per level (widths as ``UNet3DEncoder``, from the bottleneck up) a stride-2 transposed conv then a
    ``ConvBlock3d``; a final 1×1 conv.

    Args:
        widths: U-Net channels per level.
        in_channels: bottleneck channels.
        out_channels: output channels.
    """

    def __init__(self, widths: Sequence[int], in_channels: int, out_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for width in reversed(widths[:-1]):
            layers += [nn.ConvTranspose3d(prev, width, kernel_size=2, stride=2), ConvBlock3d(width, width)]
            prev = width
        layers.append(nn.Conv3d(prev, out_channels, kernel_size=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.net(x)


class MLPDecoder(nn.Module):
    """``[B, in_dim] → [B, *shape]``: Linear-ReLU-Linear (autoencoder decoder of a vector embedding).

    Args:
        in_dim: embedding width.
        shape: per-sample output shape.
        hidden: hidden width.
    """

    def __init__(self, in_dim: int, shape: Sequence[int], hidden: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(self.shape)))

    def forward(self, z: Tensor) -> Tensor:  # noqa: D102
        return self.net(z).reshape(-1, *self.shape)


class TokenTransformerHead(nn.Module):
    """M per-modality vectors ``[B, d_m]`` → logits ``[B, C]`` by self-attention over modality tokens.

    Per modality ``LayerNorm(d_m) + Linear(d_m, d_model)``, plus a learned modality embedding; ``num_layers``
    ``TransformerEncoder`` layers over the M tokens (no attention mask); mean pooling; Linear-ReLU-Dropout-Linear.

    Args:
        in_dims: ``d_m`` of each modality, canonical order.
        out_dim: outputs.
        d_model: token width.
        num_heads: attention heads.
        num_layers: encoder layers.
        dropout: dropout in the transformer and the head.
    """

    def __init__(
        self, in_dims: Sequence[int], out_dim: int, d_model: int, num_heads: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.proj = nn.ModuleList([nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d_model)) for d in in_dims])
        self.modality_embed = nn.Parameter(0.02 * torch.randn(len(in_dims), d_model))
        layer = nn.TransformerEncoderLayer(d_model, num_heads, 2 * d_model, dropout, batch_first=True)
        self.fusion = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_model, out_dim)
        )

    def forward(self, tokens: Sequence[Tensor]) -> Tensor:
        """``tokens``: M tensors ``[B, d_m]`` → ``[B, out_dim]``."""
        x = torch.stack([p(t) for p, t in zip(self.proj, tokens, strict=True)], 1)  # [B, M, d_model]
        pooled = self.fusion(x + self.modality_embed).mean(1)  # self-attention over the M tokens: [B, d_model]
        return self.head(pooled)
