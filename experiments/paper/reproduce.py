"""Tables of the paper reproductions from sweep run dirs, beside the published numbers in ``baselines/``.

    python experiments/paper/reproduce.py table3 runs/paper-table3 runs/paper-table3-lowerbound \
        --out baselines/reproduced/shaspec2023_table3_avmnist.md
    python experiments/paper/reproduce.py brats-synth runs/paper-brats-synth \
        --out baselines/reproduced/brats_synth_et_t1ce.md

``table3``: image-only test accuracy (``pattern(image)`` protocol, ``image`` row) of ShaSpec at each audio rate and of
the image-only lower bound with the same seeds; mean ± sample std over seeds, and the paired (by seed) difference
ShaSpec − lower bound with its two-sided 95 % Student-t interval (``scipy.stats``). Published: ShaSpec Table 3.

``brats-synth``: per method, ET Dice averaged over the 8 patterns *with* T1c and over the 7 *without* (the
``all_patterns`` protocol), per seed, then mean ± std over seeds; the published ShaSpec Table 1 averages of the
same two groups are printed beside it (real BraTS2018, online validation: not comparable in level, only in trend).

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


def brats_synth(dirs: list[str]) -> str:
    """Markdown: ET Dice with vs without T1c per method (see the module docstring)."""
    df = load(dirs)
    if df.empty:
        raise SystemExit(f"no results.csv under {dirs}")
    df = df[(df["eval_protocol"] == "all_patterns") & (df["metric"] == "dice_et") & (df["pattern"] != "all")].copy()
    df["t1ce"] = df["pattern"].astype(str).str.split("+").apply(lambda mods: "t1ce" in mods)
    per_seed = df.groupby(["method", "seed", "t1ce"])["value"].mean().unstack("t1ce") * 100
    pub = pd.read_csv(BASELINES / "shaspec2023_table1_brats2018.csv")
    pub = pub[(pub["method"] == "shaspec") & (pub["metric"] == "dice_et")]
    pub_t1ce = pub["pattern"].astype(str).str.split("+").apply(lambda mods: "t1ce" in mods)
    with_pub, without_pub = pub.loc[pub_t1ce, "value"].mean() * 100, pub.loc[~pub_t1ce, "value"].mean() * 100
    lines = [
        f"Published ShaSpec (Table 1, BraTS2018 online validation): ET with T1c {with_pub:.2f}, "
        f"without {without_pub:.2f}.",
        "",
        "| method | ET Dice with T1c | ET Dice without T1c | with − without | seeds |",
        "|---|---|---|---|---|",
    ]
    for method, g in per_seed.groupby(level="method"):
        w, wo = g.get(True, pd.Series(dtype=float)), g.get(False, pd.Series(dtype=float))
        d = (w - wo).dropna()
        sd = lambda s: f" ± {s.std(ddof=1):.2f}" if s.size > 1 else ""  # noqa: E731
        lines.append(
            f"| {method} | {w.mean():.2f}{sd(w)} | {wo.mean():.2f}{sd(wo)} | {d.mean():+.2f}{sd(d)} | {g.shape[0]} |"
        )
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
