"""``PerPatternMetric``: one clone of a torchmetrics metric per missing pattern, plus ``all``.

DDP-safe: every clone is computed on every rank (torchmetrics syncs inside ``compute``), so no rank waits on a
gather the others skip; a per-pattern sample count (summed across ranks) tells which patterns were seen anywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection

from mmbench.masks import ALL, all_pattern_ids, pattern_ids, pattern_name

__all__ = ["PatternCounts", "PerPatternMetric"]


class PatternCounts(Metric):
    """Number of updated rows per pattern id, summed across processes."""

    full_state_update = False

    def __init__(self, num_modalities: int) -> None:
        super().__init__()
        self.add_state("counts", torch.zeros(2**num_modalities, dtype=torch.long), dist_reduce_fx="sum")

    counts: Tensor

    def update(self, pids: Tensor) -> None:  # noqa: D102
        self.counts += torch.bincount(pids, minlength=self.counts.numel())

    def compute(self) -> Tensor:  # noqa: D102
        return self.counts


def _as_dict(value: Any, default_name: str) -> dict[str, Tensor]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return {default_name: value}


class PerPatternMetric(nn.Module):
    """Wrap a metric (or ``MetricCollection``) with one clone per pattern and one for ``all``.

    Args:
        make_metric: factory of the base metric; called once per key so clones share nothing.
        modalities: canonical modality order (columns of the mask).
        name: metric name used when the base metric returns a single tensor.

    Example:
        >>> from torchmetrics.classification import MulticlassAccuracy
        >>> m = PerPatternMetric(lambda: MulticlassAccuracy(3, average="micro"), ("a", "b"), name="acc")
        >>> preds, target = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])
        >>> m.update(preds, target, torch.tensor([[1, 0], [1, 0], [1, 1], [1, 1]], dtype=torch.bool))
        >>> [(r["pattern"], r["metric"], float(r["value"]), r["n"]) for r in m.compute()]
        [('a', 'acc', 1.0, 2), ('a+b', 'acc', 0.5, 2), ('all', 'acc', 0.75, 4)]
    """

    def __init__(
        self, make_metric: Callable[[], Metric | MetricCollection], modalities: Sequence[str], name: str = "value"
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.name = name
        self.pids = all_pattern_ids(len(self.modalities))
        self.metrics = nn.ModuleDict({f"p{pid}": make_metric() for pid in self.pids})
        self.metrics[ALL] = make_metric()
        self.counts = PatternCounts(len(self.modalities))

    def _metric(self, key: str) -> Metric | MetricCollection:
        metric = self.metrics[key]
        assert isinstance(metric, Metric | MetricCollection)
        return metric

    def update(self, preds: Tensor, target: Tensor, mask: Tensor) -> None:
        """Update the ``all`` clone with every row and each pattern's clone with its rows.

        Args:
            preds: predictions ``[B, ...]`` in any form the base metric accepts.
            target: targets ``[B, ...]``.
            mask: ``bool[B, M]``.
        """
        pids = pattern_ids(mask)  # [B]
        self.counts.update(pids)
        self._metric(ALL).update(preds, target)
        for pid in torch.unique(pids).tolist():
            if pid == 0:
                raise ValueError("a row has no observed modality; masks must observe at least one modality")
            rows = pids == pid
            self._metric(f"p{pid}").update(preds[rows], target[rows])

    def compute(self) -> list[dict[str, Any]]:
        """Rows ``{pattern_id, pattern, n_observed, metric, value, n}`` for patterns seen on any process.

        ``all`` has ``pattern_id`` 0. Every clone is computed on every process (DDP-safe).
        """
        rows = []
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
            counts = self.counts.compute().cpu()
            for pid in [*self.pids, 0]:
                key = f"p{pid}" if pid else ALL
                values = _as_dict(self._metric(key).compute(), self.name)
                n = int(counts.sum()) if pid == 0 else int(counts[pid])
                if n == 0:
                    continue
                for metric, value in values.items():
                    rows.append(
                        {
                            "pattern_id": pid,
                            "pattern": pattern_name(pid, self.modalities) if pid else ALL,
                            "n_observed": bin(pid).count("1") if pid else "",
                            "metric": metric,
                            "value": value.detach().float().cpu(),
                            "n": n,
                        }
                    )
        return rows

    def reset(self) -> None:
        """Reset every clone and the counts."""
        for key in self.metrics:
            self._metric(key).reset()
        self.counts.reset()
