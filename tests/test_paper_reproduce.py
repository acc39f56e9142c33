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
    assert line.startswith(
        "| zero_fill | 86.50 ± 0.71 | 1: 86.0, 2: 87.0 | 21.50 ± 0.71 | +65.00 ± 0.00 | – | – | 2 | 0 |"
    )


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
    assert zf.startswith("| zero_fill | 65.00 ± 0.00 | 1: 65.0, 2: 65.0, 3: 65.0 | 15.00 ± 0.00 |")
    ss = next(ln for ln in text.splitlines() if ln.startswith("| shaspec | 85"))
    assert ss.startswith("| shaspec | 85.00 ± 10.00 | 1: 75.0, 2: 85.0, 3: 95.0 |")  # each seed's with-T1c mean
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
        ("table3_noaudio", 3),
        ("table3_lowerbound", 6),
        ("brats_synth", None),
        ("brats_synth_ul4m4", 3),
        ("table2_dedicated", 12),
        ("ul4m4_vs_meanfill", 36),
        ("ul4m4_vs_meanfill_mfeat", 18),
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
    if cells is None:  # every registered segmentation method but UL4M4, which has its own sweep (its 32³ window)
        from mmbench.registry import METHODS
        from mmbench.types import Task

        seg = {n for n in METHODS.names() if Task.SEGMENTATION in getattr(METHODS.get(n), "supported_tasks", ())}
        assert methods == seg - {"ul4m4"} and {"shaspec", "zero_fill"} <= methods
    if name == "brats_synth_ul4m4":
        assert methods == {"ul4m4"}


# ------------------------------------------------------------------------------------- Table 3 (issue 12, 9 + 12)
T3_SHA = {0.05: {1: 0.95, 2: 0.93, 3: 0.96}, 0.2: {1: 0.97, 2: 0.94, 3: 0.90}, 0.0: {1: 0.94, 2: 0.925, 3: 0.935}}
T3_LENET = {1: 0.92, 2: 0.92, 3: 0.93}
T3_UNI = {1: 0.90, 2: 0.91, 3: 0.89}
T_975_2 = 4.302652729911275  # t_{0.975, 2}: the hand computation's quantile (3 seeds)


def _t3_write(root: Path, skip: set[tuple[str, int]] = frozenset()) -> None:
    for audio, values in T3_SHA.items():
        for s, v in values.items():
            if ("shaspec", s) not in skip:
                _write(root / f"table3/sha{audio:g}_{s}", [_row("shaspec", s, v, audio, epoch=29)])
    for s in (1, 2, 3):
        if ("lenet5", s) not in skip:
            row = _row("unimodal", s, T3_LENET[s], 0.2, epoch=29, method_variant="encoder=lenet5;modality=image")
            _write(root / f"low/lenet{s}", [row])
        if ("unimodal", s) not in skip:
            row = _row("unimodal", s, T3_UNI[s], 0.2, epoch=29, method_variant="encoder=default;modality=image")
            _write(root / f"low/uni{s}", [row])


def _hand_ci(a: dict[int, float], b: dict[int, float]) -> str:
    """``mean [lo, hi] (n=3)`` of the paired differences in points, by hand (sample std, t quantile)."""
    d = [100 * (a[s] - b[s]) for s in (1, 2, 3)]
    mean = sum(d) / 3
    half = T_975_2 * math.sqrt(sum((x - mean) ** 2 for x in d) / 2) / math.sqrt(3)
    return f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] (n=3)"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_table3_paired_differences_match_a_hand_computation(tmp_path: Path) -> None:
    _t3_write(tmp_path)
    _write(tmp_path / "table3/other", [_row("shaspec", 1, 0.1, 0.05, pattern="all")])  # another row: ignored
    text = _module().table3([str(tmp_path / "table3"), str(tmp_path / "low")])
    lines = text.splitlines()
    acc5 = _cells(next(ln for ln in lines if ln.startswith("| 5% | 93.33")))
    assert acc5[1:4] == ["93.33", "92.35", "+0.98"]  # the published ShaSpec / LowerB row for 5 % audio
    sha5 = [100 * v for v in T3_SHA[0.05].values()]
    m5 = sum(sha5) / 3
    assert acc5[4] == f"{m5:.2f} ± {math.sqrt(sum((v - m5) ** 2 for v in sha5) / 2):.2f} (n=3)"
    diff5 = _cells(next(ln for ln in lines if ln.startswith("| 5% | +0.98")))
    assert diff5[2] == _hand_ci(T3_SHA[0.05], T3_LENET)
    assert diff5[3] == _hand_ci(T3_SHA[0.05], T3_UNI)
    assert diff5[4] == _hand_ci(T3_SHA[0.05], T3_SHA[0.0])  # what the audio adds
    diff20 = _cells(next(ln for ln in lines if ln.startswith("| 20% | +2.32")))
    assert diff20[4] == _hand_ci(T3_SHA[0.2], T3_SHA[0.0])
    arch = _cells(next(ln for ln in lines if ln.startswith("| 0 % |")))
    assert arch == ["0 %", _hand_ci(T3_SHA[0.0], T3_LENET), _hand_ci(T3_SHA[0.0], T3_UNI), _hand_ci(T3_LENET, T3_UNI)]
    assert "**30 epochs, not the paper's 60**" in text
    assert "have no pair" not in text and "no results for ShaSpec@10%, ShaSpec@15% under" in text
    assert "reproduce.py table3 " + str(tmp_path / "table3") in text


