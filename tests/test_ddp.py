"""Per-pattern test metrics under 2-process CPU DDP (ddp_spawn, gloo) equal the 1-process run."""

import csv
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from mmbench.data.synthetic import SyntheticDataModule
from mmbench.masks import AllPatterns, RateProtocol
from mmbench.methods.baselines import LateFusion
from mmbench.results import ResultsWriter


def _test_rows(tmp_path: Path, devices: int, strategy: str) -> dict:
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
        callbacks=[ResultsWriter()],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(model, datamodule=dm, verbose=False)
    (path,) = tmp_path.rglob("results.csv")  # under ddp_spawn the parent's log_dir is not the children's
    with open(path, newline="") as f:
        return {
            (r["eval_protocol"], r["pattern"], r["metric"]): (float(r["value"]), int(r["n"])) for r in csv.DictReader(f)
        }


@pytest.mark.timeout(300)
def test_ddp_spawn_metrics_equal_single_process(tmp_path):
    single = _test_rows(tmp_path / "one", 1, "auto")
    ddp = _test_rows(tmp_path / "two", 2, "ddp_spawn")
    assert single.keys() == ddp.keys()
    assert single[("all_patterns", "all", "acc")][1] == 7 * 33
    assert single[("rate(0.5)", "all", "acc")][1] == 33
    for key, (value, n) in single.items():
        assert ddp[key][1] == n, key
        assert ddp[key][0] == pytest.approx(value, abs=1e-6), key
