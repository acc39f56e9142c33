import csv
import subprocess
import sys
from pathlib import Path

import pytest

from mmbench.cli import LINKED_FIELDS, cli_main, main
from mmbench.results import RESULT_COLUMNS

FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
SYNTH = ["--data=SyntheticDataModule", "--data.num_samples=[24,8,9]", "--data.batch_size=8"]


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_links_arrive_in_the_method(tmp_cwd):
    cli = cli_main(["--data=AVMNISTDataModule", "--model=late_fusion"], run=False)
    for field in LINKED_FIELDS:
        assert getattr(cli.model, field) == getattr(cli.datamodule, field), field
    assert cli.model.input_shapes == {"image": (1, 28, 28), "audio": (32, 13)}
    assert cli.model.hparams["modalities"] == ["image", "audio"]


def test_fit_then_test_writes_results_csv(tmp_cwd):
    cli = cli_main(
        [
            "fit",
            *SYNTH,
            "--model=LateFusion",
            *FAST,
            "--data.missingness=BernoulliMissing",
            "--data.missingness.rate=0.5",
        ]
    )
    run_dir = Path(cli.trainer.log_dir)
    rows = _read(run_dir / "results.csv")
    assert (run_dir / "config.yaml").is_file()
    assert list(rows[0].keys()) == list(RESULT_COLUMNS)
    patterns = {r["pattern"] for r in rows}
    assert patterns == {"a", "b", "c", "a+b", "a+c", "b+c", "a+b+c", "all"}
    assert {r["metric"] for r in rows} == {"acc", "f1_micro", "f1_macro"}
    by = {(r["pattern"], r["metric"]): r for r in rows}
    assert by[("all", "acc")]["n"] == str(7 * 9) and by[("a", "acc")]["n"] == "9"
    r = rows[0]
    assert r["method"] == "late_fusion" and r["dataset"] == "synthetic" and r["task"] == "multiclass"
    assert r["training_regime"] == "non-dedicated" and r["train_missing_rate"] == "0.5"
    assert r["eval_protocol"] == "all_patterns" and r["mask_hash"].startswith("sha256:")
    assert r["seed"] == "0" and r["config_hash"].startswith("sha256:") and r["torch_version"]


def test_two_methods_share_identical_eval_masks(tmp_cwd):
    hashes = []
    for model in ("late_fusion", "LateFusion"):
        cli = cli_main(
            [
                "fit",
                *SYNTH,
                f"--model={model}",
                "--model.init_args.hidden_dim=16",
                *FAST,
                '--data.eval_protocols=[{"class_path": "AllPatterns"}, '
                '{"class_path": "RateProtocol", "init_args": {"rate": 0.3}}]',
            ]
        )
        rows = _read(Path(cli.trainer.log_dir) / "results.csv")
        hashes.append({(r["eval_protocol"], r["mask_hash"]) for r in rows})
    assert hashes[0] == hashes[1] and len(hashes[0]) == 2


def test_demo_config_runs_end_to_end(tmp_cwd):
    root = Path(__file__).resolve().parents[1]
    cli = cli_main(["fit", "--config", str(root / "experiments/demo.yaml"), *FAST])
    rows = _read(Path(cli.trainer.log_dir) / "results.csv")
    assert {r["pattern"] for r in rows} == {"image", "audio", "image+audio", "all"}


def _run_main(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code != 0
    return capsys.readouterr().err


def test_unknown_method_suggests_closest(tmp_cwd, capsys):
    err = _run_main(["fit", "--model=late_fusio", *SYNTH], capsys)
    assert "unknown method 'late_fusio'; did you mean 'late_fusion'?" in err and "Valid methods" in err


def test_unknown_dataset_and_command(tmp_cwd, capsys):
    assert "unknown dataset 'avmnst'" in _run_main(["fit", "--data=avmnst", "--model=late_fusion"], capsys)
    assert "did you mean 'fit'" in _run_main(["fitt"], capsys)


def test_bad_rate_and_unknown_key_and_missing_config(tmp_cwd, capsys):
    err = _run_main(
        ["fit", *SYNTH, "--model=late_fusion", "--data.missingness=BernoulliMissing", "--data.missingness.rate=1.5"],
        capsys,
    )
    assert "rate must be in [0, 1], got 1.5" in err
    err = _run_main(["fit", *SYNTH, "--model=late_fusion", "--data.not_a_key=3"], capsys)
    assert "not_a_key" in err
    assert "does not exist" in _run_main(["fit", "--config", "nope.yaml"], capsys)
    bad = tmp_cwd / "bad.yaml"
    bad.write_text("model:\n  class_path: ShaSpek\n")
    assert "bad.yaml: model.class_path: unknown method 'ShaSpek'" in _run_main(["fit", "--config", str(bad)], capsys)


def test_min_present_that_cannot_be_met(tmp_cwd, capsys):
    err = _run_main(
        [
            "fit",
            *SYNTH,
            "--model=late_fusion",
            "--data.missingness=BernoulliMissing",
            "--data.missingness.min_present=4",
        ],
        capsys,
    )
    assert "min_present=4 cannot be met with 3 modalities" in err


def test_checksum_mismatch_is_reported(monkeypatch, tmp_path):
    from mmbench.data import sources
    from mmbench.errors import DataIntegrityError

    fake = tmp_path / "mnist_5k.csv.gz"
    fake.write_bytes(b"not the data")
    spec = sources.PACKAGED_FILES["mnist_5k"]
    monkeypatch.setitem(
        sources.PACKAGED_FILES,
        "mnist_5k",
        sources.PackagedFile(spec.package, spec.version, str(fake), spec.sha256, spec.citation),
    )
    monkeypatch.setattr(sources, "_VERIFIED", set())
    with pytest.raises(DataIntegrityError, match=r"checksum mismatch for .*mnist_5k.csv.gz: expected sha256 846f"):
        sources.packaged_path("mnist_5k")


def test_console_script_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "mmbench", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("fit", "validate", "test", "predict", "demo", "sweep", "leaderboard", "data"):
        assert f"  {cmd} " in out.stdout
    out = subprocess.run([sys.executable, "-m", "mmbench", "fit", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--test_after_fit" in out.stdout and "--print_config" in out.stdout
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "mmbench", "fit", "--config", str(root / "experiments/demo.yaml"), "--print_config"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "class_path: mmbench.methods.LateFusion" in out.stdout and "rate: 0.5" in out.stdout
