"""Run dirs → leaderboard: tidy raw rows, seed aggregates, paper-style tables, plots and a robustness summary.

Everything here is a pure function of the ``results.csv`` files under the given run roots (and, on request, of the
published numbers in ``baselines/*.csv``): it keeps no state, never imports a method or torch, and writes the same
files for the same inputs, so it can be re-run at any time while a sweep fills in.

Flow::

    collect(run roots) ──► raw (one tidy row per run × protocol × pattern × metric × seed)
        [+ load_published(baselines/)  rows marked source="published", their own groups]
    aggregate(raw)     ──► leaderboard (mean, std, n_seeds, sem, ci95, min, max over seeds)
    pattern_tables / rate_tables ──► Table ──► .to_latex() / .to_markdown() / .to_text()
    robustness(raw)    ──► normalised area under the metric-vs-rate curve per method
    plot_rates / plot_pattern_heatmaps ──► PNG

Column roles (decided here, checked by the tests against ``RESULT_COLUMNS``):

* ``GROUP_COLUMNS`` identify what was run and evaluated. ``aggregate`` groups by all of them, so runs that differ in
  any of them are never averaged together. They include the evaluation ``mask_seed`` (peers-and-ecosystem.md §4.5
  keeps it fixed across seeds and methods), the checkpoint selection and the split hash.
* ``PER_RUN_COLUMNS`` change from one run of the same configuration to the next and are dropped by ``aggregate``:
  ``seed`` (what is averaged over), ``value``/``n``, ``epoch``, ``global_step``, ``config_hash`` (it contains the
  seed), ``git_sha``, library versions, ``run_dir``, ``timestamp``, and the bookkeeping columns ``notes`` and
  ``results_file``. ``mask_hash`` is carried along as the set of hashes seen (a warning is logged when one group
  holds more than one: its seeds were not scored on the same masks).
* ``DUPLICATE_KEY`` = ``GROUP_COLUMNS`` + ``seed``: two rows with the same key are the same measurement twice
  (e.g. a cell re-run into a second directory) and ``collect`` refuses them.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from mmbench.schema import RESULT_COLUMNS

__all__ = [
    "COMPLETE_MARKER",
    "DUPLICATE_KEY",
    "GROUP_COLUMNS",
    "PER_RUN_COLUMNS",
    "PUBLISHED_COLUMNS",
    "RAW_COLUMNS",
    "RESULTS_FILE",
    "RESULT_COLUMNS",
    "Cell",
    "Row",
    "Table",
    "aggregate",
    "collect",
    "default_baselines_dir",
    "format_terminal_tables",
    "latex_escape",
    "leaderboard_main",
    "load_published",
    "lower_is_better",
    "metric_scale",
    "modalities_from_patterns",
    "pattern_tables",
    "plot_pattern_heatmaps",
    "plot_rates",
    "rate_tables",
    "robustness",
]

log = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
"""A run dir (a *cell*) is a folder holding this file."""
COMPLETE_MARKER = "COMPLETE"
"""Written by the sweep runner next to ``results.csv`` once the cell's results are final."""
ALL = "all"
"""The pattern key for every sample (pattern id 0); see ``mmbench.masks.ALL``."""

SOURCE_COLUMNS: tuple[str, ...] = ("source", "source_table", "citation", "notes", "results_file")
"""Added to every raw row: ``reproduced``/``published``, the published table and citation, notes, the file read."""
RAW_COLUMNS: tuple[str, ...] = (*RESULT_COLUMNS, *SOURCE_COLUMNS)
"""Columns of ``collect``'s frame and of ``raw.csv``."""
GROUP_COLUMNS: tuple[str, ...] = (
    "source",
    "source_table",
    "citation",
    "dataset",
    "dataset_variant",
    "split_hash",
    "task",
    "method",
    "method_variant",
    "training_regime",
    "train_missing",
    "train_missing_rate",
    "eval_protocol",
    "eval_missing_rate",
    "mask_seed",
    "ckpt_selection",
    "pattern_id",
    "pattern",
    "n_observed",
    "metric",
)
"""Identity of an aggregate: everything about what was run and evaluated, nothing run-specific."""
PER_RUN_COLUMNS: tuple[str, ...] = (
    "value",
    "n",
    "seed",
    "mask_hash",
    "epoch",
    "global_step",
    "config_hash",
    "git_sha",
    "mmbench_version",
    "torch_version",
    "lightning_version",
    "torchmetrics_version",
    "run_dir",
    "timestamp",
    "ckpt_path",
    "git_dirty",
    "notes",
    "results_file",
)
"""Raw columns that ``aggregate`` does not group by (see the module docstring)."""
DUPLICATE_KEY: tuple[str, ...] = (*GROUP_COLUMNS, "seed")
"""Two raw rows with equal values here are the same measurement twice."""
STAT_COLUMNS: tuple[str, ...] = ("mean", "std", "n_seeds", "sem", "ci95_low", "ci95_high", "min", "max")
AGG_COLUMNS: tuple[str, ...] = (*GROUP_COLUMNS, *STAT_COLUMNS, "seeds", "mask_hash")
"""Columns of ``aggregate``'s frame and of ``leaderboard.csv``."""
PUBLISHED_COLUMNS: tuple[str, ...] = (
    "source_table",
    "citation",
    "dataset",
    "dataset_variant",
    "method",
    "training_regime",
    "eval_protocol",
    "pattern",
    "metric",
    "value",
    "notes",
)
"""Columns every ``baselines/*.csv`` must have; other raw columns are optional, unknown ones are ignored."""

_FLOAT_COLUMNS = ("value", "train_missing_rate", "eval_missing_rate")
_INT_COLUMNS = ("pattern_id", "n_observed", "n", "seed", "mask_seed", "epoch", "global_step")
_BLANK = {"", "nan", "na", "n/a", "none", "null"}
_METHOD_KEYS = ("method", "method_variant")
_PATTERN_KEYS = ("pattern_id", "pattern", "n_observed")
_RATE_KEYS = ("train_missing_rate", "eval_missing_rate", "eval_protocol")
_RATE_COLUMN = {"train": "train_missing_rate", "eval": "eval_missing_rate"}

