"""The ``mmbench`` command: dispatch on the first argument.

* ``mmbench fit|validate|test|predict --config FILE ...`` → ``mmbench.runner.cli_main`` (``MMBenchCLI``,
  LightningCLI);
* ``mmbench demo`` → the main job on the embedded default data;
* ``mmbench sweep``, ``mmbench leaderboard``, ``mmbench data`` → the ``cli``/``main`` of their modules.

Every import of torch and Lightning happens after dispatch: ``mmbench --help``, ``mmbench leaderboard`` and
``mmbench sweep --dry-run`` import neither (``tests/test_import_free.py``; the dry-run reads the registries from
source, ``mmbench.registry.declared_classes``). ``cli_main``, ``MMBenchCLI`` and ``LINKED_FIELDS`` are re-exported
lazily from ``mmbench.runner``.

Errors: one line ``mmbench: error: ...`` on stderr and exit code 2 for bad input and OS errors on a path, 3 when a
sweep leaves cells failed or busy (see ``mmbench.errors``). ``MMBENCH_DEBUG=1`` re-raises with the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mmbench.errors import EXIT_INCOMPLETE, EXIT_USAGE, MMBenchError, one_line
from mmbench.registry import UnknownNameError, declared_names, unknown_name_message

if TYPE_CHECKING:
    from mmbench.runner import LINKED_FIELDS, MMBenchCLI, cli_main

__all__ = ["LINKED_FIELDS", "MMBenchCLI", "cli_main", "main"]

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
# command → (module, function taking the argument list); imported only when the command runs
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mmbench.demo", "demo_main"),
    "sweep": ("mmbench.sweep", "cli"),
    "leaderboard": ("mmbench.leaderboard", "cli"),
    "rescore": ("mmbench.rescore", "cli"),
    "data": ("mmbench.datacli", "cli"),
}


def __getattr__(name: str) -> Any:
    if name in ("LINKED_FIELDS", "MMBenchCLI", "cli_main"):
        return getattr(importlib.import_module("mmbench.runner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _print_help() -> None:
    print(
        "usage: mmbench <command> [options]\n\n"
        "commands:\n"
        "  fit          train one run (LightningCLI; then tests it unless --test_after_fit=false)\n"
        "  validate     validate a model on the val split\n"
        "  test         test a model under the data module's evaluation protocols; writes results.csv\n"
        "  predict      predict with a model\n"
        "  demo         the main job on the embedded default data (AV-MNIST-lite-degraded; --readme: README block)\n"
        "  sweep        run a grid of cells from a sweep spec (mmbench sweep --help)\n"
        "  leaderboard  aggregate run dirs into leaderboard CSVs, tables and plots\n"
        "  rescore      recompute results.csv from predictions.parquet (and add metrics) without a model\n"
        "  data         data utilities, e.g. `mmbench data brats-synth --out DIR --cases N`\n\n"
        f"methods:  {', '.join(declared_names('mmbench.methods', 'METHODS'))}\n"
        f"datasets: {', '.join(declared_names('mmbench.data', 'DATASETS'))}\n\n"
        f"exit codes: 0 done, {EXIT_USAGE} bad input (one line on stderr), "
        f"{EXIT_INCOMPLETE} sweep left cells failed or busy\n"
        "`mmbench <command> --help` for a command's options."
    )


def _command(name: str) -> Callable[[list[str]], Any]:
    module, attr = SUBCOMMANDS[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise MMBenchError(f"`{module}` is not available in this version of mmbench") from None
        raise
    fn = next((f for f in (getattr(mod, a, None) for a in (attr, "cli", "main")) if callable(f)), None)
    if fn is None:
        raise MMBenchError(f"`{module}` has no command entry point")
    return fn


def _os_error(e: OSError) -> str:
    where = e.filename if e.filename is not None else ""
    what = e.strerror or type(e).__name__
    return f"{what}: {where}" if where else one_line(str(e) or what)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: dispatch on the first argument; errors exit non-zero with one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        _print_help()
        return
    command, rest = args[0], args[1:]
    try:
        if command in LIGHTNING_COMMANDS:
            from mmbench.runner import cli_main

            cli_main([command, *rest])
            return
        if command not in SUBCOMMANDS:
            raise UnknownNameError(unknown_name_message("command", command, [*LIGHTNING_COMMANDS, *SUBCOMMANDS]))
        sys.argv = sys.argv[:1]
        _command(command)(rest)
    except (MMBenchError, UnknownNameError, ValueError, OSError) as e:
        if os.environ.get("MMBENCH_DEBUG"):
            raise
        message = _os_error(e) if isinstance(e, OSError) else str(e)
        code = getattr(e, "exit_code", EXIT_USAGE)
        print(f"mmbench: error: {message}", file=sys.stderr)
        sys.exit(code)
