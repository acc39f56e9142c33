"""Entry points: ``leaderboard_main`` (run dirs → files) and the ``mmbench leaderboard`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from mmbench.leaderboard.aggregate import aggregate
from mmbench.leaderboard.columns import ALL, RateAxis
from mmbench.leaderboard.figures import _plot_heatmaps, _plot_rates
from mmbench.leaderboard.read import _sort, collect, load_published
from mmbench.leaderboard.robustness import _robustness
from mmbench.leaderboard.slices import _pattern_slices, _rate_slices
from mmbench.leaderboard.tables import (
    Table,
    _pattern_tables,
    _rate_tables,
    _robustness_tables,
    pattern_tables,
    rate_tables,
)


# ------------------------------------------------------------------------------------------------ entry points
def format_terminal_tables(
    raw: pd.DataFrame, metric: str | None = None, pattern: str = ALL, rate: RateAxis = "auto"
) -> str:
    """The rate tables, then the per-pattern tables, as plain text for printing.

    Args:
        raw: rows from ``collect`` / ``load_published`` (e.g. ``collect([Path("runs")])``).
        metric: restrict to one metric; default all.
        pattern: pattern of the rate tables (default ``"all"``).
        rate: rate axis of the rate tables (``"auto"``, ``"train"``, ``"eval"``).
    """
    return _terminal_text(rate_tables(raw, metric, pattern, rate) + pattern_tables(raw, metric))


def _terminal_text(tables: list[Table]) -> str:
    if not tables:
        return "no table: no setting with a missing rate or with two or more patterns\n"
    return "\n".join(t.to_text() for t in tables)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def leaderboard_main(
    runs: list[Path],
    out: Path,
    published: bool = False,
    metric: str | None = None,
    pattern: str = ALL,
    rate: RateAxis = "auto",
    require_complete: bool = True,
    baselines: Path | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Build the leaderboard of the run dirs under ``runs`` into ``out``.

    Writes ``raw.csv`` (every tidy row), ``leaderboard.csv`` (``aggregate``), ``tables/patterns_*.{tex,md}``
    and ``tables/rates_*.{tex,md}`` (booktabs LaTeX and GitHub Markdown), ``robustness.csv`` plus
    ``tables/robustness.md``, ``plots/*.png`` and ``summary.txt`` (``format_terminal_tables``). Previous
    ``*.tex``/``*.md``/``*.png`` files in ``out/tables`` and ``out/plots`` are removed first, so ``out`` always
    reflects the current run dirs.

    Args:
        runs: run roots, searched recursively for cells (folders holding ``results.csv``).
        out: output folder (created).
        published: add the published numbers of ``baselines/*.csv`` as ``source="published"`` rows, in their own
            groups and tables (never mixed into reproduced means).
        metric: restrict tables, plots and robustness to one metric (the CSVs always hold every metric).
        pattern: pattern of the rate tables, rate plots and robustness (default ``"all"``: every sample).
        rate: missing-rate axis: ``"auto"`` (the one that varies), ``"train"`` or ``"eval"``.
        require_complete: read only cells with the sweep runner's ``COMPLETE`` marker.
        baselines: folder of the published CSVs (default: the checkout's ``baselines/``).
        plots: write the PNG plots.

    Returns:
        ``{relative path: absolute path}`` of every file written, e.g. ``{"raw.csv": ..., "tables/x.tex": ...}``.

    Raises:
        ValueError: nothing to tabulate, or ``collect``'s schema/duplicate errors.
    """
    out = Path(out)
    raw = collect(list(runs), require_complete=require_complete)
    if published:
        raw = _sort(pd.concat([raw, load_published(baselines)], ignore_index=True))
    if raw.empty:
        roots = ", ".join(str(r) for r in runs) or "(no run roots)"
        raise ValueError(f"no complete results under {roots}: nothing to tabulate")
    out.mkdir(parents=True, exist_ok=True)
    for sub, patterns in (("tables", ("*.tex", "*.md")), ("plots", ("*.png",))):
        for pat in patterns:
            for stale in sorted((out / sub).glob(pat)):
                stale.unlink()
    written: dict[str, Path] = {}

    def put(rel: str, text: str) -> None:
        written[rel] = _write(out / rel, text)

    put("raw.csv", raw.to_csv(index=False, lineterminator="\n"))
    put("leaderboard.csv", aggregate(raw).to_csv(index=False, lineterminator="\n"))
    rslices, pslices = _rate_slices(raw, metric, pattern, rate), _pattern_slices(raw, metric)
    tables = _rate_tables(rslices) + _pattern_tables(pslices)
    for t in tables:
        put(f"tables/{t.name}.tex", t.to_latex())
        put(f"tables/{t.name}.md", t.to_markdown())
    rob = _robustness(rslices)
    put("robustness.csv", rob.to_csv(index=False, lineterminator="\n"))
    put("tables/robustness.md", "\n".join(t.to_markdown() for t in _robustness_tables(rob)) or "no rate axis\n")
    put("summary.txt", _terminal_text(tables))
    if plots:
        for p in _plot_rates(rslices, out / "plots") + _plot_heatmaps(pslices, out / "plots"):
            written[f"plots/{p.name}"] = p
    return written


def cli(args: list[str]) -> dict[str, Path]:
    """``mmbench leaderboard RUNS... --out DIR [--published] [--metric M] [--pattern P] [--rate auto|train|eval]``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="mmbench leaderboard", description="Aggregate run dirs into leaderboards")
    parser.add_argument("runs", nargs="+", type=str, help="run roots (e.g. runs/<sweep>), searched recursively")
    parser.add_argument("--out", type=str, required=True, help="output folder")
    parser.add_argument("--published", type=bool, default=False, help="add the published numbers of baselines/")
    parser.add_argument("--metric", type=str | None, default=None, help="restrict tables/plots to one metric")
    parser.add_argument("--pattern", type=str, default=ALL, help="pattern of the rate tables and plots")
    parser.add_argument("--rate", type=Literal["auto", "train", "eval"], default="auto", help="missing-rate axis")
    parser.add_argument("--plots", type=bool, default=True, help="write PNG plots")
    ns = parser.parse_args(args)
    paths = leaderboard_main(
        [Path(r) for r in ns.runs],
        Path(ns.out),
        published=ns.published,
        metric=ns.metric,
        pattern=ns.pattern,
        rate=ns.rate,
        plots=ns.plots,
    )
    print(paths["summary.txt"].read_text())
    print(f"CSV:    {paths['raw.csv']}\n        {paths['leaderboard.csv']}\n        {paths['robustness.csv']}")
    print(f"tables: {Path(ns.out) / 'tables'} ({sum(k.endswith('.tex') for k in paths)} LaTeX, Markdown beside)")
    print(f"plots:  {Path(ns.out) / 'plots'} ({sum(k.endswith('.png') for k in paths)} PNG)")
    return paths
