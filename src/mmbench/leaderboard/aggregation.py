"""Aggregation over replicates: one row per group of ``GROUP_COLUMNS`` with its statistics."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mmbench.leaderboard.columns import AGG_COLUMNS, GROUP_COLUMNS
from mmbench.leaderboard.labels import _isblank
from mmbench.leaderboard.read import _ensure_raw
from mmbench.leaderboard.samples import PredictionStore
from mmbench.leaderboard.stats import two_way_bootstrap_ci

log = logging.getLogger(__name__)


def _joined_per_group(codes: np.ndarray, values: Iterable[object], n_groups: int, as_int: bool) -> list[str]:
    """``;``-joined sorted distinct non-blank values of each group (``codes`` = group number of each row)."""
    sets: list[set[Any]] = [set() for _ in range(n_groups)]
    for c, v in zip(codes, values, strict=True):
        if not _isblank(v):
            sets[c].add(int(str(v)) if as_int else str(v))
    return [";".join(str(v) for v in sorted(x)) for x in sets]


def aggregate(
    raw: pd.DataFrame, store: PredictionStore | None = None, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Mean, spread and a 95 % interval over the replicates of every group of ``GROUP_COLUMNS``.

    Only numeric values enter the statistics (a blank/NaN ``value`` is left out and not counted in ``n_seeds``).
    Published rows (``source="published"``) form their own groups and never mix with reproduced ones.

    The interval ``ci95_*`` is of the kind ``ci_kind`` (``columns.CI_KINDS``): with per-sample predictions of every
    replicate (``store``), a percentile bootstrap over test samples (``bootstrap_samples``, one replicate; BraTS:
    over cases) or over replicates and samples (``bootstrap_seeds_samples``, ``stats.two_way_bootstrap_ci``);
    otherwise the Student-t interval over >= 2 replicates (``t_seeds``), else ``none``. ``t95_*`` is always the
    t-interval (NaN below two replicates).

    Args:
        raw: rows from ``collect`` and/or ``load_published``.
        store: per-sample predictions of the cells (``PredictionStore``); ``None`` = seed-level statistics only.
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap.

    Returns:
        ``AGG_COLUMNS``: the group columns, then ``mean``; ``std`` (ddof=1, NaN for one seed); ``n_seeds``;
        ``sem = std/√n``; ``t95_low``/``t95_high`` = ``mean ∓ t_{0.975, n−1}·sem``; ``ci95_low``/``ci95_high``
        and ``ci_kind``; ``min``; ``max``; ``seeds`` / ``mask_seeds`` (``"0;1;2"``, replicates with a value);
        ``mask_hash`` (distinct hashes, ``;``-joined).
    """
    raw = _ensure_raw(raw)
    keys = list(GROUP_COLUMNS)
    ok = raw["value"].notna()
    work = raw.assign(_seed_ok=raw["seed"].where(ok), _mseed_ok=raw["mask_seed"].where(ok))
    grouped = work.groupby(keys, dropna=False, sort=True)
    agg = grouped["value"].agg(["mean", "std", "count", "min", "max"]).rename(columns={"count": "n_seeds"})
    codes = grouped.ngroup().to_numpy()  # group numbers follow the sorted group order of ``agg``
    agg["seeds"] = _joined_per_group(codes, work["_seed_ok"], len(agg), as_int=True)
    agg["mask_seeds"] = _joined_per_group(codes, work["_mseed_ok"], len(agg), as_int=True)
    agg["mask_hash"] = _joined_per_group(codes, work["mask_hash"], len(agg), as_int=False)
    agg = agg.reset_index()
    n = agg["n_seeds"].astype(int).to_numpy()
    std = agg["std"].to_numpy(dtype=float)
    sem = np.where(n >= 2, std / np.sqrt(np.maximum(n, 1)), np.nan)
    tq = np.where(n >= 2, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
    agg["std"] = np.where(n >= 2, std, np.nan)
    agg["sem"] = sem
    agg["t95_low"] = agg["mean"] - tq * sem
    agg["t95_high"] = agg["mean"] + tq * sem
    agg["n_seeds"] = n
    agg["ci95_low"] = agg["t95_low"]
    agg["ci95_high"] = agg["t95_high"]
    agg["ci_kind"] = np.where(n >= 2, "t_seeds", "none")
    if store is not None:
        rng = np.random.default_rng(seed)
        files = work["results_file"].to_numpy()
        reproduced = work["source"].to_numpy() == "reproduced"
        for g, rows in enumerate(_rows_per_group(codes, len(agg))):
            rows = [i for i in rows if ok.iloc[i] and reproduced[i]]
            if not rows:
                continue
            got = [
                store.get(
                    str(files[i]),
                    str(work["eval_protocol"].iloc[i]),
                    int(work["pattern_id"].iloc[i]),
                    str(work["metric"].iloc[i]),
                )
                for i in rows
            ]
            if any(x is None for x in got):
                continue
            pairs = [x for x in got if x is not None]
            shared = all(len(ids) == len(pairs[0][0]) and np.array_equal(ids, pairs[0][0]) for ids, _ in pairs)
            low, high = two_way_bootstrap_ci([m for _, m in pairs], n_boot, 0.95, rng, shared_samples=shared)
            agg.loc[g, ["ci95_low", "ci95_high"]] = [low, high]
            agg.loc[g, "ci_kind"] = "bootstrap_samples" if len(pairs) == 1 else "bootstrap_seeds_samples"
    multi = agg["mask_hash"].str.contains(";", regex=False)
    if multi.any():
        row = agg.loc[multi].iloc[0]
        log.warning(
            "%d group(s) hold replicates scored on different evaluation masks (mask seeds %s), e.g. %s/%s %s %s: "
            "mask_hash %s",
            int(multi.sum()),
            row["mask_seeds"],
            row["dataset"],
            row["method"],
            row["eval_protocol"],
            row["pattern"],
            row["mask_hash"],
        )
    return agg[list(AGG_COLUMNS)]


def _rows_per_group(codes: np.ndarray, n_groups: int) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in range(n_groups)]
    for i, c in enumerate(codes):
        out[c].append(i)
    return out
