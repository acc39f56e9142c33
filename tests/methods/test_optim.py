"""The optimiser is configuration: LightningCLI's --optimizer / --lr_scheduler, per-step intervals, the default."""

from __future__ import annotations

import pytest
import torch

import mmbench.methods  # noqa: F401  (registers every method)
from mmbench.cli import LINKED_FIELDS, cli_main, main
from mmbench.methods.optim import PolyLR
from mmbench.registry import METHODS

SYNTH = ["--data=SyntheticDataModule", "--data.num_samples=[24,8,9]", "--data.batch_size=8"]
FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=0",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.enable_checkpointing=false",
    "--test_after_fit=false",
]


def _optimizer(cli):
    out = cli.model.configure_optimizers()
    return out if isinstance(out, torch.optim.Optimizer) else out["optimizer"]


def test_default_optimizer_is_adamw_lr_1e3_no_weight_decay(tmp_cwd):
    cli = cli_main([*SYNTH, "--model=late_fusion"], run=False)
    opt = _optimizer(cli)
    assert type(opt) is torch.optim.AdamW
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["weight_decay"] == 0.0
    # the same as the method's own default (used without LightningCLI)
    own = type(cli.model).configure_optimizers(cli.model)
    assert type(own) is torch.optim.AdamW and own.defaults == opt.defaults


def test_optimizer_from_the_command_line(tmp_cwd):
    cli = cli_main([*SYNTH, "--model=zero_fill", "--optimizer=SGD", "--optimizer.lr=0.05"], run=False)
    opt = _optimizer(cli)
    assert type(opt) is torch.optim.SGD and opt.defaults["lr"] == 0.05


def test_lr_on_the_model_is_rejected(tmp_cwd, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", *SYNTH, "--model=late_fusion", "--model.init_args.lr=0.01"])
    assert exc.value.code != 0
    assert "lr" in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_poly_schedule_steps_per_iteration(tmp_cwd, interval):
    total, steps, power = 6, 3, 0.9
    cli = cli_main(
        [
            "fit",
            *SYNTH,
            "--model=late_fusion",
            *FAST,
            "--optimizer=SGD",
            "--optimizer.lr=0.1",
            "--lr_scheduler=mmbench.methods.optim.PolyLR",
            f"--lr_scheduler.total_iters={total}",
            f"--lr_scheduler.power={power}",
            f"--lr_scheduler.interval={interval}",
        ]
    )
    config = cli.trainer.lr_scheduler_configs[0]
    assert isinstance(config.scheduler, PolyLR) and config.interval == interval
    assert cli.trainer.global_step == steps
    done = steps if interval == "step" else 1  # one epoch
    expected = 0.1 * (1 - done / total) ** power
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)


def test_poly_schedule_rejects_bad_arguments():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="interval must be 'step' or 'epoch'"):
        PolyLR(opt, interval="batch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="total_iters must be >= 1"):
        PolyLR(opt, total_iters=0)


@pytest.mark.parametrize("name", METHODS.names())
def test_links_reach_every_method_through_kwargs(tmp_cwd, name):
    """Constructors state only their own arguments (``**kwargs`` to the base): the four links still arrive."""
    cli = cli_main([*SYNTH, f"--model={name}"], run=False)
    for field in LINKED_FIELDS:
        assert getattr(cli.model, field) == getattr(cli.datamodule, field), field
    assert cli.model.hparams["modalities"] == list(cli.datamodule.modalities)
    assert cli.model.hparams["num_classes"] == cli.datamodule.num_classes
