"""Every YAML under experiments/ runs with ``fast_dev_run`` (sweep specs are checked by tests/test_sweep.py).

A YAML holding both ``model`` and ``data`` runs alone. A data-only YAML runs with a method that fits its task; a
method-only YAML runs with the data YAML its name points to (``*_seg`` → BraTS, ``*_features`` → features,
otherwise AV-MNIST-lite). A trainer-only YAML runs on top of the demo. YAMLs that need a user's files declare a
``# smoke:`` comment line with the extra arguments (pointing at fixtures this test builds).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmbench.cli import cli_main

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
YAMLS = sorted(p for p in EXP.rglob("*.y*ml") if "sweeps" not in p.parts and "splits" not in p.parts)
DATA_FOR_METHOD = {"_seg": "data/brats_synth.yaml", "_features": "data/mfeat.yaml"}
METHOD_FOR_TASK = {"segmentation": "methods/zero_fill_seg.yaml"}


def _smoke_args(path: Path) -> list[str]:
    for line in path.read_text().splitlines():
        if line.startswith("# smoke:"):
            return line.removeprefix("# smoke:").split()
    return []


def _configs(path: Path) -> list[str]:
    cfg = yaml.safe_load(path.read_text()) or {}
    rel = path.relative_to(EXP).as_posix()
    if "model" in cfg and "data" in cfg:
        return [rel]
    if "data" in cfg:
        seg = "brats" in rel
        return [rel, METHOD_FOR_TASK["segmentation"] if seg else "methods/late_fusion.yaml"]
    if "model" in cfg:
        data = next(
            (d for suffix, d in DATA_FOR_METHOD.items() if path.stem.endswith(suffix)), "data/avmnist_lite.yaml"
        )
        return [data, rel]
    return ["demo.yaml", rel]


def test_experiments_exist():
    assert (EXP / "demo.yaml").is_file() and len(YAMLS) >= 4


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.relative_to(EXP).as_posix())
def test_yaml_runs_with_fast_dev_run(path, tmp_cwd):
    args = ["fit"]
    for rel in _configs(path):
        args += ["--config", str(EXP / rel)]
    args += ["--trainer.fast_dev_run=true", "--trainer.accelerator=cpu", "--trainer.devices=1"]
    for rel in _configs(path):
        args += _smoke_args(EXP / rel)
    cli = cli_main(args)
    assert cli.trainer.state.finished
