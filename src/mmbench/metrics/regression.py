"""Regression metrics for sentiment-style targets (CMU-MOSI/MOSEI conventions), with sum states.

Every metric keeps only sums (counts, sums of errors, moments, confusion counts) reduced with ``"sum"``, so the
value under DDP is exactly the value on the concatenated data (up to floating-point summation order). Predictions
and targets are flattened: ``preds`` ``[B]`` or ``[B, 1]`` (a method's logits), ``target`` ``[B]`` or ``[B, 1]``.

Binary sentiment accuracy follows MMSA (``thuiar/MMSA`` ``utils/metricsTop.py``, reference notes §4.3):

* ``has0``: negative vs non-negative, ``y >= 0`` and ``ŷ >= 0`` (every sample counts);
* ``non0``: samples with ``y == 0`` are dropped, then ``y > 0`` vs ``ŷ > 0``.

F1 is the support-**weighted** F1 over the two classes, as MMSA reports it (``f1_score(average="weighted")``).
``acc7``/``acc5`` are MMSA's ``Mult_acc_7``/``Mult_acc_5``: round both values after clipping to ``[-3, 3]`` /
``[-2, 2]`` and compare. Sums are kept in float64 (Pearson's moments cancel badly in float32).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "BinarySentimentAccuracy",
    "BinarySentimentF1",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "PearsonCorrelation",
    "RoundedAccuracy",
]

Convention = Literal["has0", "non0"]


def _flat(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    preds, target = preds.detach().reshape(-1).double(), target.detach().reshape(-1).double()
    if preds.numel() != target.numel():
        raise ValueError(f"preds has {preds.numel()} values but target has {target.numel()}")
    return preds, target


def _zero() -> Tensor:
    return torch.zeros((), dtype=torch.float64)


class MeanAbsoluteError(Metric):
    """``mean |ŷ − y|`` over every value."""

    abs_sum: Tensor
    n: Tensor
    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("abs_sum", _zero(), dist_reduce_fx="sum")
        self.add_state("n", _zero(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:  # noqa: D102
        p, y = _flat(preds, target)
        self.abs_sum += (p - y).abs().sum()
        self.n += p.numel()

    def compute(self) -> Tensor:  # noqa: D102
        return (self.abs_sum / self.n).float()


class MeanSquaredError(Metric):
    """``mean (ŷ − y)²`` over every value."""

    sq_sum: Tensor
    n: Tensor
    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("sq_sum", _zero(), dist_reduce_fx="sum")
        self.add_state("n", _zero(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:  # noqa: D102
        p, y = _flat(preds, target)
        self.sq_sum += (p - y).square().sum()
        self.n += p.numel()

    def compute(self) -> Tensor:  # noqa: D102
        return (self.sq_sum / self.n).float()


class PearsonCorrelation(Metric):
    """Pearson's r between ``ŷ`` and ``y`` from the five sums ``Σx, Σy, Σx², Σy², Σxy`` and ``n``.

    NaN when either side has zero variance (as ``np.corrcoef``).
    """

    n: Tensor
    sx: Tensor
    sy: Tensor
    sxx: Tensor
    syy: Tensor
    sxy: Tensor
    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        for name in ("n", "sx", "sy", "sxx", "syy", "sxy"):
            self.add_state(name, _zero(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:  # noqa: D102
        x, y = _flat(preds, target)
        self.n += x.numel()
        self.sx += x.sum()
        self.sy += y.sum()
        self.sxx += (x * x).sum()
        self.syy += (y * y).sum()
        self.sxy += (x * y).sum()

    def compute(self) -> Tensor:  # noqa: D102
        cov = self.n * self.sxy - self.sx * self.sy
        var_x = self.n * self.sxx - self.sx * self.sx
        var_y = self.n * self.syy - self.sy * self.sy
        denom = (var_x.clamp(min=0) * var_y.clamp(min=0)).sqrt()
        if denom <= 0:
            return torch.tensor(float("nan"))
        return (cov / denom).clamp(-1.0, 1.0).float()


class _BinarySentimentStats(Metric):
    """Confusion counts ``tp, fp, fn, tn`` of thresholded sentiment (positive = "non-negative" or "positive")."""

    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor
    full_state_update = False
    higher_is_better = True

    def __init__(self, convention: Convention = "has0") -> None:
        super().__init__()
        if convention not in ("has0", "non0"):
            raise ValueError(f"convention must be 'has0' or 'non0', got {convention!r}")
        self.convention = convention
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, _zero(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        p, y = _flat(preds, target)
        if self.convention == "has0":
            pred_pos, true_pos = p >= 0, y >= 0
        else:
            keep = y != 0
            pred_pos, true_pos = p[keep] > 0, y[keep] > 0
        self.tp += (pred_pos & true_pos).sum()
        self.fp += (pred_pos & ~true_pos).sum()
        self.fn += (~pred_pos & true_pos).sum()
        self.tn += (~pred_pos & ~true_pos).sum()

    def _total(self) -> Tensor:
        return self.tp + self.fp + self.fn + self.tn


class BinarySentimentAccuracy(_BinarySentimentStats):
    """Binary sentiment accuracy (MMSA ``Has0_acc_2`` / ``Non0_acc_2``); NaN when no sample counts.

    Args:
        convention: ``"has0"`` (``y >= 0`` vs ``y < 0``, all samples) or ``"non0"`` (``y > 0`` vs ``y < 0``,
            samples with ``y == 0`` excluded).
    """

    def compute(self) -> Tensor:  # noqa: D102
        total = self._total()
        if total == 0:
            return torch.tensor(float("nan"))
        return ((self.tp + self.tn) / total).float()


class BinarySentimentF1(_BinarySentimentStats):
    """Support-weighted binary F1 (MMSA ``Has0_F1_score`` / ``Non0_F1_score``, sklearn ``average="weighted"``).

    A class with no predicted and no true sample has F1 0 (sklearn's ``zero_division`` default); NaN when no
    sample counts.

    Args:
        convention: see ``BinarySentimentAccuracy``.
    """

    def compute(self) -> Tensor:  # noqa: D102
        total = self._total()
        if total == 0:
            return torch.tensor(float("nan"))

        def f1(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
            denom = 2 * tp + fp + fn
            return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(denom))

        f1_pos = f1(self.tp, self.fp, self.fn)
        f1_neg = f1(self.tn, self.fn, self.fp)
        support_pos, support_neg = self.tp + self.fn, self.tn + self.fp
        return ((f1_pos * support_pos + f1_neg * support_neg) / total).float()


class RoundedAccuracy(Metric):
    """MMSA's ``Mult_acc_k``: ``round(clip(ŷ)) == round(clip(y))`` with clip range ``[-bound, bound]``.

    ``bound=3`` gives the 7-class accuracy (``acc7``), ``bound=2`` the 5-class one. Rounding is half-to-even, as
    ``np.round``.

    Args:
        bound: clip bound (3 for MOSI acc7, 2 for acc5).
    """

    correct: Tensor
    n: Tensor
    full_state_update = False
    higher_is_better = True

    def __init__(self, bound: float = 3.0) -> None:
        super().__init__()
        if bound <= 0:
            raise ValueError(f"bound must be > 0, got {bound}")
        self.bound = float(bound)
        self.add_state("correct", _zero(), dist_reduce_fx="sum")
        self.add_state("n", _zero(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:  # noqa: D102
        p, y = _flat(preds, target)
        p = torch.round(p.clamp(-self.bound, self.bound))
        y = torch.round(y.clamp(-self.bound, self.bound))
        self.correct += (p == y).sum()
        self.n += p.numel()

    def compute(self) -> Tensor:  # noqa: D102
        return (self.correct / self.n).float()
