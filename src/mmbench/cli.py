"""The ``mmbench`` command: dispatch on the first argument.

* ``mmbench fit|validate|test|predict --config FILE ...`` → ``mmbench.runner.cli_main`` (``MMBenchCLI``,
  LightningCLI);
* ``mmbench demo`` → the main job on the embedded default data;
* ``mmbench sweep``, ``mmbench leaderboard``, ``mmbench data`` → jsonargparse commands of their modules.

``cli_main``, ``MMBenchCLI`` and ``LINKED_FIELDS`` are re-exported from ``mmbench.runner``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mmbench.errors import MMBenchError
from mmbench.registry import DATASETS, METHODS, UnknownNameError, unknown_name_message
from mmbench.runner import LINKED_FIELDS, MMBenchCLI, cli_main

__all__ = ["LINKED_FIELDS", "MMBenchCLI", "cli_main", "main"]

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


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
