"""``MissingModalityMethod``: the one interface every method implements (DESIGN.md §2).

A method overrides only

* ``forward(inputs, mask) -> MethodOutput``: ``inputs`` ``{name: Tensor[B, ...]}``, ``mask`` ``bool[B, M]``;
* ``loss(output, batch) -> dict[str, Tensor]`` with a ``"loss"`` entry (every term is logged as
  ``train/loss/<term>``); the default is the task loss on ``output.logits``;
* ``fit_unsupervised(datamodule)`` (optional): stages such as clustering, run at the start of ``fit``; read the
  data through ``self.train_batches(datamodule)`` (masked, zero-filled training batches, never val/test);
* ``variant()`` (optional): the switches recorded in the ``method_variant`` result column.

The base owns the steps, the default optimiser, per-pattern metrics and logging, padding to the network's spatial
multiple (``pad_spatial``/``crop_spatial``) and sliding-window evaluation of dense tasks (``predict_logits``).
Encoders, decoders and fusion maths are building blocks (``mmbench.nn.backbones``,
``mmbench.functional.fusion``). Masks and zero-filling come from the data module; methods never draw evaluation
masks and must not read masked-out inputs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

from mmbench.functional.sliding_window import as_window_size, sliding_window_inference
from mmbench.metrics.factory import task_metrics
from mmbench.metrics.per_pattern import PerPatternMetric
from mmbench.nn.backbones import Backbone, make_backbone
from mmbench.nn.unet3d import pad_far_end, padded_shape
from mmbench.types import Batch, MethodOutput, Task

if TYPE_CHECKING:
    from mmbench.data.base import MultimodalDataModule

__all__ = ["DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "BlendName", "MissingModalityMethod", "task_loss"]

DEFAULT_LR = 1e-3
"""Learning rate of the default optimiser, ``AdamW`` (also the CLI's ``--optimizer`` default)."""
DEFAULT_WEIGHT_DECAY = 0.0
"""Weight decay of the default optimiser (torch's own ``AdamW`` default is 0.01: state it when you pick AdamW)."""
BlendName = Literal["gaussian", "constant"]
"""Sliding-window blending of dense predictions."""


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
    """Base class of every method. Subclasses take their own hyper-parameters and forward the rest.

    A subclass states only its own arguments and passes the linked data facts (and the evaluation settings) on::

        def __init__(self, *args: Any, hidden_dim: int = 64, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

    LightningCLI (jsonargparse) follows ``*args``/``**kwargs`` into this constructor, so ``modalities``,
    ``input_shapes``, ``task`` and ``num_classes`` are still linked from the data module. The optimiser is
    configuration (``--optimizer`` / ``--lr_scheduler``); without one it is ``AdamW(lr=1e-3, weight_decay=0)``.

    Args:
        modalities: canonical modality order (linked from the data module).
        input_shapes: per-sample input shape of each modality (linked).
        task: task kind (linked).
        num_classes: classes / labels / outputs / region channels (linked).
        roi_size: dense tasks: sliding-window size ``(D, H, W)`` (or one edge) at evaluation; ``None`` = the
            spatial size of ``input_shapes`` (the training patch, anisotropic or not).
        sw_overlap: dense tasks: sliding-window overlap in ``[0, 1)`` (0.5).
        sw_mode: dense tasks: window blending, ``"gaussian"`` (default) or ``"constant"``.
        sw_batch_size: dense tasks: window positions per forward call (1).
    """

    registry_name: str = ""
    supported_tasks: tuple[Task, ...] = tuple(Task)
    """Tasks the method can run on; the sweep runner and the contract tests read it."""
    spatial_multiple: int = 1
    """Spatial sizes the network needs (``Backbone.multiple``); ``pad_spatial`` pads inputs up to it."""

    def __init__(
        self,
        modalities: Sequence[str],
        input_shapes: Mapping[str, Sequence[int]],
        task: Task | str,
        num_classes: int,
        roi_size: tuple[int, int, int] | int | None = None,
        sw_overlap: float = 0.5,
        sw_mode: BlendName = "gaussian",
        sw_batch_size: int = 1,
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        missing = [m for m in self.modalities if m not in input_shapes]
        if missing:
            raise ValueError(f"input_shapes lacks modalities {missing}; got {sorted(input_shapes)}")
        self.input_shapes = {m: tuple(int(s) for s in input_shapes[m]) for m in self.modalities}
        self.task = Task(task)
        self.num_classes = int(num_classes)
        if sw_mode not in get_args(BlendName):
            raise ValueError(f"sw_mode must be one of {list(get_args(BlendName))}, got {sw_mode!r}")
        patch = self.input_shapes[self.modalities[0]][1:]  # dense tasks: the training patch (D, H, W)
        if self.task.dense:
            self.roi_size = as_window_size(roi_size if roi_size is not None else patch, len(patch))
        else:
            self.roi_size = tuple(int(r) for r in roi_size) if isinstance(roi_size, Sequence) else tuple(patch)
        self.sw_overlap, self.sw_mode, self.sw_batch_size = float(sw_overlap), sw_mode, int(sw_batch_size)
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
        """Unsupervised stage before supervised training. Default: nothing.

        Read data only through ``self.train_batches(datamodule)`` (the contract tests check that nothing masked
        out and nothing of val/test is read).
        """

    def variant(self) -> dict[str, object]:
        """Switches that distinguish variants of the method (the ``method_variant`` result column)."""
        return {}

    # ------------------------------------------------------------------------------------------- plumbing
    def make_backbone(self, width: int, widths: Sequence[int]) -> Backbone:
        """This task's encoders/decoders (``nn.backbones.make_backbone``); sets ``spatial_multiple`` from it.

        Args:
            width: feature width of vector encoders (vector tasks).
            widths: U-Net channels per level (dense tasks).
        """
        backbone = make_backbone(self.task, self.input_shapes, width=width, widths=widths)
        self.spatial_multiple = backbone.multiple
        return backbone

    def train_batches(self, datamodule: MultimodalDataModule, max_batches: int | None = None) -> Iterator[Batch]:
        """Training batches for ``fit_unsupervised``: masked (training masks, epoch 0), zero-filled, on device.

        The only way an unsupervised stage should read data: masked-out inputs are zeros (the mask says which),
        and nothing of the validation or test splits is touched.

        Args:
            datamodule: the data module of the run.
            max_batches: stop after this many batches (``None`` = the whole training split).

        Yields:
            ``Batch`` with ``inputs``, ``mask`` ``bool[B, M]``, ``target`` and ``index`` on ``self.device``.
        """
        for b, batch in enumerate(datamodule.train_dataloader()):
            if max_batches is not None and b >= max_batches:
                return
            batch = datamodule.apply_missingness(batch, "train")
            yield move_data_to_device(batch, self.device)

    def pad_spatial(self, x: Tensor) -> Tensor:
        """Zero-pad each of the last three dims at its far end to ``spatial_multiple`` (no-op when it is 1).

        ``[..., D, H, W] → [..., D', H', W']`` with ``(D', H', W') = nn.unet3d.padded_shape((D, H, W), multiple)``,
        each axis on its own (multiples, at least twice it): an 80×160×160 patch stays 80×160×160 at multiple 16,
        a 20×36×28 one becomes 32×48×32.
        """
        if self.spatial_multiple == 1:
            return x
        return pad_far_end(x, padded_shape(x.shape[-3:], self.spatial_multiple))

    def crop_spatial(self, logits: Tensor, spatial: Sequence[int]) -> Tensor:
        """Undo ``pad_spatial`` on the output: keep the first ``spatial`` voxels of the last three dims."""
        if self.spatial_multiple == 1:
            return logits
        D, H, W = spatial[-3:]
        return logits[..., :D, :H, :W]

    def predict_logits(self, inputs: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Evaluation-time logits.

        Vector tasks: ``forward(inputs, mask).logits``. Dense tasks: when the volume differs from ``roi_size``,
        sliding-window inference over windows of that size (``sw_overlap``, ``sw_mode``, ``sw_batch_size``), the
        mask of each volume applied to each of its windows; one window equals ``forward`` exactly (float64
        blending).
        """
        first = self.modalities[0]
        if not self.task.dense or tuple(inputs[first].shape[2:]) == self.roi_size:
            return self(inputs, mask).logits
        B = mask.shape[0]
        channels = [inputs[m].shape[1] for m in self.modalities]
        volume = torch.cat([inputs[m] for m in self.modalities], dim=1)  # [B, ΣC_m, D, H, W]

        def predictor(windows: Tensor) -> Tensor:  # [k·B, ΣC_m, *roi] → [k·B, C_out, *roi], k positions × B
            parts = dict(zip(self.modalities, windows.split(channels, dim=1), strict=True))
            return self(parts, mask.repeat(windows.shape[0] // B, 1)).logits

        return sliding_window_inference(
            volume, self.roi_size, predictor, self.sw_overlap, self.sw_batch_size, self.sw_mode
        )

    # ---------------------------------------------------------------------------------------- Lightning glue
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """``AdamW(lr=1e-3, weight_decay=0)`` on the trainable parameters (without LightningCLI's ``--optimizer``)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=DEFAULT_LR, weight_decay=DEFAULT_WEIGHT_DECAY)

    def on_fit_start(self) -> None:  # noqa: D102
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None:
            self.fit_unsupervised(dm)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:  # noqa: D102
        output = self(batch["inputs"], batch["mask"])
        terms = self.loss(output, batch)
        if "loss" not in terms:
            raise KeyError(f"{type(self).__name__}.loss must return a 'loss' entry, got {sorted(terms)}")
        bar, write = self._step_logging()
        bs = batch["mask"].shape[0]
        for name, value in terms.items():
            if write or (bar and name == "loss"):
                self.log(f"train/loss/{name}", value.detach(), batch_size=bs, prog_bar=bar and name == "loss")
        return terms["loss"]

    def _step_logging(self) -> tuple[bool, bool]:
        """(a progress bar shows the loss, the loggers write this step).

        Per-step values reach the loggers only every ``log_every_n_steps`` steps; logging the loss terms on the
        other steps costs a ``self.log`` call each (and, for progress-bar values, a host sync) for nothing.
        Lightning's own rule decides (it is read before the step counter moves, as when it writes).
        """
        trainer = self._trainer
        if trainer is None:
            return False, True
        connector = getattr(trainer, "_logger_connector", None)
        write = bool(getattr(trainer, "fast_dev_run", False)) or bool(getattr(connector, "should_update_logs", True))
        return trainer.progress_bar_callback is not None, write

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
