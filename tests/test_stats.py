"""mmbench.leaderboard.stats against scipy on fixed data, and the contracts of paired comparisons."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from mmbench.leaderboard.samples import _multiclass
from mmbench.leaderboard.stats import (
    SampleMetric,
    bootstrap_ci,
    holm,
    mean_metric,
    paired_comparison,
    probability_of_improvement,
    t_interval,
    two_way_bootstrap_ci,
)

RNG = np.random.default_rng(1234)
N, C = 400, 5
TARGET = RNG.integers(0, C, N)


def predictions(acc: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(N) < acc, TARGET, rng.integers(0, C, N))


def acc_metric(pred: np.ndarray) -> SampleMetric:
    m = _multiclass("acc", TARGET, pred, C)
    assert m is not None
    return m


def test_stats_imports_no_torch() -> None:
    code = "import sys, mmbench.leaderboard.stats, mmbench.leaderboard.samples; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_t_interval_matches_scipy() -> None:
    x = [0.81, 0.79, 0.84, 0.80]
    mean, std, low, high = t_interval(x)
    ref = sps.t.interval(0.95, 3, loc=np.mean(x), scale=sps.sem(x))
    assert (mean, std) == pytest.approx((np.mean(x), np.std(x, ddof=1)))
    assert (low, high) == pytest.approx(ref)
    assert np.isnan(t_interval([0.8])[2])


def test_codes_and_dense_forms_agree_and_resample_correctly() -> None:
    pred = predictions(0.7, 0)
    codes, dense = acc_metric(pred), mean_metric((pred == TARGET).astype(float))
    assert codes.value() == pytest.approx(float(np.mean(pred == TARGET)))
    idx = RNG.integers(0, N, size=(7, N))
    assert np.allclose(codes.resample(idx), dense.resample(idx))
    assert np.allclose(codes.resample(idx), (pred == TARGET)[idx].mean(axis=1))


def test_macro_f1_matches_sklearn() -> None:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    pred = predictions(0.6, 1)
    f1 = _multiclass("f1_macro", TARGET, pred, C)
    bal = _multiclass("balanced_acc", TARGET, pred, C)
    assert f1 is not None and bal is not None
    assert f1.value() == pytest.approx(f1_score(TARGET, pred, average="macro"))
    assert bal.value() == pytest.approx(balanced_accuracy_score(TARGET, pred))


def test_bootstrap_ci_equals_scipy_on_fixed_data() -> None:
    correct = (predictions(0.75, 2) == TARGET).astype(float)
    ours = bootstrap_ci(mean_metric(correct), n_resamples=3000, seed=7)
    ref = sps.bootstrap((correct,), np.mean, n_resamples=3000, method="percentile", rng=np.random.default_rng(7))
    # same generator, same resamples: the index trick gives scipy's numbers exactly
    assert ours == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))


def test_two_way_bootstrap_one_replicate_is_the_sample_bootstrap() -> None:
    m = acc_metric(predictions(0.75, 3))
    a = two_way_bootstrap_ci([m], n_resamples=4000, seed=0)
    b = bootstrap_ci(m, n_resamples=4000, seed=1)
    assert a == pytest.approx(b, abs=0.01)  # same law (multinomial vs index resampling), Monte-Carlo error only
    # more seed spread → a wider interval than the sample bootstrap of one seed
    wide = two_way_bootstrap_ci([acc_metric(predictions(p, 10 + i)) for i, p in enumerate((0.6, 0.75, 0.9))], 4000)
    assert wide[1] - wide[0] > b[1] - b[0]


def test_identical_predictions_are_never_significantly_different() -> None:
    for seed in range(5):
        m = acc_metric(predictions(0.7, seed))
        r = paired_comparison([m], [m], n_resamples=999, n_boot=500, seed=seed)
        assert r.diff == 0 and r.p_value == 1.0 and r.ci_low == r.ci_high == 0
    r = paired_comparison([0.7, 0.8, 0.75], [0.7, 0.8, 0.75])
    assert r.p_value == 1.0


def test_large_planted_difference_is_always_significant() -> None:
    for seed in range(3):
        good = [acc_metric(predictions(0.9, 100 + seed + 10 * r)) for r in range(2)]
        bad = [acc_metric(predictions(0.5, 200 + seed + 10 * r)) for r in range(2)]
        res = paired_comparison(good, bad, n_resamples=1999, n_boot=500, seed=seed)
        assert res.diff > 0.3 and res.ci_low > 0.2
        assert res.p_value == pytest.approx(1 / 2000)  # nothing in the null reaches the observed difference
        assert res.test == "permutation_samples"


def test_paired_permutation_p_value_matches_scipy() -> None:
    a, b = acc_metric(predictions(0.74, 5)), acc_metric(predictions(0.70, 6))
    ours = paired_comparison([a], [b], n_resamples=20000, n_boot=200, seed=0).p_value
    pooled = a.concat(b)
    ref = sps.permutation_test(
        (np.arange(N), np.arange(N) + N),
        lambda x, y, axis=-1: pooled.resample(x) - pooled.resample(y),
        permutation_type="samples",
        vectorized=True,
        n_resamples=20000,
        batch=2000,
        rng=np.random.default_rng(1),
    ).pvalue
    assert 0.01 < ref < 0.9  # a case where the p-value is neither 0 nor 1
    assert ours == pytest.approx(ref, abs=0.015)  # two Monte-Carlo estimates of the same null


def test_seed_level_test_matches_scipy_exact() -> None:
    x, y = [0.80, 0.82, 0.79, 0.85, 0.81], [0.78, 0.80, 0.80, 0.81, 0.77]
    r = paired_comparison(x, y)
    ref = sps.permutation_test(
        (x, y), lambda a, b, axis=-1: np.mean(a - b, axis=axis), permutation_type="samples", vectorized=True
    )
    assert r.test == "permutation_seeds" and r.p_value == pytest.approx(ref.pvalue)
    assert r.diff == pytest.approx(np.mean(np.subtract(x, y)))


def test_probability_of_improvement() -> None:
    assert probability_of_improvement([3, 4, 5], [1, 2, 2.5]) == 1.0
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0
    assert probability_of_improvement([1, 2], [3, 4], lower_is_better=True) == 1.0
    x, y = [1.0, 3.0, 5.0], [2.0, 3.0, 4.0]
    ref = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
    assert probability_of_improvement(x, y) == pytest.approx(ref)


def test_holm_against_a_reference_step_down() -> None:
    p = RNG.random(12) ** 3
    m = len(p)
    order = np.argsort(p)
    ref = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        ref[i] = running
    assert np.allclose(holm(p), ref)
    assert np.isnan(holm([0.1, np.nan])[1]) and holm([0.1, np.nan])[0] == pytest.approx(0.1)
