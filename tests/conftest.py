"""Shared fixtures: offline W&B, single-threaded torch, tiny synthetic data modules for every task."""

from __future__ import annotations

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import pytest
import torch

from mmbench.data.synthetic import SyntheticDataModule
from mmbench.types import Task

torch.set_num_threads(1)

# one tiny data module per task family the harness ships: mixed raw inputs, feature vectors, 3-D volumes
TASK_CASES: dict[str, dict] = {
    "classification": {"task": Task.MULTICLASS, "input_shapes": {"image": [1, 28, 28], "audio": [32, 13]}},
    "features": {"task": Task.MULTICLASS, "input_shapes": {"text": [24], "audio": [10], "visual": [7]}},
    "multilabel": {"task": Task.MULTILABEL, "input_shapes": {"text": [24], "audio": [10], "visual": [7]}},
    "regression": {"task": Task.REGRESSION, "input_shapes": {"text": [24], "audio": [10]}, "num_classes": 1},
    "segmentation": {
        "task": Task.SEGMENTATION,
        "input_shapes": {m: [1, 16, 16, 16] for m in ("flair", "t1", "t1ce", "t2")},
    },
}


def make_dm(case: str, **kwargs) -> SyntheticDataModule:
    """A tiny synthetic data module for ``case`` (see TASK_CASES)."""
    spec = {**TASK_CASES[case], **kwargs}
    sizes = (8, 4, 4) if spec["task"] is Task.SEGMENTATION else (48, 16, 16)
    spec.setdefault("num_samples", sizes)
    spec.setdefault("batch_size", 4)
    return SyntheticDataModule(**spec)


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    """Run inside a temporary directory (run dirs land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
