"""predictions.parquet beside results.csv, and `mmbench rescore` reproducing results.csv from it bit for bit."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from sklearn.metrics import balanced_accuracy_score, f1_score

from conftest import make_dm
from mmbench.cli import main
from mmbench.leaderboard.samples import PREDICTION_COLUMNS, read_predictions, sample_metric
from mmbench.masks import AllPatterns, RateProtocol
from mmbench.methods.baselines import LateFusion, ZeroFill
from mmbench.metrics.segmentation import BraTSRegionDice
from mmbench.predictions import PredictionsWriter
from mmbench.rescore import StoredRegionScores, _text, rescore_run
from mmbench.results import ResultsWriter


def run_test(tmp_path: Path, dm, model, **writer) -> Path:
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        callbacks=[ResultsWriter(), PredictionsWriter(**writer)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(model, datamodule=dm, verbose=False)
    (path,) = tmp_path.rglob("results.csv")
    return path.parent


def read_results(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def model_for(dm, cls=LateFusion):
    torch.manual_seed(0)
    return cls(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, hidden_dim=8)


@pytest.fixture
def multiclass_run(tmp_path: Path) -> Path:
    dm = make_dm(
        "features", num_samples=(8, 4, 37), eval_batch_size=5, eval_protocols=[AllPatterns(), RateProtocol(0.5)]
    )
    return run_test(tmp_path, dm, model_for(dm))


def test_rows_per_pattern_equal_n_in_results(multiclass_run: Path) -> None:
    df, meta = read_predictions(multiclass_run / "predictions.parquet")
    assert set(PREDICTION_COLUMNS) <= set(df.columns)
    assert meta["task"] == "multiclass" and meta["modalities"] == ["text", "audio", "visual"]
    rows = read_results(multiclass_run)
    for r in rows:
        sub = df.loc[df["eval_protocol"] == r["eval_protocol"]]
        if r["pattern"] != "all":
            sub = sub.loc[sub["pattern_id"] == int(r["pattern_id"])]
            assert set(sub["pattern"]) == {r["pattern"]}
        assert len(sub) == int(r["n"]), (r["eval_protocol"], r["pattern"])
        assert set(sub["mask_hash"]) == {r["mask_hash"]}
    # all_patterns: every test sample once under every one of the 7 patterns
    allp = df.loc[df["eval_protocol"] == "all_patterns"]
    assert len(allp) == 7 * 37 and not allp.duplicated(["sample_index", "pattern_id"]).any()
    assert (df["pred_class"] == df["scores"].map(np.argmax)).all()


def test_rescore_reproduces_results_bit_for_bit_and_adds_balanced_accuracy(multiclass_run: Path) -> None:
    written = read_results(multiclass_run)
    rows, added = rescore_run(multiclass_run, ["balanced_acc"])
    assert [(r["eval_protocol"], r["pattern"], r["metric"]) for r in rows[: len(written)]] == [
        (r["eval_protocol"], r["pattern"], r["metric"]) for r in written
    ]
    for new, old in zip(rows, written, strict=False):
        assert repr(float(new["value"])) == repr(float(old["value"]))
    df, _ = read_predictions(multiclass_run / "predictions.parquet")
    assert {r["metric"] for r in added} == {"balanced_acc"}
    for r in added:  # against sklearn on the stored predictions
        sub = df.loc[df["eval_protocol"] == r["eval_protocol"]]
        if int(r["pattern_id"]):
            sub = sub.loc[sub["pattern_id"] == int(r["pattern_id"])]
        if set(sub["pred_class"]) <= set(sub["target"]):  # else sklearn drops the never-true classes
            assert r["value"] == pytest.approx(balanced_accuracy_score(sub["target"], sub["pred_class"]), abs=1e-6)


def test_numpy_sample_metrics_equal_the_written_values(multiclass_run: Path) -> None:
    df, meta = read_predictions(multiclass_run / "predictions.parquet")
    for r in read_results(multiclass_run):
        sub = df.loc[df["eval_protocol"] == r["eval_protocol"]]
        if int(r["pattern_id"]):
            sub = sub.loc[sub["pattern_id"] == int(r["pattern_id"])]
        m = sample_metric(sub, meta, r["metric"])
        assert m is not None
        assert m.value() == pytest.approx(float(r["value"]), abs=1e-6), (r["pattern"], r["metric"])
    sub = df.loc[df["eval_protocol"] == "all_patterns"]
    ref = f1_score(sub["target"], sub["pred_class"], average="macro")
    present = set(sub["target"]) | set(sub["pred_class"])
    if len(present) == meta["num_classes"]:
        assert sample_metric(sub, meta, "f1_macro").value() == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("case", ["multilabel", "regression"])
def test_rescore_other_tasks(tmp_path: Path, case: str) -> None:
    dm = make_dm(case, num_samples=(8, 4, 13), eval_batch_size=4)
    run = run_test(tmp_path, dm, model_for(dm))
    written = read_results(run)
    rows, added = rescore_run(run)
    assert not added and len(rows) == len(written)
    assert [_text(r["value"]) for r in rows] == [_text(r["value"]) for r in written]
    df, meta = read_predictions(run / "predictions.parquet")
    for r in written:
        sub = df.loc[df["pattern_id"] == int(r["pattern_id"])] if int(r["pattern_id"]) else df
        m = sample_metric(sub, meta, r["metric"])
        if m is not None and r["value"]:
            assert m.value() == pytest.approx(float(r["value"]), rel=1e-5, abs=1e-6), (r["pattern"], r["metric"])


def test_segmentation_predictions_and_rescore_with_hd95(tmp_path: Path) -> None:
    dm = make_dm("segmentation", num_samples=(4, 2, 3), eval_batch_size=2)
    run = run_test(tmp_path, dm, model_for(dm, ZeroFill))
    df, _ = read_predictions(run / "predictions.parquet")
    assert {"dice_et", "dice_tc", "dice_wt", "hd95_et", "hd95_tc", "hd95_wt"} <= set(df.columns)
    assert len(df) == 15 * 3  # every case under the 15 patterns of 4 modalities
    rows, added = rescore_run(run, ["hd95"])
    written = read_results(run)
    assert [_text(r["value"]) for r in rows[: len(written)]] == [_text(r["value"]) for r in written]
    hd = {(r["pattern"], r["metric"]): r["value"] for r in added}
    assert hd[("all", "hd95_et")] == pytest.approx(df["hd95_et"].mean(), rel=1e-6)
    assert set(m for _, m in hd) == {"hd95_et", "hd95_tc", "hd95_wt", "hd95_mean"}


def test_stored_region_scores_match_brats_region_dice() -> None:
    g = torch.Generator().manual_seed(0)
    ref, stored = BraTSRegionDice(), StoredRegionScores(("dice",))
    from mmbench.functional.dice import region_dice

    for _ in range(3):
        logits, target = torch.randn(4, 3, 6, 6, 6, generator=g), torch.rand(4, 3, 6, 6, 6, generator=g) > 0.6
        ref.update(logits, target)
        d = region_dice(logits > 0, target)
        stored.update(d, d)
    a, b = ref.compute(), stored.compute()
    assert {k: v.item() for k, v in a.items()} == {k: v.item() for k, v in b.items()}


def test_rescore_command(multiclass_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n_before = len(read_results(multiclass_run))
    main(["rescore", str(multiclass_run), "--metrics", "[balanced_acc]"])
    rows = read_results(multiclass_run)
    assert len(rows) == n_before + 16 and rows[-1]["metric"] == "balanced_acc"
    assert "reproduced exactly" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["rescore", str(multiclass_run), "--metrics", "[hd95]"])
    assert e.value.code == 2
    assert "not available for task 'multiclass'" in capsys.readouterr().err


def test_rescore_detects_a_changed_value(multiclass_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = read_results(multiclass_run)
    rows[0]["value"] = str(float(rows[0]["value"]) + 1e-9)
    with open(multiclass_run / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(SystemExit):
        main(["rescore", str(multiclass_run)])
    assert "differ" in capsys.readouterr().err


def test_predict_writes_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmbench.cli import cli_main

    monkeypatch.chdir(tmp_path)
    cli = cli_main(
        [
            "predict",
            "--data=SyntheticDataModule",
            "--data.num_samples=[8, 4, 6]",
            "--model=LateFusion",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
        ]
    )
    (path,) = Path(cli.trainer.log_dir).glob("predictions.parquet")
    df = pd.read_parquet(path)
    assert len(df) == 7 * 6 and set(df["eval_protocol"]) == {"all_patterns"}
