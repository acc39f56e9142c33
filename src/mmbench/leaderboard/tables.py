"""Renderer-neutral tables (LaTeX, Markdown, text) and the pattern, rate and robustness tables."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.columns import _METHOD_KEYS, ALL, GROUP_COLUMNS, RateAxis
from mmbench.leaderboard.comparison import ALPHA, Comparisons, group_key
from mmbench.leaderboard.labels import _method_label, display_name, lower_is_better, metric_scale
from mmbench.leaderboard.slices import (
    _describe_setting,
    _float,
    _key,
    _pattern_slices,
    _PatternSlice,
    _rate_curve,
    _rate_name,
    _rate_slices,
    _RateSlice,
    _seed_key,
    _slug,
    _stats_by,
    _unique_names,
)

log = logging.getLogger(__name__)


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
        "α": r"$\alpha$",
        "†": r"$^\dagger$",
        "≥": r"$\geq$",
        "≤": r"$\leq$",
        "·": r"$\cdot$",
        "−": r"$-$",
        "→": r"$\rightarrow$",
    }
    return "".join(table.get(ch, ch) for ch in text)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


COLUMN_FIT = 6
"""Number columns that fit one column of a two-column paper (mean ± std cells); wider tables become ``table*``."""
PAGE_FIT = 12
"""Number columns that fit a page; wider tables are scaled with ``\\resizebox`` (e.g. BraTS: 3 regions × 5 methods)."""


@dataclass(frozen=True)
class Cell:
    """One number of a table: mean (and std) over seeds, in display units.

    Attributes:
        mean: mean over seeds, raw units (fractions stay fractions).
        std: standard deviation over seeds (NaN for one seed or a published value).
        scale: display factor (100 for fractions).
        decimals: decimals shown.
        bold: best in its row and metric group.
        tied: not significantly worse than the best of its row (shown with a dagger).
    """

    mean: float
    std: float = float("nan")
    scale: float = 100.0
    decimals: int = 2
    bold: bool = False
    tied: bool = False

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
        # one column up to COLUMN_FIT number columns, a page-wide table* beyond, scaled to the page only past PAGE_FIT
        env = "table" if n_cols <= COLUMN_FIT else "table*"
        scale = n_cols > PAGE_FIT
        lines = [
            "% generated by mmbench.leaderboard; values x100 where the metric is a fraction",
            rf"\begin{{{env}}}[htbp]",
            r"\centering",
            rf"\caption{{{latex_escape(self.caption)}}}",
            rf"\label{{tab:{self.name}}}",
            *([r"\resizebox{\textwidth}{!}{%"] if scale else []),
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
                cells.append(text + (rf" $\pm$ {s}" if s is not None else "") + (r"$^\dagger$" if c.tied else ""))
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}" + ("}" if scale else ""), rf"\end{{{env}}}"]
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
                cells.append(
                    (f"**{m}**" if c.bold else m) + (f" ± {s}" if s is not None else "") + ("†" if c.tied else "")
                )
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
                cells.append(m + (f" ± {s}" if s is not None else "") + ("*" if c.bold else "†" if c.tied else " "))
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
        lines += [rule, "* best in row (per metric); † not significantly worse than the best"]
        return "\n".join(lines) + "\n"


def _bold_best(values: list[Cell], metric: str) -> list[Cell]:
    """Bold the best displayed mean(s) of one row's metric group (ties all bold; nothing with < 2 values)."""
    shown = [round(c.mean * c.scale, c.decimals) if np.isfinite(c.mean) else np.nan for c in values]
    finite = [v for v in shown if np.isfinite(v)]
    if len(finite) < 2:
        return values
    best = min(finite) if lower_is_better(metric) else max(finite)
    return [replace(c, bold=bool(v == best)) for c, v in zip(values, shown, strict=True)]


Key = tuple[Any, ...]


def _mark_tied(
    rows: list[list[Cell]], keys: list[list[Key | None]], comps: Comparisons | None
) -> tuple[list[list[Cell]], set[str]]:
    """Mark (``tied``) every non-bold cell not significantly worse than its row's best, Holm over the table.

    Returns the marked rows and the tests used (``PairedResult.test`` values) for the caption.
    """
    if comps is None:
        return rows, set()
    flat = [k for ks in keys for k in ks if k is not None]
    padj = comps.p_values(flat)
    tests = {comps.vs_best[k].test for k in flat if k in comps.vs_best}
    out = []
    for cells, ks in zip(rows, keys, strict=True):
        marked = []
        for c, k in zip(cells, ks, strict=True):
            if c.bold or k is None or k not in padj:
                marked.append(c)
                continue
            res = comps.vs_best[k]
            worse = res.diff > 0 if lower_is_better(str(k[GROUP_COLUMNS.index("metric")])) else res.diff < 0
            significant = bool(np.isfinite(padj[k]) and padj[k] < ALPHA and worse)
            marked.append(replace(c, tied=not significant))
        out.append(marked)
    return out, tests


def _test_note(tests: set[str]) -> str:
    if not tests:
        return ""
    how = {
        "permutation_samples": "paired permutation test over test samples",
        "permutation_seeds": "paired permutation test over seeds",
        "none": "no test possible (one seed, no predictions): marked",
    }
    used = "; ".join(how[t] for t in sorted(tests))
    return f"; † = not significantly worse than the best ({used}; Holm-corrected over this table, α = {ALPHA:g})"


