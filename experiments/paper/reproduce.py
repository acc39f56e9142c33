"""Tables of the paper reproductions from sweep run dirs, beside the published numbers in ``baselines/``.

    python experiments/paper/reproduce.py table3 runs/paper-table3 runs/paper-table3-noaudio \
        runs/paper-table3-lowerbound --out baselines/reproduced/shaspec2023_table3_avmnist.md
    python experiments/paper/reproduce.py brats-synth runs/paper-brats-synth-4mm runs/paper-brats-synth-4mm-ul4m4 \
        --out baselines/reproduced/brats_synth_et_t1ce.md
    python experiments/paper/reproduce.py ul4m4 runs/paper-ul4m4-vs-meanfill \
        --out baselines/reproduced/ul4m4_vs_meanfill.md

``table3``: image-only test accuracy (``pattern(image)`` protocol, ``image`` row) of ShaSpec at each audio rate and of
the image-only lower bound with the same seeds; mean ± sample std over seeds, and the paired (by seed) difference
ShaSpec − lower bound with its two-sided 95 % Student-t interval (``scipy.stats``). Published: ShaSpec Table 3.

Table 3 also splits ShaSpec's gain: ShaSpec trained with no audio (``shaspec@0``) gives (ShaSpec@r − ShaSpec@0) =
what the audio adds and (ShaSpec@0 − lower bound) = what the architecture adds; the lower bounds are the paper's
LeNet-5 (``unimodal`` with ``encoder=lenet5``) and mmbench's ``unimodal``. Missing or unpaired cells are named.

``ul4m4``: UL4M4 with K > 1 vs its K = 1 (mean-fill), per dataset, training missing rate and evaluation protocol,
paired by seed.

``brats-synth``: per method, ET Dice averaged over the 8 patterns *with* T1c and over the 7 *without* (the
``all_patterns`` protocol), per seed (the with-T1c value of each seed is listed too), then mean ± std over seeds; the
per-case spread over the test cases (each case's ET Dice averaged over the group's patterns and the seeds, from
``predictions.parquet``: median [IQR] and mean ± std over cases); and ShaSpec − every other method paired by seed,
with T1c, without, and over all 15 patterns, with two-sided 95 % t-intervals
(``mmbench.leaderboard.stats.t_interval``). The published ShaSpec Table 1 averages of the same two groups are printed
above it (real BraTS2018, online validation: not comparable in level, only in trend).

Only cells with a ``COMPLETE`` marker are read (``results.csv`` exists only for validated cells), so a sweep that is
still running, or resumed, gives a table of what has finished; the table says how many seeds each entry has.
"""

from __future__ import annotations

import argparse
import json
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


PAPER_EPOCHS = 60
ENCODER = re.compile(r"encoder=([A-Za-z0-9_]+)")
LOWER_BOUNDS = {"lenet5": "LeNet-5 (image)", "unimodal": "unimodal (image)"}
TABLE3_COMMANDS = (
    "mmbench sweep --config experiments/paper/sweeps/table3.yaml --parallel=1             # ShaSpec, 5-20 % audio",
    "mmbench sweep --config experiments/paper/sweeps/table3_noaudio.yaml --parallel=1     # ShaSpec, no audio",
    "mmbench sweep --config experiments/paper/sweeps/table3_lowerbound.yaml --parallel=1  # LeNet-5, unimodal",
)


def _arm(row: pd.Series) -> str:
    """The arm of one Table 3 result row: ``shaspec@<audio>`` or a lower bound (``lenet5`` / ``unimodal``)."""
    if row["method"] == "shaspec":
        return f"shaspec@{row['audio']:g}"
    if row["method"] == "unimodal":
        found = ENCODER.search(str(row.get("method_variant", "")))
        return "lenet5" if found and found.group(1) == "lenet5" else "unimodal"
    return str(row["method"])


def _arm_label(arm: str) -> str:
    if arm.startswith("shaspec@"):
        return f"ShaSpec@{float(arm.split('@')[1]):.0%}"
    return LOWER_BOUNDS.get(arm, arm)


