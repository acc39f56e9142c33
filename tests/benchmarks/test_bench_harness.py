"""Harness overhead: the same model, data, masks and optimiser trained through Lightning vs a plain PyTorch loop.

Prints figures; the small model also asserts the overhead budget (best-of-N ratio ≤ 1.10). Run with::

    .venv/bin/python -m pytest tests/benchmarks/test_bench_harness.py -m slow -s -q

Both sides train ``LateFusion`` for 3 epochs on one thread, in one process, interleaved (harness, plain,
harness, plain, ...), from the same initial weights, on the same ``train_dataloader()`` batches with the same
training masks (``apply_missingness(batch, "train", epoch)``) and the same ``AdamW(lr=1e-3, weight_decay=0)``.
The harness side is ``Trainer.fit`` as ``mmbench fit`` runs it (CSV logger, per-step loss logging), minus
validation, checkpointing, the progress bar and the model summary; the plain side is forward, ``loss``,
``zero_grad``, ``backward``, ``step``.

* small: AV-MNIST-lite (4,200 training pairs of 1×28×28 images and 32×13 MFCCs), batch 64, 50 % missing per
  modality;
* 3-D: four 1×16³ volumes per sample (``SyntheticDataModule`` segmentation), 32 samples, batch 4, a U-Net of
  widths (8, 16, 32, 64) per modality.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from mmbench.data.avmnist import AVMNISTDataModule
from mmbench.data.base import MultimodalDataModule
from mmbench.data.synthetic import SyntheticDataModule
from mmbench.masks import BernoulliMissing
from mmbench.methods import LateFusion
from mmbench.types import Task

pytestmark = pytest.mark.slow

EPOCHS = 3
REPEATS = 3


def _harness(model: LateFusion, dm: MultimodalDataModule, root: Path) -> float:
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(root, name="bench"),
        log_every_n_steps=10,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    return time.perf_counter() - start


def _plain(model: LateFusion, dm: MultimodalDataModule) -> float:
    start = time.perf_counter()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    for epoch in range(EPOCHS):
        for batch in dm.train_dataloader():
            batch = dm.apply_missingness(batch, "train", epoch)
            loss = model.loss(model(batch["inputs"], batch["mask"]), batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def _compare(label: str, make_dm: Callable[[], MultimodalDataModule], model: LateFusion, root: Path) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dm = make_dm()
        dm.setup("fit")
        _plain(copy.deepcopy(model), dm)  # warm-up: data files, allocator, kernels
        harness, plain = [], []
        for r in range(REPEATS):
            harness.append(_harness(copy.deepcopy(model), dm, root / f"{label}{r}"))
            plain.append(_plain(copy.deepcopy(model), dm))
    finally:
        torch.set_num_threads(threads)
    ratios = [h / p for h, p in zip(harness, plain, strict=True)]
    steps = EPOCHS * len(dm.train_dataloader())
    print(
        f"\n{label}: {EPOCHS} epochs, {steps} steps, 1 thread, {REPEATS} interleaved repeats\n"
        f"  harness (Trainer.fit)  median {statistics.median(harness):7.2f} s   min {min(harness):7.2f} s\n"
        f"  plain PyTorch loop     median {statistics.median(plain):7.2f} s   min {min(plain):7.2f} s\n"
        f"  ratio harness/plain    median {statistics.median(ratios):7.3f}     best {min(ratios):7.3f}\n"
        f"  overhead per step      {(statistics.median(harness) - statistics.median(plain)) / steps * 1e3:7.2f} ms"
    )
    return min(ratios)


def test_harness_overhead_small_model(tmp_path):
    def make_dm() -> MultimodalDataModule:
        return AVMNISTDataModule(variant="lite", batch_size=64, missingness=BernoulliMissing(0.5, min_present=1))

    dm = make_dm()
    torch.manual_seed(0)
    model = LateFusion(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, hidden_dim=64)
    assert _compare("small (LateFusion, AV-MNIST-lite)", make_dm, model, tmp_path) <= 1.10


def test_harness_overhead_3d_model(tmp_path):
    shapes = {m: [1, 16, 16, 16] for m in ("flair", "t1", "t1ce", "t2")}

    def make_dm() -> MultimodalDataModule:
        return SyntheticDataModule(
            task=Task.SEGMENTATION,
            input_shapes=shapes,
            num_samples=(32, 4, 4),
            batch_size=4,
            missingness=BernoulliMissing(0.5, min_present=1),
        )

    dm = make_dm()
    torch.manual_seed(0)
    model = LateFusion(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
    _compare("3-D (LateFusion U-Nets, 4×1×16³)", make_dm, model, tmp_path)
