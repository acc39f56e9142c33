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
    assert line.startswith("| zero_fill | 86.50 ± 0.71 | 21.50 ± 0.71 | +65.00 ± 0.00 | 2 |")


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
