"""Entry points: ``leaderboard_main`` (run dirs → files) and the ``mmbench leaderboard`` command."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

import pandas as pd

from mmbench.leaderboard.aggregation import aggregate
from mmbench.leaderboard.columns import ALL, RateAxis
from mmbench.leaderboard.comparison import compare
from mmbench.leaderboard.figures import _plot_heatmaps, _plot_observed_count, _plot_rates
from mmbench.leaderboard.nauc import _robustness
from mmbench.leaderboard.read import _sort, collect, load_published
from mmbench.leaderboard.samples import PredictionStore
from mmbench.leaderboard.slices import _pattern_slices, _rate_slices, _table_view
from mmbench.leaderboard.tables import (
    Table,
    _pattern_tables,
    _rate_tables,
    _robustness_tables,
    pattern_tables,
    rate_tables,
)


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


def _swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` by the complete folder ``new`` (renames only: never a half-written leaderboard)."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(new, out)
    if old.exists():
        shutil.rmtree(old)


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
    paired_tests: bool = True,
    baseline: str | None = None,
    include_stale: bool = False,
    n_boot: int = 1000,
    n_perm: int = 1999,
    seed: int = 0,
) -> dict[str, Path]:
    """Build the leaderboard of the run dirs under ``runs`` into ``out``.

    Writes ``raw.csv`` (every tidy row), ``leaderboard.csv`` (``aggregate``: mean, std, t-interval and the interval
    of kind ``ci_kind``, bootstrap where the cells have ``predictions.parquet``), ``comparisons.csv`` (``compare``:
    each method vs its row's best and ``baseline``; with ``paired_tests``), ``tables/patterns_*.{tex,md}`` and
    ``tables/rates_*.{tex,md}`` (booktabs LaTeX and GitHub Markdown: best bold, † = not significantly worse),
    ``robustness.csv`` plus ``tables/robustness.md``, ``plots/*.{pdf,png}`` and ``summary.txt``. Everything is
    written into a fresh folder beside ``out`` that replaces ``out`` only once complete, so a failed run leaves the
    previous leaderboard as it was and ``out`` always reflects one reading of the run dirs.

    Args:
        runs: run roots, searched recursively for cells (folders holding ``results.csv``).
        out: output folder (replaced).
        published: add the published numbers of ``baselines/*.csv`` as ``source="published"`` rows, in their own
            groups and tables (never mixed into reproduced means, never tested).
        metric: restrict tables, plots and robustness to one metric (the CSVs always hold every metric).
        pattern: pattern of the rate tables, rate plots and robustness (default ``"all"``: every sample).
        rate: missing-rate axis: ``"auto"`` (the one that varies), ``"train"`` or ``"eval"``.
        require_complete: read only sweep cells with the sweep runner's ``COMPLETE`` marker.
        baselines: folder of the published CSVs (default: the checkout's ``baselines/``).
        plots: write the figures.
        paired_tests: run the paired comparisons (``comparisons.csv``, † marks in the tables).
        baseline: also compare every method with this one (registry name).
        include_stale: tabulate cells that the sweep's current ``grid.csv`` does not list (``--all``).
        n_boot: bootstrap resamples.
        n_perm: permutation resamples.
        seed: seed of the resampling.

    Returns:
        ``{relative path: absolute path}`` of every file written, e.g. ``{"raw.csv": ..., "tables/x.tex": ...}``.

    Raises:
        ValueError: nothing to tabulate, or ``collect``'s schema/duplicate errors.
    """
    out = Path(out)
    raw = collect(list(runs), require_complete=require_complete, current_only=not include_stale)
    stale = list(raw.attrs.get("stale_cells", []))
    if raw.empty:
        roots = ", ".join(str(r) for r in runs) or "(no run roots)"
        raise ValueError(f"no complete results under {roots}: nothing to tabulate")
    if published:
        raw = _sort(pd.concat([raw, load_published(baselines)], ignore_index=True))
    store = PredictionStore()
    view = _table_view(raw)
    comps = compare(view, store, baseline, n_perm=n_perm, n_boot=n_boot, seed=seed) if paired_tests else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.new-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    written: dict[str, Path] = {}

    def put(rel: str, text: str) -> None:
        written[rel] = out / rel
        _write(tmp / rel, text)

    try:
        put("raw.csv", raw.to_csv(index=False, lineterminator="\n"))
        agg = aggregate(raw, store, n_boot=n_boot, seed=seed)
        put("leaderboard.csv", agg.to_csv(index=False, lineterminator="\n"))
        if comps is not None:
            put("comparisons.csv", comps.frame.to_csv(index=False, lineterminator="\n"))
        rslices, pslices = _rate_slices(raw, metric, pattern, rate), _pattern_slices(raw, metric)
        tables = _rate_tables(rslices, comps) + _pattern_tables(pslices, comps)
        for t in tables:
            put(f"tables/{t.name}.tex", t.to_latex())
            put(f"tables/{t.name}.md", t.to_markdown())
        rob = _robustness(rslices)
        put("robustness.csv", rob.to_csv(index=False, lineterminator="\n"))
        put("tables/robustness.md", "\n".join(t.to_markdown() for t in _robustness_tables(rob)) or "no rate axis\n")
        summary = _terminal_text(tables)
        if stale:
            summary += f"\n{len(stale)} stale cell(s) not in the sweep's grid.csv were " + (
                "included (--all)\n" if include_stale else "left out (--all tabulates them)\n"
            )
        put("summary.txt", summary)
        if plots:
            figs = _plot_rates(rslices, tmp / "plots", agg) + _plot_heatmaps(pslices, tmp / "plots")
            figs += _plot_observed_count(pslices, tmp / "plots")
            for p in figs:
                written[f"plots/{p.name}"] = out / "plots" / p.name
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return written


def cli(args: list[str]) -> dict[str, Path]:
    """``mmbench leaderboard RUNS... --out DIR [--published] [--metric M] [--baseline M] [--all] ...``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="mmbench leaderboard", description="Aggregate run dirs into leaderboards")
    parser.add_argument("runs", nargs="+", type=str, help="run roots (e.g. runs/<sweep>), searched recursively")
    parser.add_argument("--out", type=str, required=True, help="output folder")
    parser.add_argument("--published", type=bool, default=False, help="add the published numbers of baselines/")
    parser.add_argument("--metric", type=str | None, default=None, help="restrict tables/plots to one metric")
    parser.add_argument("--pattern", type=str, default=ALL, help="pattern of the rate tables and plots")
    parser.add_argument("--rate", type=Literal["auto", "train", "eval"], default="auto", help="missing-rate axis")
    parser.add_argument("--plots", type=bool, default=True, help="write PDF and PNG figures")
    parser.add_argument("--paired_tests", type=bool, default=True, help="paired comparisons vs each row's best")
    parser.add_argument("--baseline", type=str | None, default=None, help="also compare every method with this one")
    parser.add_argument("--all", type=bool, default=False, help="also tabulate stale cells not in grid.csv")
    parser.add_argument("--n_boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--n_perm", type=int, default=1999, help="permutation resamples (raised per family for Holm)")
    ns = parser.parse_args(args)
    paths = leaderboard_main(
        [Path(r) for r in ns.runs],
        Path(ns.out),
        published=ns.published,
        metric=ns.metric,
        pattern=ns.pattern,
        rate=ns.rate,
        plots=ns.plots,
        paired_tests=ns.paired_tests,
        baseline=ns.baseline,
        include_stale=ns.all,
        n_boot=ns.n_boot,
        n_perm=ns.n_perm,
    )
    print(paths["summary.txt"].read_text())
    csvs = [paths[k] for k in ("raw.csv", "leaderboard.csv", "comparisons.csv", "robustness.csv") if k in paths]
    print("CSV:    " + "\n        ".join(str(p) for p in csvs))
    print(f"tables: {Path(ns.out) / 'tables'} ({sum(k.endswith('.tex') for k in paths)} LaTeX, Markdown beside)")
    print(f"plots:  {Path(ns.out) / 'plots'} ({sum(k.endswith('.pdf') for k in paths)} PDF, PNG beside)")
    return paths