def table3_cells(dirs: list[str]) -> tuple[dict[str, pd.Series], pd.DataFrame]:
    """Image-only test accuracy (%) per arm and seed, and the per-cell rows (arm, seed, value, epochs, seconds).

    Arms: ``shaspec@<audio fraction>`` (``shaspec@0`` = trained with no audio), ``lenet5`` (``unimodal`` with
    ``encoder=lenet5`` in ``method_variant``) and ``unimodal`` (its default encoder). Reads the ``pattern(image)``
    protocol's ``image`` row of every ``results.csv`` below ``dirs``.

    Raises:
        SystemExit: no ``results.csv``, no image-only accuracy row, or two results for one (arm, seed).
    """
    df = load(dirs)
    if df.empty:
        raise SystemExit(f"no results.csv under {dirs}")
    df = df[(df["eval_protocol"] == "pattern(image)") & (df["pattern"] == "image") & (df["metric"] == "acc")].copy()
    if df.empty:
        raise SystemExit(f"no pattern(image) / image / acc rows in the results.csv under {dirs}")
    text = df["dataset_variant"].astype(str) + ";" + df["train_missing"].astype(str)
    df["audio"] = text.str.extract(AUDIO)[0].astype(float)
    df["arm"] = df.apply(_arm, axis=1)
    dup = df[df.duplicated(["arm", "seed"], keep=False)]
    if not dup.empty:
        arm, seed = dup.iloc[0]["arm"], int(dup.iloc[0]["seed"])
        dirs_of = dup.loc[(dup["arm"] == arm) & (dup["seed"] == seed)].get("run_dir", pd.Series(dtype=object))
        where = ", ".join(sorted(str(d) for d in dirs_of)) or "run dirs unknown"
        raise SystemExit(f"two results for {_arm_label(arm)} seed {seed} ({where}): pass each sweep dir once")
    df["value"] = df["value"].astype(float) * 100
    df["epochs"] = df["epoch"].astype(int) + 1 if "epoch" in df else np.nan
    df["seconds"] = [_cell_seconds(d) for d in df.get("run_dir", pd.Series([None] * len(df), index=df.index))]
    arms = {arm: g.set_index("seed")["value"].sort_index() for arm, g in df.groupby("arm")}
    return arms, df[["arm", "seed", "value", "epochs", "seconds"]].reset_index(drop=True)


