"""Reading runs: ``results.csv`` files of complete cells and the published numbers of ``baselines/``."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.columns import (
    _BLANK,
    _FLOAT_COLUMNS,
    _INT_COLUMNS,
    COMPLETE_MARKER,
    DUPLICATE_KEY,
    PUBLISHED_COLUMNS,
    RAW_COLUMNS,
    RESULT_COLUMNS,
    RESULTS_FILE,
)
from mmbench.leaderboard.labels import _isblank

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ reading rows
def _coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Turn the numeric columns of an all-string frame into floats / nullable ints; bad cells raise.

    ``df`` carries ``results_file`` and ``_line`` (line in that file) so that errors can say where.
    """
    out = df.copy()

    def where(i: int) -> str:
        return f"{out['results_file'].iloc[i]}: line {out['_line'].iloc[i]}"

    for col in (*_FLOAT_COLUMNS, *_INT_COLUMNS):
        text = np.array([str(v).strip() for v in out[col].to_numpy(dtype=object)], dtype=object)
        blank = np.array([v.lower() in _BLANK for v in text], dtype=bool)
        num = pd.to_numeric(pd.Series(np.where(blank, "nan", text), index=out.index), errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy() & ~blank)
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"{where(i)}: column {col!r} holds {text[i]!r}, which is not a number")
        if col in _INT_COLUMNS:
            frac = np.flatnonzero(num.notna().to_numpy() & (num.fillna(0).to_numpy() % 1 != 0))
            if len(frac):
                i = int(frac[0])
                raise ValueError(f"{where(i)}: column {col!r} must hold integers, found {text[i]!r}")
            out[col] = num.astype("Int64")
        else:
            out[col] = num.astype(float)
    return out.drop(columns="_line")


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a small CSV (the ``csv`` module: much faster than ``read_csv`` per small file)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file, expected a header row")
    header, body = rows[0], [r for r in rows[1:] if r]
    for k, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(f"{path}: line {k + 2} has {len(r)} fields, the header has {len(header)}")
    return header, body


def _frame(columns: Sequence[str], rows: list[list[str]], files: list[str], lines: list[int]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns), dtype=object).astype(str)
    df["results_file"] = pd.Series(files, dtype=object).astype(str)
    df["_line"] = lines
    return df


def _read_results(paths: Sequence[Path]) -> pd.DataFrame:
    """``results.csv`` files with exactly ``RESULT_COLUMNS`` (any order), typed, plus the source columns."""
    rows: list[list[str]] = []
    files: list[str] = []
    lines: list[int] = []
    for path in paths:
        header, body = _read_rows(path)
        missing = [c for c in RESULT_COLUMNS if c not in header]
        extra = [c for c in header if c not in RESULT_COLUMNS]
        if missing or extra or len(set(header)) != len(header):
            what = [f"missing column(s) {missing}"] if missing else []
            what += [f"unexpected column(s) {extra}"] if extra else []
            what += [] if len(set(header)) == len(header) else ["repeated column names"]
            raise ValueError(
                f"{path}: {' and '.join(what)}; results.csv must have exactly mmbench.results.RESULT_COLUMNS"
            )
        order = [header.index(c) for c in RESULT_COLUMNS]
        rows += [[r[j] for j in order] for r in body]
        files += [str(path)] * len(body)
        lines += list(range(2, len(body) + 2))
    df = _frame(RESULT_COLUMNS, rows, files, lines)
    df["source"] = "reproduced"
    df["source_table"] = ""
    df["citation"] = ""
    df["notes"] = ""
    return _coerce(df)[list(RAW_COLUMNS)]


def _empty_raw() -> pd.DataFrame:
    return _read_results([])


def _ensure_raw(raw: pd.DataFrame) -> pd.DataFrame:
    """Add missing source columns (a frame built from results.csv files alone) with their defaults."""
    raw = raw.copy()
    defaults = {"source": "reproduced", "source_table": "", "citation": "", "notes": "", "results_file": ""}
    for col, default in defaults.items():
        if col not in raw.columns:
            raw[col] = default
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"raw frame lacks column(s) {missing}; build it with collect() or load_published()")
    return raw


