"""experiments/paper/reproduce.py: the reproduction tables read run dirs and pair by seed."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("paper_reproduce", ROOT / "experiments/paper/reproduce.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "results.csv", index=False)


def _row(method: str, seed: int, value: float, audio: float, **kw: object) -> dict:
    return {
        "method": method,
        "seed": seed,
        "value": value,
        "dataset_variant": f"smil(audio={audio:g})",
        "train_missing": f"per_class_fraction(audio={audio:g})",
        "eval_protocol": "pattern(image)",
        "pattern": "image",
        "metric": "acc",
        "epoch": 59,
        **kw,
    }


def test_table3_pairs_by_seed_and_gives_a_t_interval(tmp_path: Path) -> None:
    sha = {1: 0.95, 2: 0.93, 3: 0.96}
    low = {1: 0.92, 2: 0.92, 3: 0.93}
    for s in sha:
        _write(tmp_path / f"a/shaspec{s}", [_row("shaspec", s, sha[s], 0.05)])
        _write(tmp_path / f"b/low{s}", [_row("unimodal", s, low[s], 0.2)])
    _write(tmp_path / "a/other", [_row("shaspec", 1, 0.1, 0.05, pattern="all")])  # another row: ignored
    text = _module().table3([str(tmp_path / "a"), str(tmp_path / "b")])
    line = next(ln for ln in text.splitlines() if ln.startswith("| 5%"))
    diffs = [100 * (sha[s] - low[s]) for s in sha]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t_{0.975, 2}
    assert f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] (n=3)" in line
    assert "| 93.33 | 92.35 | +0.98 |" in line  # the published ShaSpec / LowerB row for 5 % audio
    assert "epochs trained: [60]" in text


def test_brats_synth_splits_patterns_by_t1ce(tmp_path: Path) -> None:
    rows = []
    for seed in (1, 2):
        for pattern, v in (("t1ce", 0.8), ("flair+t1ce", 0.9), ("flair", 0.3), ("t1+t2", 0.1), ("all", 0.5)):
            rows.append(
                {
                    "method": "zero_fill",
                    "seed": seed,
                    "value": v + 0.01 * seed,
                    "pattern": pattern,
                    "eval_protocol": "all_patterns",
                    "metric": "dice_et",
                }
            )
    _write(tmp_path / "run", rows)
    text = _module().brats_synth([str(tmp_path)])
    line = next(ln for ln in text.splitlines() if ln.startswith("| zero_fill"))
    assert line.startswith("| zero_fill | 86.50 ± 0.71 | 21.50 ± 0.71 | +65.00 ± 0.00 | – | – | 2 | 0 |")


def _cell(path: Path, method: str, seed: int, per_case: dict[str, dict[str, float]]) -> None:
    """A validated BraTS cell: results.csv (means over cases) and predictions.parquet (per case)."""
    from mmbench.leaderboard.samples import PREDICTION_COLUMNS
    from mmbench.predictions import write_predictions_atomic

    patterns = sorted({p for v in per_case.values() for p in v})
    rows = [
        {
            "method": method,
            "seed": seed,
            "value": sum(per_case[c][p] for c in per_case) / len(per_case),
            "pattern": p,
            "eval_protocol": "all_patterns",
            "metric": "dice_et",
            "dataset_variant": "semi-synthetic(gen=v2,128x5mm,seed=0)",
        }
        for p in patterns
    ]
    _write(path, rows)
    flat = [(c, p, v) for c, d in per_case.items() for p, v in d.items()]
    n = len(flat)
    cols = {k: [0] * n for k in PREDICTION_COLUMNS}
    cols.update(
        eval_protocol=["all_patterns"] * n,
        sample_id=[c for c, _, _ in flat],
        pattern=[p for _, p, _ in flat],
        mask_hash=["h"] * n,
        dice_et=[v for _, _, v in flat],
    )
    write_predictions_atomic(path / "predictions.parquet", cols, {"task": "segmentation"})


def test_brats_synth_per_case_spread_and_paired_comparison(tmp_path: Path) -> None:
    # 4 cases; with T1c = pattern "t1ce", without = "flair"; ShaSpec better by 0.1, 0.2, 0.3 on seeds 1..3
    base = {f"c{i}": {"t1ce": 0.5 + 0.1 * i, "flair": 0.1 * i} for i in range(4)}
    for seed, gain in ((1, 0.1), (2, 0.2), (3, 0.3)):
        _cell(tmp_path / f"zf{seed}", "zero_fill", seed, base)
        better = {c: {p: v + gain for p, v in d.items()} for c, d in base.items()}
        _cell(tmp_path / f"ss{seed}", "shaspec", seed, better)
    text = _module().brats_synth([str(tmp_path)])
    zf = next(ln for ln in text.splitlines() if ln.startswith("| zero_fill | 65"))
    # per case, with T1c: 50, 60, 70, 80 → median 65, IQR [57.5, 72.5], mean 65 ± 12.9
    assert "| 65.0 [57.5, 72.5]; 65.0 ± 12.9 | 15.0 [7.5, 22.5]; 15.0 ± 12.9 | 3 | 4 |" in zf
    cmp_line = next(ln for ln in text.splitlines() if ln.startswith("| zero_fill | +"))
    half = 4.302652729911275 * 10.0 / math.sqrt(3)  # t_{0.975, 2} · sd(10, 20, 30) / √3
    ci = f"+20.00 [{20 - half:+.2f}, {20 + half:+.2f}] (n=3)"
    assert cmp_line == f"| zero_fill | {ci} | {ci} | {ci} | not distinguishable |"
    assert "semi-synthetic(gen=v2,128x5mm,seed=0)" in text


def test_no_results_is_a_clear_exit(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no results\.csv"):
        _module().table3([str(tmp_path)])


@pytest.mark.parametrize(
    ("name", "cells"),
    [
        ("table3", 12),
        ("table3_lowerbound", 3),
        ("brats_synth", None),
        ("table2_dedicated", 12),
        ("ul4m4_vs_meanfill", 36),
    ],
)
def test_paper_sweeps_expand(name: str, cells: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmbench.sweep.grid import expand
    from mmbench.sweep.spec import load_spec

    monkeypatch.chdir(ROOT)  # spec paths are relative to the repository root
    loaded, _ = load_spec(["--config", f"experiments/paper/sweeps/{name}.yaml"])
    grid = expand(loaded, check=False)
    methods = {c.method for c in grid.cells}
    assert len(grid.cells) == (cells if cells is not None else 3 * len(methods))  # None: every segmentation method
    assert len({c.seed for c in grid.cells}) == 3
    if cells is None:
        assert {"shaspec", "zero_fill", "ul4m4"} <= methods
