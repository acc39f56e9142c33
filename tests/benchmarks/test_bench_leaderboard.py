"""Leaderboard and predictions figures (``make bench``; prints, asserts only that the runs worked).

1. A leaderboard of ``MMBENCH_BENCH_CELLS`` (default 200) configurations × 3 seeds of synthetic run dirs with
   AV-MNIST-lite-size predictions (450 test samples × 3 patterns under ``all_patterns``, 10 classes, 3 metrics):
   wall time with / without the paired tests and with / without figures; the predictions file size per cell.
2. Test-time overhead of writing ``predictions.parquet``: ``trainer.test`` of late fusion on 450 samples of
   AV-MNIST-lite shapes under ``all_patterns``, with and without ``PredictionsWriter``.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmbench import leaderboard as lb

pytestmark = pytest.mark.slow

N_TEST, C, SEEDS = 450, 10, 3
PATTERNS = {1: "image", 2: "audio", 3: "image+audio"}
METHODS = ("shaspec", "ul4m4", "late_fusion", "zero_fill", "mean_fill", "hemis", "moddrop", "unimodal", "m8", "m9")
RATES = (0.1, 0.3, 0.5, 0.7)


def _macro_f1(t: np.ndarray, p: np.ndarray) -> float:
    f1 = []
    for c in range(C):
        tp, fp, fn = np.sum((p == c) & (t == c)), np.sum((p == c) & (t != c)), np.sum((p != c) & (t == c))
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def _cell(d: Path, dataset: str, method: str, rate: float, seed: int, rng: np.random.Generator) -> None:
    d.mkdir(parents=True, exist_ok=True)
    target = np.random.default_rng(0).integers(0, C, N_TEST)
    skill = 0.55 + 0.03 * METHODS.index(method) - 0.2 * rate
    rows, cols = (
        [],
        {
            k: []
            for k in (
                "eval_protocol",
                "sample_index",
                "sample_id",
                "pattern_id",
                "pattern",
                "mask_hash",
                "rank",
                "batch",
                "row",
                "target",
                "pred_class",
                "scores",
            )
        },
    )
    allt, allp = [], []
    for pid, name in PATTERNS.items():
        logits = rng.normal(size=(N_TEST, C)).astype(np.float32)
        logits[np.arange(N_TEST), target] += 3.0 * (skill + 0.1 * (pid == 3))
        pred = logits.argmax(1)
        allt.append(target)
        allp.append(pred)
        for k, v in (
            ("eval_protocol", ["all_patterns"] * N_TEST),
            ("sample_index", range(N_TEST)),
            ("sample_id", [str(i) for i in range(N_TEST)]),
            ("pattern_id", [pid] * N_TEST),
            ("pattern", [name] * N_TEST),
            ("mask_hash", ["sha256:m"] * N_TEST),
            ("rank", [0] * N_TEST),
            ("batch", np.arange(N_TEST) // 64),
            ("row", np.arange(N_TEST) % 64),
            ("target", target),
            ("pred_class", pred),
            ("scores", list(logits)),
        ):
            cols[k] += list(v)
    for pid, t, p in [
        *[(pid, allt[i], allp[i]) for i, pid in enumerate(PATTERNS)],
        (0, np.concatenate(allt), np.concatenate(allp)),
    ]:
        for metric, value in (("acc", np.mean(t == p)), ("f1_micro", np.mean(t == p)), ("f1_macro", _macro_f1(t, p))):
            row = {c: "" for c in lb.RESULT_COLUMNS}
            row.update(
                dataset=dataset,
                dataset_variant="lite",
                task="multiclass",
                method=method,
                training_regime="non-dedicated",
                train_missing="bernoulli(min_present=1)",
                train_missing_rate=rate,
                optimizer="AdamW",
                lr=0.001,
                weight_decay=0.0,
                max_epochs=10,
                eval_protocol="all_patterns",
                pattern_id=pid,
                pattern=PATTERNS.get(pid, "all"),
                n_observed=bin(pid).count("1") if pid else "",
                metric=metric,
                value=float(value),
                n=len(t),
                seed=seed,
                mask_seed=0,
                mask_hash="sha256:m",
                ckpt_selection="last",
                run_dir=str(d),
            )
            rows.append(row)
    with open(d / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(lb.RESULT_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    meta = {"task": "multiclass", "num_classes": C, "modalities": ["image", "audio"]}
    table = pa.table({k: pa.array(v) for k, v in cols.items()}).replace_schema_metadata({"mmbench": json.dumps(meta)})
    pq.write_table(table, d / "predictions.parquet", compression="zstd")
    (d / "COMPLETE").write_text("")


def test_leaderboard_200_cells_x_3_seeds(tmp_path: Path) -> None:
    n_cells = int(os.environ.get("MMBENCH_BENCH_CELLS", "200"))
    per_dataset = len(METHODS) * len(RATES)
    rng = np.random.default_rng(0)
    root = tmp_path / "runs"
    t0 = time.perf_counter()
    made = 0
    for k in range(n_cells):
        ds, rest = divmod(k, per_dataset)
        method, rate = METHODS[rest // len(RATES)], RATES[rest % len(RATES)]
        for seed in range(SEEDS):
            _cell(root / f"d{ds}" / f"{method}_{rate}_s{seed}", f"ds{ds}", method, rate, seed, rng)
            made += 1
    sizes = [p.stat().st_size for p in root.rglob("predictions.parquet")]
    print(f"\nwrote {made} run dirs ({n_cells} configurations × {SEEDS} seeds) in {time.perf_counter() - t0:.1f} s")
    print(f"predictions.parquet per cell: {statistics.mean(sizes) / 1024:.0f} KiB ({3 * N_TEST} rows, {C} scores)")
    for tests, plots in ((False, False), (False, True), (True, False)):
        t = time.perf_counter()
        written = lb.leaderboard_main([root], tmp_path / f"out_{tests}_{plots}", plots=plots, paired_tests=tests)
        wall = time.perf_counter() - t
        n_cmp = len(pd.read_csv(written["comparisons.csv"])) if "comparisons.csv" in written else 0
        print(f"leaderboard paired_tests={tests!s:5} plots={plots!s:5}: {wall:7.1f} s ({n_cmp} comparisons)")
        assert (tmp_path / f"out_{tests}_{plots}" / "leaderboard.csv").is_file()


def test_predictions_writer_overhead(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    import torch

    from mmbench.data.synthetic import SyntheticDataModule
    from mmbench.methods.baselines import LateFusion
    from mmbench.predictions import PredictionsWriter
    from mmbench.results import ResultsWriter

    dm = SyntheticDataModule(
        input_shapes={"image": [1, 28, 28], "audio": [32, 13]},
        num_classes=10,
        num_samples=(8, 4, N_TEST),
        eval_batch_size=64,
    )
    torch.manual_seed(0)
    model = LateFusion(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
    times: dict[bool, list[float]] = {False: [], True: []}
    for rep in range(3):
        for with_pred in (False, True):
            callbacks = [ResultsWriter(), *([PredictionsWriter()] if with_pred else [])]
            trainer = pl.Trainer(
                accelerator="cpu",
                logger=False,
                default_root_dir=tmp_path / f"{rep}{with_pred}",
                callbacks=callbacks,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
            t = time.perf_counter()
            trainer.test(model, datamodule=dm, verbose=False)
            times[with_pred].append(time.perf_counter() - t)
    base, pred = statistics.median(times[False]), statistics.median(times[True])
    size = (tmp_path / "0True" / "predictions.parquet").stat().st_size
    print(
        f"\ntest on {3 * N_TEST} rows: {base:.2f} s without, {pred:.2f} s with predictions.parquet "
        f"(+{pred - base:.2f} s, {100 * (pred - base) / base:+.0f} %); file {size / 1024:.0f} KiB"
    )
