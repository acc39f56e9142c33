"""Metric conventions (scale, direction), blank cells, method labels and the modality order of patterns."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable

import pandas as pd

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------ metrics and labels
_FRACTION_TOKENS = {
    "acc",
    "accuracy",
    "f1",
    "dice",
    "auroc",
    "auc",
    "ap",
    "map",
    "precision",
    "recall",
    "iou",
    "jaccard",
    "sensitivity",
    "specificity",
    "balanced",
}
_LOWER_TOKENS = {"mae", "mse", "rmse", "hd", "hd95", "loss", "error", "err", "nll", "ece", "brier"}


def _tokens(metric: str) -> set[str]:
    return set(re.split(r"[_\-/@.]", metric.lower()))


def lower_is_better(metric: str) -> bool:
    """True for error-like metric names (``mae``, ``mse``, ``rmse``, ``hd95``, ``loss``, ...)."""
    return bool(_tokens(metric) & _LOWER_TOKENS)


def metric_scale(metric: str) -> float:
    """100 for fraction metrics shown as percentages (acc, F1, Dice, AUROC, ...), 1 for the rest (MAE, corr, HD95)."""
    toks = _tokens(metric)
    return 100.0 if toks & _FRACTION_TOKENS and not toks & _LOWER_TOKENS else 1.0


def _isblank(v: object) -> bool:
    if v is None or v is pd.NA:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _method_label(method: str, variant: object) -> str:
    return method if _isblank(variant) else f"{method} ({variant})"


def modalities_from_patterns(patterns: Iterable[tuple[object, object]]) -> tuple[str, ...]:
    """Canonical modality order recovered from ``(pattern_id, pattern_name)`` pairs.

    Bit ``i`` of a pattern id is modality ``i``; the names of a pattern are its set bits in ascending order
    (``mmbench.masks.pattern_name``). Pairs with id 0 (``"all"``) or no id are skipped.

    Example:
        >>> modalities_from_patterns([(1, "image"), (3, "image+audio")])
        ('image', 'audio')

    Raises:
        ValueError: a name does not fit its id, or two patterns disagree on a bit. A bit no pattern covers is
            named ``m<i>`` (with a logged warning).
    """
    bits: dict[int, str] = {}
    for pid_, name_ in patterns:
        if _isblank(pid_) or int(str(pid_)) <= 0:
            continue
        pid, name = int(str(pid_)), str(name_)
        idx = [i for i in range(pid.bit_length()) if pid >> i & 1]
        parts = name.split("+")
        if len(parts) != len(idx):
            raise ValueError(f"pattern {name!r} names {len(parts)} modalities but its id {pid} has {len(idx)} bits")
        for i, part in zip(idx, parts, strict=True):
            if bits.setdefault(i, part) != part:
                raise ValueError(f"patterns disagree on modality {i}: {bits[i]!r} vs {part!r} (in {name!r}, id {pid})")
    if not bits:
        return ()
    names = tuple(bits.get(i, f"m{i}") for i in range(max(bits) + 1))
    if len(set(names)) != len(names):
        raise ValueError(f"one modality name stands for two bits: {names}")
    if len(bits) < len(names):
        log.warning("modalities %s: some bits are covered by no pattern; named m<i>", names)
    return names


DISPLAY_NAMES: dict[str, str] = {
    # methods (registry names, mmbench.registry.METHODS); kept here so that the leaderboard never imports torch
    "shaspec": "ShaSpec",
    "ul4m4": "UL4M4",
    "late_fusion": "Late fusion",
    "mean_fill": "Mean fill",
    "zero_fill": "Zero fill",
    "hemis": "HeMIS",
    "moddrop": "ModDrop",
    "unimodal": "Unimodal",
    # datasets
    "avmnist": "AV-MNIST",
    "avmnist_lite": "AV-MNIST-lite",
    "brats": "BraTS",
    "features": "Features",
    "mfeat": "Multiple Features",
    "mosi": "CMU-MOSI",
    "synthetic": "Synthetic",
    # metrics
    "acc": "Accuracy",
    "balanced_acc": "Balanced accuracy",
    "f1_micro": "Micro-F1",
    "f1_macro": "Macro-F1",
    "subset_acc": "Subset accuracy",
    "mae": "MAE",
    "mse": "MSE",
    "corr": "Pearson r",
    "dice_et": "Dice ET",
    "dice_tc": "Dice TC",
    "dice_wt": "Dice WT",
    "dice_mean": "Dice (mean)",
    "hd95_et": "HD95 ET",
    "hd95_tc": "HD95 TC",
    "hd95_wt": "HD95 WT",
    "hd95_mean": "HD95 (mean)",
}
"""Paper names of methods, datasets and metrics; names not listed are shown as they are."""


def display_name(name: str) -> str:
    """The paper name of a method, dataset or metric (``"shaspec"`` → ``"ShaSpec"``); unknown names unchanged.

    Example:
        >>> display_name("late_fusion"), display_name("my_method")
        ('Late fusion', 'my_method')
    """
    return DISPLAY_NAMES.get(str(name), str(name))
