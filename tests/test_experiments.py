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
# BraTS YAMLs run on a smaller semi-synthetic set (8 cases at 4 mm, 32³ patches) so that the smoke test stays in
# seconds on a CPU; the YAML's own sizes are exercised by `make sweep-brats`.
BRATS_SMOKE = [
    "--data.init_args.num_synthetic_cases=8",
    "--data.init_args.spacing_mm=4",
    "--data.init_args.patch_size=32",
    "--data.init_args.split_dir=null",
    "--data.init_args.root=null",
]
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


def _fixtures(root: Path) -> None:
    """The user-file fixtures that the ``# smoke:`` lines point at (format fixtures built from real arrays)."""
    from mmbench.data.audio import make_spoken_digits_fixture
    from mmbench.data.avmnist import make_multibench_fixture
    from mmbench.data.features import make_mosi_fixture

    make_multibench_fixture(root / "fixtures/avmnist_multibench")
    make_mosi_fixture(root / "fixtures/mosi.pkl")
    make_spoken_digits_fixture(root / "fixtures/spoken_digits")


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.relative_to(EXP).as_posix())
def test_yaml_runs_with_fast_dev_run(path, tmp_cwd, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(ROOT / ".cache/mmbench"))  # semi-synthetic BraTS generated once
    if any(_smoke_args(EXP / rel) for rel in _configs(path)):
        _fixtures(tmp_cwd)
    args = ["fit"]
    for rel in _configs(path):
        args += ["--config", str(EXP / rel)]
    args += ["--trainer.fast_dev_run=true", "--trainer.accelerator=cpu", "--trainer.devices=1"]
    if "BraTSDataModule" in "".join((EXP / rel).read_text() for rel in _configs(path)):
        args += BRATS_SMOKE
    for rel in _configs(path):
        args += _smoke_args(EXP / rel)
    cli = cli_main(args)
    assert cli.trainer.state.finished
