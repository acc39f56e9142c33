"""Per-sample predictions (``predictions.parquet`` beside ``results.csv``) → ``SampleMetric`` inputs of ``stats``.

The file is written by ``mmbench.predictions.PredictionsWriter``; its columns are ``PREDICTION_COLUMNS`` plus
the task's own (``target``/``pred_class``/``scores`` for multiclass, ``target``/``pred_labels``/``scores`` for
multilabel, ``target``/``prediction`` for regression, ``dice_<region>``/``hd95_<region>`` for segmentation), and its
schema metadata key ``mmbench`` holds JSON ``{task, num_classes, modalities, region_names}``.

The numpy metrics here mirror the torchmetrics objects of ``mmbench.metrics.factory`` (the tests check them on
stored predictions); they exist only so that resampling tests can evaluate a metric thousands of times.
Reading needs ``pyarrow`` and nothing of torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmbench.leaderboard.stats import SampleMetric, mean_metric
from mmbench.schema import PREDICTIONS_FILE

__all__ = ["PREDICTION_COLUMNS", "PredictionStore", "read_predictions", "sample_metric"]

log = logging.getLogger(__name__)

PREDICTION_COLUMNS: tuple[str, ...] = (
    "eval_protocol",  # protocol name, as in results.csv
    "sample_index",  # index of the sample within the test split
    "sample_id",  # dataset index as text, or the BraTS case id
    "pattern_id",  # observed pattern of this row (1 … 2^M − 1)
    "pattern",
    "mask_hash",  # MaskTable.hash of the protocol
    "rank",  # process that scored the row (replay order for rescore)
    "batch",  # batch index within the protocol's loader on that rank
    "row",  # row within the batch
)
"""Columns every predictions file has."""


def read_predictions(path: Path | str, skip: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows and the ``mmbench`` metadata of a predictions file (without the columns in ``skip``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in names if c not in skip])
    except Exception as e:  # pyarrow raises several error types for a bad file
        raise ValueError(f"{path}: not a readable parquet file ({e})") from None
    meta_raw = (table.schema.metadata or {}).get(b"mmbench")
    if meta_raw is None:
        raise ValueError(f"{path}: no 'mmbench' schema metadata; expected a file written by mmbench.predictions")
    meta = json.loads(meta_raw)
    df = table.to_pandas()
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(PREDICTION_COLUMNS)}")
    return df, meta


# ------------------------------------------------------------------------------------------------ numpy metrics
def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _confusion(c: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    def parts(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = s.reshape(*s.shape[:-1], c, c)  # [..., target, pred]
        tp = np.diagonal(m, axis1=-2, axis2=-1)
        return tp, m.sum(-2) - tp, m.sum(-1) - tp  # tp, fp, fn

    return parts


def _macro(score: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Torchmetrics' macro average: classes with tp + fp + fn = 0 are left out."""
    w = (tp + fp + fn) > 0
    return _safe_div((score * w).sum(-1), w.sum(-1).astype(np.float64))


def _multiclass(name: str, target: np.ndarray, pred: np.ndarray, c: int) -> SampleMetric | None:
    codes = (target.astype(np.int64) * c + pred.astype(np.int64)).reshape(-1, 1)
    parts = _confusion(c)

    def acc(s: np.ndarray, n: int) -> np.ndarray:
        return parts(s)[0].sum(-1) / n

    def f1_macro(s: np.ndarray, n: int) -> np.ndarray:
        tp, fp, fn = parts(s)
        return _macro(_safe_div(2 * tp, 2 * tp + fp + fn), tp, fp, fn)

    def balanced(s: np.ndarray, n: int) -> np.ndarray:
        tp, fp, fn = parts(s)
        return _macro(_safe_div(tp, tp + fn), tp, fp, fn)

    fns = {"acc": acc, "f1_micro": acc, "f1_macro": f1_macro, "balanced_acc": balanced}
    if name not in fns:
        return None
    return SampleMetric(fns[name], codes=codes, n_categories=c * c)


