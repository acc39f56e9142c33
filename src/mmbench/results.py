"""Tidy result rows: the schema of ``results.csv`` and the callback that writes it after ``test``.

One row per (eval protocol, pattern, metric), with the provenance columns of DESIGN.md §2 /
peers-and-ecosystem.md §4.5. ``sweep`` and ``leaderboard`` read these files and never import a method.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import math
import os
import subprocess
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from mmbench.schema import RESULT_COLUMNS, RESULTS_FILE

__all__ = ["RESULT_COLUMNS", "ResultsWriter", "format_variant", "write_rows_atomic"]


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def _git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def format_variant(switches: Mapping[str, object]) -> str:
    """``{"b": 1, "a": "x"}`` → ``"a=x;b=1"`` (sorted keys; empty string when there are none)."""
    return ";".join(f"{k}={v}" for k, v in sorted(switches.items()))


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def write_rows_atomic(path: Path, rows: Iterable[Mapping[str, Any]], columns: Iterable[str] = RESULT_COLUMNS) -> None:
    """Write ``rows`` as CSV to ``path`` via a temporary file and ``os.replace`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    cols = list(columns)
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c, "")) for c in cols})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ResultsWriter(Callback):
    """After ``test``, write ``results.csv`` (one tidy row per protocol × pattern × metric) in the run dir.

    Rank 0 only; the file is written atomically. When a ``WandbLogger`` is attached the rows are also logged as
    a W&B Table named ``results``.

    Args:
        filename: name of the CSV inside the run dir.
        ckpt_selection: how the evaluated weights were chosen (recorded in each row).
    """

    def __init__(self, filename: str = RESULTS_FILE, ckpt_selection: str = "last") -> None:
        self.filename = filename
        self.ckpt_selection = ckpt_selection
        self.last_path: Path | None = None

    def rows(self, trainer: pl.Trainer, pl_module: pl.LightningModule, run_dir: Path) -> list[dict[str, Any]]:
        """Result rows with every provenance column filled."""
        dm = trainer.datamodule  # type: ignore[attr-defined]
        config = run_dir / "config.yaml"
        config_hash = "sha256:" + hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.is_file() else ""
        variant_fn = getattr(pl_module, "variant", None)
        variant = variant_fn() if callable(variant_fn) else {}
        protocols = {p.name: p for p in dm.eval_protocols}
        common = {
            **dm.describe(),
            "method": getattr(pl_module, "registry_name", "") or type(pl_module).__name__,
            "method_variant": format_variant(variant),
            "seed": os.environ.get("PL_GLOBAL_SEED", ""),
            "ckpt_selection": self.ckpt_selection,
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "config_hash": config_hash,
            "git_sha": _git_sha(),
            "mmbench_version": _pkg_version("mmbench"),
            "torch_version": _pkg_version("torch"),
            "lightning_version": _pkg_version("lightning"),
            "torchmetrics_version": _pkg_version("torchmetrics"),
            "run_dir": str(run_dir),
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        out = []
        for r in getattr(pl_module, "test_results", []):
            protocol = protocols[r["eval_protocol"]]
            out.append(
                {
                    **common,
                    **r,
                    "eval_missing_rate": getattr(protocol, "rate", ""),
                    "mask_hash": dm.mask_table(protocol).hash,
                }
            )
        return out

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)  # a collective under DDP: every rank calls it
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        rows = self.rows(trainer, pl_module, run_dir)
        path = run_dir / self.filename
        write_rows_atomic(path, rows)
        self.last_path = path
        rank_zero_info(f"mmbench: wrote {len(rows)} result rows to {path}")
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                import pandas as pd

                df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).astype(str)
                logger.log_table(key="results", dataframe=df)  # type: ignore[attr-defined]
