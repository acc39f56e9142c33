"""``mmbench sweep``: the command (dry-run listing, the ``_cell`` subcommand, running the grid)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mmbench.errors import MMBenchError
from mmbench.sweep.cell import _cell_main
from mmbench.sweep.executors import run_grid
from mmbench.sweep.grid import Grid, expand
from mmbench.sweep.markers import cell_status
from mmbench.sweep.spec import load_spec

__all__ = ["check_writable", "cli", "format_grid"]


def format_grid(grid: Grid) -> str:
    """The grid with each cell's status, as printed by ``--dry-run``."""
    statuses = [(cell_status(c.cell_dir) if not c.note else "unavailable", c) for c in grid.cells]
    n = {k: sum(1 for s, _ in statuses if s == k) for k in dict.fromkeys(s for s, _ in statuses)}
    axes = {
        "datasets": len({c.dataset for c in grid.cells}),
        "methods": len({c.method for c in grid.cells}),
        "missing": len({c.missing for c in grid.cells}),
        "seeds": len({c.seed for c in grid.cells}),
    }
    head = " × ".join(f"{k} {v}" for k, v in axes.items())
    lines = [f"sweep {grid.spec.name}: {len(grid.cells)} cells ({head}) → {grid.root}"]
    lines += [f"  {s:<11} {c.cell_id}" for s, c in statuses]
    lines += [f"note: {note}" for note in grid.notes]
    lines.append("status: " + ", ".join(f"{v} {k}" for k, v in n.items()))
    return "\n".join(lines)


def check_writable(root: Path) -> None:
    """Fail before the (slow) expansion when the sweep cannot write its run dirs.

    Raises:
        MMBenchError: ``root`` cannot be created or written (read-only file system, permissions, full disk).
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".writable.", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MMBenchError(f"sweep output {root} is not writable: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------------------- CLI
def cli(args: list[str]) -> list[dict[str, Any]] | Grid:
    """``mmbench sweep --config experiments/sweeps/NAME.yaml [--dry-run] [--executor E] [--parallel N] ...``.

    ``--dry-run`` prints the grid without importing Lightning: methods and datasets are read from source
    (``expand(static=True)``) and no pair is instantiated unless ``--check=true`` is given.

    Returns the outcomes of the cells that ran (or the grid with ``--dry-run``).
    """
    args = list(args)
    if args[:1] == ["_cell"]:
        if len(args) != 2:
            raise MMBenchError("usage: mmbench sweep _cell TASK.json")
        _cell_main(args[1])
        return []
    extra: list[str] = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1 :]
    loaded, options = load_spec(args)
    dry_run = bool(options["dry_run"])
    if not dry_run:
        check_writable(Path(loaded.spec.output) / loaded.spec.name)
    check = not dry_run if options["check"] is None else bool(options["check"])
    grid = expand(
        loaded,
        num_seeds=options["num_seeds"],
        extra_args=extra,
        check=check,
        allow_unavailable=dry_run,
        static=dry_run and not check,  # a plain dry-run reads the registries from source: no Lightning import
    )
    if dry_run:
        print(format_grid(grid))
        return grid
    return run_grid(grid, wait=options["wait"])
