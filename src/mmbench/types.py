"""Core types shared by every part of mmbench: the batch, a method's output and the task kinds.

The batch contract (DESIGN.md §2): ``inputs`` maps each modality name to a tensor ``[B, ...]``;
``mask`` is ``bool[B, M]`` with column ``i`` = ``modalities[i]`` and ``True`` = observed. Missing inputs are
zero-filled only so that tensors batch; the mask is the only signal of absence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TypedDict

from torch import Tensor

__all__ = ["Batch", "MethodOutput", "Task"]


class Task(str, Enum):
    """What a data module asks a method to predict."""

    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"
    SEGMENTATION = "segmentation"

    def __str__(self) -> str:
        return self.value

    @property
    def dense(self) -> bool:
        """One prediction per voxel (``[B, C, D, H, W]`` logits) rather than per sample (``[B, C]``)."""
        return self is Task.SEGMENTATION


class _BatchRequired(TypedDict):
    inputs: dict[str, Tensor]
    target: Tensor
    index: Tensor


class Batch(_BatchRequired, total=False):
    """One collated batch.

    Keys:
        inputs: ``{modality: Tensor[B, ...]}``, every modality always present (zero where masked out).
        mask: ``bool[B, M]``, True = observed, column order = the data module's ``modalities``.
        target: ``[B]`` class ids, ``[B, C]`` multilabel/regression targets or ``[B, C, D, H, W]`` region masks.
        index: ``long[B]`` sample index within its split (the mask RNG's counter).
        protocol: ``long[B]`` index of the evaluation protocol (test batches only).
    """

    mask: Tensor
    protocol: Tensor


@dataclass
class MethodOutput:
    """What ``MissingModalityMethod.forward`` returns.

    Attributes:
        logits: ``[B, C]`` for classification/regression, ``[B, C, D, H, W]`` for segmentation.
        aux: named auxiliary tensors (features, domain logits, ...) that ``loss`` may use.
    """

    logits: Tensor
    aux: dict[str, Tensor] = field(default_factory=dict)
