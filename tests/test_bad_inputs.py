"""The bad-input table: every case exits 2 with one short line that names what is wrong, and changes nothing on disk.

Each case runs ``mmbench.cli.main`` in this process inside a workspace that already holds finished work (a run dir
with ``results.csv`` and a checkpoint, a sweep cell with ``COMPLETE``); after the failed command every one of those
files must be byte-identical. The message must be one or two lines, carry no traceback, no ``Namespace(...)`` dump
and no usage text, and name the field / file / value of the case.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from mmbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
SYNTH = ["--data=SyntheticDataModule", "--data.num_samples=[24,8,9]", "--data.batch_size=8"]
FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


class Foreign:
    """A pickled object: not loadable with ``weights_only=True``."""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with finished work: a fit run dir (results.csv, config, checkpoint), a complete sweep cell, files."""
    root = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        main(["fit", *SYNTH, "--model=late_fusion", *FAST])
    run = next((root / "runs").rglob("results.csv")).parent
    ckpt = next(run.rglob("*.ckpt"))
    cell = root / "runs" / "sweeps" / "s1" / "cell-a"
    cell.mkdir(parents=True)
    (cell / "COMPLETE").write_text('{"cell_id": "cell-a"}\n')
    shutil.copy(run / "results.csv", cell / "results.csv")
    (root / "garbage.ckpt").write_bytes(b"this is not a checkpoint\n" * 10)
    torch.save({"weights": torch.zeros(3)}, root / "foreign.ckpt")
    torch.save({"state_dict": {}, "obj": Foreign()}, root / "pickled.ckpt")
    (root / "unknown_key.yaml").write_text(
        "data:\n  class_path: SyntheticDataModule\n  init_args:\n    batch_sise: 3\n"
    )
    (root / "bad_syntax.yaml").write_text("data: [unclosed\n")
    (root / "a_list.yaml").write_text("- 1\n- 2\n")
    (root / "typo_method.yaml").write_text("model:\n  class_path: ShaSpek\n")
    (root / "wrong_type.yaml").write_text("trainer:\n  max_epochs: many\n")
    (root / "a_file").write_text("a file, not a folder\n")
    (root / "sweep_unknown_key.yaml").write_text(
        "name: s\ndatasets: [experiments/data/avmnist_lite.yaml]\nmethods: [late_fusion]\nseedz: [1]\n"
    )
    (root / "sweep_typo_method.yaml").write_text(
        "name: s\ndatasets: [experiments/data/avmnist_lite.yaml]\nmethods: [late_fusio]\n"
    )
    # a data module trained with other facts (num_classes=4) for the mismatch case
    return {"root": root, "run": run, "ckpt": ckpt, "cell": cell}


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "wandb" not in p.parts
    }


