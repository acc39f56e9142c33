"""``mmbench sweep``: the command (dry-run listing, the ``_cell`` subcommand, running the grid)."""

from __future__ import annotations

from typing import Any

from mmbench.errors import MMBenchError
from mmbench.sweep.cell import _cell_main
from mmbench.sweep.executors import run_grid
from mmbench.sweep.grid import Grid, expand
from mmbench.sweep.markers import cell_status
from mmbench.sweep.spec import load_spec

__all__ = ["cli", "format_grid"]


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


# ---------------------------------------------------------------------------------------------------------- CLI
def cli(args: list[str]) -> list[dict[str, Any]] | Grid:
    """``mmbench sweep --config experiments/sweeps/NAME.yaml [--dry-run] [--executor E] [--parallel N] ...``.

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
    grid = expand(
        loaded,
        num_seeds=options["num_seeds"],
        extra_args=extra,
        check=options["check"],
        allow_unavailable=options["dry_run"],
    )
    if options["dry_run"]:
        print(format_grid(grid))
        return grid
    return run_grid(grid, wait=options["wait"])
