"""Figures: metric-vs-rate curves and per-pattern heat maps."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.aggregation import aggregate
from mmbench.leaderboard.columns import _METHOD_KEYS, ALL, RateAxis
from mmbench.leaderboard.comparison import group_key
from mmbench.leaderboard.labels import display_name, lower_is_better, metric_scale
from mmbench.leaderboard.read import _ensure_raw
from mmbench.leaderboard.slices import (
    _describe_setting,
    _pattern_slices,
    _PatternSlice,
    _rate_curve,
    _rate_name,
    _rate_slices,
    _RateSlice,
    _slug,
    _stats_by,
    _unique_names,
)

DPI = 300
"""Resolution of the PNG figures (the PDF beside each is vector)."""
_RC: dict[str, Any] = {
    "font.size": 8,
    "axes.labelsize": 8,
    "axes.titlesize": 7,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "pdf.fonttype": 42,
}
MIN_SPAN = {100.0: 10.0, 1.0: 0.1}
"""Smallest y-axis span per display scale (10 points for percentages), so that seed noise does not fill the plot."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg canvas: no pyplot, no global backend switch
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_dir: Path, name: str) -> list[Path]:
    """``out_dir/<name>.pdf`` and ``.png`` (300 dpi)."""
    import matplotlib

    paths = []
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        for ext in ("pdf", "png"):
            path = out_dir / f"{name}.{ext}"
            fig.savefig(path, dpi=DPI, metadata={"CreationDate": None} if ext == "pdf" else None)
            paths.append(path)
    return paths