def _keys(frame: pd.DataFrame, by: list[str]) -> dict[tuple[Any, ...], Key]:
    """``group_key`` of the first row of each ``by`` group, keyed by the ``by`` values."""
    first = frame.drop_duplicates(by)
    return {tuple(_key(r[c]) for c in by): group_key(r) for _, r in first.iterrows()}


def _cell(mean: float, std: float, metric: str) -> Cell:
    scale = metric_scale(metric)
    return Cell(float(mean), float(std), scale, 2 if scale == 100.0 else 3)


# ------------------------------------------------------------------------------------------------ tables
def _pattern_table(ps: _PatternSlice, name: str, comps: Comparisons | None = None) -> Table:
    groups: list[tuple[str, tuple[str, ...]]] = [
        (display_name(m), tuple(lbl for lbl, _, _ in ps.methods)) for m in ps.metrics
    ]
    stat = _stats_by(ps.raw, ["pattern_id", "metric", *_METHOD_KEYS])
    gkeys = _keys(ps.raw, ["pattern_id", "metric", *_METHOD_KEYS]) if comps is not None else {}
    nan3 = (float("nan"), float("nan"), 0)
    body: list[list[Cell]] = []
    body_keys: list[list[Key | None]] = []
    for pid, _, _ in ps.patterns:
        cells: list[Cell] = []
        ks: list[Key | None] = []
        for met in ps.metrics:
            group = [_cell(*stat.get((pid, met, m, v), nan3)[:2], met) for _, m, v in ps.methods]
            cells += _bold_best(group, met)
            ks += [gkeys.get((pid, met, m, v)) for _, m, v in ps.methods]
        body.append(cells)
        body_keys.append(ks)
    body, tests = _mark_tied(body, body_keys, comps)
    rows = []
    for (pid, _, k), cells in zip(ps.patterns, body, strict=True):
        stub = tuple("●" if pid >> i & 1 else "○" for i in range(len(ps.modalities)))
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
        f"{_metrics_note(ps.metrics)} per missing pattern. {_describe_setting(ps.setting)}. "
        "Rows: observed (●) / missing (○) modalities; "
        f"{_scale_note(ps.metrics)}, {_seed_note(n_seeds, ps.setting)}; best per row in bold{_test_note(tests)}; "
        "Average = mean over the patterns within each seed, then over seeds."
    )
    return Table(name, caption, ps.modalities, tuple(groups), tuple(rows), stub_align="c")


def _metrics_note(metrics: Sequence[str]) -> str:
    """``Accuracy (%) and MAE``: display names, ``(%)`` where the values are shown ×100."""
    names = [display_name(m) + (" (%)" if metric_scale(m) == 100.0 else "") for m in metrics]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


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


def _rate_table(rs: _RateSlice, name: str, comps: Comparisons | None = None) -> Table:
    curves = _rate_curve(rs)
    rates = sorted({float(r) for r in rs.raw[rs.rate_column]})
    gkeys = _keys(rs.raw, [rs.rate_column, *_METHOD_KEYS]) if comps is not None else {}
    body: list[list[Cell]] = []
    body_keys: list[list[Key | None]] = []
    for r in rates:
        group = []
        for lbl, _, _ in rs.methods:
            c = curves[lbl]
            hit = c.loc[c["rate"] == r]
            mean, std = (_float(hit["mean"].iloc[0]), _float(hit["std"].iloc[0])) if len(hit) else (np.nan, np.nan)
            group.append(_cell(mean, std, rs.metric))
        body.append(_bold_best(group, rs.metric))
        body_keys.append([gkeys.get((r, m, v)) for _, m, v in rs.methods])
    body, tests = _mark_tied(body, body_keys, comps)
    rows = [Row((f"{r:g}",), tuple(cells)) for r, cells in zip(rates, body, strict=True)]
    axis = "train missing rate" if rs.rate_column == "train_missing_rate" else "eval missing rate"
    n_seeds = sorted({int(n) for c in curves.values() for n in c["n_seeds"]})
    caption = (
        f"{_metrics_note([rs.metric])} on {'all test samples' if rs.pattern == ALL else 'pattern ' + rs.pattern} "
        f"by {axis}. {_describe_setting(rs.setting)}; "
        f"{_scale_note([rs.metric])}, {_seed_note(n_seeds, rs.setting)}; best per row in bold{_test_note(tests)}."
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


def _pattern_tables(slices: list[_PatternSlice], comps: Comparisons | None = None) -> list[Table]:
    names = _unique_names([(f"patterns_{_slug(ps.setting)}", ps.setting) for ps in slices])
    return [_pattern_table(ps, n, comps) for ps, n in zip(slices, names, strict=True)]


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


def _rate_tables(slices: list[_RateSlice], comps: Comparisons | None = None) -> list[Table]:
    names = _unique_names([(_rate_name(rs), rs.setting) for rs in slices])
    return [_rate_table(rs, n, comps) for rs, n in zip(slices, names, strict=True)]


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