def _sort(raw: pd.DataFrame) -> pd.DataFrame:
    keys = [*DUPLICATE_KEY, "results_file"]
    return raw.sort_values(keys, na_position="last", kind="stable").reset_index(drop=True)[list(RAW_COLUMNS)]


def _describe_key(key: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items() if not _isblank(v))


def _check_duplicates(raw: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming both files when two rows share the ``DUPLICATE_KEY``."""
    keys = list(DUPLICATE_KEY)
    dup = raw.duplicated(keys, keep=False)
    if not dup.any():
        return
    rows = raw.loc[dup]
    n_keys = int(raw.loc[dup].drop_duplicates(keys).shape[0])
    for key, group in rows.groupby(keys, dropna=False, sort=False):
        files = group["results_file"].tolist()
        desc = _describe_key(dict(zip(keys, key, strict=True)))
        raise ValueError(
            f"duplicated result row ({desc}) in {files[0]} and {files[1]}"
            + (" (both in the same file)" if files[0] == files[1] else "")
            + f"; {n_keys} duplicated key(s) in all. The same configuration and seed was scored twice: "
            "remove one of the run dirs (or re-run it under another seed)."
        )


SWEEP_CELL_FILES = ("cell.json", ".lock", "FAILED")
"""A folder holding one of these is a sweep cell: it counts only once ``COMPLETE`` is written. A folder holding
``results.csv`` and none of these is a plain ``mmbench fit``/``test`` run dir (results.csv is written atomically at
the end of ``test``) and always counts."""
GRID_FILE = "grid.csv"
"""Written by the sweep runner in the sweep root: the cells of the current spec (column ``cell_id``)."""


def _current_cells(files: list[Path]) -> dict[Path, set[str]]:
    """Sweep roots above ``files`` that hold a ``grid.csv`` → the cell ids it lists."""
    grids: dict[Path, set[str]] = {}
    for f in files:
        for parent in f.parents:
            if parent in grids:
                break
            grid = parent / GRID_FILE
            if grid.is_file():
                with open(grid, newline="", encoding="utf-8") as fh:
                    reader = csv.DictReader(fh)
                    if reader.fieldnames is None or "cell_id" not in reader.fieldnames:
                        raise ValueError(f"{grid}: no 'cell_id' column; expected the sweep runner's grid.csv")
                    grids[parent] = {row["cell_id"] for row in reader}
                break
    return grids


def collect(run_roots: Sequence[Path | str], require_complete: bool = True, current_only: bool = True) -> pd.DataFrame:
    """Every tidy row of every complete, current cell under ``run_roots``.

    A *cell* is a folder holding ``results.csv``. A sweep cell (one holding ``cell.json``, ``.lock`` or ``FAILED``)
    is *complete* when the sweep runner has written the ``COMPLETE`` marker next to it; incomplete cells are skipped
    with a logged note. A plain ``mmbench fit`` run dir (none of those files) always counts. A cell under a sweep
    root whose ``grid.csv`` does not list it is *stale* (left by an earlier version of an edited spec): skipped with a
    warning unless ``current_only=False``. Roots are searched recursively and may themselves be cells; overlapping
    roots are read once.

    Args:
        run_roots: folders (or ``results.csv`` files) to search.
        require_complete: skip sweep cells without the ``COMPLETE`` marker (default). ``False`` reads every cell.
        current_only: skip stale cells (default); ``False`` reads them too (``mmbench leaderboard --all``).

    Returns:
        One row per (cell, eval protocol, pattern, metric), columns ``RAW_COLUMNS``: ``RESULT_COLUMNS`` typed
        (``value``/rates float, ids/counts/seeds nullable ``Int64``, the rest strings) plus ``source="reproduced"``
        and ``results_file``. Sorted by ``DUPLICATE_KEY``. ``frame.attrs["stale_cells"]`` lists the stale cell dirs
        (skipped or not) and ``frame.attrs["incomplete_cells"]`` the skipped incomplete ones.

    Raises:
        FileNotFoundError: a root does not exist.
        ValueError: a ``results.csv`` lacks a column or has an unexpected one, a numeric cell does not parse, or
            two rows share the ``DUPLICATE_KEY`` (the message names both files).
    """
    files: dict[Path, None] = {}
    for root in map(Path, run_roots):
        if not root.exists():
            raise FileNotFoundError(f"run root {root} does not exist")
        found = [root] if root.is_file() else sorted(root.rglob(RESULTS_FILE))
        for f in found:
            files.setdefault(f.resolve(), None)
    grids = _current_cells(list(files))
    complete, skipped, stale = [], [], []
    for f in sorted(files):
        cell = f.parent
        sweep_cell = any((cell / name).exists() for name in SWEEP_CELL_FILES) or (cell / COMPLETE_MARKER).exists()
        if require_complete and sweep_cell and not (cell / COMPLETE_MARKER).exists():
            log.info("skipping incomplete cell %s (no %s marker)", cell, COMPLETE_MARKER)
            skipped.append(cell)
            continue
        grid_root = next((g for g in grids if g in cell.parents), None)
        if grid_root is not None and cell.parent == grid_root and cell.name not in grids[grid_root]:
            stale.append(cell)
            if current_only:
                continue
        complete.append(f)
    if skipped:
        shown = ", ".join(str(p) for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        log.warning("ignored %d incomplete cell(s) without a %s marker: %s", len(skipped), COMPLETE_MARKER, shown)
    if stale:
        shown = ", ".join(p.name for p in stale[:5]) + (", ..." if len(stale) > 5 else "")
        log.warning(
            "%s %d stale cell(s) not in the sweep's current %s (an earlier version of the spec): %s%s",
            "ignored" if current_only else "included",
            len(stale),
            GRID_FILE,
            shown,
            "; pass --all to tabulate them too" if current_only else "",
        )
    raw = _read_results(complete)
    _check_duplicates(raw)
    out = _sort(raw)
    out.attrs["stale_cells"] = [str(p) for p in stale]
    out.attrs["incomplete_cells"] = [str(p) for p in skipped]
    return out


def default_baselines_dir() -> Path:
    """``baselines/`` of the source checkout (next to ``src/``), else ``./baselines``."""
    here = Path(__file__).resolve().parents[2] / "baselines"
    return here if here.is_dir() else Path("baselines")


def load_published(directory: Path | None = None) -> pd.DataFrame:
    """Published reference numbers from ``directory/*.csv`` as raw rows with ``source="published"``.

    Each file needs ``PUBLISHED_COLUMNS``; other ``RAW_COLUMNS`` are optional (blank when absent), columns outside
    ``RAW_COLUMNS`` (e.g. ``printed``) are ignored. ``seed`` stays blank: a published cell counts as one value.

    Args:
        directory: folder of the CSVs; default ``default_baselines_dir()``.

    Returns:
        A frame with ``RAW_COLUMNS``, like ``collect``'s.
    """
    directory = default_baselines_dir() if directory is None else Path(directory)
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no published baselines (*.csv) in {directory}")
    frames = []
    for f in files:
        header, body = _read_rows(f)
        missing = [c for c in PUBLISHED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{f}: missing column(s) {missing}; published baselines need {list(PUBLISHED_COLUMNS)}")
        take = {c: header.index(c) for c in RAW_COLUMNS if c in header}
        rows = [[r[take[c]] if c in take else "" for c in RESULT_COLUMNS] for r in body]
        df = _frame(RESULT_COLUMNS, rows, [str(f)] * len(body), list(range(2, len(body) + 2)))
        for col in ("source_table", "citation", "notes"):
            df[col] = [r[take[col]] for r in body]
        df["source"] = "published"
        frames.append(_coerce(df)[list(RAW_COLUMNS)])
    raw = pd.concat(frames, ignore_index=True)
    _check_duplicates(raw)
    return _sort(raw)