def _honest_ylim(ax: Any, lo: float, hi: float, scale: float) -> None:
    """Widen the y range to at least ``MIN_SPAN`` (centred on the data) and never past [0, 100] for percentages."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return
    span = max(hi - lo, MIN_SPAN.get(scale, 0.0))
    mid = (lo + hi) / 2
    low, high = mid - span / 2 * 1.1, mid + span / 2 * 1.1
    if scale == 100.0:
        low, high = max(low, 0.0), min(high, 100.0)
    ax.set_ylim(low, high)


def _ci_lookup(agg: pd.DataFrame | None) -> dict[tuple[Any, ...], tuple[float, float]]:
    if agg is None or agg.empty:
        return {}
    return {group_key(r): (float(r["ci95_low"]), float(r["ci95_high"])) for _, r in agg.iterrows()}


def plot_rates(
    raw: pd.DataFrame, out_dir: Path, metric: str | None = None, pattern: str = ALL, rate: RateAxis = "auto"
) -> list[Path]:
    """PDF + PNG per ``rate_tables`` slice: metric vs missing rate, one line per method, 95 % interval bands.

    The band is the aggregate's ``ci95`` interval (``aggregate``: t-interval over seeds, or the bootstrap); x ticks
    sit at the measured rates.

    Returns:
        The files written, ``out_dir/<table name>.{pdf,png}``.
    """
    raw_ = _ensure_raw(raw)
    return _plot_rates(_rate_slices(raw_, metric, pattern, rate), out_dir, aggregate(raw_))


def _plot_rates(slices: list[_RateSlice], out_dir: Path, agg: pd.DataFrame | None = None) -> list[Path]:
    import matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    names = _unique_names([(_rate_name(rs), rs.setting) for rs in slices])
    cis = _ci_lookup(agg)
    paths = []
    for rs, name in zip(slices, names, strict=True):
        scale = metric_scale(rs.metric)
        with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
            fig = _figure(3.5, 2.6)
            ax = fig.add_subplot()
            first = rs.raw.drop_duplicates([rs.rate_column, *_METHOD_KEYS])
            keys = {
                (float(r[rs.rate_column]), r["method"], str(r["method_variant"])): group_key(r)
                for _, r in first.iterrows()
            }
            lows, highs = [], []
            rates: set[float] = set()
            for (lbl, method, variant), c in zip(rs.methods, _rate_curve(rs).values(), strict=True):
                c = c.dropna(subset=["mean"])
                x, m = c["rate"].to_numpy(float), c["mean"].to_numpy(float) * scale
                rates |= set(x.tolist())
                band = np.array([cis.get(keys.get((r, method, variant), ()), (np.nan, np.nan)) for r in x]) * scale
                if not len(band):
                    band = np.full((len(x), 2), np.nan)
                (line,) = ax.plot(x, m, marker="o", markersize=3, linewidth=1.2, label=lbl)
                ok = np.isfinite(band).all(axis=1)
                if ok.any():
                    ax.fill_between(x[ok], band[ok, 0], band[ok, 1], color=line.get_color(), alpha=0.2, linewidth=0)
                lows += [np.nanmin(np.concatenate([m, band[ok, 0]]))] if len(m) else []
                highs += [np.nanmax(np.concatenate([m, band[ok, 1]]))] if len(m) else []
            axis = "train" if rs.rate_column == "train_missing_rate" else "eval"
            ax.set_xticks(sorted(rates), [f"{r:g}" for r in sorted(rates)])
            ax.set_xlabel(f"{axis} missing rate")
            unit = " (%)" if scale == 100.0 else ""
            where = "" if rs.pattern == ALL else f", {rs.pattern}"
            ax.set_ylabel(f"{display_name(rs.metric)}{unit}{where}")
            _honest_ylim(ax, min(lows, default=np.nan), max(highs, default=np.nan), scale)
            ax.set_title("\n".join(textwrap.wrap(_describe_setting(rs.setting), 60)))
            ax.grid(alpha=0.3)
            ax.legend(frameon=False)
            paths += _save(fig, out_dir, name)
    return paths


def plot_observed_count(raw: pd.DataFrame, out_dir: Path, metric: str | Sequence[str] | None = None) -> list[Path]:
    """PDF + PNG per pattern setting and metric: the metric vs the number of observed modalities.

    For each method and each ``k`` the value is the mean over the patterns with ``k`` observed modalities of the
    mean over seeds; the error bar is the std over seeds of the per-seed mean over those patterns (none with one
    seed). With ``M`` modalities there are ``C(M, k)`` patterns at ``k`` (M = 6: 6, 15, 20, 15, 6, 1 of 63).

    Returns:
        The files written, ``out_dir/observed_<metric>_<setting slug>.{pdf,png}``.
    """
    return _plot_observed_count(_pattern_slices(_ensure_raw(raw), metric), out_dir)


def observed_count_curves(ps: _PatternSlice, metric: str) -> pd.DataFrame:
    """Rows ``label, k, n_patterns, mean, std, n_seeds`` of ``plot_observed_count`` for one slice and metric."""
    sub = ps.raw.loc[ps.raw["metric"] == metric].copy()
    sub["k"] = [bin(int(str(pid))).count("1") for pid in sub["pattern_id"]]
    sub["_seed"] = sub["seed"].astype(str) + "/" + sub["mask_seed"].astype(str)
    rows = []
    for lbl, method, variant in ps.methods:
        g = sub.loc[(sub["method"] == method) & (sub["method_variant"].astype(str) == variant)]
        for k, gk in g.groupby("k", sort=True):
            per_seed = gk.groupby("_seed")["value"].mean()
            cell = gk.groupby("pattern_id")["value"].mean()
            rows.append(
                {
                    "label": lbl,
                    "k": int(str(k)),
                    "n_patterns": int(cell.size),
                    "mean": float(cell.mean()),
                    "std": float(per_seed.std(ddof=1)) if len(per_seed) >= 2 else np.nan,
                    "n_seeds": len(per_seed),
                }
            )
    return pd.DataFrame(rows, columns=["label", "k", "n_patterns", "mean", "std", "n_seeds"])


def _plot_observed_count(slices: list[_PatternSlice], out_dir: Path) -> list[Path]:
    import matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    names = _unique_names([(_slug(ps.setting), ps.setting) for ps in slices])
    paths = []
    for ps, name in zip(slices, names, strict=True):
        for met in ps.metrics:
            curves = observed_count_curves(ps, met)
            if curves["k"].nunique() < 2:
                continue
            scale = metric_scale(met)
            with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
                fig = _figure(3.5, 2.6)
                ax = fig.add_subplot()
                for lbl, c in curves.groupby("label", sort=False):
                    m, s = c["mean"].to_numpy(float) * scale, c["std"].to_numpy(float) * scale
                    ax.errorbar(
                        c["k"],
                        m,
                        yerr=np.where(np.isfinite(s), s, 0),
                        marker="o",
                        markersize=3,
                        capsize=2,
                        linewidth=1.2,
                        label=str(lbl),
                    )
                ks = sorted(curves["k"].unique())
                counts = curves.drop_duplicates("k").set_index("k")["n_patterns"]
                ax.set_xticks(ks, [f"{k}\n({counts[k]})" for k in ks])
                ax.set_xlabel("observed modalities (patterns)")
                ax.set_ylabel(display_name(met) + (" (%)" if scale == 100.0 else ""))
                lo = float(np.nanmin(curves["mean"] * scale - curves["std"].fillna(0) * scale))
                hi = float(np.nanmax(curves["mean"] * scale + curves["std"].fillna(0) * scale))
                _honest_ylim(ax, lo, hi, scale)
                ax.set_title("\n".join(textwrap.wrap(_describe_setting(ps.setting), 60)))
                ax.grid(alpha=0.3)
                ax.legend(frameon=False)
                paths += _save(fig, out_dir, f"observed_{re.sub(r'[^a-z0-9.]+', '-', met.lower())}_{name}")
    return paths


def plot_pattern_heatmaps(raw: pd.DataFrame, out_dir: Path, metric: str | Sequence[str] | None = None) -> list[Path]:
    """PDF + PNG per ``pattern_tables`` setting and metric: methods × patterns heat map of the mean, annotated.

    Returns:
        The files written, ``out_dir/heatmap_<metric>_<setting slug>.{pdf,png}``.
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
            fig.colorbar(im, ax=ax, label=display_name(met) + (" (%)" if scale == 100.0 else ""))
            ax.set_title("\n".join(textwrap.wrap(_describe_setting(ps.setting), 70)), fontsize=7)
            paths += _save(fig, out_dir, f"heatmap_{re.sub(r'[^a-z0-9.]+', '-', met.lower())}_{name}")
    return paths