RateAxis = Literal["auto", "train", "eval"]


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


def collect(run_roots: Sequence[Path | str], require_complete: bool = True) -> pd.DataFrame:
    """Every tidy row of every complete cell under ``run_roots``.

    A *cell* is a folder holding ``results.csv``; it is *complete* when the sweep runner has written the
    ``COMPLETE`` marker next to it. Incomplete cells are skipped with a logged note. Roots are searched
    recursively and may themselves be cells; overlapping roots are read once.

    Args:
        run_roots: folders (or ``results.csv`` files) to search.
        require_complete: skip cells without the ``COMPLETE`` marker (default). ``False`` reads every cell.

    Returns:
        One row per (cell, eval protocol, pattern, metric), columns ``RAW_COLUMNS``: ``RESULT_COLUMNS`` typed
        (``value``/rates float, ids/counts/seeds nullable ``Int64``, the rest strings) plus ``source="reproduced"``
        and ``results_file``. Sorted by ``DUPLICATE_KEY``.

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
    complete, skipped = [], []
    for f in sorted(files):
        if require_complete and not (f.parent / COMPLETE_MARKER).exists():
            log.info("skipping incomplete cell %s (no %s marker)", f.parent, COMPLETE_MARKER)
            skipped.append(f.parent)
            continue
        complete.append(f)
    if skipped:
        shown = ", ".join(str(p) for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        log.warning("ignored %d incomplete cell(s) without a %s marker: %s", len(skipped), COMPLETE_MARKER, shown)
    raw = _read_results(complete)
    _check_duplicates(raw)
    return _sort(raw)


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


# ------------------------------------------------------------------------------------------------ aggregation
def _joined_per_group(codes: np.ndarray, values: Iterable[object], n_groups: int, as_int: bool) -> list[str]:
    """``;``-joined sorted distinct non-blank values of each group (``codes`` = group number of each row)."""
    sets: list[set[Any]] = [set() for _ in range(n_groups)]
    for c, v in zip(codes, values, strict=True):
        if not _isblank(v):
            sets[c].add(int(str(v)) if as_int else str(v))
    return [";".join(str(v) for v in sorted(x)) for x in sets]


def aggregate(raw: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of every group of ``GROUP_COLUMNS``.

    Only numeric values enter the statistics (a blank/NaN ``value`` is left out and not counted in ``n_seeds``).
    Published rows (``source="published"``) form their own groups and never mix with reproduced ones.

    Args:
        raw: rows from ``collect`` and/or ``load_published``.

    Returns:
        ``AGG_COLUMNS``: the group columns, then ``mean``; ``std`` (ddof=1, NaN for one seed); ``n_seeds``;
        ``sem = std/√n``; ``ci95_low``/``ci95_high`` = ``mean ∓ t_{0.975, n−1}·sem`` (Student t, NaN for one seed);
        ``min``; ``max``; ``seeds`` (``"0;1;2"``, seeds with a value); ``mask_hash`` (distinct hashes, ``;``-joined).
    """
    raw = _ensure_raw(raw)
    keys = list(GROUP_COLUMNS)
    work = raw.assign(_seed_ok=raw["seed"].where(raw["value"].notna()))
    grouped = work.groupby(keys, dropna=False, sort=True)
    agg = grouped["value"].agg(["mean", "std", "count", "min", "max"]).rename(columns={"count": "n_seeds"})
    codes = grouped.ngroup().to_numpy()  # group numbers follow the sorted group order of ``agg``
    agg["seeds"] = _joined_per_group(codes, work["_seed_ok"], len(agg), as_int=True)
    agg["mask_hash"] = _joined_per_group(codes, work["mask_hash"], len(agg), as_int=False)
    agg = agg.reset_index()
    n = agg["n_seeds"].astype(int).to_numpy()
    std = agg["std"].to_numpy(dtype=float)
    sem = np.where(n >= 2, std / np.sqrt(np.maximum(n, 1)), np.nan)
    tq = np.where(n >= 2, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
    agg["std"] = np.where(n >= 2, std, np.nan)
    agg["sem"] = sem
    agg["ci95_low"] = agg["mean"] - tq * sem
    agg["ci95_high"] = agg["mean"] + tq * sem
    agg["n_seeds"] = n
    multi = agg["mask_hash"].str.contains(";", regex=False)
    if multi.any():
        row = agg.loc[multi].iloc[0]
        log.warning(
            "%d group(s) hold seeds scored on different evaluation masks, e.g. %s/%s %s %s: mask_hash %s",
            int(multi.sum()),
            row["dataset"],
            row["method"],
            row["eval_protocol"],
            row["pattern"],
            row["mask_hash"],
        )
    return agg[list(AGG_COLUMNS)]


# ------------------------------------------------------------------------------------------------ metrics and labels
_FRACTION_TOKENS = {
    "acc",
    "accuracy",
    "f1",
    "dice",
    "auroc",
    "auc",
    "ap",
    "map",
    "precision",
    "recall",
    "iou",
    "jaccard",
    "sensitivity",
    "specificity",
    "balanced",
}
_LOWER_TOKENS = {"mae", "mse", "rmse", "hd", "hd95", "loss", "error", "err", "nll", "ece", "brier"}


def _tokens(metric: str) -> set[str]:
    return set(re.split(r"[_\-/@.]", metric.lower()))


def lower_is_better(metric: str) -> bool:
    """True for error-like metric names (``mae``, ``mse``, ``rmse``, ``hd95``, ``loss``, ...)."""
    return bool(_tokens(metric) & _LOWER_TOKENS)


def metric_scale(metric: str) -> float:
    """100 for fraction metrics shown as percentages (acc, F1, Dice, AUROC, ...), 1 for the rest (MAE, corr, HD95)."""
    toks = _tokens(metric)
    return 100.0 if toks & _FRACTION_TOKENS and not toks & _LOWER_TOKENS else 1.0


def _isblank(v: object) -> bool:
    if v is None or v is pd.NA:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _method_label(method: str, variant: object) -> str:
    return method if _isblank(variant) else f"{method} ({variant})"


def modalities_from_patterns(patterns: Iterable[tuple[object, object]]) -> tuple[str, ...]:
    """Canonical modality order recovered from ``(pattern_id, pattern_name)`` pairs.

    Bit ``i`` of a pattern id is modality ``i``; the names of a pattern are its set bits in ascending order
    (``mmbench.masks.pattern_name``). Pairs with id 0 (``"all"``) or no id are skipped.

    Example:
        >>> modalities_from_patterns([(1, "image"), (3, "image+audio")])
        ('image', 'audio')

    Raises:
        ValueError: a name does not fit its id, or two patterns disagree on a bit. A bit no pattern covers is
            named ``m<i>`` (with a logged warning).
    """
    bits: dict[int, str] = {}
    for pid_, name_ in patterns:
        if _isblank(pid_) or int(str(pid_)) <= 0:
            continue
        pid, name = int(str(pid_)), str(name_)
        idx = [i for i in range(pid.bit_length()) if pid >> i & 1]
        parts = name.split("+")
        if len(parts) != len(idx):
            raise ValueError(f"pattern {name!r} names {len(parts)} modalities but its id {pid} has {len(idx)} bits")
        for i, part in zip(idx, parts, strict=True):
            if bits.setdefault(i, part) != part:
                raise ValueError(f"patterns disagree on modality {i}: {bits[i]!r} vs {part!r} (in {name!r}, id {pid})")
    if not bits:
        return ()
    names = tuple(bits.get(i, f"m{i}") for i in range(max(bits) + 1))
    if len(set(names)) != len(names):
        raise ValueError(f"one modality name stands for two bits: {names}")
    if len(bits) < len(names):
        log.warning("modalities %s: some bits are covered by no pattern; named m<i>", names)
    return names


# ------------------------------------------------------------------------------------------------ table model
def latex_escape(text: str) -> str:
    r"""Escape LaTeX specials (``zero_fill`` → ``zero\_fill``); ●/○/±/× become math symbols."""
    table = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
        "●": r"$\bullet$",
        "○": r"$\circ$",
        "±": r"$\pm$",
        "×": r"$\times$",
    }
    return "".join(table.get(ch, ch) for ch in text)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


