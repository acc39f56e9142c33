"""Paired comparisons of the methods of each leaderboard row, against the row's best (and a baseline method).

A *row* is a group of ``GROUP_COLUMNS`` without the method columns: the same dataset, setting, protocol, pattern
and metric, where every method was evaluated on the same samples under the same masks. Replicate ``(seed,
mask_seed)`` of one method is paired with the same replicate of the other; with per-sample predictions of every
paired replicate the test runs over samples, otherwise over the paired replicate values (``stats``).
Only reproduced rows are compared; published numbers are never tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.columns import _METHOD_KEYS, GROUP_COLUMNS, REPLICATE_KEY
from mmbench.leaderboard.labels import _isblank, lower_is_better
from mmbench.leaderboard.read import _ensure_raw
from mmbench.leaderboard.samples import PredictionStore
from mmbench.leaderboard.stats import PairedResult, SampleMetric, holm, paired_comparison, probability_of_improvement

__all__ = ["COMPARISON_COLUMNS", "Comparisons", "compare", "group_key"]

ALPHA = 0.05
MAX_PERM = 20000
"""Most permutation resamples per comparison (families beyond ``MAX_PERM·α/2`` tests cannot reach α)."""
COMPARISON_COLUMNS: tuple[str, ...] = (
    *GROUP_COLUMNS,
    "reference",
    "reference_method",
    "reference_variant",
    "mean_diff",
    "diff_ci95_low",
    "diff_ci95_high",
    "p_value",
    "p_holm",
    "test",
    "n_pairs",
    "n_samples",
    "prob_improvement",
    "significantly_worse",
)
"""Columns of ``comparisons.csv``: the method's group, the reference (``best`` or ``baseline``), the difference
``method − reference`` in the metric's units, its paired bootstrap 95 % CI, the permutation p-value, Holm's adjustment
over the family (the setting: every pattern and metric of one table), the test used, the paired replicates and
samples, P(method > reference) over replicates (error metrics: P(lower)), and whether the method is significantly
worse than the reference (``p_holm < 0.05`` in the worse direction)."""


def _norm(v: Any) -> Any:
    if _isblank(v):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def group_key(row: Any) -> tuple[Any, ...]:
    """Hashable key of a raw/aggregate row's group (blank cells → ``None``)."""
    return tuple(_norm(row[c]) for c in GROUP_COLUMNS)


@dataclass
class Comparisons:
    """Comparisons against each row's best, keyed by ``group_key`` of the compared method's group.

    Attributes:
        frame: ``COMPARISON_COLUMNS`` rows (best and baseline references).
        vs_best: ``group_key`` → the comparison with its row's best (absent for the best itself).
        best: ``group_key`` of the best method of each row.
    """

    frame: pd.DataFrame
    vs_best: dict[tuple[Any, ...], PairedResult]
    best: set[tuple[Any, ...]]

    def p_values(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], float]:
        """Holm-adjusted p-values of the comparisons vs best of ``keys`` (one family)."""
        ks = [k for k in keys if k in self.vs_best]
        adj = holm([self.vs_best[k].p_value for k in ks])
        return dict(zip(ks, adj.tolist(), strict=True))


def _replicates(sub: pd.DataFrame) -> dict[tuple[Any, ...], pd.Series]:
    return {tuple(_norm(r[c]) for c in REPLICATE_KEY): r for _, r in sub.iterrows() if np.isfinite(r["value"])}


def _compare_pair(
    a: dict[tuple[Any, ...], pd.Series],
    b: dict[tuple[Any, ...], pd.Series],
    store: PredictionStore | None,
    n_perm: int,
    n_boot: int,
    rng: np.random.Generator,
) -> PairedResult:
    common = sorted(set(a) & set(b), key=str)
    if store is not None and common:
        ma: list[SampleMetric] = []
        mb: list[SampleMetric] = []
        ids: list[np.ndarray] = []
        for k in common:
            for rep, out in ((a[k], ma), (b[k], mb)):
                got = store.get(
                    str(rep["results_file"]), str(rep["eval_protocol"]), int(rep["pattern_id"]), str(rep["metric"])
                )
                if got is not None:
                    out.append(got[1])
                    ids.append(got[0])
        if len(ma) == len(mb) == len(common) and all(np.array_equal(i, ids[0]) for i in ids):
            return paired_comparison(ma, mb, n_resamples=n_perm, n_boot=n_boot, seed=rng)
    return paired_comparison(
        [float(a[k]["value"]) for k in common],
        [float(b[k]["value"]) for k in common],
        n_resamples=n_perm,
        n_boot=n_boot,
        seed=rng,
    )