W = "{ws}"  # replaced by the workspace path
# (id, argv, cwd, must appear in the message (all, case-insensitive))
CASES = [
    (
        "abbreviated-option",
        ["fit", *SYNTH, "--model=late_fusion", "--trainer.max_epoch=1"],
        "ws",
        ["--trainer.max_epoch=1", "did you mean --trainer.max_epochs"],
    ),
    (
        "int-gets-text",
        ["fit", *SYNTH, "--model=late_fusion", "--trainer.max_epochs=abc"],
        "ws",
        ["trainer.max_epochs", "abc", "int"],
    ),
    (
        "data-int-gets-text",
        ["fit", *SYNTH, "--model=late_fusion", "--data.batch_size=abc"],
        "ws",
        ["data.batch_size", "abc"],
    ),
    (
        "model-int-gets-float",
        ["fit", *SYNTH, "--model=late_fusion", "--model.init_args.hidden_dim=1.5"],
        "ws",
        ["hidden_dim", "1.5"],
    ),
    (
        "rate-out-of-range",
        ["fit", *SYNTH, "--model=late_fusion", "--data.missingness=BernoulliMissing", "--data.missingness.rate=1.5"],
        "ws",
        ["data.missingness", "rate", "1.5"],
    ),
    (
        "min-present-too-large",
        [
            "fit",
            *SYNTH,
            "--model=late_fusion",
            "--data.missingness=BernoulliMissing",
            "--data.missingness.min_present=4",
        ],
        "ws",
        ["min_present=4", "3 modalities"],
    ),
    (
        "typoed-nested-class",
        ["fit", *SYNTH, "--model=late_fusion", "--data.missingness=BernoulliMisng"],
        "ws",
        ["data.missingness", "BernoulliMisng", "did you mean 'BernoulliMissing'"],
    ),
    (
        "typoed-protocol-class",
        ["fit", *SYNTH, "--model=late_fusion", '--data.eval_protocols=[{"class_path": "AllPaterns"}]'],
        "ws",
        ["AllPaterns", "did you mean 'AllPatterns'"],
    ),
    (
        "empty-protocols",
        ["fit", *SYNTH, "--model=late_fusion", "--data.eval_protocols=[]"],
        "ws",
        ["eval_protocols is empty"],
    ),
    ("batch-size-zero", ["fit", *SYNTH, "--model=late_fusion", "--data.batch_size=0"], "ws", ["batch_size", "0"]),
    (
        "dataset-wrong-case",
        ["fit", "--data=AVMNISTDatamodule", "--model=late_fusion"],
        "ws",
        ["AVMNISTDatamodule", "did you mean 'AVMNISTDataModule'"],
    ),
    ("method-typo", ["fit", *SYNTH, "--model=late_fusio"], "ws", ["late_fusio", "did you mean 'late_fusion'"]),
    ("dataset-typo", ["fit", "--data=avmnst", "--model=late_fusion"], "ws", ["avmnst", "did you mean 'avmnist'"]),
    ("command-typo", ["fitt"], "ws", ["fitt", "did you mean 'fit'"]),
    ("method-import-path", ["fit", *SYNTH, "--model=mmbench.methods.NoSuchMethod"], "ws", ["NoSuchMethod"]),
    (
        "yaml-unknown-key",
        ["fit", "--config", "unknown_key.yaml", "--model=late_fusion"],
        "ws",
        ["unknown_key.yaml", "batch_sise"],
    ),
    ("yaml-missing", ["fit", "--config", "nope.yaml"], "ws", ["nope.yaml", "does not exist"]),
    ("yaml-syntax", ["fit", "--config", "bad_syntax.yaml"], "ws", ["bad_syntax.yaml", "not valid YAML"]),
    ("yaml-not-a-mapping", ["fit", "--config", "a_list.yaml"], "ws", ["a_list.yaml", "mapping"]),
    (
        "yaml-typoed-method",
        ["fit", "--config", "typo_method.yaml"],
        "ws",
        ["typo_method.yaml", "ShaSpek", "did you mean"],
    ),
    (
        "yaml-wrong-type",
        ["fit", *SYNTH, "--model=late_fusion", "--config", "wrong_type.yaml"],
        "ws",
        ["max_epochs", "many"],
    ),
    (
        "ckpt-missing",
        ["test", *SYNTH, "--model=late_fusion", "--ckpt_path=nope.ckpt"],
        "ws",
        ["nope.ckpt", "does not exist"],
    ),
    (
        "ckpt-garbage",
        ["test", *SYNTH, "--model=late_fusion", "--ckpt_path=garbage.ckpt"],
        "ws",
        ["garbage.ckpt", "not a PyTorch checkpoint"],
    ),
    (
        "ckpt-foreign",
        ["test", *SYNTH, "--model=late_fusion", "--ckpt_path=foreign.ckpt"],
        "ws",
        ["foreign.ckpt", "not a Lightning checkpoint"],
    ),
    (
        "ckpt-pickled-objects",
        ["test", *SYNTH, "--model=late_fusion", "--ckpt_path=pickled.ckpt"],
        "ws",
        ["pickled.ckpt", "weights_only=True"],
    ),
    (
        "ckpt-other-method",
        ["test", *SYNTH, "--model=mean_fill", "--ckpt_path={ckpt}"],
        "ws",
        ["LateFusion", "MeanFill"],
    ),
    (
        "ckpt-other-data-facts",
        ["test", *SYNTH, "--data.num_classes=4", "--model=late_fusion", "--ckpt_path={ckpt}"],
        "ws",
        ["num_classes=3", "num_classes=4"],
    ),
    (
        "ckpt-other-modalities",
        [
            "test",
            "--data=SyntheticDataModule",
            "--data.num_samples=[24,8,9]",
            '--data.input_shapes={"a": [6], "b": [4]}',
            "--model=late_fusion",
            "--ckpt_path={ckpt}",
        ],
        "ws",
        ["{ckpt}", "differ"],
    ),
    (
        "completed-run-dir",
        [
            "fit",
            *SYNTH,
            "--model=late_fusion",
            *FAST,
            '--trainer.logger={"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": '
            '{"save_dir": "{cell}", "name": "", "version": ""}}',
        ],
        "ws",
        ["{cell}", "complete"],
    ),
    (
        "output-under-a-file",
        ["fit", *SYNTH, "--model=late_fusion", *FAST, "--trainer.default_root_dir=a_file/out"],
        "ws",
        ["a_file"],
    ),
    ("sweep-spec-missing", ["sweep", "--config", "nope.yaml", "--dry-run"], "root", ["nope.yaml"]),
    (
        "sweep-unknown-key",
        ["sweep", "--config", "{ws}/sweep_unknown_key.yaml", "--dry-run"],
        "root",
        ["sweep_unknown_key.yaml", "seedz"],
    ),
    (
        "sweep-typoed-method",
        ["sweep", "--config", "{ws}/sweep_typo_method.yaml", "--dry-run"],
        "root",
        ["late_fusio", "did you mean 'late_fusion'"],
    ),
    (
        "sweep-seeds-wrong-type",
        ["sweep", "--config", "experiments/sweeps/smoke.yaml", "--seeds=abc", "--dry-run"],
        "root",
        ["seeds", "abc"],
    ),
    ("sweep-abbreviated-flag", ["sweep", "--config", "experiments/sweeps/smoke.yaml", "--dry"], "root", ["--dry"]),
    (
        "sweep-output-not-writable",
        ["sweep", "--config", "experiments/sweeps/smoke.yaml", "--output={ws}/a_file/x"],
        "root",
        ["a_file", "not writable"],
    ),
    (
        "sweep-bad-rate",
        ["sweep", "--config", "experiments/sweeps/smoke.yaml", "--rates=[1.5]", "--dry-run"],
        "root",
        ["rates", "1.5"],
    ),
    ("data-too-few-cases", ["data", "brats-synth", "--out={ws}/synth", "--cases=3"], "ws", ["--cases", "3"]),
    ("data-abbreviated-flag", ["data", "brats-synth", "--out={ws}/synth", "--cas=9"], "ws", ["--cas"]),
]


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("argv", "cwd", "needles"), [pytest.param(a, c, n, id=i) for i, a, c, n in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(workspace, argv, cwd, needles, capsys, monkeypatch):
    ws = workspace["root"]
    subst = {"{ws}": str(ws), "{ckpt}": str(workspace["ckpt"]), "{cell}": str(workspace["cell"])}

    def fill(text: str) -> str:
        for k, v in subst.items():
            text = text.replace(k, v)
        return text

    monkeypatch.chdir(ws if cwd == "ws" else ROOT)
    monkeypatch.delenv("MMBENCH_DEBUG", raising=False)
    before = _snapshot(ws)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([fill(a) for a in argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    messages = [ln for ln in err.splitlines() if ln.startswith("mmbench: error:")]
    assert len(messages) == 1, err
    start = err.index(messages[0])
    text = err[start:].strip()
    # the message: 1-2 lines (nothing may follow it), short, no traceback / Namespace dump / usage text
    print(f"exit {exc.value.code}, {len(text.splitlines())} line(s): {text}")  # shown with pytest -rP
    assert 1 <= len(text.splitlines()) <= 2, text
    assert len(text) <= 600, text
    for bad in ("Traceback", "Namespace(", "usage:", "Given value type"):
        assert bad not in err, err
    for needle in needles:
        assert fill(needle).lower() in text.lower(), (needle, text)
    assert _snapshot(ws) == before, "a failed command changed files that were already written"
    leftovers = [p for p in ws.rglob(".*.tmp")]
    assert not leftovers, leftovers


def test_table_has_at_least_30_cases():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_dir(workspace, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["fit", *SYNTH, "--model=late_fusion", *FAST, f"--trainer.default_root_dir={ro}"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and str(ro) in err and "Traceback" not in err