@dataclass(frozen=True)
class Cell:
    """One number of a table: mean (and std) over seeds, in display units.

    Attributes:
        mean: mean over seeds, raw units (fractions stay fractions).
        std: standard deviation over seeds (NaN for one seed or a published value).
        scale: display factor (100 for fractions).
        decimals: decimals shown.
        bold: best in its row and metric group.
    """

    mean: float
    std: float = float("nan")
    scale: float = 100.0
    decimals: int = 2
    bold: bool = False

    def display_mean(self) -> str:
        """The mean as shown (``"82.00"``), ``"--"`` when missing."""
        return "--" if not np.isfinite(self.mean) else f"{self.mean * self.scale:.{self.decimals}f}"

    def display_std(self) -> str | None:
        """The std as shown, or ``None`` when it is not defined."""
        return None if not np.isfinite(self.std) else f"{self.std * self.scale:.{self.decimals}f}"


@dataclass(frozen=True)
class Row:
    """A table row: leading label cells (``stub``), numbers, and a section index (a rule between sections)."""

    stub: tuple[str, ...]
    cells: tuple[Cell, ...]
    section: int = 0


@dataclass(frozen=True)
class Table:
    """A renderer-neutral table; ``groups`` are (metric label, column labels) spanning the number columns.

    Attributes:
        name: file stem (``patterns_<setting>`` / ``rates_<metric>_<setting>``), unique within one leaderboard.
        caption: plain-text caption (escaped by each renderer).
        stub_header: headers of the leading label columns (modalities, or the rate axis).
        groups: ``((group label, (column label, ...)), ...)``; an empty group label means a single header row.
        rows: the body; ``Row.section`` changes start a new rule-separated block.
        stub_align: LaTeX alignment of the label columns.
    """

    name: str
    caption: str
    stub_header: tuple[str, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    rows: tuple[Row, ...]
    stub_align: str = "c"

    @property
    def column_labels(self) -> list[str]:
        """Flat labels of the number columns (``"acc: shaspec"`` when groups are labelled)."""
        return [f"{g}: {c}" if g else c for g, cols in self.groups for c in cols]

    def _stub_cells(self, row: Row) -> list[str] | None:
        """``None`` marks a spanning label row (``Average``)."""
        if len(row.stub) > 1 and all(s == "" for s in row.stub[1:]):
            return None
        return list(row.stub)

    def to_latex(self) -> str:
        r"""A booktabs ``table`` float: ``\toprule``/``\midrule``/``\bottomrule`` (needs ``booktabs``)."""
        n_stub = len(self.stub_header)
        n_cols = sum(len(cols) for _, cols in self.groups)
        lines = [
            "% generated by mmbench.leaderboard; values x100 where the metric is a fraction",
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{{latex_escape(self.caption)}}}",
            rf"\label{{tab:{self.name}}}",
            rf"\begin{{tabular}}{{{self.stub_align * n_stub}{'r' * n_cols}}}",
            r"\toprule",
        ]
        if any(g for g, _ in self.groups):
            spans, rules, start = [""] * n_stub, [], n_stub + 1
            for g, cols in self.groups:
                spans.append(rf"\multicolumn{{{len(cols)}}}{{c}}{{{latex_escape(g)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
                start += len(cols)
            lines += [" & ".join(spans) + r" \\", " ".join(rules)]
        header = [latex_escape(h) for h in self.stub_header] + [
            latex_escape(c) for _, cols in self.groups for c in cols
        ]
        lines += [" & ".join(header) + r" \\", r"\midrule"]
        prev: int | None = None
        for row in self.rows:
            if prev is not None and row.section != prev:
                lines.append(r"\midrule")
            prev = row.section
            stub = self._stub_cells(row)
            cells = (
                [rf"\multicolumn{{{n_stub}}}{{l}}{{{latex_escape(row.stub[0])}}}"]
                if stub is None
                else [latex_escape(s) for s in stub]
            )
            for c in row.cells:
                m, s = c.display_mean(), c.display_std()
                text = rf"\textbf{{{m}}}" if c.bold else m
                cells.append(text + (rf" $\pm$ {s}" if s is not None else ""))
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        """A GitHub pipe table under its caption; best values in ``**bold**``."""
        header = [_md_escape(h) for h in self.stub_header] + [_md_escape(c) for c in self.column_labels]
        align = [":-:" if self.stub_align == "c" else ":--"] * len(self.stub_header) + ["--:"] * (
            len(header) - len(self.stub_header)
        )
        lines = [_md_escape(self.caption), "", "| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
        for row in self.rows:
            cells = [_md_escape(s) for s in row.stub]
            for c in row.cells:
                m, s = c.display_mean(), c.display_std()
                cells.append((f"**{m}**" if c.bold else m) + (f" ± {s}" if s is not None else ""))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """Plain aligned text for a terminal; ``*`` marks the best value of a row and metric group."""
        header = list(self.stub_header) + self.column_labels
        body: list[list[str] | None] = []
        prev: int | None = None
        for row in self.rows:
            if prev is not None and row.section != prev:
                body.append(None)
            prev = row.section
            cells = list(row.stub)
            for c in row.cells:
                m, s = c.display_mean(), c.display_std()
                cells.append(m + (f" ± {s}" if s is not None else "") + ("*" if c.bold else " "))
            body.append(cells)
        widths = [max([len(header[j])] + [len(r[j]) for r in body if r is not None]) for j in range(len(header))]
        n_stub = len(self.stub_header)

        def fmt(cells: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if j < n_stub else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        rule = "-" * len(fmt(header))
        lines = [*textwrap.wrap(self.caption, width=max(len(rule), 60)), rule, fmt(header), rule]
        lines += [rule if r is None else fmt(r) for r in body]
        lines += [rule, "* best in row (per metric)"]
        return "\n".join(lines) + "\n"


def _bold_best(values: list[Cell], metric: str) -> list[Cell]:
    """Bold the best displayed mean(s) of one row's metric group (ties all bold; nothing with < 2 values)."""
    shown = [round(c.mean * c.scale, c.decimals) if np.isfinite(c.mean) else np.nan for c in values]
    finite = [v for v in shown if np.isfinite(v)]
    if len(finite) < 2:
        return values
    best = min(finite) if lower_is_better(metric) else max(finite)
    return [Cell(c.mean, c.std, c.scale, c.decimals, bold=bool(v == best)) for c, v in zip(values, shown, strict=True)]


def _cell(mean: float, std: float, metric: str) -> Cell:
    scale = metric_scale(metric)
    return Cell(float(mean), float(std), scale, 2 if scale == 100.0 else 3)


# ------------------------------------------------------------------------------------------------ slicing
def _table_view(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows as tables see them: dedicated models keep only their own pattern and share one setting.

    A ``dedicated`` run trained on ``fixed(<pattern>)`` is one column entry of one row of a dedicated table (ShaSpec
    Table 2), so its other patterns are dropped and ``train_missing`` becomes ``fixed(per pattern)``.
    """
    view = _ensure_raw(raw)
    view["method_variant"] = view["method_variant"].fillna("").astype(str)
    fixed = view["train_missing"].astype(str).str.extract(r"^fixed\((.*)\)$")[0]
    dedicated = view["training_regime"].astype(str).eq("dedicated") & fixed.notna()
    if not dedicated.any():
        return view
    own = pd.Series(
        [
            set(str(p).split("+")) == set(str(f).split("+")) if d else True
            for p, f, d in zip(view["pattern"], fixed, dedicated, strict=True)
        ],
        index=view.index,
    )
    view = view.loc[own].copy()
    view.loc[dedicated.loc[own], "train_missing"] = "fixed(per pattern)"
    return view


def _settings(frame: pd.DataFrame, exclude: Sequence[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    keys = [c for c in GROUP_COLUMNS if c not in exclude]
    if frame.empty:
        return
    for key, sub in frame.groupby(keys, dropna=False, sort=True):
        yield dict(zip(keys, key, strict=True)), sub


def _fmt_rate(r: object) -> str:
    return "" if _isblank(r) else f"{float(str(r)):g}"


def _describe_setting(setting: dict[str, Any]) -> str:
    parts = []
    if setting.get("source") == "published":
        parts.append(f"Published: {setting.get('source_table', '')} (see baselines/README.md)")
    ds = str(setting.get("dataset", ""))
    if not _isblank(setting.get("dataset_variant")):
        ds += f" ({setting['dataset_variant']})"
    parts.append(ds)
    if not _isblank(setting.get("training_regime")):
        parts.append(str(setting["training_regime"]))
    train = "" if _isblank(setting.get("train_missing")) else f"train {setting['train_missing']}"
    if not _isblank(setting.get("train_missing_rate")):
        train = (train + " " if train else "train ") + f"rate {_fmt_rate(setting['train_missing_rate'])}"
    if train:
        parts.append(train)
    if not _isblank(setting.get("eval_protocol")):
        parts.append(f"eval {setting['eval_protocol']}")
    elif not _isblank(setting.get("eval_missing_rate")):
        parts.append(f"eval rate {_fmt_rate(setting['eval_missing_rate'])}")
    if not _isblank(setting.get("ckpt_selection")) and setting["ckpt_selection"] != "last":
        parts.append(f"ckpt {setting['ckpt_selection']}")
    return "; ".join(parts)


def _slug(setting: dict[str, Any]) -> str:
    parts = [
        setting.get("source_table"),
        setting.get("dataset"),
        setting.get("dataset_variant"),
        setting.get("training_regime"),
        setting.get("train_missing"),
        None if _isblank(setting.get("train_missing_rate")) else f"train{_fmt_rate(setting['train_missing_rate'])}",
        setting.get("eval_protocol"),
    ]
    clean = [re.sub(r"[^a-z0-9.]+", "-", str(p).lower()).strip("-") for p in parts if not _isblank(p)]
    return "_".join(p for p in clean if p) or "results"


def _unique_names(items: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Append a short hash of the full setting to names that collide."""
    counts: dict[str, int] = {}
    for name, _ in items:
        counts[name] = counts.get(name, 0) + 1
    out = []
    for name, setting in items:
        if counts[name] > 1:
            digest = hashlib.sha1(repr(sorted((k, str(v)) for k, v in setting.items())).encode()).hexdigest()[:6]
            name = f"{name}_{digest}"
        out.append(name)
    return out


def _check_unique(sub: pd.DataFrame, keys: list[str], what: str) -> None:
    dup = sub.duplicated(keys, keep=False)
    if dup.any():
        files = sorted(set(sub.loc[dup, "results_file"]))[:2]
        raise ValueError(f"{what}: more than one row per {keys} (e.g. from {files}); the table would be ambiguous")


@dataclass(frozen=True)
class _PatternSlice:
    setting: dict[str, Any]
    raw: pd.DataFrame  # pattern rows (id >= 1) of one setting, all metrics
    patterns: list[tuple[int, str, int]]  # (id, name, n_observed) in table order
    modalities: tuple[str, ...]
    metrics: list[str]
    methods: list[tuple[str, str, str]]  # (label, method, variant)


def _methods(sub: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(label, method, variant) of each column; the variant is shown only for a method with several in the table."""
    pairs = sub[list(_METHOD_KEYS)].drop_duplicates()
    several = pairs["method"].value_counts()
    out = [
        (_method_label(m, v) if several[m] > 1 else str(m), str(m), str(v))
        for m, v in zip(pairs["method"], pairs["method_variant"], strict=True)
    ]
    return sorted(out)


def _pattern_slices(raw: pd.DataFrame, metric: str | Sequence[str] | None) -> list[_PatternSlice]:
    view = _table_view(raw)
    view = view.loc[view["pattern_id"].fillna(0).astype(int) >= 1]
    if metric is not None:
        view = view.loc[view["metric"].isin([metric] if isinstance(metric, str) else list(metric))]
    out = []
    for setting, sub in _settings(view, exclude=(*_METHOD_KEYS, *_PATTERN_KEYS, "metric")):
        pats = sub[list(_PATTERN_KEYS)].drop_duplicates()
        if pats["pattern_id"].nunique() < 2:
            continue
        _check_unique(sub, ["pattern_id", "metric", *_METHOD_KEYS, "seed"], _describe_setting(setting))
        patterns = sorted(
            {
                (int(i), str(p), int(bin(int(i)).count("1")))
                for i, p in zip(pats["pattern_id"], pats["pattern"], strict=True)
            },
            key=lambda t: (t[2], t[0]),
        )
        modalities = modalities_from_patterns((i, p) for i, p, _ in patterns)
        out.append(_PatternSlice(setting, sub, patterns, modalities, sorted(sub["metric"].unique()), _methods(sub)))
    return out


@dataclass(frozen=True)
class _RateSlice:
    setting: dict[str, Any]
    raw: pd.DataFrame  # rows of one metric and pattern, one row per (rate, method, seed)
    metric: str
    pattern: str
    rate_column: str
    methods: list[tuple[str, str, str]]


def _rate_slices(raw: pd.DataFrame, metric: str | None, pattern: str, rate: RateAxis) -> list[_RateSlice]:
    view = _table_view(raw)
    if metric is not None:
        view = view.loc[view["metric"] == metric]
    out = []
    for setting, sub in _settings(view, exclude=(*_METHOD_KEYS, *_PATTERN_KEYS, *_RATE_KEYS, "train_missing")):
        psub = sub.loc[sub["pattern"] == pattern]
        if psub.empty and pattern == ALL:
            real = sub.loc[sub["pattern_id"].fillna(0).astype(int) >= 1]
            if real["pattern_id"].nunique() == 1:  # e.g. an image-only test: "all" is that one pattern
                psub = real
        if psub.empty:
            continue
        if rate == "auto":
            n_train, n_eval = psub["train_missing_rate"].nunique(), psub["eval_missing_rate"].nunique()
            if n_train == 0 and n_eval == 0:
                continue
            col = _RATE_COLUMN["train"] if n_train >= n_eval else _RATE_COLUMN["eval"]
        else:
            col = _RATE_COLUMN[rate]
        psub = psub.loc[psub[col].notna()]
        if psub.empty:
            continue
        # The other axes (and a train spec that names its own rate, e.g. per_class_fraction(audio=0.2)) split the
        # table only where they vary independently of the rate; in lockstep with it they do not.
        others = [c for c in (*_RATE_KEYS, "train_missing") if c != col]
        per_rate = psub.groupby(col)[others].nunique(dropna=False).max()
        split = [c for c in others if int(per_rate[c]) > 1]
        parts = [(setting, psub)] if not split else [({**setting, **k}, p) for k, p in _settings_by(psub, split)]
        parts = [({**st, **_constants(p, others)}, p) for st, p in parts]
        for st, p in parts:
            _check_unique(p, [col, *_METHOD_KEYS, "seed"], _describe_setting(st))
            pname = str(p["pattern"].iloc[0])
            out.append(_RateSlice(st, p, str(setting["metric"]), pname, col, _methods(p)))
    return out


def _constants(frame: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """The columns that hold one value in ``frame`` (blank included), with that value."""
    return {c: frame[c].iloc[0] for c in columns if frame[c].nunique(dropna=False) == 1}


def _settings_by(frame: pd.DataFrame, keys: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    for key, sub in frame.groupby(keys, dropna=False, sort=True):
        yield dict(zip(keys, key, strict=True)), sub


def _key(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _stats_by(frame: pd.DataFrame, keys: list[str]) -> dict[tuple[Any, ...], tuple[float, float, int]]:
    """``(mean, std ddof=1 (NaN below 2), count)`` of the numeric ``value``s per group, keyed by the group values."""
    if frame.empty:
        return {}
    agg = frame.groupby(keys, dropna=False, sort=True)["value"].agg(["mean", "std", "count"])
    out = {}
    for key, m, sd, n in zip(agg.index, agg["mean"], agg["std"], agg["count"], strict=True):
        k = tuple(_key(x) for x in (key if isinstance(key, tuple) else (key,)))
        out[k] = (float(m), float(sd) if n >= 2 else float("nan"), int(n))
    return out


def _float(x: Any) -> float:
    return float(x)


def _seed_key(seed: object) -> str:
    return "" if _isblank(seed) else str(int(str(seed)))


# ------------------------------------------------------------------------------------------------ tables
def _pattern_table(ps: _PatternSlice, name: str) -> Table:
    groups: list[tuple[str, tuple[str, ...]]] = [(m, tuple(lbl for lbl, _, _ in ps.methods)) for m in ps.metrics]
    stat = _stats_by(ps.raw, ["pattern_id", "metric", *_METHOD_KEYS])
    nan3 = (float("nan"), float("nan"), 0)
    rows = []
    for pid, _, k in ps.patterns:
        stub = tuple("●" if pid >> i & 1 else "○" for i in range(len(ps.modalities)))
        cells: list[Cell] = []
        for met in ps.metrics:
            group = [_cell(*stat.get((pid, met, m, v), nan3)[:2], met) for _, m, v in ps.methods]
            cells += _bold_best(group, met)
        rows.append(Row(stub, tuple(cells), section=k))
    # Average row: mean over the table's patterns within each seed, then mean/std over seeds.
    n_pat = len(ps.patterns)
    keys = ["metric", *_METHOD_KEYS]
    per_seed = (
        ps.raw.assign(_s=ps.raw["seed"].map(_seed_key))
        .groupby([*keys, "_s"], dropna=False, sort=True)["value"]
        .agg(["mean", "count"])
    )
    dropped = int((per_seed["count"] < n_pat).sum())
    full = per_seed.loc[per_seed["count"] == n_pat, "mean"].rename("value").reset_index()
    avg = _stats_by(full, keys)
    avg_cells: list[Cell] = []
    for met in ps.metrics:
        group = [_cell(*avg.get((met, m, v), nan3)[:2], met) for _, m, v in ps.methods]
        avg_cells += _bold_best(group, met)
    if dropped:
        log.warning(
            "%s: %d (method, seed) pair(s) lack some patterns and are left out of the Average row",
            _describe_setting(ps.setting),
            dropped,
        )
    rows.append(Row(("Average",) + ("",) * (len(ps.modalities) - 1), tuple(avg_cells), section=10**6))
    n_seeds = sorted({n for _, _, n in stat.values()})
    caption = (
        f"{_describe_setting(ps.setting)}. Rows: observed (●) / missing (○) modalities; "
        f"{_scale_note(ps.metrics)}, {_seed_note(n_seeds, ps.setting)}; best per row in bold; "
        "Average = mean over the patterns within each seed, then over seeds."
    )
    return Table(name, caption, ps.modalities, tuple(groups), tuple(rows), stub_align="c")


def _scale_note(metrics: Sequence[str]) -> str:
    scaled = [m for m in metrics if metric_scale(m) == 100.0]
    if len(scaled) == len(metrics):
        return "values ×100"
    if not scaled:
        return "values as measured"
    return f"{', '.join(scaled)} ×100"


def _seed_note(n_seeds: list[int], setting: dict[str, Any]) -> str:
    if setting.get("source") == "published":
        return "published values"
    if not n_seeds:
        return "no values"
    n = str(n_seeds[0]) if len(n_seeds) == 1 else f"{n_seeds[0]}–{n_seeds[-1]}"
    return f"mean ± std over {n} seed{'' if n == '1' else 's'}"


def _rate_name(rs: _RateSlice) -> str:
    pattern = "" if rs.pattern == ALL else f"_{re.sub(r'[^a-z0-9.]+', '-', rs.pattern.lower())}"
    return f"rates_{re.sub(r'[^a-z0-9.]+', '-', rs.metric.lower())}{pattern}_{_slug(rs.setting)}"


def _rate_curve(rs: _RateSlice) -> dict[str, pd.DataFrame]:
    """Per method label: rows ``rate, mean, std, n_seeds`` sorted by rate."""
    stat = _stats_by(rs.raw, [*_METHOD_KEYS, rs.rate_column])
    out = {}
    for lbl, method, variant in rs.methods:
        rows = [(r, *v) for (m, var, r), v in stat.items() if (m, var) == (method, variant)]
        out[lbl] = pd.DataFrame(sorted(rows), columns=["rate", "mean", "std", "n_seeds"])
    return out


def _rate_table(rs: _RateSlice, name: str) -> Table:
    curves = _rate_curve(rs)
    rates = sorted({float(r) for r in rs.raw[rs.rate_column]})
    rows = []
    for r in rates:
        group = []
        for lbl, _, _ in rs.methods:
            c = curves[lbl]
            hit = c.loc[c["rate"] == r]
            mean, std = (_float(hit["mean"].iloc[0]), _float(hit["std"].iloc[0])) if len(hit) else (np.nan, np.nan)
            group.append(_cell(mean, std, rs.metric))
        rows.append(Row((f"{r:g}",), tuple(_bold_best(group, rs.metric))))
    axis = "train missing rate" if rs.rate_column == "train_missing_rate" else "eval missing rate"
    n_seeds = sorted({int(n) for c in curves.values() for n in c["n_seeds"]})
    caption = (
        f"{_describe_setting(rs.setting)}. {rs.metric} on pattern {rs.pattern} by {axis}; "
        f"{_scale_note([rs.metric])}, {_seed_note(n_seeds, rs.setting)}; best per row in bold."
    )
    groups = (("", tuple(lbl for lbl, _, _ in rs.methods)),)
    return Table(name, caption, (axis,), groups, tuple(rows), stub_align="l")


def pattern_tables(raw: pd.DataFrame, metric: str | Sequence[str] | None = None) -> list[Table]:
    """BraTS-paper-style tables: one per setting, one row per pattern, metric groups × methods as columns.

    A *setting* is every ``GROUP_COLUMNS`` value except method, pattern and metric (so one table per dataset,
    training regime, train missingness, eval protocol, ..., and per source: published numbers get their own tables).
    Rows are the patterns seen (id ≥ 1), ordered by number of observed modalities then id and separated by rules
    between those groups, with ●/○ columns for the modalities (order recovered by ``modalities_from_patterns``).
    The last row is the Average: within each seed the mean over the table's patterns, then mean ± std over seeds
    (seeds missing a pattern are left out of it, with a warning). Settings with fewer than two patterns give no table.
    Cells are mean ± std over seeds, ×100 for fraction metrics, best per row and metric in bold (min for error
    metrics). Methods are sorted by label (``method`` or ``method (variant)``), metrics by name.

    Args:
        raw: rows from ``collect`` / ``load_published``.
        metric: keep only this metric (or these metrics); default all.

    Returns:
        Tables named ``patterns_<setting slug>``.
    """
    return _pattern_tables(_pattern_slices(raw, metric))


def _pattern_tables(slices: list[_PatternSlice]) -> list[Table]:
    names = _unique_names([(f"patterns_{_slug(ps.setting)}", ps.setting) for ps in slices])
    return [_pattern_table(ps, n) for ps, n in zip(slices, names, strict=True)]


def rate_tables(
    raw: pd.DataFrame, metric: str | None = None, pattern: str = ALL, rate: RateAxis = "auto"
) -> list[Table]:
    """Metric-vs-missing-rate tables: rows = missing rate, columns = methods, for one metric and pattern.

    The rate axis is ``train_missing_rate`` or ``eval_missing_rate``; ``"auto"`` takes the one with more distinct
    values in the setting (train on ties). The other rate axis, the eval protocol and the train spec split the table
    only where they vary independently of the rate; in lockstep with it (``rate(0.5)`` at eval rate 0.5, or
    ``per_class_fraction(audio=0.2)`` at train rate 0.8) they do not. When ``pattern="all"`` is absent but the
    setting has a single pattern (e.g. an image-only test), that pattern is used.

    Args:
        raw: rows from ``collect`` / ``load_published``.
        metric: one metric; default one table per metric.
        pattern: the pattern shown (default ``"all"``, every sample).
        rate: ``"auto"``, ``"train"`` or ``"eval"``.

    Returns:
        Tables named ``rates_<metric>[_<pattern>]_<setting slug>``.
    """
    return _rate_tables(_rate_slices(raw, metric, pattern, rate))


def _rate_tables(slices: list[_RateSlice]) -> list[Table]:
    names = _unique_names([(_rate_name(rs), rs.setting) for rs in slices])
    return [_rate_table(rs, n) for rs, n in zip(slices, names, strict=True)]


# ------------------------------------------------------------------------------------------------ robustness
def _nauc(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) == 1:
        return float(y[0])
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0) / (x[-1] - x[0]))


def robustness(
    raw: pd.DataFrame, metric: str | None = None, pattern: str = ALL, rate: RateAxis = "auto"
) -> pd.DataFrame:
    """Normalised area under the metric-vs-missing-rate curve, per method (MultiBench-style robustness scalar).

    ``nauc = Σ_k (r_{k+1} − r_k)·(m_k + m_{k+1})/2 / (r_max − r_min)`` over the rates ``r`` present for the method
    (trapezoid rule on the mean-over-seeds curve ``m``, divided by the rate span), i.e. the mean metric over the
    rate range, in the metric's own units (a fraction for accuracy). With one rate it is the value at that rate.
    ``nauc_std`` is the std (ddof=1) of the same quantity computed per seed, over the seeds present at every rate
    (NaN with fewer than two); their mean equals ``nauc`` when every seed covers every rate. Slices are those of
    ``rate_tables``.

    Returns:
        One row per (setting, metric, pattern, method): the setting's ``GROUP_COLUMNS`` (the rate axis column
        itself blank), ``rate_column``, ``rates`` (``"0.1;0.5"``), ``n_rates``, ``nauc``, ``nauc_std``,
        ``n_seeds`` (seeds covering every rate), ``at_min_rate``, ``at_max_rate``.
    """
    return _robustness(_rate_slices(raw, metric, pattern, rate))


def _robustness(slices: list[_RateSlice]) -> pd.DataFrame:
    records = []
    for rs in slices:
        curves = _rate_curve(rs)
        for lbl, method, variant in rs.methods:
            c = curves[lbl].dropna(subset=["mean"])
            if c.empty:
                continue
            x, y = c["rate"].to_numpy(float), c["mean"].to_numpy(float)
            g = rs.raw.loc[(rs.raw["method"] == method) & (rs.raw["method_variant"].astype(str) == variant)]
            g = g.loc[g[rs.rate_column].isin(x) & g["value"].notna()]
            per_seed = []
            for _, d in g.assign(_s=g["seed"].map(_seed_key)).groupby("_s"):
                d = d.sort_values(rs.rate_column)
                if len(d) == len(x):
                    per_seed.append(_nauc(d[rs.rate_column].to_numpy(float), d["value"].to_numpy(float)))
            rec: dict[str, Any] = {k: rs.setting.get(k, np.nan) for k in GROUP_COLUMNS}
            rec.update(
                method=method,
                method_variant=variant,
                pattern=rs.pattern,
                pattern_id=g["pattern_id"].iloc[0] if len(g) else pd.NA,
                n_observed=g["n_observed"].iloc[0] if len(g) else pd.NA,
                metric=rs.metric,
                rate_column=rs.rate_column,
                rates=";".join(f"{r:g}" for r in x),
                n_rates=len(x),
                nauc=_nauc(x, y),
                nauc_std=float(np.std(per_seed, ddof=1)) if len(per_seed) >= 2 else np.nan,
                n_seeds=len(per_seed),
                at_min_rate=float(y[0]),
                at_max_rate=float(y[-1]),
            )
            rec[rs.rate_column] = np.nan
            records.append(rec)
    cols = [
        *GROUP_COLUMNS,
        "rate_column",
        "rates",
        "n_rates",
        "nauc",
        "nauc_std",
        "n_seeds",
        "at_min_rate",
        "at_max_rate",
    ]
    return pd.DataFrame.from_records(records, columns=cols)


def _robustness_tables(rob: pd.DataFrame) -> list[Table]:
    tables: list[Table] = []
    if rob.empty:
        return tables
    keys = [c for c in GROUP_COLUMNS if c not in _METHOD_KEYS] + ["rate_column"]
    for key, g in rob.groupby(keys, dropna=False, sort=True):
        setting = dict(zip(keys, key, strict=True))
        met = str(setting["metric"])
        axis = "train" if setting["rate_column"] == "train_missing_rate" else "eval"
        rows = []
        for _, r in g.sort_values(["method", "method_variant"]).iterrows():
            lo, hi = r["rates"].split(";")[0], r["rates"].split(";")[-1]
            cells = (
                _cell(r["nauc"], r["nauc_std"], met),
                _cell(r["at_min_rate"], np.nan, met),
                _cell(r["at_max_rate"], np.nan, met),
            )
            rows.append(Row((_method_label(r["method"], r["method_variant"]), f"{lo}–{hi}"), cells))
        caption = (
            f"{_describe_setting(setting)}. Robustness of {met} on pattern {setting['pattern']} over the {axis} "
            f"missing rate: nAUC = trapezoid area / rate span (± std over seeds), and the values at the lowest and "
            f"highest rate; {_scale_note([met])}."
        )
        groups = (("", ("nAUC", "at lowest rate", "at highest rate")),)
        tables.append(Table("robustness", caption, ("method", f"{axis} rates"), groups, tuple(rows), stub_align="l"))
    return tables


# ------------------------------------------------------------------------------------------------ plots
def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg canvas: no pyplot, no global backend switch
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_rates(
    raw: pd.DataFrame, out_dir: Path, metric: str | None = None, pattern: str = ALL, rate: RateAxis = "auto"
) -> list[Path]:
    """PNG per ``rate_tables`` slice: metric (×100 for fractions) vs missing rate, one line per method, ±std bands.

    Returns:
        The files written, ``out_dir/<table name>.png``.
    """
    return _plot_rates(_rate_slices(raw, metric, pattern, rate), out_dir)


def _plot_rates(slices: list[_RateSlice], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _unique_names([(_rate_name(rs), rs.setting) for rs in slices])
    paths = []
    for rs, name in zip(slices, names, strict=True):
        scale = metric_scale(rs.metric)
        fig = _figure(5.5, 3.8)
        ax = fig.add_subplot()
        for lbl, c in _rate_curve(rs).items():
            c = c.dropna(subset=["mean"])
            x, m, s = c["rate"].to_numpy(float), c["mean"].to_numpy(float) * scale, c["std"].to_numpy(float) * scale
            (line,) = ax.plot(x, m, marker="o", label=lbl)
            band = np.isfinite(s)
            if band.any():
                ax.fill_between(x[band], (m - s)[band], (m + s)[band], color=line.get_color(), alpha=0.2, linewidth=0)
        axis = "train" if rs.rate_column == "train_missing_rate" else "eval"
        ax.set_xlabel(f"{axis} missing rate")
        ax.set_ylabel(f"{rs.metric} ({rs.pattern})" + (" ×100" if scale == 100.0 else ""))
        ax.set_title("\n".join(textwrap.wrap(_describe_setting(rs.setting), 70)), fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def plot_pattern_heatmaps(raw: pd.DataFrame, out_dir: Path, metric: str | Sequence[str] | None = None) -> list[Path]:
    """PNG per ``pattern_tables`` setting and metric: methods × patterns heat map of the mean, annotated.

    Returns:
        The files written, ``out_dir/heatmap_<metric>_<setting slug>.png``.
    """
    return _plot_heatmaps(_pattern_slices(raw, metric), out_dir)


def _plot_heatmaps(slices: list[_PatternSlice], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _unique_names([(_slug(ps.setting), ps.setting) for ps in slices])
    paths = []
    for ps, name in zip(slices, names, strict=True):
        for met in ps.metrics:
            scale = metric_scale(met)
            data = np.full((len(ps.methods), len(ps.patterns)), np.nan)
            stat = _stats_by(ps.raw.loc[ps.raw["metric"] == met], ["pattern_id", *_METHOD_KEYS])
            for i, (_, method, variant) in enumerate(ps.methods):
                for j, (pid, _, _) in enumerate(ps.patterns):
                    data[i, j] = stat.get((pid, method, variant), (np.nan,))[0] * scale
            fig = _figure(max(4.0, 0.55 * len(ps.patterns) + 2.5), max(2.5, 0.45 * len(ps.methods) + 1.8))
            ax = fig.add_subplot()
            im = ax.imshow(data, aspect="auto", cmap="viridis_r" if lower_is_better(met) else "viridis")
            ax.set_xticks(range(len(ps.patterns)), [p for _, p, _ in ps.patterns], rotation=60, ha="right", fontsize=7)
            ax.set_yticks(range(len(ps.methods)), [lbl for lbl, _, _ in ps.methods], fontsize=7)
            lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
            for (i, j), v in np.ndenumerate(data):
                if np.isfinite(v):  # dark text on the bright end of the colour map
                    bright = (v - lo) / (hi - lo + 1e-12) > 0.6
                    bright = not bright if lower_is_better(met) else bright
                    ax.text(
                        j, i, f"{v:.1f}", ha="center", va="center", fontsize=6, color="black" if bright else "white"
                    )
            fig.colorbar(im, ax=ax, label=met + (" ×100" if scale == 100.0 else ""))
            ax.set_title("\n".join(textwrap.wrap(_describe_setting(ps.setting), 70)), fontsize=7)
            fig.tight_layout()
            path = out_dir / f"heatmap_{re.sub(r'[^a-z0-9.]+', '-', met.lower())}_{name}.png"
            fig.savefig(path, dpi=110)
            paths.append(path)
    return paths


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
