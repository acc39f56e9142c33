"""Task → metric factory: which metrics every method is scored with."""

from __future__ import annotations

from collections.abc import Callable

from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mmbench.types import Task

__all__ = ["task_metrics"]


def task_metrics(task: Task, num_classes: int) -> Callable[[], Metric | MetricCollection]:
    """A factory of the metric collection for ``task``.

    * multiclass: ``acc`` (micro accuracy), ``f1_micro``, ``f1_macro`` on logits ``[B, C]``.
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
    if task is Task.SEGMENTATION:
        from mmbench.metrics.segmentation import BraTSRegionDice

        return lambda: BraTSRegionDice()
    raise NotImplementedError(f"no metrics are defined for task {task.value!r} yet")
