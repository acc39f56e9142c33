"""The LightningCLI runner: ``mmbench fit|validate|test|predict``.

``MMBenchCLI`` is LightningCLI in subclass mode for method and data, with the data facts linked into the method,
``results.csv`` after ``test`` and test-after-fit. ``cli_main(args)`` is the single entry point for the console
script (through ``mmbench.cli.main``), the tests and the sweep runner (``mmbench.sweep``), which is why it lives
apart from the command dispatcher.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import (
    ArgsType,
    LightningArgumentParser,
    LightningCLI,
    LRSchedulerTypeTuple,
    LRSchedulerTypeUnion,
)
from torch.optim import Optimizer

import mmbench.data
import mmbench.methods  # noqa: F401  (registers methods for short names)
from mmbench.data.base import MultimodalDataModule
from mmbench.errors import MMBenchError
from mmbench.methods.base import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, MissingModalityMethod
from mmbench.registry import DATASETS, METHODS, Registry, UnknownNameError, unknown_name_message
from mmbench.results import ResultsWriter
from mmbench.safe_io import untrusted_input_guard
from mmbench.yamlfile import read_yaml

__all__ = ["LINKED_FIELDS", "MMBenchCLI", "cli_main"]

LINKED_FIELDS = ("modalities", "input_shapes", "task", "num_classes")


class MMBenchCLI(LightningCLI):
    """LightningCLI with mmbench's links, the results writer, test-after-fit and the optimiser as configuration.

    ``--optimizer`` / ``--lr_scheduler`` (LightningCLI's own) choose the optimiser; the default is
    ``AdamW(lr=1e-3, weight_decay=0)``. A scheduler with an ``interval`` attribute of ``"step"`` (e.g.
    ``mmbench.methods.optim.PolyLR``) is stepped after every optimiser step, any other one once per epoch.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:  # noqa: D102
        for field in LINKED_FIELDS:
            parser.link_arguments(f"data.{field}", f"model.init_args.{field}", apply_on="instantiate")
        parser.add_optimizer_args((torch.optim.Optimizer,))
        parser.add_lr_scheduler_args(LRSchedulerTypeTuple)
        default = {"lr": DEFAULT_LR, "weight_decay": DEFAULT_WEIGHT_DECAY}
        parser.set_defaults({"optimizer": {"class_path": "torch.optim.AdamW", "init_args": default}})
        parser.add_lightning_class_args(ResultsWriter, "results")
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help="after `fit`, run `test` with the final weights in the same run dir (writes results.csv)",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:  # noqa: D102
        # the arguments travel in `args` (LightningCLI warns when sys.argv has some too); empty sys.argv only while
        # parsing: DDP re-launches sys.argv for the other ranks later
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            super().parse_arguments(parser, args)
        finally:
            sys.argv = argv

    @staticmethod
    def configure_optimizers(
        lightning_module: LightningModule, optimizer: Optimizer, lr_scheduler: LRSchedulerTypeUnion | None = None
    ) -> Any:
        """LightningCLI's optimiser/scheduler pair; the scheduler's ``interval`` attribute (default epoch) is kept."""
        out = LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)
        interval = getattr(lr_scheduler, "interval", "epoch")
        if lr_scheduler is None or interval == "epoch":
            return out
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "interval": interval}}

    def _add_configure_optimizers_method_to_model(self, subcommand: str | None) -> None:
        # the base class's own configure_optimizers (the same default) is meant to be replaced: no warning
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*configure_optimizers` will be overridden")
            super()._add_configure_optimizers_method_to_model(subcommand)

    def after_fit(self) -> None:  # noqa: D102
        if self._get(self.config, "test_after_fit", default=True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)


def _class_names(registry: Registry[type]) -> dict[str, str]:
    """Accepted spellings → class name: registry slug, class name and import path."""
    names: dict[str, str] = {}
    for slug, cls in registry.items():
        names[slug] = cls.__name__
        names[cls.__name__] = cls.__name__
        names[f"{cls.__module__}.{cls.__name__}"] = f"{cls.__module__}.{cls.__name__}"
    return names


def _check_choice(kind: str, value: str, registry: Registry[type]) -> str:
    names = _class_names(registry)
    if value in names:
        return names[value]
    if "." in value:  # a user's own import path: jsonargparse resolves (and reports) it
        return value
    raise UnknownNameError(unknown_name_message(kind, value, registry.names()))


def _preflight(args: list[str]) -> list[str]:
    """Resolve registry slugs in ``--model``/``--data`` and reject unknown names with suggestions.

    Config files given with ``--config``/``-c`` are read for ``model``/``data`` class paths too, so an unknown
    name there gets the same message instead of a long jsonargparse union error.
    """
    out = list(args)
    for i, tok in enumerate(out):
        for flag, kind, registry in (("--model", "method", METHODS), ("--data", "dataset", DATASETS)):
            if tok == flag and i + 1 < len(out) and not out[i + 1].startswith("-"):
                if not out[i + 1].endswith((".yaml", ".yml", ".json")) and "{" not in out[i + 1]:
                    out[i + 1] = _check_choice(kind, out[i + 1], registry)
            elif tok.startswith(flag + "=") and not tok.endswith((".yaml", ".yml", ".json")) and "{" not in tok:
                out[i] = f"{flag}={_check_choice(kind, tok.split('=', 1)[1], registry)}"
        if tok in ("--config", "-c") and i + 1 < len(out):
            path = Path(out[i + 1])
            cfg = read_yaml(path)
            if not isinstance(cfg, dict):
                raise MMBenchError(f"config file {path} must hold a mapping at top level, got {type(cfg).__name__}")
            for key, kind, registry in (("model", "method", METHODS), ("data", "dataset", DATASETS)):
                section = cfg.get(key)
                if isinstance(section, dict) and isinstance(section.get("class_path"), str):
                    try:
                        _check_choice(kind, section["class_path"], registry)
                    except UnknownNameError as e:
                        raise MMBenchError(f"{path}: {key}.class_path: {e}") from None
    return out


@untrusted_input_guard  # checkpoints: torch.load(weights_only=True) only; wrapped user errors shown as one line
def cli_main(args: ArgsType = None, run: bool = True) -> MMBenchCLI:
    """Run ``mmbench fit|validate|test|predict`` with ``args`` (default: ``sys.argv[1:]``)."""
    if isinstance(args, list | tuple):
        args = _preflight([str(a) for a in args])
    return MMBenchCLI(
        MissingModalityMethod,
        MultimodalDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True, "config_filename": "config.yaml"},
        trainer_defaults={
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs"}},
        },
        parser_kwargs={"default_env": False},
        args=args,
        run=run,
    )
