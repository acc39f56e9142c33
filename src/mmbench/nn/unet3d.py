"""3-D U-Net building blocks: a multi-scale encoder that returns its skip features and a decoder that takes them.

Lightning-free and mask-free; methods decide what goes into the decoder (one encoder's skips, or several
encoders' skips concatenated along channels, as ShaSpec does). Layout ``[B, C, D, H, W]`` throughout.

* ``ConvBlock3d``: two 3³ conv → InstanceNorm → LeakyReLU(0.01) layers with a residual connection.
* ``UNet3DEncoder``: level 0 at full resolution, then ``len(widths) − 1`` stride-2 downsamplings; ``forward``
  returns one feature map per level, the last one being the bottleneck.
* ``UNet3DDecoder``: from the bottleneck up, each level is a stride-2 transposed conv, plus a 1×1-projected skip
  (added, as in the official ShaSpec decoder), then a ``ConvBlock3d``; a final 1×1 conv gives the logits.

Normalisation is ``InstanceNorm3d(affine=True)`` (per sample and channel), never BatchNorm, so a sample's output
does not depend on the other samples of its batch. An InstanceNorm needs more than one spatial element per map:
inputs must be at least ``2 · 2^(L−1)`` voxels along some axis (``UNet3DEncoder.min_size``).

Example:
    >>> import torch
    >>> enc = UNet3DEncoder(in_channels=1, widths=(4, 8, 16))
    >>> feats = enc(torch.zeros(2, 1, 16, 16, 16))
    >>> [tuple(f.shape) for f in feats]
    [(2, 4, 16, 16, 16), (2, 8, 8, 8, 8), (2, 16, 4, 4, 4)]
    >>> dec = UNet3DDecoder(widths=(4, 8, 16), out_channels=3)
    >>> tuple(dec(feats[-1], feats[:-1]).shape)
    (2, 3, 16, 16, 16)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvBlock3d", "UNet3DDecoder", "UNet3DEncoder", "conv_norm_act", "pad_far_end", "padded_shape"]


def padded_shape(spatial: Sequence[int], multiple: int) -> tuple[int, ...]:
    """Smallest sizes ≥ ``spatial`` that are multiples of ``multiple`` and at least ``2·multiple``.

    ``multiple`` is ``UNet3DEncoder.multiple`` (``2^(L−1)``); ``2·multiple`` is its ``min_size``.
    """
    return tuple(max(-(-int(s) // multiple) * multiple, 2 * multiple) for s in spatial)


def pad_far_end(x: Tensor, spatial: Sequence[int]) -> Tensor:
    """Zero-pad the last three dims of ``x`` at the far end up to ``spatial``: ``[..., D, H, W] → [..., *spatial]``."""
    pd, ph, pw = (int(p) - s for p, s in zip(spatial, x.shape[-3:], strict=True))
    return F.pad(x, (0, pw, 0, ph, 0, pd)) if pd or ph or pw else x


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """``Conv3d(k, stride, padding k//2, no bias) → InstanceNorm3d(affine) → LeakyReLU(0.01)``."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(0.01),
    )


