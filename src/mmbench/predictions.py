"""``PredictionsWriter``: per-sample predictions of every test (and predict) run, ``predictions.parquet``.

One row per (eval protocol, test sample, pattern) — the rows the per-pattern metrics saw — beside ``results.csv``:
the columns of ``mmbench.leaderboard.samples.PREDICTION_COLUMNS`` (protocol, sample index and id — the BraTS case
id where the data module has case ids —, pattern id and name, mask hash, and the rank/batch/row the row was scored
in, so that ``mmbench rescore`` can replay the metric updates in their order) plus the task's own:

* multiclass: ``target`` (int), ``pred_class`` (argmax), ``scores`` (the logits, float32[C]);
* multilabel: ``target`` (int8[C]), ``pred_labels`` (``sigmoid(logit) > 0.5``, int8[C]), ``scores`` (logits);
* regression: ``target`` and ``prediction`` (float32[C]);
* segmentation: per-case region Dice ``dice_<region>`` (float32, ``mmbench.functional.dice.region_dice`` on
  ``logits > 0``, as ``BraTSRegionDice``) and HD95 ``hd95_<region>`` in mm (``region_hd95``; off with
  ``hd95=False``).

The schema metadata ``mmbench`` holds ``{task, num_classes, modalities, region_names, dataset, hd95_spacing}``.
The file is written atomically by rank 0 after every rank's rows were gathered once (``all_gather_object``).
The method's ``test_step``/``predict_step`` return the logits, which Lightning hands to ``on_*_batch_end``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from mmbench.functional.dice import region_dice, region_hd95
from mmbench.masks import pattern_ids, pattern_name
from mmbench.schema import PREDICTIONS_FILE
from mmbench.types import Task

__all__ = ["PredictionsWriter", "write_predictions_atomic"]

REGIONS = ("et", "tc", "wt")


def write_predictions_atomic(path: Path, columns: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``columns`` (name → array or list of arrays) as parquet via a temporary file and ``os.replace``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for name, col in columns.items():
        if isinstance(col, np.ndarray) and col.ndim == 2:  # fixed-width vectors → list<...>
            arrays[name] = pa.array(list(col), type=pa.list_(pa.from_numpy_dtype(col.dtype)))
        else:
            arrays[name] = pa.array(col)
    table = pa.table(arrays).replace_schema_metadata({"mmbench": json.dumps(meta, sort_keys=True)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _sample_ids(dm: Any, index: np.ndarray) -> list[str]:
    """BraTS case ids where the data module has them (``splits()["test"]``), else the dataset index as text."""
    splits = getattr(dm, "splits", None)
    if callable(splits):
        ids = splits().get("test")
        if ids is not None:
            return [str(ids[int(i)]) for i in index]
    return [str(int(i)) for i in index]


class PredictionsWriter(Callback):
    """Write ``predictions.parquet`` after ``test`` and ``predict`` (see the module docstring).

    Args:
        filename: name of the file inside the run dir.
        enabled: write the file at all.
        hd95: compute per-case HD95 for segmentation (costs a distance transform per case and region).
    """

    def __init__(self, filename: str = PREDICTIONS_FILE, enabled: bool = True, hd95: bool = True) -> None:
        self.filename = filename
        self.enabled = enabled
        self.hd95 = hd95
        self.last_path: Path | None = None
        self._parts: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------------ rows
    def _batch_rows(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int, loader: int
    ) -> dict[str, Any] | None:
        logits = outputs.get("logits") if isinstance(outputs, dict) else outputs
        if not isinstance(logits, Tensor) or "mask" not in batch:
            return None
        dm = trainer.datamodule  # type: ignore[attr-defined]
        protocol = dm.eval_protocols[loader]
        modalities = tuple(dm.modalities)
        mask = batch["mask"].detach().cpu()
        pids = pattern_ids(mask).numpy()
        index = batch["index"].detach().cpu().numpy().astype(np.int64)
        b = len(index)
        part: dict[str, Any] = {
            "eval_protocol": [protocol.name] * b,
            "sample_index": index,
            "sample_id": _sample_ids(dm, index),
            "pattern_id": pids.astype(np.int64),
            "pattern": [pattern_name(int(p), modalities) for p in pids],
            "mask_hash": [dm.mask_table(protocol).hash] * b,
            "rank": np.full(b, trainer.global_rank, dtype=np.int32),
            "batch": np.full(b, batch_idx, dtype=np.int32),
            "row": np.arange(b, dtype=np.int32),
        }
        task = Task(dm.task)
        target = batch["target"].detach().cpu()
        logits = logits.detach().cpu()
        if task is Task.MULTICLASS:
            part["target"] = target.long().numpy()
            part["pred_class"] = logits.argmax(dim=1).long().numpy()
            part["scores"] = logits.float().numpy()
        elif task is Task.MULTILABEL:
            part["target"] = target.to(torch.int8).numpy()
            part["pred_labels"] = (torch.sigmoid(logits.float()) > 0.5).to(torch.int8).numpy()
            part["scores"] = logits.float().numpy()
        elif task is Task.REGRESSION:
            part["target"] = target.float().reshape(b, -1).numpy()
            part["prediction"] = logits.float().reshape(target.shape).reshape(b, -1).numpy()
        elif task is Task.SEGMENTATION:
            pred, gt = logits > 0, target.bool()
            dice = region_dice(pred, gt).numpy()
            for r, name in enumerate(REGIONS[: dice.shape[1]]):
                part[f"dice_{name}"] = dice[:, r].astype(np.float32)
            if self.hd95:
                dist = region_hd95(pred, gt, self._spacing(dm)).numpy()
                for r, name in enumerate(REGIONS[: dist.shape[1]]):
                    part[f"hd95_{name}"] = dist[:, r].astype(np.float64)
        return part

    @staticmethod
    def _spacing(dm: Any) -> tuple[float, ...] | None:
        """Voxel size of the semi-synthetic BraTS grid; 1 mm (``None``) for real BraTS volumes."""
        spacing = getattr(dm, "spacing_mm", None)
        if spacing is not None and str(getattr(dm, "dataset_variant", "")).startswith("semi-synthetic"):
            return (float(spacing),) * 3
        return None

    def _meta(self, trainer: pl.Trainer) -> dict[str, Any]:
        dm = trainer.datamodule  # type: ignore[attr-defined]
        spacing = self._spacing(dm)
        return {
            "task": str(dm.task),
            "num_classes": int(dm.num_classes),
            "modalities": list(dm.modalities),
            "region_names": list(REGIONS) if Task(dm.task) is Task.SEGMENTATION else [],
            "dataset": str(getattr(dm, "name", "")),
            "hd95_spacing": list(spacing) if spacing else [1.0, 1.0, 1.0],
        }

    def _collect(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int, j: int
    ) -> None:
        if self.enabled and not trainer.sanity_checking:
            part = self._batch_rows(trainer, pl_module, outputs, batch, i, j)
            if part is not None:
                self._parts.append(part)

    def _write(self, trainer: pl.Trainer) -> None:
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)  # a collective under DDP: every rank calls it
        parts = self._parts
        self._parts = []
        if not self.enabled:
            return
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[list[dict[str, Any]] | None] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, parts)  # once, every rank
            parts = [p for rank_parts in gathered for p in (rank_parts or [])]
        if not trainer.is_global_zero or not parts:
            return
        columns: dict[str, Any] = {}
        for key in parts[0]:
            values = [p[key] for p in parts]
            columns[key] = (
                np.concatenate(values) if isinstance(values[0], np.ndarray) else [v for part in values for v in part]
            )
        path = run_dir / self.filename
        write_predictions_atomic(path, columns, self._meta(trainer))
        self.last_path = path
        rank_zero_info(f"mmbench: wrote {len(columns['sample_index'])} prediction rows to {path}")

    # ------------------------------------------------------------------------------------------------ hooks
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._parts = []

    def on_test_batch_end(  # noqa: D102
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._collect(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._write(trainer)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._parts = []

    def on_predict_batch_end(  # noqa: D102
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._collect(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._write(trainer)
