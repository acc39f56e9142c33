"""The ``mmbench`` command.

* ``mmbench fit|validate|test|predict --config FILE ...`` → ``MMBenchCLI`` (LightningCLI, subclass mode for
  method and data, data facts linked into the method, ``results.csv`` after ``test``);
* ``mmbench demo`` → the main job on the embedded default data;
* ``mmbench sweep``, ``mmbench leaderboard``, ``mmbench data`` → jsonargparse commands of their modules.

``cli_main(args)`` is the single entry point for the console script, the tests and the sweep runner.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

import yaml
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

import mmbench.data
import mmbench.methods  # noqa: F401  (registers methods for short names)
from mmbench.data.base import MultimodalDataModule
from mmbench.errors import MMBenchError
from mmbench.methods.base import MissingModalityMethod
from mmbench.predictions import PredictionsWriter
from mmbench.registry import DATASETS, METHODS, Registry, UnknownNameError, unknown_name_message
from mmbench.results import ResultsWriter

__all__ = ["LINKED_FIELDS", "MMBenchCLI", "cli_main", "main"]

LINKED_FIELDS = ("modalities", "input_shapes", "task", "num_classes")
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


class MMBenchCLI(LightningCLI):
    """LightningCLI with mmbench's links, the results writer and test-after-fit."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:  # noqa: D102
        for field in LINKED_FIELDS:
            parser.link_arguments(f"data.{field}", f"model.init_args.{field}", apply_on="instantiate")
        parser.add_lightning_class_args(ResultsWriter, "results")
        parser.add_lightning_class_args(PredictionsWriter, "predictions")
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
            if not path.is_file():
                raise MMBenchError(f"config file {path} does not exist")
            try:
                cfg = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as e:
                raise MMBenchError(f"config file {path} is not valid YAML: {e}") from None
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


def _print_help() -> None:
    print(
        "usage: mmbench <command> [options]\n\n"
        "commands:\n"
        "  fit          train one run (LightningCLI; then tests it unless --test_after_fit=false)\n"
        "  validate     validate a model on the val split\n"
        "  test         test a model under the data module's evaluation protocols; writes results.csv\n"
        "  predict      predict with a model\n"
        "  demo         the main job on the embedded default data (AV-MNIST-lite)\n"
        "  sweep        run a grid of cells from a sweep spec (mmbench sweep --help)\n"
        "  leaderboard  aggregate run dirs into leaderboard CSVs, tables and plots\n"
        "  rescore      recompute results.csv from predictions.parquet (and add metrics) without a model\n"
        "  data         data utilities, e.g. `mmbench data brats-synth --out DIR --cases N`\n\n"
        f"methods:  {', '.join(METHODS.names())}\n"
        f"datasets: {', '.join(DATASETS.names())}\n\n"
        "`mmbench <command> --help` for a command's options."
    )


def _subcommands() -> dict[str, Callable[[list[str]], Any]]:
    from mmbench.demo import demo_main

    commands: dict[str, Callable[[list[str]], Any]] = {"demo": demo_main}
    for name, module in (
        ("sweep", "mmbench.sweep"),
        ("leaderboard", "mmbench.leaderboard"),
        ("rescore", "mmbench.rescore"),
        ("data", "mmbench.datacli"),
    ):
        commands[name] = _lazy(module)
    return commands


def _lazy(module: str) -> Callable[[list[str]], Any]:
    def run(args: list[str]) -> Any:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                raise MMBenchError(f"`{module}` is not available in this version of mmbench") from None
            raise
        return mod.cli(args)

    return run


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: dispatch on the first argument; user errors exit 2 with one message."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        _print_help()
        return
    command, rest = args[0], args[1:]
    try:
        if command in LIGHTNING_COMMANDS:
            cli_main([command, *rest])
            return
        commands = _subcommands()
        if command not in commands:
            raise UnknownNameError(unknown_name_message("command", command, [*LIGHTNING_COMMANDS, *commands]))
        sys.argv = sys.argv[:1]
        commands[command](rest)
    except (MMBenchError, UnknownNameError, ValueError, FileNotFoundError) as e:
        if os.environ.get("MMBENCH_DEBUG"):
            raise
        print(f"mmbench: error: {e}", file=sys.stderr)
        sys.exit(2)