class ConvBlock3d(nn.Module):
    """``[B, C_in, D, H, W] → [B, C_out, D, H, W]``: two 3³ conv-IN layers, residual add, LeakyReLU.

    The residual is the identity when ``C_in == C_out`` and a 1×1 conv otherwise.

    Args:
        in_channels: C_in.
        out_channels: C_out.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = conv_norm_act(in_channels, out_channels)
        self.conv2 = nn.Sequential(
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm3d(out_channels, affine=True),
        )
        self.residual: nn.Module = (
            nn.Identity() if in_channels == out_channels else nn.Conv3d(in_channels, out_channels, 1, bias=False)
        )
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.act(self.conv2(self.conv1(x)) + self.residual(x))


class UNet3DEncoder(nn.Module):
    """``[B, C_in, D, H, W] → [f_0, …, f_{L−1}]`` with ``f_l`` of shape ``[B, widths[l], D/2^l, H/2^l, W/2^l]``.

    Level 0 is a ``ConvBlock3d`` at full resolution; level ``l ≥ 1`` is a stride-2 3³ conv-IN-LReLU followed by a
    ``ConvBlock3d``. ``f_{L−1}`` is the bottleneck, ``f_0 … f_{L−2}`` are the skip features. Spatial sizes must be
    divisible by ``2^(L−1)`` (``multiple``) for the decoder to restore them exactly.

    Args:
        in_channels: C_in.
        widths: channels per level, ``L = len(widths)`` levels (default ``(8, 16, 32, 64)``).
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (8, 16, 32, 64)) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}")
        levels: list[nn.Module] = [ConvBlock3d(in_channels, self.widths[0])]
        for prev, width in zip(self.widths[:-1], self.widths[1:], strict=True):
            levels.append(nn.Sequential(conv_norm_act(prev, width, stride=2), ConvBlock3d(width, width)))
        self.levels = nn.ModuleList(levels)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this (``2^(L−1)``)."""
        return 2 ** (len(self.widths) - 1)

    @property
    def min_size(self) -> int:
        """Smallest spatial size that leaves the bottleneck more than one voxel along an axis (InstanceNorm)."""
        return 2 * self.multiple

    def forward(self, x: Tensor) -> list[Tensor]:  # noqa: D102
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats


class UNet3DDecoder(nn.Module):
    """``(bottleneck [B, C_b, d, h, w], skips [f_0 … f_{L−2}]) → logits [B, out_channels, D, H, W]``.

    Level ``l`` (from ``L−2`` down to 0): ``x = ConvTranspose3d(x)`` (×2 upsampling to ``widths[l]`` channels),
    ``x = x + proj_l(skip_l)`` with ``proj_l`` a 1×1 conv-IN-LReLU from ``skip_channels[l]`` to ``widths[l]``, then a
    ``ConvBlock3d``. A final 1×1 conv (with bias) gives the logits.

    Args:
        widths: channels per level, as in the encoder.
        out_channels: output channels (e.g. 3 BraTS regions).
        in_channels: bottleneck channels ``C_b`` (default ``widths[-1]``; ShaSpec feeds ``M·widths[-1]``).
        skip_channels: channels of each skip ``f_l`` (default ``widths[:-1]``; ShaSpec feeds ``M·widths[l]``).
    """

    def __init__(
        self,
        widths: Sequence[int] = (8, 16, 32, 64),
        out_channels: int = 3,
        in_channels: int | None = None,
        skip_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        L = len(self.widths)
        skips = tuple(skip_channels) if skip_channels is not None else self.widths[:-1]
        if len(skips) != L - 1:
            raise ValueError(f"need {L - 1} skip channel counts for widths {self.widths}, got {skips}")
        prev = in_channels if in_channels is not None else self.widths[-1]
        ups, projs, blocks = [], [], []
        for level in reversed(range(L - 1)):
            width = self.widths[level]
            ups.append(nn.ConvTranspose3d(prev, width, kernel_size=2, stride=2))
            projs.append(conv_norm_act(skips[level], width, kernel_size=1))
            blocks.append(ConvBlock3d(width, width))
            prev = width
        self.ups, self.projs, self.blocks = nn.ModuleList(ups), nn.ModuleList(projs), nn.ModuleList(blocks)
        self.head = nn.Conv3d(prev, out_channels, kernel_size=1)

    def forward(self, bottleneck: Tensor, skips: Sequence[Tensor]) -> Tensor:  # noqa: D102
        if len(skips) != len(self.ups):
            raise ValueError(f"expected {len(self.ups)} skip tensors, got {len(skips)}")
        x = bottleneck
        for up, proj, block, skip in zip(self.ups, self.projs, self.blocks, reversed(skips), strict=True):
            x = block(up(x) + proj(skip))  # [B, widths[l], 2·d, 2·h, 2·w]
        return self.head(x)
