"""Base plumbing: per-step logging writes what logging every step writes; padding and cropping round-trip."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger

from conftest import make_dm
from mmbench.methods import ModalityMean, ShaSpec


class _LogEveryStep(ShaSpec):
    def _step_logging(self) -> tuple[bool, bool]:
        return False, True


def _fit(cls, root: Path) -> list[dict[str, str]]:
    torch.manual_seed(0)
    dm = make_dm("features")
    model = cls(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, feature_dim=8, stem_dim=8, head_hidden=8)
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=5,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=2,
        accelerator="cpu",
        logger=CSVLogger(root, name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    with open(root / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if any(k.startswith("train/loss/") and v for k, v in r.items())]


def test_step_logging_writes_the_same_rows_as_logging_every_step(tmp_path):
    sparse = _fit(ShaSpec, tmp_path / "sparse")
    every = _fit(_LogEveryStep, tmp_path / "every")
    assert sparse == every
    assert len(sparse) == 5  # 10 steps, written every 2nd
    assert {k for k in sparse[0] if k.startswith("train/loss/")} == {
        f"train/loss/{t}" for t in ("loss", "task", "dao", "dco")
    }


def test_pad_and_crop_round_trip_to_the_network_multiple():
    shapes = {m: (1, 12, 20, 9) for m in ("a", "b")}
    model = ModalityMean(list(shapes), shapes, "segmentation", 3, unet_widths=(4, 8, 16)).eval()
    assert model.spatial_multiple == 4
    x = torch.randn(2, 1, 12, 20, 9)
    padded = model.pad_spatial(x)
    assert tuple(padded.shape) == (2, 1, 12, 20, 12)  # multiples of 4, at least 8
    torch.testing.assert_close(model.crop_spatial(padded, x.shape), x)
    assert torch.all(padded[..., 9:] == 0)
    out = model({"a": x, "b": x}, torch.ones(2, 2, dtype=torch.bool))
    assert tuple(out.logits.shape) == (2, 3, 12, 20, 9)
