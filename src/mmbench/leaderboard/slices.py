"""Slicing raw rows into the settings of tables and plots (pattern slices, rate slices) and their statistics."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.columns import (
    _METHOD_KEYS,
    _PATTERN_KEYS,
    _RATE_COLUMN,
    _RATE_KEYS,
    ALL,
    GROUP_COLUMNS,
    RateAxis,
)
from mmbench.leaderboard.labels import _isblank, _method_label, display_name, modalities_from_patterns
from mmbench.leaderboard.read import _ensure_raw

log = logging.getLogger(__name__)


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


def _pct(r: object) -> str:
    return f"{float(str(r)) * 100:g} %"


def _describe_setting(setting: dict[str, Any]) -> str:
    """A human caption of a setting: ``AV-MNIST (lite); trained with 30 % of each modality missing (...)``."""
    parts = []
    if setting.get("source") == "published":
        parts.append(f"Published: {setting.get('source_table', '')} (see baselines/README.md)")
    ds = display_name(str(setting.get("dataset", "")))
    if not _isblank(setting.get("dataset_variant")):
        ds += f" ({setting['dataset_variant']})"
    parts.append(ds)
    regime = "" if _isblank(setting.get("training_regime")) else str(setting["training_regime"])
    spec = "" if _isblank(setting.get("train_missing")) else str(setting["train_missing"])
    if regime == "full":
        parts.append("trained on complete data")
    elif regime == "dedicated":
        parts.append(f"one model per pattern (dedicated, {spec})" if spec else "one model per pattern (dedicated)")
    elif not _isblank(setting.get("train_missing_rate")):
        parts.append(
            f"trained with {_pct(setting['train_missing_rate'])} of each modality missing"
            + (f" ({spec})" if spec else "")
        )
    elif regime == "non-dedicated":
        parts.append(f"trained with missing modalities ({spec})" if spec else "trained with missing modalities")
    elif spec or regime:
        parts.append(f"trained {regime} {spec}".strip())
    protocol = "" if _isblank(setting.get("eval_protocol")) else str(setting["eval_protocol"])
    if protocol == "all_patterns":
        parts.append("tested under every missing pattern")
    elif protocol:
        parts.append(f"tested with {protocol}")
    elif not _isblank(setting.get("eval_missing_rate")):
        parts.append(f"tested with {_pct(setting['eval_missing_rate'])} missing")
    if not _isblank(setting.get("ckpt_selection")) and setting["ckpt_selection"] != "last":
        parts.append(f"checkpoint {setting['ckpt_selection']}")
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
        (_method_label(display_name(str(m)), v) if several[m] > 1 else display_name(str(m)), str(m), str(v))
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
