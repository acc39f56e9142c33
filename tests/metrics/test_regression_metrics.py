"""Regression (MOSI) and multilabel metrics against sklearn / numpy / MMSA-formula references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from mmbench.metrics.factory import task_metrics
from mmbench.metrics.per_pattern import PerPatternMetric
from mmbench.metrics.regression import (
    BinarySentimentAccuracy,
    BinarySentimentF1,
    MeanAbsoluteError,
    MeanSquaredError,
    PearsonCorrelation,
    RoundedAccuracy,
)
from mmbench.types import Task


def _sentiment(n: int = 257, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MOSI-like targets in [-3, 3] with exact zeros, and noisy predictions (some exactly 0)."""
    rng = np.random.default_rng(seed)
    y = np.round(rng.uniform(-3, 3, n) * 3) / 3  # averaged annotations on a 1/3 grid
    y[rng.random(n) < 0.1] = 0.0
    p = y + rng.normal(0, 1.0, n)
    p[:5] = 0.0
    return p.astype(np.float32), y.astype(np.float32)


def _mmsa(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MMSA ``__eval_mosei_regression`` (thuiar/MMSA utils/metricsTop.py), rewritten without rounding."""
    non0 = y != 0
    return {
        "mae": float(np.mean(np.abs(p - y))),
        "mse": float(np.mean((p - y) ** 2)),
        "corr": float(np.corrcoef(p, y)[0, 1]),
        "acc2_has0": accuracy_score(y >= 0, p >= 0),
        "f1_has0": f1_score(y >= 0, p >= 0, average="weighted"),
        "acc2_non0": accuracy_score(y[non0] > 0, p[non0] > 0),
        "f1_non0": f1_score(y[non0] > 0, p[non0] > 0, average="weighted"),
        "acc7": float(np.mean(np.round(np.clip(p, -3, 3)) == np.round(np.clip(y, -3, 3)))),
        "acc5": float(np.mean(np.round(np.clip(p, -2, 2)) == np.round(np.clip(y, -2, 2)))),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_collection_matches_mmsa_in_batches(seed):
    p, y = _sentiment(seed=seed)
    metrics = task_metrics(Task.REGRESSION, 1)()
    for chunk in np.array_split(np.arange(len(y)), 7):  # logits [B, 1], targets [B]
        metrics.update(torch.from_numpy(p[chunk]).unsqueeze(1), torch.from_numpy(y[chunk]))
    got = {k: float(v) for k, v in metrics.compute().items()}
    ref = _mmsa(p, y)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], abs=1e-5), k


def test_conventions_differ_exactly_on_zeros():
    y = torch.tensor([0.0, 0.0, 1.0, -1.0, 2.0])
    p = torch.tensor([-0.5, 0.5, 0.0, -2.0, 1.0])
    has0, non0 = BinarySentimentAccuracy("has0"), BinarySentimentAccuracy("non0")
    has0.update(p, y)
    non0.update(p, y)
    # has0: y>=0 -> [T,T,T,F,T], p>=0 -> [F,T,T,F,T] -> 4/5; non0 drops y==0: y>0 [T,F,T], p>0 [F,F,T] -> 2/3
    assert float(has0.compute()) == pytest.approx(4 / 5)
    assert float(non0.compute()) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="convention must be"):
        BinarySentimentF1("zero")  # type: ignore[arg-type]


def test_sum_states_merge_exactly_as_under_ddp():
    """Two 'ranks' merged with the states' reduce functions give the single-process value."""
    p, y = _sentiment(n=101, seed=3)
    halves = (slice(0, 40), slice(40, None))
    for cls, args in [
        (MeanAbsoluteError, ()),
        (MeanSquaredError, ()),
        (PearsonCorrelation, ()),
        (BinarySentimentAccuracy, ("non0",)),
        (BinarySentimentF1, ("has0",)),
        (RoundedAccuracy, (3.0,)),
    ]:
        whole, a, b = cls(*args), cls(*args), cls(*args)
        whole.update(torch.from_numpy(p), torch.from_numpy(y))
        a.update(torch.from_numpy(p[halves[0]]), torch.from_numpy(y[halves[0]]))
        b.update(torch.from_numpy(p[halves[1]]), torch.from_numpy(y[halves[1]]))
        a.merge_state(b)
        for name, default in whole._defaults.items():
            assert whole._reductions[name] is not None and torch.is_tensor(default), (cls.__name__, name)
        assert float(a.compute()) == pytest.approx(float(whole.compute()), abs=1e-6), cls.__name__


def test_degenerate_inputs_give_nan_not_errors():
    corr = PearsonCorrelation()
    corr.update(torch.zeros(4), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.isnan(corr.compute())
    non0 = BinarySentimentAccuracy("non0")
    non0.update(torch.ones(3), torch.zeros(3))
    assert torch.isnan(non0.compute())
    f1 = BinarySentimentF1("has0")  # one class only: sklearn's weighted F1 gives 1.0
    f1.update(torch.ones(3), torch.ones(3))
    assert float(f1.compute()) == pytest.approx(f1_score([1, 1, 1], [1, 1, 1], average="weighted"))


def test_multi_output_regression_has_no_sentiment_metrics():
    metrics = task_metrics(Task.REGRESSION, 3)()
    p, y = torch.randn(10, 3), torch.randn(10, 3)
    metrics.update(p, y)
    out = metrics.compute()
    assert set(out) == {"mae", "mse", "corr"}
    assert float(out["mae"]) == pytest.approx(float((p - y).abs().mean()), abs=1e-6)


def test_regression_metrics_per_pattern():
    p, y = _sentiment(n=60)
    mask = torch.tensor([[True, True], [True, False], [False, True]]).repeat(20, 1)
    metric = PerPatternMetric(task_metrics(Task.REGRESSION, 1), ("a", "b"))
    metric.update(torch.from_numpy(p).unsqueeze(1), torch.from_numpy(y), mask)
    rows = {(r["pattern"], r["metric"]): float(r["value"]) for r in metric.compute()}
    only_a = np.arange(60) % 3 == 1
    assert rows[("a", "mae")] == pytest.approx(float(np.mean(np.abs(p[only_a] - y[only_a]))), abs=1e-6)
    assert rows[("all", "acc2_has0")] == pytest.approx(accuracy_score(y >= 0, p >= 0))


# ------------------------------------------------------------------------------------------- multilabel
def test_multilabel_micro_macro_f1_and_subset_accuracy_match_sklearn():
    rng = np.random.default_rng(0)
    target = (rng.random((97, 6)) < 0.3).astype(np.int64)
    logits = (target * 1.5 - 0.75 + rng.normal(0, 1.0, target.shape)).astype(np.float32)
    pred = (logits > 0).astype(np.int64)
    metrics = task_metrics(Task.MULTILABEL, 6)()
    for chunk in np.array_split(np.arange(97), 4):
        metrics.update(torch.from_numpy(logits[chunk]), torch.from_numpy(target[chunk]).float())
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["f1_micro"] == pytest.approx(f1_score(target, pred, average="micro"), abs=1e-6)
    assert got["f1_macro"] == pytest.approx(f1_score(target, pred, average="macro"), abs=1e-6)
    assert got["subset_acc"] == pytest.approx(accuracy_score(target, pred), abs=1e-6)
    # true micro-F1 over the [N, C] matrix is not the flattened (element-wise) accuracy
    assert got["f1_micro"] != pytest.approx(float((pred == target).mean()), abs=1e-3)


def test_multilabel_small_logits_are_not_mistaken_for_probabilities():
    # every logit lies in [0, 1]: torchmetrics alone would threshold them as probabilities at 0.5
    logits = torch.tensor([[0.3, 0.9], [0.1, 0.2]])
    target = torch.tensor([[1, 1], [1, 1]])
    metrics = task_metrics(Task.MULTILABEL, 2)()
    metrics.update(logits, target)
    out = metrics.compute()
    assert float(out["subset_acc"]) == 1.0 and float(out["f1_micro"]) == 1.0  # sigmoid(x) > 0.5 for x > 0
