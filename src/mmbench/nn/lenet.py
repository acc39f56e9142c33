"""LeNet-5: the classic image network, as the image-only lower bound of ShaSpec Table 3 ("LeNet, image only").

Layout (Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document recognition",
Proc. IEEE 86(11), 1998, Fig. 2: C1 conv 5×5 ×6 → S2 2×2 subsampling → C3 conv 5×5 ×16 → S4 2×2 subsampling →
C5 120 → F6 84 → output), adapted to 28×28 MNIST the usual way: C1 pads by 2, so a 28×28 input is treated as
LeNet's 32×32 field (28 → C1 28 → S2 14 → C3 10 → S4 5), and C5 (a 5×5 conv on the 5×5 maps in the paper, i.e. a
full connection) is a linear layer on the 16·5·5 = 400 features. Modern substitutions, as in most re-implementations:
ReLU instead of the scaled tanh, max pooling instead of the trainable subsampling, a plain linear output instead of
the RBF units, and C3 connected to all of S2's maps (the paper's Table 1 sparse connection scheme is dropped).

Other image sizes work as long as the maps stay at least 1×1 (``H, W >= 12``): the flattened size is computed.

Example:
    >>> import torch
    >>> net = LeNet5(1, 10)
    >>> tuple(net(torch.zeros(2, 1, 28, 28)).shape)
    (2, 10)
    >>> [tuple(p.shape) for p in net.features.parameters()][::2]
    [(6, 1, 5, 5), (16, 6, 5, 5)]
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["LeNet5"]


def _lenet_map_size(size: int) -> int:
    """Spatial size after C1 (pad 2, 5×5) → S2 (2×2) → C3 (5×5) → S4 (2×2) for an input side of ``size``."""
    return ((size // 2) - 4) // 2


class LeNet5(nn.Module):
    """``[B, C, H, W] → [B, out_dim]``: LeNet-5 (conv5×6 → pool → conv5×16 → pool → fc120 → fc84 → out_dim).

    Args:
        in_channels: C (1 for MNIST).
        out_dim: outputs of the last layer (classes).
        image_size: ``(H, W)`` of the input (default 28×28); sets the width of the first fully connected layer.

    Raises:
        ValueError: if the image is too small for two 5×5 convolutions and two 2×2 poolings (``H`` or ``W`` < 12).
    """

    def __init__(self, in_channels: int, out_dim: int, image_size: tuple[int, int] = (28, 28)) -> None:
        super().__init__()
        h, w = (_lenet_map_size(int(s)) for s in image_size)
        if h < 1 or w < 1:
            raise ValueError(f"LeNet5 needs images of at least 12×12, got {tuple(image_size)}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),  # C1: [B, 6, H, W]
            nn.ReLU(),
            nn.MaxPool2d(2),  # S2: [B, 6, H/2, W/2]
            nn.Conv2d(6, 16, kernel_size=5),  # C3: [B, 16, H/2 − 4, W/2 − 4]
            nn.ReLU(),
            nn.MaxPool2d(2),  # S4: [B, 16, h, w] (5×5 for 28×28)
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * h * w, 120),  # C5
            nn.ReLU(),
            nn.Linear(120, 84),  # F6
            nn.ReLU(),
            nn.Linear(84, out_dim),  # output
        )

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.classifier(self.features(x).flatten(1))  # [B, 16·h·w] → [B, out_dim]
