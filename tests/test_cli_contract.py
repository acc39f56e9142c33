"""Issue 15: the CLI never silently does something else than asked, and provenance records what really ran.

One test (or a few) per item of the issue; the bad-input table is ``tests/test_bad_inputs.py``.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmbench.cli import main
from mmbench.errors import EXIT_INCOMPLETE, SweepIncompleteError
from mmbench.runner import cli_main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments/sweeps/smoke.yaml"
SYNTH = ["--data=SyntheticDataModule", "--data.num_samples=[24,8,9]", "--data.batch_size=8"]
QUIET = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
FAST = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", *QUIET]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _fail(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code), capsys.readouterr().err


# --------------------------------------------------------------------------------------- 1. ints stay ints
@pytest.mark.parametrize("value", ["1", "3"])
def test_limit_batches_ints_stay_ints_on_the_command_line(tmp_cwd, value):
    cli = cli_main([*SYNTH, "--model=late_fusion", f"--trainer.limit_train_batches={value}"], run=False)
    got = cli.config.trainer.limit_train_batches
    assert type(got) is int and got == int(value)
    assert cli.trainer.limit_train_batches == int(value) and type(cli.trainer.limit_train_batches) is int
    cli = cli_main([*SYNTH, "--model=late_fusion", "--trainer.limit_train_batches=0.5"], run=False)
    assert type(cli.config.trainer.limit_train_batches) is float


def test_limit_batches_ints_stay_ints_in_yaml_and_one_batch_is_one_step(tmp_cwd):
    cfg = tmp_cwd / "trainer.yaml"
    cfg.write_text("trainer:\n  limit_train_batches: 1\n  limit_val_batches: 1\n  limit_test_batches: 1\n")
    cli = cli_main(["fit", "--config", str(cfg), *SYNTH, "--model=late_fusion", "--trainer.max_epochs=1", *QUIET])
    saved = yaml.safe_load((Path(cli.trainer.log_dir) / "config.yaml").read_text())["trainer"]
    assert saved["limit_train_batches"] == 1 and isinstance(saved["limit_train_batches"], int)
    rows = _rows(Path(cli.trainer.log_dir) / "results.csv")
    assert {r["global_step"] for r in rows} == {"1"}  # one batch of 24/8 = 3, not a full epoch


def test_sweep_spec_limit_batches_reach_the_cell_as_ints(monkeypatch):
    from mmbench import sweep

    monkeypatch.chdir(ROOT)
    loaded, _ = sweep.load_spec(["--config", str(SMOKE)])
    grid = sweep.expand(loaded, check=False)
    cli = cli_main(list(grid.cells[0].argv), run=False)
    trainer = cli.config.trainer
    assert (trainer.limit_val_batches, trainer.limit_test_batches, trainer.limit_train_batches) == (1, 1, 2)
    assert all(type(v) is int for v in (trainer.limit_val_batches, trainer.limit_test_batches))


# ----------------------------------------------------------------------------------- 2. no abbreviations
def test_abbreviations_are_refused_everywhere(tmp_cwd, capsys, monkeypatch):
    code, err = _fail(["fit", *SYNTH, "--model=late_fusion", "--trainer.max_epoch=1"], capsys)
    assert code == 2 and "--trainer.max_epoch=1" in err and "did you mean --trainer.max_epochs" in err
    monkeypatch.chdir(ROOT)
    code, err = _fail(["sweep", "--config", str(SMOKE), "--dry"], capsys)
    assert code == 2 and "--dry" in err
    code, err = _fail(["data", "brats-synth", "--out", str(tmp_cwd / "x"), "--cas=9"], capsys)
    assert code == 2 and "--cas" in err


# ------------------------------------------------------------------ 3-4. checkpoints: refused or recorded
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch late-fusion fit on synthetic data: ``(run dir, last checkpoint)``."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        cli = cli_main(
            [
                "fit",
                *SYNTH,
                "--model=late_fusion",
                "--trainer.max_epochs=2",
                "--trainer.limit_train_batches=2",
                "--trainer.limit_val_batches=1",
                *QUIET,
            ]
        )
    run = Path(cli.trainer.log_dir)
    return root / run, root / cli.trainer.checkpoint_callback.best_model_path


def test_checkpoint_of_another_method_or_other_data_is_refused(trained, tmp_cwd, capsys):
    _, ckpt = trained
    code, err = _fail(["test", *SYNTH, "--model=mean_fill", f"--ckpt_path={ckpt}"], capsys)
    assert code == 2 and "LateFusion" in err and "MeanFill" in err and str(ckpt) in err
    code, err = _fail(["test", *SYNTH, "--data.num_classes=5", "--model=late_fusion", f"--ckpt_path={ckpt}"], capsys)
    assert code == 2 and "num_classes=3" in err and "num_classes=5" in err
    assert not list(tmp_cwd.rglob("results.csv"))


def test_test_only_rows_take_epoch_and_step_from_the_checkpoint(trained, tmp_cwd):
    import torch

    run, ckpt = trained
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    fit_rows = _rows(run / "results.csv")
    assert {(r["epoch"], r["global_step"]) for r in fit_rows} == {(str(saved["epoch"]), str(saved["global_step"]))}
    # the fit ran in the fixture's folder: its rows name the checkpoint relative to it (as run_dir)
    assert {str(run.parents[2] / r["ckpt_path"]) for r in fit_rows} == {str(ckpt)}
    assert {r["ckpt_selection"] for r in fit_rows} == {"last"}
    cli = cli_main(["test", *SYNTH, "--model=late_fusion", f"--ckpt_path={ckpt}", *QUIET])
    rows = _rows(Path(cli.trainer.log_dir) / "results.csv")
    assert {(r["epoch"], r["global_step"]) for r in rows} == {(str(saved["epoch"]), str(saved["global_step"]))}
    assert {r["ckpt_path"] for r in rows} == {str(ckpt)} and {r["ckpt_selection"] for r in rows} == {"ckpt_path"}
    # same weights, same masks: the test-only values equal the fit's test-after-fit values
    key = lambda r: (r["eval_protocol"], r["pattern"], r["metric"])  # noqa: E731
    assert {key(r): r["value"] for r in rows} == {key(r): r["value"] for r in fit_rows}


# ------------------------------------------------------------------------------ 5. source provenance
def test_git_sha_is_mmbench_s_own_source_wherever_it_runs(tmp_path, monkeypatch):
    from mmbench import provenance

    pkg = Path(provenance.__file__).resolve().parent
    head = subprocess.run(["git", "-C", str(pkg), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("mmbench is not running from a git checkout")
    porcelain = subprocess.run(
        ["git", "-C", str(pkg), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout
    other = tmp_path / "other_repo"
    other.mkdir()
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    for cwd in (tmp_path, other):  # outside any repository, inside another one
        monkeypatch.chdir(cwd)
        provenance._source.cache_clear()
        info = provenance.source_provenance()
        assert info["git_sha"] == head.stdout.strip()
        assert info["git_dirty"] == ("true" if porcelain.strip() else "false")
        assert info["mmbench_version"]


# ---------------------------------------------------------------------------- 6. worker-count determinism
@pytest.mark.timeout(600)
def test_training_is_identical_with_0_and_2_workers(tmp_cwd):
    values = []
    for workers in (0, 2):
        cli = cli_main(
            [
                "fit",
                *SYNTH,
                "--model=moddrop",
                f"--data.num_workers={workers}",
                "--trainer.max_epochs=2",
                "--trainer.limit_val_batches=1",
                *QUIET,
                "--seed_everything=3",
            ]
        )
        rows = _rows(Path(cli.trainer.log_dir) / "results.csv")
        values.append({(r["eval_protocol"], r["pattern"], r["metric"]): r["value"] for r in rows})
    assert len(values[0]) > 0 and values[0] == values[1]  # bit for bit (the CSV holds repr-exact floats)


# ---------------------------------------------------------------------------------- 7. default_root_dir
def test_default_root_dir_places_the_run_dir(tmp_cwd):
    where = tmp_cwd / "elsewhere"
    cli = cli_main(["fit", *SYNTH, "--model=late_fusion", *FAST, f"--trainer.default_root_dir={where}"])
    assert Path(cli.trainer.log_dir).resolve().is_relative_to(where.resolve())
    assert list(where.rglob("results.csv")) and not (tmp_cwd / "runs").exists()


# --------------------------------------------------------------------- 8. never write into a finished run
def test_rerunning_a_finished_cell_config_is_refused_and_changes_nothing(tmp_cwd, capsys):
    cell = tmp_cwd / "cell"
    logger = json.dumps(
        {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(cell), "name": "", "version": ""},
        }
    )
    cli_main(["fit", *SYNTH, "--model=late_fusion", *FAST, f"--trainer.logger={logger}"])
    (cell / "COMPLETE").write_text("{}\n")
    before = {p: p.read_bytes() for p in cell.rglob("*") if p.is_file()}
    code, err = _fail(["fit", "--config", str(cell / "config.yaml")], capsys)
    assert code == 2 and "is complete" in err and str(cell) in err
    assert {p: p.read_bytes() for p in cell.rglob("*") if p.is_file()} == before
    assert len(list(cell.rglob("*.ckpt"))) == 1


# -------------------------------------------------------------------- 9. busy / failed sweeps exit non-zero
@pytest.mark.timeout(600)
def test_sweep_with_busy_cells_exits_3_and_demo_does_not_tabulate(tmp_path, monkeypatch, capsys):
    from mmbench import demo, sweep

    monkeypatch.chdir(ROOT)
    args = ["--config", str(SMOKE), f"--output={tmp_path}"]
    loaded, _ = sweep.load_spec(args)
    grid = sweep.expand(loaded, check=False)
    locks = [sweep.CellLock(c.cell_dir) for c in grid.cells]
    held = []
    try:
        script = "import fcntl,sys,time\nfs=[open(p,'a') for p in sys.argv[1:]]\n"
        script += "[fcntl.flock(f, fcntl.LOCK_EX) for f in fs]\nprint('held', flush=True)\ntime.sleep(120)\n"
        for lock in locks:
            lock.path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *[str(lk.path) for lk in locks]], stdout=subprocess.PIPE, text=True
        )
        held.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        code, err = _fail(["sweep", *args, "--executor=debug", "--check=false"], capsys)
        assert code == EXIT_INCOMPLETE and "busy" in err and "4 busy" in err
        with pytest.raises(SweepIncompleteError, match="not complete"):
            demo.require_complete(args)
    finally:
        for proc in held:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ 11. OS errors: one line, temp files gone
def test_disk_full_while_writing_results_is_one_line_and_leaves_no_temp_file(tmp_cwd, capsys, monkeypatch):
    import mmbench.results

    real_fsync = os.fsync

    def full(fd: int) -> None:
        real_fsync(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mmbench.results.os, "fsync", full)
    code, err = _fail(["fit", *SYNTH, "--model=late_fusion", *FAST], capsys)
    assert code == 2 and "No space left on device" in err and "results.csv" in err and "Traceback" not in err
    assert not list(tmp_cwd.rglob(".results.csv.*.tmp")) and not list(tmp_cwd.rglob("results.csv"))


def test_sweep_on_an_unwritable_output_fails_before_expansion(tmp_path, monkeypatch, capsys):
    from mmbench.sweep import command

    monkeypatch.chdir(ROOT)
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(command, "expand", lambda *a, **k: pytest.fail("expanded before checking the output"))
    code, err = _fail(["sweep", "--config", str(SMOKE), f"--output={tmp_path / 'file' / 'out'}"], capsys)
    assert code == 2 and "not writable" in err and str(tmp_path / "file") in err


# ---------------------------------------------------------------------- 12. registry slugs as class paths
def test_registry_slugs_are_accepted_as_class_paths_in_yaml(tmp_cwd):
    cfg = tmp_cwd / "slugs.yaml"
    cfg.write_text(
        "model:\n  class_path: late_fusion\n  init_args:\n    hidden_dim: 16\n"
        "data:\n  class_path: synthetic\n  init_args:\n    batch_size: 8\n"
    )
    cli = cli_main(["--config", str(cfg)], run=False)
    assert type(cli.model).__name__ == "LateFusion" and cli.model.hparams["hidden_dim"] == 16
    assert type(cli.datamodule).__name__ == "SyntheticDataModule" and cli.datamodule.batch_size == 8


def test_wrong_case_class_name_gets_did_you_mean(tmp_cwd, capsys):
    code, err = _fail(["fit", "--data=AVMNISTDatamodule", "--model=late_fusion"], capsys)
    assert code == 2 and "did you mean 'AVMNISTDataModule'" in err


# ------------------------------------------------------------------------------------- 13. W&B single run
@pytest.mark.timeout(300)
def test_wandb_single_run_has_the_whole_config_a_name_and_the_run_dir(tmp_cwd, monkeypatch):
    import wandb

    wandb.teardown()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_cwd))
    cli = cli_main(
        [
            "fit",
            *SYNTH,
            "--model=late_fusion",
            "--config",
            str(ROOT / "experiments/trainer/wandb.yaml"),
            *FAST,
            "--data.missingness=BernoulliMissing",
            "--data.missingness.rate=0.5",
            "--seed_everything=7",
        ]
    )
    run = wandb.run
    assert run is not None
    config = dict(run.config)
    wandb.finish()
    run_dir = Path(cli.trainer.log_dir)
    record = json.loads((run_dir / "wandb_run.json").read_text())
    assert record["id"] == run.id and record["name"] == run.name
    assert run.name.startswith("late_fusion__synthetic__") and run.name.endswith("__seed7")
    assert "0.5" in run.name or "bernoulli" in run.name.lower()
    for key in ("data", "trainer", "seed_everything", "model"):
        assert key in config, key
    assert config["seed_everything"] == 7 and config["run_dir"] == str(run_dir)
    assert config["data"]["init_args"]["missingness"]["init_args"]["rate"] == 0.5
    assert "eval_protocols" in config["data"]["init_args"]


# -------------------------------------------------------------------- 14. light commands do not load Lightning
@pytest.mark.parametrize(
    "argv",
    [["--help"], ["leaderboard", "--help"]],
    ids=["help", "leaderboard"],
)
def test_light_commands_do_not_import_lightning(argv):
    code = (
        "import sys\nfrom mmbench.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = sorted(m for m in ('lightning', 'lightning.pytorch', 'pytorch_lightning') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HEAVY []" in out.stdout, out.stdout[-500:]


def test_help_lists_exactly_the_registered_names():
    import mmbench.data
    import mmbench.methods  # noqa: F401
    from mmbench.registry import DATASETS, METHODS, declared_names

    assert declared_names("mmbench.methods", "METHODS") == METHODS.names()
    assert declared_names("mmbench.data", "DATASETS") == DATASETS.names()
