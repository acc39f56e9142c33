"""Leaderboard statistics on synthetic run dirs with predictions; robustness of the command and the Make target."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmbench import leaderboard as lb
from mmbench.leaderboard.columns import CI_KINDS

REPO = Path(__file__).resolve().parents[1]
N, C = 300, 4
PATTERNS = {1: "image", 2: "audio", 3: "image+audio"}
TARGET = np.random.default_rng(0).integers(0, C, N)


def preds(acc: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(N) < acc, TARGET, (TARGET + rng.integers(1, C, N)) % C)


def base_row(method: str, seed: int, run_dir: Path, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {c: "" for c in lb.RESULT_COLUMNS}
    row.update(
        dataset="avmnist",
        dataset_variant="lite",
        split_hash="sha256:1",
        task="multiclass",
        method=method,
        training_regime="non-dedicated",
        train_missing="bernoulli(min_present=1)",
        train_missing_rate=0.5,
        optimizer="AdamW",
        lr=0.001,
        weight_decay=0.0,
        max_epochs=10,
        eval_protocol="all_patterns",
        seed=seed,
        mask_seed=0,
        mask_hash="sha256:m",
        ckpt_selection="last",
        run_dir=str(run_dir),
    )
    row.update(kw)
    return row


def write_cell(
    run_dir: Path,
    method: str,
    seed: int,
    acc: dict[int, float],
    with_predictions: bool = True,
    complete: bool = True,
    **kw: object,
) -> Path:
    """A cell: per pattern ``p`` predictions of accuracy ``acc[p]``; results.csv rows computed from them."""
    run_dir.mkdir(parents=True, exist_ok=True)
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
            )
        },
    )
    all_correct = []
    for pid, name in PATTERNS.items():
        p = preds(acc[pid], 1000 * seed + 17 * pid + sum(map(ord, method)))
        correct = p == TARGET
        all_correct.append(correct)
        rows.append(
            {
                **base_row(method, seed, run_dir, **kw),
                "pattern_id": pid,
                "pattern": name,
                "n_observed": bin(pid).count("1"),
                "metric": "acc",
                "value": float(correct.mean()),
                "n": N,
            }
        )
        for k, v in (
            ("eval_protocol", ["all_patterns"] * N),
            ("sample_index", range(N)),
            ("sample_id", [str(i) for i in range(N)]),
            ("pattern_id", [pid] * N),
            ("pattern", [name] * N),
            ("mask_hash", ["sha256:m"] * N),
            ("rank", [0] * N),
            ("batch", [0] * N),
            ("row", range(N)),
            ("target", TARGET),
            ("pred_class", p),
        ):
            cols[k] += list(v)
    rows.append(
        {
            **base_row(method, seed, run_dir, **kw),
            "pattern_id": 0,
            "pattern": "all",
            "n_observed": "",
            "metric": "acc",
            "value": float(np.concatenate(all_correct).mean()),
            "n": 3 * N,
        }
    )
    with open(run_dir / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(lb.RESULT_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    if with_predictions:
        table = pa.table(cols).replace_schema_metadata(
            {"mmbench": json.dumps({"task": "multiclass", "num_classes": C, "modalities": ["image", "audio"]})}
        )
        pq.write_table(table, run_dir / "predictions.parquet")
    if complete:
        (run_dir / "COMPLETE").write_text("")
    return run_dir


STRONG = {1: 0.9, 2: 0.6, 3: 0.92}
WEAK = {1: 0.5, 2: 0.35, 3: 0.55}


def test_planted_difference_significant_identical_never(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_cell(root / "a", "shaspec", 0, STRONG)
    write_cell(root / "b", "zero_fill", 0, WEAK)
    twin = write_cell(root / "c", "mean_fill", 0, STRONG)  # same predictions as shaspec: hash differs, so copy
    shutil.copy(root / "a" / "predictions.parquet", twin / "predictions.parquet")
    with open(root / "a" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(twin / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(lb.RESULT_COLUMNS))
        w.writeheader()
        w.writerows([{**r, "method": "mean_fill", "run_dir": str(twin)} for r in rows])
    write_cell(root / "d", "hemis", 0, {1: 0.89, 2: 0.59, 3: 0.91})  # a hair worse: not significantly
    written = lb.leaderboard_main([root], tmp_path / "out", plots=False, n_perm=1999, n_boot=500)
    comp = pd.read_csv(written["comparisons.csv"])
    assert set(comp["reference"]) == {"best"}
    weak = comp.loc[comp["method"] == "zero_fill"]
    assert (weak["test"] == "permutation_samples").all()
    assert weak["significantly_worse"].all() and (weak["p_holm"] < 0.05).all()
    twin_rows = comp.loc[comp["method"].isin(["mean_fill", "shaspec"])]
    assert (twin_rows["mean_diff"] == 0).all() and (twin_rows["p_value"] == 1).all()
    assert not twin_rows["significantly_worse"].any()
    near = comp.loc[comp["method"] == "hemis"]
    assert not near["significantly_worse"].any() and (near["p_holm"] >= 0.05).all()
    agg = pd.read_csv(written["leaderboard.csv"])
    assert set(agg["ci_kind"]) == {"bootstrap_samples"} <= set(CI_KINDS)
    assert (agg["ci95_low"] < agg["mean"]).all() and (agg["mean"] < agg["ci95_high"]).all()
    (tex,) = [p for k, p in written.items() if k.startswith("tables/patterns") and k.endswith(".tex")]
    text = tex.read_text()
    assert r"$^\dagger$" in text and "Holm-corrected" in text and "paired permutation test over test samples" in text
    table = {t.name: t for t in lb.pattern_tables(lb.collect([root]))}
    assert table  # the public function works without comparisons too


def test_several_seeds_bootstrap_over_seeds_and_samples(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for s in range(3):
        write_cell(root / f"a{s}", "shaspec", s, STRONG)
        write_cell(root / f"b{s}", "zero_fill", s, WEAK, with_predictions=s != 2)
    agg = lb.aggregate(lb.collect([root]), lb.samples.PredictionStore(), n_boot=500)
    kinds = dict(zip(agg["method"], agg["ci_kind"], strict=False))
    assert kinds == {"shaspec": "bootstrap_seeds_samples", "zero_fill": "t_seeds"}
    sh = agg.loc[agg["method"] == "shaspec"]
    assert (sh["ci95_low"] <= sh["mean"]).all() and (sh["t95_low"] < sh["t95_high"]).all()


def test_training_identity_and_mask_seed_replicates(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "runs"
    write_cell(root / "adamw", "shaspec", 0, STRONG)
    write_cell(root / "adam", "shaspec", 0, WEAK, optimizer="Adam", lr=0.01)  # same method and seed: not a duplicate
    write_cell(root / "s1", "shaspec", 1, STRONG, mask_seed=1, mask_hash="sha256:n")  # replicate redrawing masks
    agg = lb.aggregate(lb.collect([root]))
    allrow = agg.loc[agg["pattern"] == "all"].set_index("optimizer")
    assert allrow.loc["Adam", "n_seeds"] == 1
    assert allrow.loc["AdamW", "n_seeds"] == 2 and allrow.loc["AdamW", "seeds"] == "0;1"
    assert allrow.loc["AdamW", "mask_seeds"] == "0;1"
    assert "different evaluation masks" in caplog.text


def test_stale_cells_plain_run_dirs_and_all(tmp_path: Path) -> None:
    sweep = tmp_path / "runs" / "demo"
    write_cell(sweep / "cell_new", "shaspec", 0, STRONG)
    write_cell(sweep / "cell_old", "shaspec", 0, WEAK)  # the same key: the edited spec re-ran it under a new id
    (sweep / "grid.csv").write_text("cell_id,dataset,method\ncell_new,avmnist,shaspec\n")
    plain = write_cell(tmp_path / "runs" / "fit_run" / "version_0", "zero_fill", 0, WEAK, complete=False)
    raw = lb.collect([tmp_path / "runs"])
    assert set(raw["results_file"].map(lambda f: Path(f).parent.name)) == {"cell_new", "version_0"}
    assert [Path(p).name for p in raw.attrs["stale_cells"]] == ["cell_old"]
    with pytest.raises(ValueError, match="duplicated result row"):
        lb.collect([tmp_path / "runs"], current_only=False)
    (sweep / "cell_old" / "results.csv").write_text(
        (sweep / "cell_old" / "results.csv").read_text().replace(",0.001,", ",0.01,")
    )
    assert len(lb.collect([tmp_path / "runs"], current_only=False)) == len(raw) + 4
    written = lb.leaderboard_main([tmp_path / "runs"], tmp_path / "out", plots=False, n_perm=199, n_boot=100)
    assert "1 stale cell(s)" in written["summary.txt"].read_text()
    assert plain.exists()


def test_outputs_replaced_only_when_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "runs"
    write_cell(root / "a", "shaspec", 0, STRONG)
    out = tmp_path / "out"
    lb.leaderboard_main([root], out, plots=False, paired_tests=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(lb.main, "_robustness", boom)
    write_cell(root / "b", "zero_fill", 0, WEAK)
    with pytest.raises(RuntimeError, match="disk full"):
        lb.leaderboard_main([root], out, plots=False, paired_tests=False)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "runs"]  # no temporary folder left


def test_published_rows_get_no_statistics(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_cell(root / "a", "shaspec", 0, STRONG)
    write_cell(root / "b", "zero_fill", 0, WEAK)
    written = lb.leaderboard_main([root], tmp_path / "out", published=True, plots=False, n_perm=199, n_boot=100)
    comp = pd.read_csv(written["comparisons.csv"])
    assert set(comp["source"]) == {"reproduced"}
    agg = pd.read_csv(written["leaderboard.csv"])
    assert set(agg.loc[agg["source"] == "published", "ci_kind"]) == {"none"}
    for k, p in written.items():
        if k.endswith(".md") and "shaspec2023" in k:
            assert "†" not in p.read_text()


def test_observed_count_curves(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for s in range(2):
        write_cell(root / f"a{s}", "shaspec", s, STRONG, with_predictions=False)
    (ps,) = lb.slices._pattern_slices(lb.collect([root]), None)
    curves = lb.figures.observed_count_curves(ps, "acc").set_index("k")
    raw = lb.collect([root])
    one = raw.loc[raw["n_observed"] == 1].groupby("pattern")["value"].mean().mean()
    assert curves.loc[1, "mean"] == pytest.approx(one)
    assert curves.loc[1, "n_patterns"] == 2 and curves.loc[2, "n_patterns"] == 1
    assert curves.loc[1, "n_seeds"] == 2


def _fixture_sweep(root: Path) -> Path:
    sweep = root / "runs" / "tiny"
    write_cell(sweep / "a", "shaspec", 0, STRONG)
    write_cell(sweep / "b", "zero_fill", 0, WEAK)
    (sweep / "grid.csv").write_text("cell_id\na\nb\n")
    return sweep


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "python").exists(), reason="no .venv in the checkout (make install)")
def test_make_leaderboard_target(tmp_path: Path) -> None:
    sweep = _fixture_sweep(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    res = subprocess.run(
        ["make", "-o", ".venv/.mmbench-installed", "leaderboard", f"SWEEP={sweep}", "LEADERBOARD_ARGS=--n_perm=199"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = sweep / "leaderboard"
    assert (out / "leaderboard.csv").is_file() and (out / "comparisons.csv").is_file()
    assert any("shaspec2023" in p.name for p in (out / "tables").glob("*.tex"))  # --published=true took effect
    assert any(p.suffix == ".pdf" for p in (out / "plots").iterdir())
    usage = subprocess.run(
        ["make", "-o", ".venv/.mmbench-installed", "leaderboard"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode != 0 and "usage: make leaderboard" in usage.stdout


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (.ci/setup-latex.sh installs it)")
def test_every_emitted_tex_compiles(tmp_path: Path) -> None:
    sweep = _fixture_sweep(tmp_path)
    written = lb.leaderboard_main([sweep], tmp_path / "out", published=True, plots=False, n_perm=199, n_boot=100)
    texs = sorted(p for k, p in written.items() if k.endswith(".tex"))
    assert len(texs) >= 4
    doc = tmp_path / "doc.tex"
    body = "\n".join(rf"\input{{{p.as_posix()}}}\clearpage" for p in texs)
    doc.write_text(
        "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs,graphicx,amssymb}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n"
    )
    res = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