def test_table3_decomposition_adds_up(tmp_path: Path) -> None:
    """(ShaSpec@r − ShaSpec@0) + (ShaSpec@0 − LeNet) = ShaSpec@r − LeNet, seed by seed, so also in the mean."""
    _t3_write(tmp_path)
    mod = _module()
    arms, _ = mod.table3_cells([str(tmp_path)])
    for r in ("0.05", "0.2"):
        total = mod.paired(arms[f"shaspec@{r}"], arms["lenet5"])[0]
        audio = mod.paired(arms[f"shaspec@{r}"], arms["shaspec@0"])[0]
        arch = mod.paired(arms["shaspec@0"], arms["lenet5"])[0]
        assert math.isclose(total, audio + arch, abs_tol=1e-9)


def test_table3_missing_cells_are_named(tmp_path: Path) -> None:
    _t3_write(tmp_path, skip={("lenet5", 1), ("lenet5", 2), ("lenet5", 3), ("shaspec", 3)})
    text = _module().table3([str(tmp_path)])
    assert "## Missing or unpaired" in text
    assert "* missing cells: no results for ShaSpec@10%, ShaSpec@15%, LeNet-5 (image) under" in text
    assert "* ShaSpec@5% − unimodal (image): seeds [3] have no pair (only one of the two arms ran them)" in text
    diff5 = _cells(next(ln for ln in text.splitlines() if ln.startswith("| 5% | +0.98")))
    assert diff5[2] == "– (missing)"
    d = [100 * (T3_SHA[0.05][s] - T3_UNI[s]) for s in (1, 2)]  # paired on the 2 common seeds
    half = 12.706204736174707 * abs(d[0] - d[1]) / math.sqrt(2) / math.sqrt(2)  # t_{0.975, 1} · sd / sqrt(n)
    mean = sum(d) / 2
    assert diff5[3] == f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] (n=2)"
    assert "| 10% | 93.56 | 92.35 | +1.21 | – | – |" in text  # a published rate with no cells here


def test_table3_duplicate_cells_are_refused(tmp_path: Path) -> None:
    _t3_write(tmp_path)
    _write(tmp_path / "again/sha", [_row("shaspec", 1, 0.5, 0.05, run_dir="again/sha")])
    with pytest.raises(SystemExit, match=r"two results for ShaSpec@5% seed 1 .*pass each sweep dir once"):
        _module().table3([str(tmp_path)])


def test_table3_without_image_rows_is_a_clear_exit(tmp_path: Path) -> None:
    _write(tmp_path / "x", [_row("shaspec", 1, 0.5, 0.05, eval_protocol="all_patterns")])
    with pytest.raises(SystemExit, match=r"no pattern\(image\) / image / acc rows"):
        _module().table3([str(tmp_path)])


# ------------------------------------------------------------------------------------------ UL4M4 vs mean-fill
def test_ul4m4_vs_meanfill_pairs_k16_with_k1_by_seed(tmp_path: Path) -> None:
    k16 = {1: 0.80, 2: 0.84, 3: 0.79}
    k1 = {1: 0.78, 2: 0.80, 3: 0.80}
    for k, values in ((16, k16), (1, k1)):
        for s, v in values.items():
            base = {"method": "ul4m4", "seed": s, "dataset": "features", "train_missing_rate": 0.5, "metric": "acc"}
            base["dataset_variant"] = "mfeat(text=fac,audio=fou,vision=zer)"
            variant = f"K={k};imputer_fit=observed;kmeans=lloyd"
            rows = [
                {**base, "value": v, "pattern": "all", "eval_protocol": "rate(0.5)", "method_variant": variant},
                {**base, "value": 0.1, "pattern": "text", "eval_protocol": "rate(0.5)", "method_variant": variant},
                {
                    **base,
                    "value": 0.1,
                    "pattern": "all",
                    "eval_protocol": "rate(0.5)",
                    "method_variant": variant,
                    "metric": "f1_macro",
                },
                {**base, "value": 0.5, "pattern": "all", "eval_protocol": "x", "method": "zero_fill"},
            ]
            _write(tmp_path / f"k{k}_{s}", rows)
    text = _module().ul4m4_vs_meanfill([str(tmp_path)])
    line = _cells(next(ln for ln in text.splitlines() if ln.startswith("| features/mfeat | 0.5 | rate(0.5)")))
    m16 = 100 * sum(k16.values()) / 3
    sd16 = math.sqrt(sum((100 * v - m16) ** 2 for v in k16.values()) / 2)
    assert line[4] == f"{m16:.2f} ± {sd16:.2f} (n=3)"  # columns: K = 1, K = 16, difference
    assert text.count("| features/mfeat |") == 1  # f1, other patterns and other methods are not rows
    assert line[5] == _hand_ci(k16, k1)
    assert "K = 1 | K = 16 | K = 16 − K = 1 (95 % CI) |" in text


def test_ul4m4_vs_meanfill_without_rows_is_a_clear_exit(tmp_path: Path) -> None:
    _write(tmp_path / "x", [_row("shaspec", 1, 0.5, 0.05)])
    with pytest.raises(SystemExit, match="no ul4m4 rows with pattern 'all' and metric 'acc'"):
        _module().ul4m4_vs_meanfill([str(tmp_path)])
