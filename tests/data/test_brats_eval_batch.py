"""Evaluation batches of one BraTS case (``BraTSDataModule(eval_batch_size=...)``, ``SampleGroupedBatchSampler``).

A batch holds rows of one case only (volumes of different cases are never collated); every row is scored exactly
once, with its own mask; a method's logits for a row do not depend on the other rows of its batch; results through
the CLI with 15 rows per batch equal those with one row per batch.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import mmbench.methods  # noqa: F401  (registers the methods)
from conftest import make_dm
from mmbench.data.base import SampleGroupedBatchSampler
from mmbench.data.brats import MODALITIES, BraTSDataModule
from mmbench.errors import MMBenchError
from mmbench.masks import AllPatterns, BernoulliMissing, all_pattern_ids, pattern_mask
from mmbench.registry import METHODS
from mmbench.rescore import rescore_run
from mmbench.runner import cli_main
from mmbench.types import Task

ROOT = Path(__file__).resolve().parents[2]
EXP = ROOT / "experiments"
SEG_METHODS = sorted(n for n in METHODS.names() if Task.SEGMENTATION in getattr(METHODS.get(n), "supported_tasks", ()))


@pytest.mark.parametrize("batch_size", [1, 2, 4, 15, 100])
def test_grouped_sampler_covers_every_row_once_with_one_sample_per_batch(batch_size: int) -> None:
    g = torch.Generator().manual_seed(batch_size)
    sample_index = torch.randint(0, 7, (60,), generator=g)
    batches = list(SampleGroupedBatchSampler(sample_index, batch_size))
    rows = [r for b in batches for r in b]
    assert sorted(rows) == list(range(60))  # every row exactly once
    assert all(len(b) <= batch_size and len({int(sample_index[r]) for r in b}) == 1 for b in batches)
    for b in batches:
        assert b == sorted(b)  # table order inside a group
    firsts = [int(sample_index[b[0]]) for b in batches]
    order = list(dict.fromkeys(sample_index.tolist()))  # samples by first row
    assert list(dict.fromkeys(firsts)) == order
    # fewest batches: a sample with k rows takes ceil(k / batch_size) batches
    counts = torch.bincount(sample_index, minlength=7).tolist()
    assert len(batches) == sum(-(-k // batch_size) for k in counts)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        SampleGroupedBatchSampler(sample_index, 0)


def _datamodule(tmp_path: Path, eval_batch_size: int) -> BraTSDataModule:
    return BraTSDataModule(
        num_synthetic_cases=8, spacing_mm=8, patch_size=16, eval_batch_size=eval_batch_size,
        cache_dir=str(tmp_path / "cache"), eval_protocols=[AllPatterns()],
    )  # fmt: skip


@pytest.mark.parametrize("eval_batch_size", [1, 6, 15])
def test_test_loader_batches_rows_of_one_case_with_their_own_patterns(tmp_path: Path, eval_batch_size: int) -> None:
    dm = _datamodule(tmp_path, eval_batch_size)
    dm.setup("test")
    (loader,) = dm.test_dataloader()
    n = len(dm.splits()["test"])
    seen: list[tuple[int, tuple[bool, ...]]] = []
    for batch in loader:
        index = batch["index"].tolist()
        assert len(set(index)) == 1 and len(index) <= eval_batch_size  # one case per batch
        shape = batch["inputs"]["t1ce"].shape
        assert shape[0] == len(index) and all(batch["inputs"][m].shape == shape for m in MODALITIES)
        seen += [(i, tuple(m.tolist())) for i, m in zip(index, batch["mask"], strict=True)]
    expected = {(i, tuple(pattern_mask(p, 4).tolist())) for i in range(n) for p in all_pattern_ids(4)}
    assert len(seen) == len(expected) == 15 * n and set(seen) == expected  # each (case, pattern) once
    assert len(loader) == n * -(-15 // eval_batch_size)
    assert all(b["index"].numel() == 1 for b in dm.val_dataloader())  # val: one row per case, so one per batch


def test_grouped_evaluation_is_refused_on_several_devices_in_one_line(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path, 15)
    dm.setup("test")
    dm.trainer = SimpleNamespace(world_size=2)  # type: ignore[assignment]
    with pytest.raises(MMBenchError, match=r"eval_batch_size=15 groups the test rows .* use eval_batch_size 1"):
        dm.test_dataloader()
    with pytest.raises(ValueError, match="eval_batch_size must be >= 1, got 0"):
        _datamodule(tmp_path, 0)


@pytest.mark.parametrize("name", SEG_METHODS)
def test_a_rows_logits_do_not_depend_on_the_other_rows_of_its_batch(name: str) -> None:
    """One volume under its 15 patterns in one batch (sliding windows over a volume larger than the window) gives,
    row by row, the logits of that row scored alone: no method mixes the rows of an evaluation batch."""
    dm = make_dm("segmentation", input_shapes={m: [1, 8, 16, 8] for m in MODALITIES},
                 missingness=BernoulliMissing(0.3, min_present=1))  # fmt: skip
    dm.setup("fit")
    torch.manual_seed(0)
    model = METHODS.get(name)(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
    model.fit_unsupervised(dm)  # UL4M4's clustering
    model.eval()
    masks = torch.stack([pattern_mask(p, 4) for p in all_pattern_ids(4)])  # [15, 4]
    volume = {m: torch.randn(1, 1, 11, 19, 9) for m in MODALITIES}
    batch = {m: (v * masks[:, i, None, None, None, None]).expand(15, -1, -1, -1, -1).contiguous() for i, (m, v) in
             enumerate(volume.items())}  # fmt: skip  # zero-filled as the data module does: [15, 1, 11, 19, 9]
    with torch.no_grad():
        together = model.predict_logits(batch, masks)
        alone = torch.cat([model.predict_logits({m: x[r : r + 1] for m, x in batch.items()}, masks[r : r + 1])
                           for r in range(15)])  # fmt: skip
    assert together.shape == (15, 3, 11, 19, 9)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


def _cli_results(tmp_cwd: Path, eval_batch_size: int) -> dict[tuple[str, str], float]:
    """results.csv of a 2-step fit + test (1 test case × 15 patterns); ``mmbench rescore`` must reproduce it."""
    cli = cli_main(
        [
            "fit", "--config", str(EXP / "data/brats_synth.yaml"), "--config", str(EXP / "methods/zero_fill_seg.yaml"),
            "--data.init_args.num_synthetic_cases=8", "--data.init_args.spacing_mm=8", "--data.init_args.root=null",
            "--data.init_args.split_dir=null", "--data.init_args.patch_size=16",
            f"--data.init_args.eval_batch_size={eval_batch_size}", f"--data.init_args.cache_dir={tmp_cwd / 'cache'}",
            "--model.init_args.unet_widths=[4,8]", "--trainer.max_steps=2", "--trainer.limit_val_batches=0",
            "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            "--seed_everything=3", f"--trainer.logger.init_args.name=b{eval_batch_size}",
        ]
    )  # fmt: skip
    run = Path(str(cli.trainer.log_dir))
    rescore_run(run)  # raises if a value recomputed from predictions.parquet (batch/row order) differs
    with open(run / "results.csv", newline="") as f:
        return {(r["metric"], r["pattern"]): float(r["value"]) for r in csv.DictReader(f)}


def test_cli_results_with_one_case_per_batch_equal_one_row_per_batch(tmp_cwd: Path) -> None:
    one, grouped = _cli_results(tmp_cwd, 1), _cli_results(tmp_cwd, 15)
    assert set(one) == set(grouped) and len({p for _, p in one}) == 16  # 15 patterns + "all"
    for key, value in one.items():
        assert grouped[key] == pytest.approx(value, abs=1e-4), key