def _cell_seconds(run_dir: object) -> float:
    """Wall seconds of a cell from its ``COMPLETE`` marker (NaN when unknown)."""
    try:
        return float(json.loads((Path(str(run_dir)) / "COMPLETE").read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")


def paired(a: pd.Series | None, b: pd.Series | None) -> tuple[float, float, float, list[int], list[int]]:
    """Paired (by seed) difference ``a − b``: mean, 95 % t-interval, the seeds paired and the seeds left unpaired.

    Args:
        a: values indexed by seed (``None`` = the arm has no cells).
        b: the same for the arm subtracted.
    """
    if a is None or b is None:
        return float("nan"), float("nan"), float("nan"), [], []
    seeds = a.index.intersection(b.index).sort_values()
    unpaired = sorted(int(s) for s in a.index.symmetric_difference(b.index))
    if seeds.empty:
        return float("nan"), float("nan"), float("nan"), [], unpaired
    m, lo, hi = _ci((a.loc[seeds] - b.loc[seeds]).to_numpy(dtype=float))
    return m, lo, hi, [int(s) for s in seeds], unpaired


def _ms_pts(values: pd.Series | None) -> str:
    if values is None or values.empty:
        return "–"
    v = values.to_numpy(dtype=float)
    sd = f" ± {v.std(ddof=1):.2f}" if v.size > 1 else ""
    return f"{v.mean():.2f}{sd} (n={v.size})"


def table3(dirs: list[str]) -> str:
    """Markdown: Table 3 reproduction and the audio / architecture decomposition (see the module docstring)."""
    arms, cells = table3_cells(dirs)
    pub = pd.read_csv(BASELINES / "shaspec2023_table3_avmnist.csv")
    pub["audio"] = pub["train_missing"].str.extract(AUDIO)[0].astype(float)
    rates = sorted({float(a.split("@")[1]) for a in arms if a.startswith("shaspec@")} | set(pub["audio"]))
    rates_pos = [r for r in rates if r > 0]
    notes: list[str] = []
    absent: set[str] = set()

    def published(audio: float, method: str) -> float:
        p = pub[np.isclose(pub["audio"], audio) & (pub["method"] == method)]
        return float(p["value"].iloc[0]) * 100 if not p.empty else float("nan")

    def diff_cell(a: str, b: str) -> str:
        missing = [x for x in (a, b) if x not in arms]
        if missing:
            absent.update(missing)
            return "– (missing)"
        m, lo, hi, seeds, unpaired = paired(arms[a], arms[b])
        if unpaired:
            notes.append(
                f"{_arm_label(a)} − {_arm_label(b)}: seeds {unpaired} have no pair (only one of the two arms ran them)"
            )
        if not seeds:
            return "– (no common seed)"
        ci = f" [{lo:+.2f}, {hi:+.2f}]" if len(seeds) > 1 else ""
        return f"{m:+.2f}{ci} (n={len(seeds)})"

    epochs = sorted({int(e) for e in cells["epochs"].dropna()})
    scale = ", ".join(str(e) for e in epochs) or "?"
    label = f"{scale} epochs" + ("" if epochs == [PAPER_EPOCHS] else f", not the paper's {PAPER_EPOCHS}")
    if len(epochs) > 1:
        notes.append(f"cells were trained for different numbers of epochs ({scale}): the comparison is not fair")
    seeds_all = sorted({int(s) for s in cells["seed"]})
    lines = [
        "# ShaSpec Table 3 (AV-MNIST, SMIL protocol) reproduced beside the published numbers",
        "",
        f"**{label}**; seeds {seeds_all}; image-only test accuracy in % on the 450 test pairs "
        "(`pattern(image)` protocol); mean ± sample std over seeds; differences paired by seed with the two-sided "
        "95 % Student-t interval (`scipy.stats.t`). Paper: Wang et al., CVPR 2023, Table 3 "
        '(`baselines/shaspec2023_table3_avmnist.csv`); its lower bound is "LeNet, image only".',
        "",
        "## Accuracy per cell",
        "",
        "| audio | ShaSpec (paper) | LowerB LeNet (paper) | paper diff | ShaSpec (here) | LeNet-5 (here) | "
        "unimodal (here) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rates:
        ps, pl = published(r, "shaspec"), published(r, "lower_bound")
        paper = f"{ps:.2f} | {pl:.2f} | {ps - pl:+.2f}" if r > 0 else "– | – | –"
        lines.append(
            f"| {r:.0%} | {paper} | {_ms_pts(arms.get(f'shaspec@{r:g}'))} | "
            f"{_ms_pts(arms.get('lenet5'))} | {_ms_pts(arms.get('unimodal'))} |"
        )
    lines += [
        "",
        "The lower bounds never read the audio and see the same images and test set at every rate (one run per seed).",
        "",
        "## Paired differences (points), 95 % CI",
        "",
        "ShaSpec@r − LeNet = (ShaSpec@r − ShaSpec@0: what the audio adds) + (ShaSpec@0 − LeNet: what the "
        "architecture and its auxiliary losses add without audio), exactly, on common seeds.",
        "",
        "| audio r | paper ShaSpec − LowerB | ShaSpec@r − LeNet-5 | ShaSpec@r − unimodal | ShaSpec@r − ShaSpec@0 |",
        "|---|---|---|---|---|",
    ]
    for r in rates_pos:
        a = f"shaspec@{r:g}"
        lines.append(
            f"| {r:.0%} | {published(r, 'shaspec') - published(r, 'lower_bound'):+.2f} | {diff_cell(a, 'lenet5')} | "
            f"{diff_cell(a, 'unimodal')} | {diff_cell(a, 'shaspec@0')} |"
        )
    lines += [
        "",
        "| no audio | ShaSpec@0 − LeNet-5 | ShaSpec@0 − unimodal | LeNet-5 − unimodal |",
        "|---|---|---|---|",
        f"| 0 % | {diff_cell('shaspec@0', 'lenet5')} | {diff_cell('shaspec@0', 'unimodal')} | "
        f"{diff_cell('lenet5', 'unimodal')} |",
    ]
    others = sorted(a for a in arms if not a.startswith("shaspec@") and a not in LOWER_BOUNDS)
    if others:
        notes.append(f"ignored arms (not part of Table 3): {', '.join(others)}")
    secs = cells.groupby("arm")["seconds"].agg(["mean", "size"])
    lines += ["", "## Cells", "", "| arm | cells | epochs | mean wall s per cell |", "|---|---|---|---|"]
    for arm in sorted(secs.index, key=lambda a: (not a.startswith("shaspec@"), a)):
        ep = sorted({int(e) for e in cells.loc[cells["arm"] == arm, "epochs"].dropna()})
        wall = secs.loc[arm, "mean"]
        lines.append(
            f"| {_arm_label(arm)} | {int(secs.loc[arm, 'size'])} | {ep} | {'–' if np.isnan(wall) else f'{wall:.0f}'} |"
        )
    total = cells["seconds"].sum()
    lines += [
        "",
        f"Total cell wall time: {total / 60:.1f} min (the `seconds` of each cell's `COMPLETE` marker).",
    ]
    if absent:
        order = sorted(absent, key=lambda a: (not a.startswith("shaspec@"), float(a.split("@")[1]) if "@" in a else 0))
        notes.insert(0, f"missing cells: no results for {', '.join(_arm_label(a) for a in order)} under {dirs}")
    if notes:
        lines += ["", "## Missing or unpaired", ""] + [f"* {n}" for n in dict.fromkeys(notes)]
    lines += [
        "",
        "## Commands",
        "",
        "```",
        "make -o .venv/.mmbench-installed reproduce-table3   # all three sweeps, then this table",
        *TABLE3_COMMANDS,
        "python experiments/paper/reproduce.py table3 "
        + " ".join(dirs)
        + " --out baselines/reproduced/shaspec2023_table3_avmnist.md",
        "```",
    ]
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
        "| method | ET with T1c (seeds) | with T1c, per seed | ET without T1c (seeds) | with − without | per case, "
        "with T1c: median [IQR]; mean ± std | per case, without T1c | seeds | cases |",
        "|---|---|---|---|---|---|---|---|---|",
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
        each = ", ".join(f"{int(seed)}: {v:.1f}" for (_, seed), v in w.items())
        lines.append(
            f"| {method} | {w.mean():.2f}{sd(w)} | {each} | {wo.mean():.2f}{sd(wo)} | {d.mean():+.2f}{sd(d)} | "
            f"{pcw} | {pcwo} | {g.shape[0]} | {n_cases} |"
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


K_CLUSTERS = re.compile(r"(?:^|;)K=([0-9]+)")


def ul4m4_vs_meanfill(dirs: list[str], metric: str = "acc") -> str:
    """Markdown: UL4M4 (K > 1) vs its own K = 1 (per-modality mean-fill of the embeddings), paired by seed.

    Per (dataset, training missing rate, evaluation protocol): the ``all`` row's ``metric`` (every test sample of
    the protocol) of each K, mean ± sample std over seeds, and the paired difference K − 1 with its 95 % t-interval.

    Raises:
        SystemExit: no ``results.csv``, or no UL4M4 rows of ``metric``.
    """
    df = load(dirs)
    if df.empty:
        raise SystemExit(f"no results.csv under {dirs}")
    df = df[(df["method"] == "ul4m4") & (df["pattern"] == "all") & (df["metric"] == metric)].copy()
    if df.empty:
        raise SystemExit(f"no ul4m4 rows with pattern 'all' and metric {metric!r} under {dirs}")
    df["K"] = df["method_variant"].astype(str).str.extract(K_CLUSTERS)[0].astype(float)
    if "dataset_variant" in df:  # family/variant without arguments: ``features/mfeat``, ``avmnist/lite``
        df["dataset"] = [
            f"{d}/{str(v).split('(')[0]}" if isinstance(v, str) and v else d
            for v, d in zip(df["dataset_variant"], df["dataset"], strict=True)
        ]
    df["value"] = df["value"].astype(float) * 100
    ks = sorted(int(k) for k in df["K"].dropna().unique())
    big = [k for k in ks if k != 1]
    epochs = sorted({int(e) + 1 for e in df["epoch"].dropna()}) if "epoch" in df else []
    seeds = sorted({int(s) for s in df["seed"]})
    lines = [
        "# UL4M4 vs mean-fill (K = 1)",
        "",
        f"Test {metric} in % (the protocol's `all` row), mean ± sample std over seeds {seeds}; UL4M4 with K = 1 is "
        "exactly per-modality mean-fill of the embeddings (reference/ul4m4.md §1.5), everything else equal. "
        f"Differences paired by seed, two-sided 95 % Student-t interval. Epochs trained: {epochs}.",
        "",
        "| dataset | train missing rate | eval protocol | "
        + " | ".join(f"K = {k}" for k in ks)
        + " | "
        + " | ".join(f"K = {k} − K = 1 (95 % CI)" for k in big)
        + " |",
        "|---" * (3 + len(ks) + len(big)) + "|",
    ]
    for (dataset, rate, protocol), g in df.groupby(["dataset", "train_missing_rate", "eval_protocol"]):
        by_k = {int(k): gk.set_index("seed")["value"].sort_index() for k, gk in g.groupby("K")}
        cells = [_ms_pts(by_k.get(k)) for k in ks]
        for k in big:
            m, lo, hi, paired_seeds, _ = paired(by_k.get(k), by_k.get(1))
            ci = f" [{lo:+.2f}, {hi:+.2f}]" if len(paired_seeds) > 1 else ""
            cells.append(f"{m:+.2f}{ci} (n={len(paired_seeds)})" if paired_seeds else "– (missing)")
        lines.append(f"| {dataset} | {rate:g} | {protocol} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "```",
        "mmbench sweep --config experiments/paper/sweeps/ul4m4_vs_meanfill_mfeat.yaml --parallel=1  # mfeat only",
        "mmbench sweep --config experiments/paper/sweeps/ul4m4_vs_meanfill.yaml --parallel=1        # + AV-MNIST-lite",
        "python experiments/paper/reproduce.py ul4m4 "
        + " ".join(dirs)
        + " --out baselines/reproduced/ul4m4_vs_meanfill.md",
        "```",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=["table3", "brats-synth", "ul4m4"])
    p.add_argument("dirs", nargs="+", help="sweep output dirs (runs/<sweep name>)")
    p.add_argument("--out", default=None, help="also write the Markdown table to this file")
    a = p.parse_args(argv)
    tables = {"table3": table3, "brats-synth": brats_synth, "ul4m4": ul4m4_vs_meanfill}
    text = tables[a.table](a.dirs)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
