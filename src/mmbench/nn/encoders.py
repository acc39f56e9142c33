"""Per-modality encoders chosen by input shape. Lightning-free building blocks.

Shape conventions (no batch dimension in ``in_shape``):

* ``(D,)`` feature vector → ``MLPEncoder``;
* ``(T, F)`` sequence (e.g. MFCC frames × coefficients) → ``SequenceEncoder`` (1-D convs over time);
* ``(C, H, W)`` image → ``ImageEncoder`` (LeNet-style convs);
* ``(C, D, H, W)`` volume → ``VolumeEncoder`` (3-D convs, global pooling).

Every encoder maps ``[B, *in_shape]`` to ``[B, out_dim]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ImageEncoder", "MLPEncoder", "SequenceEncoder", "VolumeEncoder", "make_encoder"]


class MLPEncoder(nn.Module):
    """``[B, D] → [B, out_dim]``: Linear-ReLU stack.

    Args:
        in_dim: input features D.
        out_dim: output features.
        hidden: hidden width.
        depth: number of hidden layers.
        dropout: dropout after each hidden layer.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.net(x.flatten(1))


class SequenceEncoder(nn.Module):
    """``[B, T, F] → [B, out_dim]``: two 1-D convs over time, mean+max pooling, linear.

    Args:
        in_features: F.
        out_dim: output features.
        hidden: conv channels.
    """

    def __init__(self, in_features: int, out_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(in_features, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
        )
        self.out = nn.Linear(2 * hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        h = self.conv(x.transpose(1, 2))  # [B, T, F] -> [B, F, T] -> [B, hidden, T]
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=1))  # [B, 2·hidden] -> [B, out_dim]


class ImageEncoder(nn.Module):
    """``[B, C, H, W] → [B, out_dim]``: LeNet-style conv-pool ×2, adaptive pooling to 4×4, linear.

    Args:
        in_channels: C.
        out_dim: output features.
        width: channels of the first conv (doubled in the second).
    """

    def __init__(self, in_channels: int, out_dim: int, width: int = 16) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.out = nn.Linear(2 * width * 16, out_dim)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.out(self.conv(x).flatten(1))  # [B, 2·width, 4, 4] -> [B, 32·width] -> [B, out_dim]


class VolumeEncoder(nn.Module):
    """``[B, C, D, H, W] → [B, out_dim]``: two strided 3-D convs, global average pooling, linear.

    Args:
        in_channels: C.
        out_dim: output features.
        width: channels of the first conv.
    """

    def __init__(self, in_channels: int, out_dim: int, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, stride=2, padding=1),
            nn.InstanceNorm3d(width, affine=True),
            nn.LeakyReLU(0.01),
            nn.Conv3d(width, 2 * width, 3, stride=2, padding=1),
            nn.InstanceNorm3d(2 * width, affine=True),
            nn.LeakyReLU(0.01),
            nn.AdaptiveAvgPool3d(1),
        )
        self.out = nn.Linear(2 * width, out_dim)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.out(self.conv(x).flatten(1))


def make_encoder(in_shape: Sequence[int], out_dim: int) -> nn.Module:
    """Pick an encoder for a per-sample input shape (see the module docstring)."""
    shape = tuple(int(s) for s in in_shape)
    if len(shape) == 1:
        return MLPEncoder(shape[0], out_dim)
    if len(shape) == 2:
        return SequenceEncoder(shape[1], out_dim)
    if len(shape) == 3:
        return ImageEncoder(shape[0], out_dim)
    if len(shape) == 4:
        return VolumeEncoder(shape[0], out_dim)
    raise ValueError(f"no encoder for input shape {shape}; expected 1 to 4 dims (vector, sequence, image, volume)")
