"""W&B offline smoke test: an offline run directory appears and no non-loopback address is contacted."""

import ipaddress
import socket
from pathlib import Path

import pytest

from mmbench.cli import cli_main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_wandb_offline_run_appears_without_network(tmp_cwd, monkeypatch):
    import wandb

    wandb.teardown()  # a W&B service left by an earlier in-process test (another WANDB_DIR) must not be reused
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_cwd))
    contacted = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None:
            try:
                if not ipaddress.ip_address(host).is_loopback:
                    contacted.append(address)
            except ValueError:  # a host name: resolving it would already be network use
                contacted.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    cli = cli_main(
        [
            "fit",
            "--config",
            str(ROOT / "experiments/demo.yaml"),
            "--config",
            str(ROOT / "experiments/trainer/wandb.yaml"),
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--trainer.limit_test_batches=1",
        ]
    )
    wandb.finish()
    runs = list(tmp_cwd.rglob("offline-run-*"))
    assert runs, "no offline W&B run directory was written"
    assert any(p.suffix == ".wandb" for p in runs[0].rglob("*")), "offline run has no .wandb file"
    assert (Path(cli.trainer.log_dir) / "results.csv").is_file()
    assert not contacted, f"network contacted: {contacted}"
