"""Figures: metric-vs-rate curves and per-pattern heat maps."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.columns import _METHOD_KEYS, ALL, RateAxis
from mmbench.leaderboard.labels import lower_is_better, metric_scale
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
