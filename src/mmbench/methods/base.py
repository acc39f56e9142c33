"""``MissingModalityMethod``: the one interface every method implements (DESIGN.md §2).

A method overrides only

* ``forward(inputs, mask) -> MethodOutput``: ``inputs`` ``{name: Tensor[B, ...]}``, ``mask`` ``bool[B, M]``;
* ``loss(output, batch) -> dict[str, Tensor]`` with a ``"loss"`` entry (every term is logged as
  ``train/loss/<term>``); the default is the task loss on ``output.logits``;
* ``fit_unsupervised(datamodule)`` (optional): stages such as clustering, run at the start of ``fit`` on the
  train split only;
* ``variant()`` (optional): the switches recorded in the ``method_variant`` result column.

The base owns the steps, optimiser, per-pattern metrics and logging. Masks and zero-filling come from the data
module; methods never draw evaluation masks and must not read masked-out inputs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbench.functional.sliding_window import sliding_window_inference
from mmbench.metrics.factory import task_metrics
from mmbench.metrics.per_pattern import PerPatternMetric
from mmbench.types import Batch, MethodOutput, Task

if TYPE_CHECKING:
    from mmbench.data.base import MultimodalDataModule

__all__ = ["MissingModalityMethod", "task_loss"]


def task_loss(logits: Tensor, target: Tensor, task: Task) -> Tensor:
    """The supervised loss of a task.

    * multiclass: cross-entropy, logits ``[B, C]``, target ``long[B]``;
    * multilabel: BCE with logits, ``[B, C]``;
    * regression: mean squared error, ``[B, C]`` (or ``[B]``);
    * segmentation: soft Dice + BCE on sigmoid region channels ``[B, C, D, H, W]`` (BraTS ET/TC/WT).
    """
    if task is Task.MULTICLASS:
        return F.cross_entropy(logits, target.long())
    if task is Task.MULTILABEL:
        return F.binary_cross_entropy_with_logits(logits, target.float())
    if task is Task.REGRESSION:
        return F.mse_loss(logits.reshape(target.shape), target.float())
    if task is Task.SEGMENTATION:
        target = target.float()
        prob = torch.sigmoid(logits)
        dims = tuple(range(2, logits.dim()))
        inter = (prob * target).sum(dims)
        dice = (2 * inter + 1.0) / (prob.sum(dims) + target.sum(dims) + 1.0)  # [B, C], smoothed soft Dice
        return (1 - dice).mean() + F.binary_cross_entropy_with_logits(logits, target)
    raise ValueError(f"unknown task {task!r}")


class MissingModalityMethod(pl.LightningModule):
    """Base class of every method. Subclasses call ``super().__init__(...)`` with the linked data facts.

    Args:
        modalities: canonical modality order (linked from the data module).
        input_shapes: per-sample input shape of each modality (linked).
        task: task kind (linked).
        num_classes: classes / labels / outputs / region channels (linked).
        lr: Adam learning rate.
        weight_decay: Adam (decoupled, AdamW) weight decay.
    """

    registry_name: str = ""
    supported_tasks: tuple[Task, ...] = (Task.MULTICLASS, Task.MULTILABEL, Task.REGRESSION)
    """Tasks the method can run on; the sweep runner and the contract tests read it."""

    def __init__(
        self,
        modalities: Sequence[str],
        input_shapes: Mapping[str, Sequence[int]],
        task: Task | str,
        num_classes: int,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        missing = [m for m in self.modalities if m not in input_shapes]
        if missing:
            raise ValueError(f"input_shapes lacks modalities {missing}; got {sorted(input_shapes)}")
        self.input_shapes = {m: tuple(int(s) for s in input_shapes[m]) for m in self.modalities}
        self.task = Task(task)
        self.num_classes = int(num_classes)
        self.lr = lr
        self.weight_decay = weight_decay
        self.save_hyperparameters()
        # checkpoints are loaded with weights_only=True: keep hparams primitive
        self.hparams["task"] = self.task.value
        self.hparams["modalities"] = list(self.modalities)
        self.hparams["input_shapes"] = {m: list(s) for m, s in self.input_shapes.items()}
        # the factory is not stored: ddp_spawn pickles the module and factories may be closures
        self.val_metrics = PerPatternMetric(task_metrics(self.task, self.num_classes), self.modalities)
        self.test_metrics = nn.ModuleDict()
        self.test_results: list[dict[str, Any]] = []

    @property
    def num_modalities(self) -> int:
        """M."""
        return len(self.modalities)

    # ------------------------------------------------------------------------------------ the small surface
    @abstractmethod
    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:
        """Predict from the observed modalities.

        Args:
            inputs: ``{name: Tensor[B, *input_shapes[name]]}``; masked-out entries are zeros and must not be read.
            mask: ``bool[B, M]``, True = observed.

        Returns:
            ``MethodOutput`` with ``logits`` ``[B, C]`` (or ``[B, C, D, H, W]``) and optional ``aux`` tensors.
        """

    def loss(self, output: MethodOutput, batch: Batch) -> dict[str, Tensor]:
        """Named loss terms; ``"loss"`` is optimised. Default: the task loss."""
        return {"loss": task_loss(output.logits, batch["target"], self.task)}

    def fit_unsupervised(self, datamodule: MultimodalDataModule) -> None:
        """Unsupervised stage before supervised training (train split only). Default: nothing."""

    def variant(self) -> dict[str, object]:
        """Switches that distinguish variants of the method (the ``method_variant`` result column)."""
        return {}

    def predict_logits(self, inputs: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Evaluation-time logits.

        Classification: ``forward(inputs, mask).logits``. Segmentation: when the volume is larger than the training
        input shape, Gaussian-weighted sliding-window inference over windows of that shape (overlap 0.5), the mask
        of each volume applied to each of its windows.
        """
        first = self.modalities[0]
        roi = self.input_shapes[first][1:]
        if self.task is not Task.SEGMENTATION or tuple(inputs[first].shape[2:]) == roi:
            return self(inputs, mask).logits
        channels = [self.input_shapes[m][0] for m in self.modalities]
        volume = torch.cat([inputs[m] for m in self.modalities], dim=1)  # [B, ΣC_m, D, H, W]

        def predictor(windows: Tensor) -> Tensor:  # [k·B, ΣC_m, *roi] -> [k·B, C_out, *roi]
            parts = dict(zip(self.modalities, windows.split(channels, dim=1), strict=True))
            return self(parts, mask.repeat(windows.shape[0] // mask.shape[0], 1)).logits

        return sliding_window_inference(volume, roi, predictor, overlap=0.5)

    # ---------------------------------------------------------------------------------------- Lightning glue
    def configure_optimizers(self) -> torch.optim.Optimizer:  # noqa: D102
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def on_fit_start(self) -> None:  # noqa: D102
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None:
            self.fit_unsupervised(dm)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:  # noqa: D102
        output = self(batch["inputs"], batch["mask"])
        terms = self.loss(output, batch)
        if "loss" not in terms:
            raise KeyError(f"{type(self).__name__}.loss must return a 'loss' entry, got {sorted(terms)}")
        bs = batch["mask"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss/{name}", value.detach(), batch_size=bs, prog_bar=name == "loss")
        return terms["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:  # noqa: D102
        logits = self.predict_logits(batch["inputs"], batch["mask"])
        self.val_metrics.update(logits, batch["target"], batch["mask"])

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        for row in self.val_metrics.compute():
            self.log(f"val/{row['metric']}/{row['pattern']}", row["value"], prog_bar=row["pattern"] == "all")
        self.val_metrics.reset()

    def on_test_start(self) -> None:  # noqa: D102
        protocols = self._eval_protocol_names()
        make = task_metrics(self.task, self.num_classes)
        self.test_metrics = nn.ModuleDict(
            {f"t{i}": PerPatternMetric(make, self.modalities) for i in range(len(protocols))}
        ).to(self.device)
        self.test_results = []

    def _eval_protocol_names(self) -> list[str]:
        dm = getattr(self.trainer, "datamodule", None)
        return [p.name for p in dm.eval_protocols] if dm is not None else ["default"]

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> Tensor:  # noqa: D102
        logits = self.predict_logits(batch["inputs"], batch["mask"])
        metric = self.test_metrics[f"t{dataloader_idx}"]
        assert isinstance(metric, PerPatternMetric)
        metric.update(logits, batch["target"], batch["mask"])
        return logits  # for callbacks' on_test_batch_end (mmbench.predictions)

    def on_test_epoch_end(self) -> None:  # noqa: D102
        for i, protocol in enumerate(self._eval_protocol_names()):
            metric = self.test_metrics[f"t{i}"]
            assert isinstance(metric, PerPatternMetric)
            for row in metric.compute():
                self.log(f"test[{protocol}]/{row['metric']}/{row['pattern']}", row["value"])
                self.test_results.append({"eval_protocol": protocol, **row, "value": float(row["value"])})
            metric.reset()

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> Tensor:  # noqa: D102
        return self.predict_logits(batch["inputs"], batch["mask"])
