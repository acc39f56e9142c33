"""Per-pattern test metrics and per-sample predictions under 2-process CPU DDP (ddp_spawn, gloo) equal the 1-process run."""

import csv
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from mmbench.data.synthetic import SyntheticDataModule
from mmbench.leaderboard.samples import read_predictions
from mmbench.masks import AllPatterns, RateProtocol
from mmbench.methods.baselines import LateFusion
from mmbench.predictions import PredictionsWriter
from mmbench.rescore import _text, rescore_run
from mmbench.results import ResultsWriter


def _test_rows(tmp_path: Path, devices: int, strategy: str) -> tuple[dict, Path]:
    # 33 test samples: not divisible by 2, so a padding sampler would count a sample twice
    dm = SyntheticDataModule(
        num_samples=(8, 4, 33), eval_batch_size=5, eval_protocols=[AllPatterns(), RateProtocol(0.5)]
    )
    torch.manual_seed(0)
    model = LateFusion(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, hidden_dim=8)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        logger=CSVLogger(tmp_path),
        callbacks=[ResultsWriter(), PredictionsWriter()],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(model, datamodule=dm, verbose=False)
    (path,) = tmp_path.rglob("results.csv")  # under ddp_spawn the parent's log_dir is not the children's
    with open(path, newline="") as f:
        rows = {
            (r["eval_protocol"], r["pattern"], r["metric"]): (float(r["value"]), int(r["n"])) for r in csv.DictReader(f)
        }
    return rows, path.parent


@pytest.mark.timeout(300)
def test_ddp_spawn_metrics_equal_single_process(tmp_path):
    single, one_dir = _test_rows(tmp_path / "one", 1, "auto")
    ddp, two_dir = _test_rows(tmp_path / "two", 2, "ddp_spawn")
    assert single.keys() == ddp.keys()
    assert single[("all_patterns", "all", "acc")][1] == 7 * 33
    assert single[("rate(0.5)", "all", "acc")][1] == 33
    for key, (value, n) in single.items():
        assert ddp[key][1] == n, key
        assert ddp[key][0] == pytest.approx(value, abs=1e-6), key
    # predictions: every rank's rows gathered once into one file, the same rows as the single process
    key = ["eval_protocol", "sample_index", "pattern_id"]
    one, _ = read_predictions(one_dir / "predictions.parquet")
    two, _ = read_predictions(two_dir / "predictions.parquet")
    assert set(two["rank"]) == {0, 1} and not two.duplicated(key).any()
    one, two = one.sort_values(key).reset_index(drop=True), two.sort_values(key).reset_index(drop=True)
    assert one[key].equals(two[key])
    assert (one["pred_class"] == two["pred_class"]).all()
    # rescore replays each rank's batches and merges the states as the DDP sync does: bit for bit
    rows, added = rescore_run(two_dir)
    with open(two_dir / "results.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert not added and [_text(r["value"]) for r in rows] == [_text(r["value"]) for r in written]
