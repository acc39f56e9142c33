"""Robustness scalar: normalised area under the metric-vs-missing-rate curve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.columns import ALL, GROUP_COLUMNS, RateAxis
from mmbench.leaderboard.slices import _rate_curve, _rate_slices, _RateSlice, _seed_key


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
