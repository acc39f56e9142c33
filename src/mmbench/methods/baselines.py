"""Simple baselines: the anchors every missing-modality table needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmbench.methods.base import MissingModalityMethod
from mmbench.nn.encoders import make_encoder
from mmbench.registry import METHODS
from mmbench.types import MethodOutput, Task

__all__ = ["LateFusion"]


@METHODS.register("late_fusion")
class LateFusion(MissingModalityMethod):
    """Late fusion: one encoder + head per modality; the prediction is the masked mean of the observed heads.

    ``logits = Σ_i mask_i · head_i(enc_i(x_i)) / Σ_i mask_i`` (classification only). A missing modality's encoder
    output is computed (inputs are zeros) but multiplied out with ``torch.where``, so it never reaches the output.

    Args:
        modalities: linked from the data module.
        input_shapes: linked from the data module.
        task: linked from the data module.
        num_classes: linked from the data module.
        hidden_dim: encoder output width.
        lr: learning rate.
        weight_decay: weight decay.
    """

    def __init__(
        self,
        modalities: Sequence[str],
        input_shapes: Mapping[str, Sequence[int]],
        task: Task | str,
        num_classes: int,
        hidden_dim: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(modalities, input_shapes, task, num_classes, lr, weight_decay)
        if self.task is Task.SEGMENTATION:
            raise ValueError("late_fusion supports classification/regression tasks, not segmentation")
        self.encoders = nn.ModuleDict({m: make_encoder(self.input_shapes[m], hidden_dim) for m in self.modalities})
        self.heads = nn.ModuleDict(
            {m: nn.Sequential(nn.ReLU(), nn.Linear(hidden_dim, self.num_classes)) for m in self.modalities}
        )

    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:  # noqa: D102
        per_modality = torch.stack(
            [self.heads[m](self.encoders[m](inputs[m])) for m in self.modalities], dim=1
        )  # [B, M, C]
        keep = mask.unsqueeze(-1)  # [B, M, 1]
        summed = torch.where(keep, per_modality, torch.zeros_like(per_modality)).sum(1)  # [B, C]
        logits = summed / mask.sum(1, keepdim=True).clamp(min=1)  # [B, C]
        return MethodOutput(logits=logits, aux={"per_modality_logits": per_modality})
