"""``mmbench demo``: the main job on the embedded default data.

Runs the sweep ``experiments/sweeps/demo.yaml`` (ShaSpec, UL4M4, late fusion and mean fill × three training
missing rates on AV-MNIST-lite, all-patterns test) with the local executor, two cells at a time, then builds the
leaderboard of ``runs/demo`` and prints the rate table, the per-pattern table and where the CSVs, LaTeX tables and
plots are. Complete cells are reused, so a second run only rebuilds the leaderboard.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["demo_main"]

DEMO_SWEEP = Path("experiments/sweeps/demo.yaml")


def require_complete(sweep_args: list[str]) -> None:
    """Refuse to tabulate a sweep that is still running or incomplete (another process may hold its cells).

    Raises:
        SweepIncompleteError: some cells are not ``complete`` (exit code 3).
    """
    from mmbench.errors import SweepIncompleteError
    from mmbench.sweep import cell_status, expand, load_spec

    args, extra = list(sweep_args), []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1 :]
    loaded, options = load_spec(args)
    grid = expand(loaded, num_seeds=options["num_seeds"], extra_args=extra, check=False)
    statuses = {c.cell_id: cell_status(c.cell_dir) for c in grid.cells}
    left = {k: v for k, v in statuses.items() if v != "complete"}
    if left:
        first = next(iter(left))
        raise SweepIncompleteError(
            f"sweep {grid.spec.name} is not complete ({len(left)} of {len(statuses)} cells not complete, first: "
            f"{first} is {left[first]}); no tables are built from an incomplete sweep"
        )


def demo_main(args: list[str]) -> None:
    """Run the demo sweep and its leaderboard; ``args`` are passed to ``mmbench sweep`` (e.g. ``--parallel=1``)."""
    from mmbench import leaderboard, sweep

    if not DEMO_SWEEP.is_file():
        raise FileNotFoundError(f"{DEMO_SWEEP} not found: run `mmbench demo` from the repository root")
    start = time.perf_counter()
    sweep_args = ["--config", str(DEMO_SWEEP), "--executor=local", "--parallel=2", *args]
    sweep.cli(sweep_args)  # raises SweepIncompleteError (exit 3) when cells were left failed or busy
    if "--dry-run" in args or "--dry_run" in args:
        return
    require_complete(sweep_args)
    runs = Path("runs/demo")
    out = runs / "leaderboard"
    paths = leaderboard.leaderboard_main([runs], out, metric="acc")
    print()
    print(paths["summary.txt"].read_text())
    print(f"raw rows:     {paths['raw.csv']}")
    print(f"leaderboard:  {paths['leaderboard.csv']}")
    print(f"robustness:   {paths['robustness.csv']}")
    print(f"tables:       {out / 'tables'} (LaTeX .tex and Markdown .md)")
    print(f"plots:        {', '.join(str(p) for k, p in sorted(paths.items()) if k.endswith('.png'))}")
    print(f"wall time:    {time.perf_counter() - start:.0f} s")
