"""Tables of the paper reproductions from sweep run dirs, beside the published numbers in ``baselines/``.

    python experiments/paper/reproduce.py table3 runs/paper-table3 runs/paper-table3-lowerbound \
        --out baselines/reproduced/shaspec2023_table3_avmnist.md
    python experiments/paper/reproduce.py brats-synth runs/paper-brats-synth \
        --out baselines/reproduced/brats_synth_et_t1ce.md

``table3``: image-only test accuracy (``pattern(image)`` protocol, ``image`` row) of ShaSpec at each audio rate and of
the image-only lower bound with the same seeds; mean ± sample std over seeds, and the paired (by seed) difference
ShaSpec − lower bound with its two-sided 95 % Student-t interval (``scipy.stats``). Published: ShaSpec Table 3.

``brats-synth``: per method, ET Dice averaged over the 8 patterns *with* T1c and over the 7 *without* (the
``all_patterns`` protocol), per seed, then mean ± std over seeds; the per-case spread over the test cases (each
case's ET Dice averaged over the group's patterns and the seeds, from ``predictions.parquet``: median [IQR] and
mean ± std over cases); and ShaSpec − every other method paired by seed, with T1c, without, and over all 15
patterns, with two-sided 95 % t-intervals (``mmbench.leaderboard.stats.t_interval``). The published ShaSpec Table 1
averages of the same two groups are printed above it (real BraTS2018, online validation: not comparable in level,
only in trend).

Only cells with a ``COMPLETE`` marker are read (``results.csv`` exists only for validated cells), so a sweep that is
still running, or resumed, gives a table of what has finished; the table says how many seeds each entry has.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

BASELINES = Path(__file__).resolve().parents[2] / "baselines"
AUDIO = re.compile(r"audio=([0-9.]+)")


def load(dirs: list[str]) -> pd.DataFrame:
    """Every ``results.csv`` below the given sweep dirs (one frame; empty if none)."""
    frames = [pd.read_csv(p) for d in dirs for p in sorted(Path(d).rglob("results.csv"))]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _ci(diff: np.ndarray) -> tuple[float, float, float]:
    """Mean and two-sided 95 % t-interval of paired differences (NaN bounds for fewer than 2)."""
    m = float(diff.mean())
    if diff.size < 2:
        return m, float("nan"), float("nan")
    lo, hi = stats.t.interval(0.95, diff.size - 1, loc=m, scale=stats.sem(diff))
    return m, float(lo), float(hi)


def _ms(values: pd.Series) -> str:
    v = values.to_numpy(dtype=float) * 100
    sd = f" ± {v.std(ddof=1):.2f}" if v.size > 1 else ""
    return f"{v.mean():.2f}{sd} (n={v.size})"


def table3(dirs: list[str]) -> str:
    """Markdown: Table 3 reproduction (see the module docstring)."""
    df = load(dirs)
    if df.empty:
        raise SystemExit(f"no results.csv under {dirs}")
    df = df[(df["eval_protocol"] == "pattern(image)") & (df["pattern"] == "image") & (df["metric"] == "acc")].copy()
    text = df["dataset_variant"].astype(str) + ";" + df["train_missing"].astype(str)
    df["audio"] = text.str.extract(AUDIO)[0].astype(float)
    sha = df[df["method"] == "shaspec"]
    low = df[df["method"] != "shaspec"].groupby("seed")["value"].mean()  # image-only: one value per seed
    low_name = ", ".join(sorted(df.loc[df["method"] != "shaspec", "method"].unique())) or "none"
    pub = pd.read_csv(BASELINES / "shaspec2023_table3_avmnist.csv")
    pub["audio"] = pub["train_missing"].str.extract(AUDIO)[0].astype(float)
    lines = [
        "| audio | ShaSpec (paper) | LowerB (paper) | paper diff | ShaSpec (here) | lower bound (here) | "
        "paired diff (here), 95 % CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for audio, g in sha.groupby("audio"):
        p = pub[np.isclose(pub["audio"], audio)]
        ps = float(p.loc[p["method"] == "shaspec", "value"].iloc[0]) * 100
        pl = float(p.loc[p["method"] == "lower_bound", "value"].iloc[0]) * 100
        per_seed = g.groupby("seed")["value"].mean()
        seeds = per_seed.index.intersection(low.index)
        diff = (per_seed.loc[seeds] - low.loc[seeds]).to_numpy(dtype=float) * 100
        m, lo, hi = _ci(diff) if diff.size else (float("nan"),) * 3
        lines.append(
            f"| {audio:.0%} | {ps:.2f} | {pl:.2f} | {ps - pl:+.2f} | {_ms(per_seed)} | "
            f"{_ms(low.loc[seeds]) if seeds.size else '–'} | {m:+.2f} [{lo:+.2f}, {hi:+.2f}] (n={diff.size}) |"
        )
    epochs = sorted(set(df["epoch"].dropna().astype(int) + 1)) if "epoch" in df else []
    lines += ["", f"Lower bound here: {low_name}; epochs trained: {epochs}; accuracy in %, image-only test."]
    return "\n".join(lines)


def _t1ce_split(patterns: pd.Series) -> pd.Series:
    return patterns.astype(str).str.split("+").apply(lambda mods: "t1ce" in mods)


def load_cases(dirs: list[str]) -> pd.DataFrame:
    """Per-case ET Dice of every validated cell: ``predictions.parquet`` beside each ``results.csv``.

    Returns:
        Columns ``method, seed, sample_id, pattern, t1ce, dice_et`` (``all_patterns`` protocol); empty if no cell
        has predictions.
    """
    from mmbench.leaderboard.samples import read_predictions

    frames = []
    for d in dirs:
        for res in sorted(Path(d).rglob("results.csv")):
            pred = res.with_name("predictions.parquet")
            if not pred.is_file():
                continue
            cell = pd.read_csv(res, usecols=["method", "seed"]).iloc[0]
            rows, _ = read_predictions(pred, skip=("scores",))
            rows = rows[rows["eval_protocol"] == "all_patterns"]
            frames.append(
                pd.DataFrame(
                    {
                        "method": cell["method"],
                        "seed": int(cell["seed"]),
                        "sample_id": rows["sample_id"].astype(str).to_numpy(),
                        "pattern": rows["pattern"].astype(str).to_numpy(),
                        "dice_et": rows["dice_et"].to_numpy(dtype=float),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["method", "seed", "sample_id", "pattern", "t1ce", "dice_et"])
    out = pd.concat(frames, ignore_index=True)
    out["t1ce"] = _t1ce_split(out["pattern"])
    return out


def _spread(values: np.ndarray) -> str:
    """``median [Q1, Q3]; mean ± std`` of per-case values in %."""
    v = values * 100
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    sd = f" ± {v.std(ddof=1):.1f}" if v.size > 1 else ""
    return f"{med:.1f} [{q1:.1f}, {q3:.1f}]; {v.mean():.1f}{sd}"


def brats_synth(dirs: list[str], reference: str = "shaspec") -> str:
    """Markdown: ET Dice with vs without T1c per method, per-case spread, ShaSpec vs each method (module docstring)."""
    from mmbench.leaderboard.stats import t_interval

    df = load(dirs)
    if df.empty:
        raise SystemExit(f"no results.csv under {dirs}")
    df = df[(df["eval_protocol"] == "all_patterns") & (df["metric"] == "dice_et") & (df["pattern"] != "all")].copy()
    df["t1ce"] = _t1ce_split(df["pattern"])
    groups = {True: "with", False: "without"}
    per_seed = df.groupby(["method", "seed", "t1ce"])["value"].mean().unstack("t1ce").rename(columns=groups) * 100
    per_seed["all"] = df.groupby(["method", "seed"])["value"].mean() * 100  # the 15 patterns, equally weighted
    cases = load_cases(dirs)
    # per case: mean over the patterns of the group, then over the seeds
    per_case = cases.groupby(["method", "sample_id", "t1ce"])["dice_et"].mean().unstack("t1ce").rename(columns=groups)
    pub = pd.read_csv(BASELINES / "shaspec2023_table1_brats2018.csv")
    pub = pub[(pub["method"] == "shaspec") & (pub["metric"] == "dice_et")]
    pub_t1ce = _t1ce_split(pub["pattern"])
    with_pub, without_pub = pub.loc[pub_t1ce, "value"].mean() * 100, pub.loc[~pub_t1ce, "value"].mean() * 100
    variants = ", ".join(sorted(df["dataset_variant"].astype(str).unique())) if "dataset_variant" in df else "?"
    split = ", ".join(sorted(df["split_hash"].astype(str).unique())) if "split_hash" in df else "?"
    epochs = sorted(set(df["epoch"].dropna().astype(int) + 1)) if "epoch" in df else []
    lines = [
        f"Data: {variants}; split {split}; epochs trained: {epochs}. ET Dice in %, `all_patterns` protocol: "
        "mean over the 8 patterns with T1c and over the 7 without.",
        "",
        f"Published ShaSpec (Table 1, BraTS2018 online validation): ET with T1c {with_pub:.2f}, "
        f"without {without_pub:.2f} (real data: compare the trend, not the level).",
        "",
        "| method | ET with T1c (seeds) | ET without T1c (seeds) | with − without | per case, with T1c: "
        "median [IQR]; mean ± std | per case, without T1c | seeds | cases |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sd = lambda s: f" ± {s.std(ddof=1):.2f}" if s.size > 1 else ""  # noqa: E731
    for method, g in per_seed.groupby(level="method"):
        empty = pd.Series(dtype=float)
        w, wo = g.get("with", empty).dropna(), g.get("without", empty).dropna()
        d = (g["with"] - g["without"]).dropna() if "with" in g and "without" in g else empty
        pc = per_case.loc[method] if method in per_case.index.get_level_values(0) else None
        pcw = _spread(pc["with"].dropna().to_numpy()) if pc is not None and "with" in pc else "–"
        pcwo = _spread(pc["without"].dropna().to_numpy()) if pc is not None and "without" in pc else "–"
        n_cases = len(pc) if pc is not None else 0
        lines.append(
            f"| {method} | {w.mean():.2f}{sd(w)} | {wo.mean():.2f}{sd(wo)} | {d.mean():+.2f}{sd(d)} | {pcw} | "
            f"{pcwo} | {g.shape[0]} | {n_cases} |"
        )
    if reference in per_seed.index.get_level_values("method"):
        ref = per_seed.loc[reference]
        lines += [
            "",
            f"{reference} − method, paired by seed (mean and two-sided 95 % Student-t interval, "
            "`mmbench.leaderboard.stats.t_interval`; 'beats' = interval above 0, 'loses' = below 0):",
            "",
            "| method | ET with T1c | ET without T1c | ET, all 15 patterns | verdict (all 15) |",
            "|---|---|---|---|---|",
        ]
        for method, g in per_seed.groupby(level="method"):
            if method == reference:
                continue
            other = g.droplevel("method")
            seeds = ref.index.intersection(other.index)
            cells = []
            verdict = "–"
            for col in ("with", "without", "all"):
                if col not in ref or col not in other or seeds.empty:
                    cells.append("–")
                    continue
                m, _, lo, hi = t_interval((ref.loc[seeds, col] - other.loc[seeds, col]).to_numpy(dtype=float))
                ci = f"[{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) else "[no interval: 1 seed]"
                cells.append(f"{m:+.2f} {ci} (n={seeds.size})")
                if col == "all":
                    verdict = "beats" if lo > 0 else "loses" if hi < 0 else "not distinguishable"
            lines.append(f"| {method} | {' | '.join(cells)} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=["table3", "brats-synth"])
    p.add_argument("dirs", nargs="+", help="sweep output dirs (runs/<sweep name>)")
    p.add_argument("--out", default=None, help="also write the Markdown table to this file")
    a = p.parse_args(argv)
    text = table3(a.dirs) if a.table == "table3" else brats_synth(a.dirs)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
