"""BraTS region Dice as a torchmetrics ``Metric`` (ET, TC, WT, and their mean).

Dice is computed per case (``mmbench.functional.dice.region_dice``, empty-on-empty = 1) and averaged over cases,
the BraTS/mmFormer convention (``reference/peers-and-ecosystem.md`` §2.7). The states are a per-region sum of case
Dice values and a case count, both reduced with ``sum``, so the DDP-synced mean equals the single-process one.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from mmbench.functional.dice import region_dice

__all__ = ["BraTSRegionDice"]


class BraTSRegionDice(Metric):
    """Mean per-case Dice of the three BraTS regions.

    Args:
        from_logits: ``preds`` are logits, thresholded as ``logits > 0`` (that is ``sigmoid(logits) > 0.5``);
            otherwise ``preds`` are probabilities thresholded as ``preds > threshold``. Boolean ``preds`` are used as
            they are either way.
        threshold: probability threshold when ``from_logits`` is False.
        region_names: names of the ``R`` region channels, in channel order (keys ``dice_<name>``).

    ``update(preds, target)``: ``preds`` ``float[B, R, *spatial]`` (logits or probabilities) or ``bool``;
    ``target`` ``bool/int[B, R, *spatial]`` region masks (nonzero = inside).

    ``compute()``: ``{"dice_et", "dice_tc", "dice_wt", "dice_mean"}`` as scalar tensors (NaN before any update);
    ``dice_mean`` is the mean over regions.

    Example:
        >>> metric = BraTSRegionDice()
        >>> logits = torch.full((1, 3, 2, 2, 2), -5.0)
        >>> target = torch.zeros(1, 3, 2, 2, 2, dtype=torch.bool)
        >>> {k: round(v.item(), 2) for k, v in metric(logits, target).items()}
        {'dice_et': 1.0, 'dice_tc': 1.0, 'dice_wt': 1.0, 'dice_mean': 1.0}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    dice_sum: Tensor
    count: Tensor

    def __init__(
        self,
        from_logits: bool = True,
        threshold: float = 0.5,
        region_names: tuple[str, ...] = ("et", "tc", "wt"),
    ) -> None:
        super().__init__()
        self.from_logits = from_logits
        self.threshold = threshold
        self.region_names = tuple(region_names)
        self.add_state("dice_sum", default=torch.zeros(len(self.region_names)), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add the per-case Dice of a batch (see the class docstring for shapes)."""
        if preds.shape != target.shape:
            raise ValueError(f"preds shape {tuple(preds.shape)} differs from target shape {tuple(target.shape)}")
        if preds.dim() < 3 or preds.shape[1] != len(self.region_names):
            raise ValueError(
                f"expected [B, {len(self.region_names)}, *spatial] (regions {self.region_names}), "
                f"got shape {tuple(preds.shape)}"
            )
        if preds.dtype == torch.bool:
            pred_mask = preds
        elif self.from_logits:
            pred_mask = preds > 0
        else:
            pred_mask = preds > self.threshold
        dice = region_dice(pred_mask, target.bool())  # [B, R]
        self.dice_sum += dice.sum(0).to(self.dice_sum.dtype)
        self.count += dice.shape[0]

    def compute(self) -> dict[str, Tensor]:
        """Mean Dice per region and over regions."""
        mean = self.dice_sum / self.count  # NaN when count == 0
        out = {f"dice_{name}": mean[i] for i, name in enumerate(self.region_names)}
        out["dice_mean"] = mean.mean()
        return out
