"""Task → metric factory: which metrics every method is scored with."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelExactMatch,
    MultilabelF1Score,
)

from mmbench.types import Task

__all__ = ["MultilabelExactMatchFromLogits", "MultilabelF1FromLogits", "task_metrics"]


class MultilabelF1FromLogits(MultilabelF1Score):
    """``MultilabelF1Score`` on logits ``[B, C]``: sigmoid first, then the 0.5 threshold.

    torchmetrics only applies the sigmoid when some value lies outside ``[0, 1]``, so a batch of small logits
    would otherwise be thresholded as if it held probabilities.
    """

    def update(self, preds: Tensor, target: Tensor) -> None:  # noqa: D102
        super().update(torch.sigmoid(preds.float()), target.long())


class MultilabelExactMatchFromLogits(MultilabelExactMatch):
    """``MultilabelExactMatch`` (subset accuracy) on logits ``[B, C]``; see ``MultilabelF1FromLogits``."""

    def update(self, preds: Tensor, target: Tensor) -> None:  # noqa: D102
        super().update(torch.sigmoid(preds.float()), target.long())


def task_metrics(task: Task, num_classes: int) -> Callable[[], Metric | MetricCollection]:
    """A factory of the metric collection for ``task``.

    * multiclass: ``acc`` (micro accuracy), ``f1_micro``, ``f1_macro`` on logits ``[B, C]``.
    * multilabel: ``f1_micro`` (true micro-F1 over the ``[N, C]`` label matrix), ``f1_macro`` and ``subset_acc``
      (exact match of the whole label vector) on logits ``[B, C]`` and ``{0, 1}`` targets ``[B, C]``.
    * regression: ``mae``, ``mse``, ``corr`` (Pearson) on flattened predictions; with one output (MOSI-style
      sentiment) also ``acc2_has0``, ``f1_has0``, ``acc2_non0``, ``f1_non0`` (MMSA conventions, weighted F1)
      and ``acc7``, ``acc5`` (see ``mmbench.metrics.regression``).
    * segmentation: ``dice_et``, ``dice_tc``, ``dice_wt``, ``dice_mean`` per case (BraTS convention), on logits
      ``[B, 3, D, H, W]``.

    Raises:
        NotImplementedError: for a task without metrics here yet.
    """
    task = Task(task)
    if task is Task.MULTICLASS:
        return lambda: MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1_micro": MulticlassF1Score(num_classes, average="micro"),
                "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            },
            compute_groups=False,
        )
    if task is Task.MULTILABEL:
        return lambda: MetricCollection(
            {
                "f1_micro": MultilabelF1FromLogits(num_classes, average="micro"),
                "f1_macro": MultilabelF1FromLogits(num_classes, average="macro"),
                "subset_acc": MultilabelExactMatchFromLogits(num_classes),
            },
            compute_groups=False,
        )
    if task is Task.REGRESSION:
        from mmbench.metrics import regression as R

        def make_regression() -> MetricCollection:
            metrics: dict[str, Metric | MetricCollection] = {
                "mae": R.MeanAbsoluteError(),
                "mse": R.MeanSquaredError(),
                "corr": R.PearsonCorrelation(),
            }
            if num_classes == 1:
                metrics |= {
                    "acc2_has0": R.BinarySentimentAccuracy("has0"),
                    "f1_has0": R.BinarySentimentF1("has0"),
                    "acc2_non0": R.BinarySentimentAccuracy("non0"),
                    "f1_non0": R.BinarySentimentF1("non0"),
                    "acc7": R.RoundedAccuracy(3.0),
                    "acc5": R.RoundedAccuracy(2.0),
                }
            return MetricCollection(metrics, compute_groups=False)

        return make_regression
    if task is Task.SEGMENTATION:
        from mmbench.metrics.segmentation import BraTSRegionDice

        return lambda: BraTSRegionDice()
    raise NotImplementedError(f"no metrics are defined for task {task.value!r} yet")