def compare(
    raw: pd.DataFrame,
    store: PredictionStore | None = None,
    baseline: str | None = None,
    n_perm: int = 1999,
    n_boot: int = 1000,
    seed: int = 0,
) -> Comparisons:
    """Every method of every reproduced row against the row's best, and against ``baseline`` when given.

    The best is the highest mean over replicates (the lowest for error metrics, ``lower_is_better``). A method is
    *significantly worse* than the best when the Holm-adjusted p-value over its family (the setting: the row keys
    except pattern and metric) is below 0.05 and the difference points the worse way.

    Args:
        raw: rows from ``collect`` (published rows are ignored).
        store: per-sample predictions; ``None`` = tests over replicates only.
        baseline: also compare every method with this method (registry name).
        n_perm: permutation resamples, at least; raised per family to ``2·m/α`` (at most ``MAX_PERM``) so that a
            Holm-adjusted Monte-Carlo p-value (never below ``1/(R+1)``) can fall below α with ``m`` tests.
        n_boot: bootstrap resamples.
        seed: RNG seed.
    """
    raw = _ensure_raw(raw)
    rep = raw.loc[raw["source"] == "reproduced"].copy()
    rep["method_variant"] = rep["method_variant"].fillna("").astype(str)
    rng = np.random.default_rng(seed)
    row_keys = [c for c in GROUP_COLUMNS if c not in _METHOD_KEYS]
    records: list[dict[str, Any]] = []
    vs_best: dict[tuple[Any, ...], PairedResult] = {}
    best_keys: set[tuple[Any, ...]] = set()
    if rep.empty:
        return Comparisons(pd.DataFrame(columns=list(COMPARISON_COLUMNS)), vs_best, best_keys)
    family_keys = [c for c in row_keys if c not in ("pattern_id", "pattern", "n_observed", "metric")]
    rows = list(rep.groupby(row_keys, dropna=False, sort=True))

    def family(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(_norm(k) for k, c in zip(key, row_keys, strict=True) if c in family_keys)

    tests: dict[tuple[Any, ...], int] = {}
    for key, row in rows:
        n_m = len(row[list(_METHOD_KEYS)].drop_duplicates())
        tests[family(key)] = tests.get(family(key), 0) + max(n_m - 1, 0) * (2 if baseline is not None else 1)
    for key, row in rows:
        perms = max(n_perm, min(MAX_PERM, math.ceil(2 * tests[family(key)] / ALPHA)))
        methods = {mv: sub for mv, sub in row.groupby(list(_METHOD_KEYS), sort=True)}
        if len(methods) < 2:
            continue
        lower = lower_is_better(str(row["metric"].iloc[0]))
        means = {mv: float(sub["value"].mean()) for mv, sub in methods.items()}
        finite = {mv: m for mv, m in means.items() if np.isfinite(m)}
        if not finite:
            continue
        best = (min if lower else max)(finite, key=lambda mv: finite[mv])
        refs = [("best", best)]
        if baseline is not None:
            refs += [("baseline", mv) for mv in methods if mv[0] == baseline]
        reps = {mv: _replicates(sub) for mv, sub in methods.items()}
        best_keys.add(group_key(methods[best].iloc[0]))
        for ref_name, ref in refs:
            for mv, sub in methods.items():
                if mv == ref:
                    continue
                res = _compare_pair(reps[mv], reps[ref], store, perms, n_boot, rng)
                poi = (
                    probability_of_improvement(
                        [float(reps[mv][k]["value"]) for k in reps[mv]],
                        [float(reps[ref][k]["value"]) for k in reps[ref]],
                        lower_is_better=lower,
                    )
                    if min(len(reps[mv]), len(reps[ref])) >= 2
                    else np.nan
                )
                key = group_key(sub.iloc[0])
                if ref_name == "best":
                    vs_best[key] = res
                rec = {c: sub.iloc[0][c] for c in GROUP_COLUMNS}
                rec.update(
                    reference=ref_name,
                    reference_method=ref[0],
                    reference_variant=ref[1],
                    mean_diff=res.diff,
                    diff_ci95_low=res.ci_low,
                    diff_ci95_high=res.ci_high,
                    p_value=res.p_value,
                    test=res.test,
                    n_pairs=res.n_pairs,
                    n_samples=res.n_samples,
                    prob_improvement=poi,
                )
                records.append(rec)
    frame = pd.DataFrame.from_records(
        records, columns=[c for c in COMPARISON_COLUMNS if c not in ("p_holm", "significantly_worse")]
    )
    frame["p_holm"] = np.nan
    if not frame.empty:
        for _, idx in frame.groupby([*family_keys, "reference"], dropna=False).groups.items():
            frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p_value"].to_numpy(float))
    lower_rows = np.array([lower_is_better(str(m)) for m in frame["metric"]], dtype=bool)
    diff = frame["mean_diff"].to_numpy(float)
    worse = np.where(lower_rows, diff > 0, diff < 0)
    frame["significantly_worse"] = (frame["p_holm"].to_numpy(float) < ALPHA) & worse
    return Comparisons(frame[list(COMPARISON_COLUMNS)], vs_best, best_keys)
