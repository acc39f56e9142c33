"""Sweep runner figures (``make bench``; prints, asserts only that the runs worked).

1. Per-cell overhead on the default data (AV-MNIST-lite, late fusion, experiments/trainer/default.yaml = 10 epochs):
   interpreter start + imports, data set-up, submitit launch, against the cell's fit + test time.
2. Wall time of a 12-cell CPU grid (late fusion × 4 missing rates × 3 seeds, 2 epochs) with the local executor at 1
   and at 2 cells at a time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmbench import sweep

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SPEC = """name: {name}
datasets: [{root}/experiments/data/avmnist_lite.yaml]
methods: [late_fusion]
method_configs: {root}/experiments/methods
rates: {rates}
seeds: {seeds}
trainer_configs: [{root}/experiments/trainer/default.yaml]
trainer: {trainer}
"""


def _spec(tmp: Path, name: str, rates: list[float], seeds: list[int], trainer: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, root=ROOT, rates=rates, seeds=seeds, trainer=trainer))
    return path


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def _run_sweep(spec: Path, out: Path, *args: str) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    outcomes = sweep.cli(["--config", str(spec), f"--output={out}", "--check=false", *args])
    wall = time.perf_counter() - start
    assert isinstance(outcomes, list) and all(o["status"] == "complete" for o in outcomes)
    return wall, outcomes


def test_bench_cell_overhead(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    python = [sys.executable, "-c", "pass"]
    imports = [sys.executable, "-c", "import mmbench.cli"]
    data = [
        sys.executable,
        "-c",
        "import time; from mmbench.data import AVMNISTDataModule; from mmbench.masks import AllPatterns, RateProtocol;"
        "t = time.perf_counter(); dm = AVMNISTDataModule(eval_protocols=[AllPatterns(), RateProtocol(0.5)]);"
        "dm.setup('fit'); dm.setup('test'); [dm.mask_table(p) for p in dm.eval_protocols];"
        "print(time.perf_counter() - t)",
    ]
    t_python = statistics.median(_timed(python) for _ in range(3))
    t_imports = statistics.median(_timed(imports) for _ in range(2)) - t_python
    t_data = statistics.median(
        float(subprocess.run(data, cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()[-1])
        for _ in range(2)
    )
    spec = _spec(tmp_path, "overhead", [0.5], [1], "{}")
    wall, outcomes = _run_sweep(spec, tmp_path / "runs", "--executor=local", "--parallel=1")
    (cell,) = (tmp_path / "runs/overhead").glob("avmnist-lite__*")
    marker = json.loads((cell / sweep.COMPLETE).read_text())
    job = outcomes[0]["job_seconds"]
    before = marker["process_seconds_before_cell"] or 0.0  # cell process start → cell code (interpreter + imports)
    fit = marker["fit_seconds"]  # LightningCLI parse + data set-up + 10 epochs + test + results
    launch = job - marker["seconds"] - before  # submitit controller + task processes, polling
    train = fit - t_data
    overhead = launch + before + (marker["seconds"] - fit) + t_data
    print(
        "\nper-cell overhead, AV-MNIST-lite late fusion, 10 epochs, local executor (CPU, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})\n"
        f"  python start                     {t_python:6.2f} s\n"
        f"  imports (mmbench.cli: torch, lightning, mmbench)  {t_imports:6.2f} s\n"
        f"  data set-up (load, pair, split, mask tables)     {t_data:6.2f} s\n"
        f"  submitit launch + polling        {launch:6.2f} s\n"
        f"  cell process start → cell code   {before:6.2f} s\n"
        f"  fit + test (incl. data set-up)   {fit:6.2f} s  → training/eval ≈ {train:.2f} s\n"
        f"  cell as the sweep saw it         {job:6.2f} s   (sweep command wall incl. expansion: {wall:.1f} s)\n"
        f"  overhead share                   {overhead / job:6.1%}"
    )


def test_bench_grid_parallel(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = _spec(tmp_path, "grid12", [0.1, 0.3, 0.5, 0.7], [1, 2, 3], "{max_epochs: 2}")
    walls = {}
    for parallel in (1, 2):
        wall, outcomes = _run_sweep(spec, tmp_path / f"p{parallel}", "--executor=local", f"--parallel={parallel}")
        assert len(outcomes) == 12
        walls[parallel] = (wall, statistics.mean(o["job_seconds"] for o in outcomes))
    lines = [
        f"  parallel={p}: {w:6.1f} s wall, {c:5.1f} s mean per cell, {12 / w * 60:5.1f} cells/min"
        for p, (w, c) in walls.items()
    ]
    print(
        f"\n12-cell CPU grid (late fusion × 4 rates × 3 seeds, 2 epochs), local executor, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}:\n" + "\n".join(lines) + f"\n  speed-up {walls[1][0] / walls[2][0]:.2f}×"
    )
