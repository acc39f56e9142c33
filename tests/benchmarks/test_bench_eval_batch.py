"""Test-pass cost of BraTS segmentation per evaluation row: one row per batch vs a case's 15 patterns per batch.

Slow; run with ``pytest -m slow -s tests/benchmarks/test_bench_eval_batch.py``. Prints, for each method at the
CPU-scale widths of ``experiments/methods/*_seg.yaml`` on one torch thread, the seconds per row of
``predict_logits`` on a 4 mm-sized volume (38×46×37, one 48³ window) with ``eval_batch_size`` 1 and 15, their ratio
(measured side by side in this run), and the largest logit difference between the two.

Why: for a batch of one, PyTorch's CPU convolution heuristic (``ConvParams::use_mkldnn``) leaves 3×3×3 convolutions
with few input channels on its im2col path (``slow_conv3d_forward``); from a batch of 2 it uses oneDNN.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import mmbench.methods  # noqa: F401  (registers the methods)
from mmbench.masks import all_pattern_ids, pattern_mask
from mmbench.methods.base import MissingModalityMethod
from mmbench.registry import METHODS
from mmbench.types import Task

BRATS = ("flair", "t1", "t1ce", "t2")
VOLUME = (38, 46, 37)
ROI = 48
WIDTHS = {"shaspec": {"seg_widths": [8, 16, 32, 64]}, "zero_fill": {"unet_widths": [8, 16, 32, 64]}}


def _seconds(fn: Callable[[], object], repeats: int = 2) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _measure(model: MissingModalityMethod, batch: dict[str, Tensor], masks: Tensor) -> tuple[float, float, float]:
    """(seconds per row alone, seconds per row in the batch of 15, max |Δlogit| over the first 3 rows)."""
    rows = [({m: x[r : r + 1] for m, x in batch.items()}, masks[r : r + 1]) for r in range(3)]
    with torch.no_grad():
        alone = _seconds(lambda: [model.predict_logits(x, k) for x, k in rows]) / len(rows)
        together = _seconds(lambda: model.predict_logits(batch, masks)) / len(masks)
        a = torch.cat([model.predict_logits(x, k) for x, k in rows])
        b = model.predict_logits(batch, masks)[: len(rows)]
    return alone, together, float((a - b).abs().max())


@pytest.mark.slow
def test_print_seconds_per_row_for_one_row_and_one_case_per_batch() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        masks = torch.stack([pattern_mask(p, 4) for p in all_pattern_ids(4)])  # [15, 4]
        torch.manual_seed(0)
        volume = {m: torch.randn(1, 1, *VOLUME) for m in BRATS}
        batch = {m: v.expand(15, -1, -1, -1, -1) * masks[:, i, None, None, None, None] for i, (m, v) in
                 enumerate(volume.items())}  # fmt: skip
        print(
            f"\nper test row, 1 thread, volume {VOLUME}, window {ROI}³ (s): batch 1 | batch 15 | ratio | max |Δlogit|"
        )
        for name, kwargs in WIDTHS.items():
            model = METHODS.get(name)(BRATS, {m: (1, 32, 32, 32) for m in BRATS}, Task.SEGMENTATION, 3,
                                      roi_size=ROI, **kwargs).eval()  # fmt: skip
            alone, together, diff = _measure(model, batch, masks)
            print(f"  {name:10s} {alone:.3f} | {together:.3f} | {alone / together:.2f}x | {diff:.1e}")
            assert diff < 1e-3
    finally:
        torch.set_num_threads(threads)
