"""``mmbench rescore RUN_DIR... [--metrics M ...]``: result rows from stored predictions, without a model.

For each run dir, the rows of ``predictions.parquet`` are replayed into the same metric objects the run used
(``PerPatternMetric`` over ``mmbench.metrics.factory.task_metrics``), batch by batch in the order they were scored
and rank by rank (per-rank states merged as a DDP sync sums them), so the recomputed values equal the written ones
bit for bit. Segmentation rows replay the stored per-case region Dice into ``StoredRegionScores``, which updates the
same states as ``BraTSRegionDice``.

Metrics can be added after the fact (``--metrics``): ``balanced_acc`` (multiclass: ``MulticlassAccuracy`` with
``average="macro"``, the mean recall over classes) and ``hd95`` (segmentation: mean per-case HD95 per region, where
the file stores it). Every recomputed row that ``results.csv`` already has must equal it, else the command fails;
added rows are appended and ``results.csv`` is replaced atomically.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from mmbench.errors import MMBenchError
from mmbench.leaderboard.samples import read_predictions
from mmbench.metrics.factory import task_metrics
from mmbench.metrics.per_pattern import PerPatternMetric
from mmbench.results import write_rows_atomic
from mmbench.schema import PREDICTIONS_FILE, RESULT_COLUMNS, RESULTS_FILE
from mmbench.types import Task

__all__ = ["EXTRA_METRICS", "StoredRegionScores", "cli", "rescore_run"]


class StoredRegionScores(Metric):
    """Mean over cases of stored per-case region scores (Dice, HD95), with ``BraTSRegionDice``'s states.

    ``update(preds, target)``: ``preds`` ``float32[B, K·R]`` per-case scores, ``K`` kinds × ``R`` regions in the
    order of ``kinds`` then ``region_names``; ``target`` is ignored. ``compute()``: ``{<kind>_<region>, <kind>_mean}``.

    Args:
        kinds: score kinds, e.g. ``("dice",)`` or ``("dice", "hd95")``.
        region_names: region names.
    """

    full_state_update = False
    count: Tensor

    def __init__(self, kinds: Sequence[str] = ("dice",), region_names: Sequence[str] = ("et", "tc", "wt")) -> None:
        super().__init__()
        self.kinds = tuple(kinds)
        self.region_names = tuple(region_names)
        for kind in self.kinds:
            self.add_state(f"{kind}_sum", default=torch.zeros(len(self.region_names)), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:  # noqa: D102
        r = len(self.region_names)
        for k, kind in enumerate(self.kinds):
            state: Tensor = getattr(self, f"{kind}_sum")
            setattr(self, f"{kind}_sum", state + preds[:, k * r : (k + 1) * r].sum(0).to(state.dtype))
        self.count += preds.shape[0]

    def compute(self) -> dict[str, Tensor]:  # noqa: D102
        out: dict[str, Tensor] = {}
        for kind in self.kinds:
            mean = getattr(self, f"{kind}_sum") / self.count
            out |= {f"{kind}_{name}": mean[i] for i, name in enumerate(self.region_names)}
            out[f"{kind}_mean"] = mean.mean()
        return out


EXTRA_METRICS: dict[Task, tuple[str, ...]] = {
    Task.MULTICLASS: ("balanced_acc",),
    Task.SEGMENTATION: ("hd95",),
    Task.MULTILABEL: (),
    Task.REGRESSION: (),
}
"""Metrics ``--metrics`` can add per task."""


def _factory(task: Task, num_classes: int, extra: Sequence[str], regions: Sequence[str]) -> Callable[[], Any]:
    if task is Task.SEGMENTATION:
        kinds = ("dice", *(["hd95"] if "hd95" in extra else []))
        return lambda: StoredRegionScores(kinds, regions)
    base = task_metrics(task, num_classes)

    def make() -> Metric | MetricCollection:
        coll = base()
        assert isinstance(coll, MetricCollection)
        if "balanced_acc" in extra:
            coll.add_metrics({"balanced_acc": MulticlassAccuracy(num_classes, average="macro")})
        return coll

    return make


def _inputs(rows: Any, task: Task, kinds: Sequence[str], regions: Sequence[str]) -> tuple[Tensor, Tensor]:
    """``(preds, target)`` tensors of one batch as the metrics saw them."""

    def stack(col: str, dtype: Any) -> Tensor:
        return torch.from_numpy(np.stack([np.asarray(v) for v in rows[col].to_numpy()]).astype(dtype))

    if task is Task.MULTICLASS:
        return stack("scores", np.float32), torch.from_numpy(rows["target"].to_numpy(np.int64).copy())
    if task is Task.MULTILABEL:
        return stack("scores", np.float32), stack("target", np.int64)
    if task is Task.REGRESSION:
        return stack("prediction", np.float32), stack("target", np.float32)
    cols = [f"{k}_{r}" for k in kinds for r in regions]
    missing = [c for c in cols if c not in rows.columns]
    if missing:
        raise MMBenchError(f"predictions lack column(s) {missing} (was the run tested with hd95 off?)")
    scores = torch.from_numpy(rows[cols].to_numpy(np.float32))
    return scores, scores


def _merge(into: nn.Module, other: nn.Module) -> None:
    """Add ``other``'s metric states into ``into``'s, as a DDP sync of two ranks does (``Metric.merge_state``)."""
    for a, b in zip(into.modules(), other.modules(), strict=True):
        if isinstance(a, Metric) and not isinstance(a, MetricCollection):
            assert isinstance(b, Metric)
            a.merge_state(b)


def _text(value: float | str) -> str:
    """The exact text of a value as results.csv holds it (``""`` for NaN, else ``repr``)."""
    if isinstance(value, str):
        if value.strip() == "":
            return ""
        value = float(value)
    return "" if math.isnan(value) else repr(float(value))


def rescore_run(run_dir: Path | str, metrics: Sequence[str] = ()) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Recompute the result rows of a run dir from its predictions.

    Args:
        run_dir: folder holding ``results.csv`` and ``predictions.parquet``.
        metrics: extra metrics to add (``EXTRA_METRICS`` of the run's task).

    Returns:
        ``(rows, added)``: every recomputed row with the provenance of ``results.csv`` (the existing rows in their
        order, then the added ones), and the added rows alone.

    Raises:
        MMBenchError: a file is missing, a metric is unknown for the task, or a recomputed value differs from the
            written one.
    """
    run_dir = Path(run_dir)
    results, preds_path = run_dir / RESULTS_FILE, run_dir / PREDICTIONS_FILE
    for path in (results, preds_path):
        if not path.is_file():
            raise MMBenchError(f"{run_dir}: no {path.name}; rescore needs results.csv and {PREDICTIONS_FILE}")
    with open(results, newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    if not written:
        raise MMBenchError(f"{results}: no rows")
    df, meta = read_predictions(preds_path)
    task = Task(meta["task"])
    unknown = [m for m in metrics if m not in EXTRA_METRICS[task]]
    if unknown:
        raise MMBenchError(
            f"--metrics {unknown}: not available for task {task.value!r}; "
            f"choose from {list(EXTRA_METRICS[task]) or '(none)'}"
        )
    modalities, regions = tuple(meta["modalities"]), tuple(meta.get("region_names") or ("et", "tc", "wt"))
    kinds = ("dice", *(["hd95"] if "hd95" in metrics else []))
    make = _factory(task, int(meta["num_classes"]), metrics, regions)
    computed: dict[tuple[str, int, str], tuple[float, int]] = {}
    names: dict[tuple[str, int], tuple[str, Any]] = {}
    for protocol, prows in df.groupby("eval_protocol", sort=False):
        merged: PerPatternMetric | None = None
        for _, rank_rows in prows.groupby("rank", sort=True):
            metric = PerPatternMetric(make, modalities)
            for _, b in rank_rows.sort_values(["batch", "row"], kind="stable").groupby("batch", sort=True):
                pids = b["pattern_id"].to_numpy(np.int64)
                mask = torch.from_numpy((pids[:, None] >> np.arange(len(modalities))[None, :]) & 1).bool()
                preds, target = _inputs(b, task, kinds, regions)
                metric.update(preds, target, mask)
            if merged is None:
                merged = metric
            else:
                _merge(merged, metric)
        assert merged is not None
        for r in merged.compute():
            computed[(str(protocol), int(r["pattern_id"]), r["metric"])] = (float(r["value"]), int(r["n"]))
            names[(str(protocol), int(r["pattern_id"]))] = (r["pattern"], r["n_observed"])
    rows, mismatches = [], []
    seen = set()
    for w in written:
        key = (w["eval_protocol"], int(w["pattern_id"]), w["metric"])
        seen.add(key)
        if key not in computed:
            mismatches.append(f"{key}: written but not recomputed")
            continue
        value, n = computed[key]
        if _text(value) != _text(w["value"]) or n != int(w["n"]):
            mismatches.append(f"{key}: written {w['value']} (n={w['n']}), recomputed {value!r} (n={n})")
        rows.append({**w, "value": value, "n": n})
    if mismatches:
        raise MMBenchError(f"{run_dir}: rescored values differ from {RESULTS_FILE}: " + "; ".join(mismatches[:5]))
    template = {(w["eval_protocol"], int(w["pattern_id"])): w for w in written}
    added = []
    for (proto, pid, name), (value, n) in computed.items():
        if (proto, pid, name) in seen or (proto, pid) not in template:
            continue
        added.append({**template[(proto, pid)], "metric": name, "value": value, "n": n})
    return rows + added, added


def cli(args: list[str]) -> list[Path]:
    """``mmbench rescore RUN_DIR... [--metrics M ...]``; returns the run dirs whose ``results.csv`` grew."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="mmbench rescore", description="Recompute result rows from predictions.parquet")
    parser.add_argument("runs", nargs="+", type=str, help="run dirs (folders holding results.csv and predictions)")
    parser.add_argument("--metrics", type=list[str], default=[], help="metrics to add, e.g. balanced_acc, hd95")
    ns = parser.parse_args(args)
    changed = []
    for run in ns.runs:
        rows, added = rescore_run(Path(run), ns.metrics)
        if added:
            write_rows_atomic(Path(run) / RESULTS_FILE, rows, RESULT_COLUMNS)
            changed.append(Path(run))
        print(f"{run}: {len(rows) - len(added)} rows reproduced exactly" + (f", {len(added)} added" if added else ""))
    return changed