def _multilabel(name: str, target: np.ndarray, pred: np.ndarray) -> SampleMetric | None:
    c = target.shape[1]
    if name == "subset_acc":
        return mean_metric(np.all(target == pred, axis=1).astype(np.float64))
    codes = np.arange(c)[None, :] * 4 + 2 * target.astype(np.int64) + pred.astype(np.int64)  # [n, C]

    def parts(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = s.reshape(*s.shape[:-1], c, 4)
        return m[..., 3], m[..., 1], m[..., 2]

    def f1_micro(s: np.ndarray, n_: int) -> np.ndarray:
        tp, fp, fn = (x.sum(-1) for x in parts(s))
        return _safe_div(2 * tp, 2 * tp + fp + fn)

    def f1_macro(s: np.ndarray, n_: int) -> np.ndarray:
        tp, fp, fn = parts(s)
        return _macro(_safe_div(2 * tp, 2 * tp + fp + fn), tp, fp, fn)

    fns = {"f1_micro": f1_micro, "f1_macro": f1_macro}
    return SampleMetric(fns[name], codes=codes, n_categories=4 * c) if name in fns else None


def _regression(name: str, target: np.ndarray, pred: np.ndarray) -> SampleMetric | None:
    err = (pred - target).astype(np.float64)  # [n, C]
    width = err.shape[1]
    if name in ("mae", "mse"):
        per = np.abs(err) if name == "mae" else err**2
        return SampleMetric(lambda s, n: s[..., 0] / (n * width), dense=per.sum(1, keepdims=True))
    if name == "corr" and width == 1:
        x, y = pred[:, 0].astype(np.float64), target[:, 0].astype(np.float64)

        def corr(s: np.ndarray, n: int) -> np.ndarray:
            sx, sy, sxx, syy, sxy = (s[..., i] for i in range(5))
            cov = sxy - sx * sy / n
            return _safe_div(cov, np.sqrt(np.maximum(sxx - sx**2 / n, 0) * np.maximum(syy - sy**2 / n, 0)))

        return SampleMetric(corr, dense=np.stack([x, y, x * x, y * y, x * y], axis=1))
    return None


def _stack(col: pd.Series) -> np.ndarray:
    return np.stack([np.asarray(v) for v in col.to_numpy()]) if len(col) else np.zeros((0, 0))


def sample_metric(rows: pd.DataFrame, meta: dict[str, Any], metric: str) -> SampleMetric | None:
    """The ``SampleMetric`` of ``metric`` on the prediction ``rows`` (one protocol and pattern), or ``None``.

    ``None`` when the metric has no per-sample form here (e.g. the MOSI sentiment accuracies) or the file lacks
    the columns it needs.
    """
    task = str(meta.get("task", ""))
    if rows.empty:
        return None
    if task == "multiclass" and {"target", "pred_class"} <= set(rows.columns):
        return _multiclass(metric, rows["target"].to_numpy(), rows["pred_class"].to_numpy(), int(meta["num_classes"]))
    if task == "multilabel" and {"target", "pred_labels"} <= set(rows.columns):
        return _multilabel(
            metric, _stack(rows["target"]).astype(np.int64), _stack(rows["pred_labels"]).astype(np.int64)
        )
    if task == "regression" and {"target", "prediction"} <= set(rows.columns):
        return _regression(metric, _stack(rows["target"]), _stack(rows["prediction"]))
    if task == "segmentation":
        regions = [str(r) for r in meta.get("region_names", ("et", "tc", "wt"))]
        for kind in ("dice", "hd95"):
            cols = [f"{kind}_{r}" for r in regions]
            if not set(cols) <= set(rows.columns):
                continue
            if metric == f"{kind}_mean":
                return mean_metric(rows[cols].to_numpy(np.float64).mean(axis=1))
            if metric in cols:
                return mean_metric(rows[metric].to_numpy(np.float64))
    return None


# ------------------------------------------------------------------------------------------------ store
@dataclass
class PredictionStore:
    """Lazily read predictions of the cells of a raw frame, keyed by their ``results_file``.

    ``get(results_file, protocol, pattern_id, metric)`` → ``(sample_index int64[n], SampleMetric)`` with the rows
    sorted by sample index (pattern id 0 = every row of the protocol), or ``None`` when the cell has no
    predictions file or the metric has no per-sample form.
    """

    _files: dict[str, tuple[pd.DataFrame, dict[str, Any]] | None] = field(default_factory=dict)
    _cache: dict[tuple[str, str, int, str], tuple[np.ndarray, SampleMetric] | None] = field(default_factory=dict)
    _rows: dict[tuple[str, str, int], pd.DataFrame] = field(default_factory=dict)

    def _file(self, results_file: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        if results_file not in self._files:
            path = Path(results_file).with_name(PREDICTIONS_FILE)
            # the statistics need targets and predicted classes, not the class scores (most of the file)
            self._files[results_file] = read_predictions(path, skip=("scores",)) if path.is_file() else None
        return self._files[results_file]

    def has(self, results_file: str) -> bool:
        """Whether the cell of ``results_file`` has a predictions file."""
        return self._file(results_file) is not None

    def get(
        self, results_file: str, protocol: str, pattern_id: int, metric: str
    ) -> tuple[np.ndarray, SampleMetric] | None:
        """See the class docstring."""
        key = (results_file, protocol, int(pattern_id), metric)
        if key not in self._cache:
            self._cache[key] = self._build(*key)
        return self._cache[key]

    def _build(
        self, results_file: str, protocol: str, pattern_id: int, metric: str
    ) -> tuple[np.ndarray, SampleMetric] | None:
        got = self._file(results_file)
        if got is None:
            return None
        df, meta = got
        rkey = (results_file, protocol, pattern_id)
        if rkey not in self._rows:  # the rows of one protocol and pattern, shared by its metrics
            rows = df.loc[df["eval_protocol"] == protocol]
            if pattern_id != 0:
                rows = rows.loc[rows["pattern_id"] == pattern_id]
            self._rows[rkey] = rows.sort_values(["sample_index", "pattern_id"], kind="stable")
        rows = self._rows[rkey]
        m = sample_metric(rows, meta, metric)
        if m is None:
            return None
        ids = (rows["sample_index"].to_numpy(np.int64) << 20) + (
            rows["pattern_id"].to_numpy(np.int64) if pattern_id == 0 else 0
        )
        return ids, m
