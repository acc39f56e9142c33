"""``modality_mean``: the worked example of ``docs/architecture.md`` ("Add a method").

The idea, and all of it: encode each modality, average the features of the observed modalities at every level
(``masked_mean``), decode. The backbone supplies the encoders and the decoder for the task (an MLP head for
vector tasks, a 3-D U-Net for segmentation); the base supplies the steps, padding, sliding windows and the
optimiser. No peeking: a masked-out modality is selected away by ``masked_mean`` before anything reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from mmbench.functional.fusion import masked_mean
from mmbench.methods.base import MissingModalityMethod
from mmbench.registry import METHODS
from mmbench.types import MethodOutput

__all__ = ["ModalityMean"]


@METHODS.register("modality_mean")
class ModalityMean(MissingModalityMethod):
    """Mean of the observed modalities' features at every level, then one shared decoder.

    Args:
        hidden_dim: feature width of the vector encoders and hidden width of the head (vector tasks).
        unet_widths: channels per U-Net level (segmentation).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).
    """

    def __init__(
        self, *args: Any, hidden_dim: int = 64, unet_widths: tuple[int, ...] = (8, 16, 32, 64), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        backbone = self.make_backbone(hidden_dim, unet_widths)
        self.encoders = backbone.encoders(self.input_shapes)
        self.decoder = backbone.decoder(backbone.widths, self.num_classes, hidden=hidden_dim)

    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:  # noqa: D102
        levels = [self.encoders[m](self.pad_spatial(inputs[m])) for m in self.modalities]  # M lists of L levels
        fused = [masked_mean(torch.stack(level, 1), mask) for level in zip(*levels, strict=True)]  # [B, C_l, *S_l]
        return MethodOutput(logits=self.crop_spatial(self.decoder(fused), inputs[self.modalities[0]].shape))
