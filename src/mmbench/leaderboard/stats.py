"""Pure statistics of the leaderboard (numpy + scipy only; no torch, no files).

A metric computed on a test set is a function of per-sample *sufficient statistics*: accuracy of per-sample
correctness, macro-F1 of the confusion counts, Dice of per-case Dice values. ``SampleMetric`` holds them for one run
(one replicate of one method) and can evaluate the metric on any resample of the samples, vectorised over many
resamples, so that scipy's resampling tests can use it:

* ``bootstrap_ci``: percentile bootstrap over test samples (``scipy.stats.bootstrap``; one seed);
* ``two_way_bootstrap_ci``: seeds *and* samples resampled (several seeds; the test set is shared by the seeds,
  so each bootstrap replicate draws one sample resample and one seed resample; scipy has no two-level bootstrap);
* ``t_interval``: Student-t interval over replicates (``scipy.stats.t``);
* ``paired_comparison``: two methods on the same samples and masks, replicate ``r`` of one paired with replicate
  ``r`` of the other: the mean difference, a paired bootstrap CI (one resample of the samples for both methods) and
  a paired permutation p-value (``scipy.stats.permutation_test(permutation_type="samples")``: each sample's
  predictions are swapped between the two methods at random) — Dror et al. 2018 — or, without per-sample data,
  the same test over replicates;
* ``probability_of_improvement``: P(X > Y) + ½ P(X = Y) over replicates (Agarwal et al. 2021, rliable), from the
  Mann–Whitney U statistic;
* ``holm``: Holm's step-down adjustment of a family of p-values.

Identical predictions always give a difference of exactly 0 and p = 1: every permutation leaves the statistic at 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "PairedResult",
    "SampleMetric",
    "bootstrap_ci",
    "holm",
    "paired_comparison",
    "probability_of_improvement",
    "t_interval",
    "two_way_bootstrap_ci",
]

Reduce = Callable[[np.ndarray, int], np.ndarray]
"""``reduce(sums[..., k], n) -> value[...]``: the metric from summed sufficient statistics of ``n`` samples."""

_BATCH = 200  # resamples evaluated at once (memory: _BATCH × n × k)


@dataclass(frozen=True)
class SampleMetric:
    """Per-sample sufficient statistics of one metric on one run.

    Exactly one of ``dense`` and ``codes`` is set:

    * ``dense``: ``float64[n, k]``, summed over the samples of a resample;
    * ``codes``: ``int64[n, L]`` category codes in ``[0, n_categories)``, counted over the samples of a resample
      (``sums[..., K]`` = counts; e.g. ``target·C + pred`` for a confusion matrix, ``L`` = 1).

    Attributes:
        reduce: the metric from the sums (``Reduce``).
        dense: dense statistics, or ``None``.
        codes: category codes, or ``None``.
        n_categories: ``K`` for ``codes``.
    """

    reduce: Reduce
    dense: np.ndarray | None = None
    codes: np.ndarray | None = None
    n_categories: int = 0

    def __post_init__(self) -> None:
        if (self.dense is None) == (self.codes is None):
            raise ValueError("SampleMetric needs exactly one of dense and codes")

    @property
    def n(self) -> int:
        """Number of samples."""
        data = self.dense if self.dense is not None else self.codes
        assert data is not None
        return int(data.shape[0])

    def sums(self, idx: np.ndarray) -> np.ndarray:
        """Summed statistics of the samples ``idx[..., n']`` → ``[..., k]`` (or ``[..., K]`` counts)."""
        idx = np.asarray(idx)
        if self.dense is not None:
            return self.dense[idx].sum(axis=-2)
        assert self.codes is not None
        lead = idx.shape[:-1]
        flat = idx.reshape(-1, idx.shape[-1])
        k = self.n_categories
        c = self.codes[flat]  # [B, n', L]
        offsets = (np.arange(flat.shape[0]) * k)[:, None, None]
        counts = np.bincount((c + offsets).ravel(), minlength=flat.shape[0] * k)
        return counts.reshape(*lead, k).astype(np.float64)

    def resample(self, idx: np.ndarray) -> np.ndarray:
        """The metric on each resample: ``idx[..., n']`` sample indices → ``[...]`` values."""
        return np.asarray(self.reduce(self.sums(idx), int(np.shape(idx)[-1])), dtype=np.float64)

    def value(self) -> float:
        """The metric on every sample once."""
        return float(self.resample(np.arange(self.n)))

    def concat(self, other: SampleMetric) -> SampleMetric:
        """Samples of ``self`` then of ``other`` (same metric): the pool a paired permutation draws from."""
        if self.dense is not None and other.dense is not None:
            return SampleMetric(self.reduce, dense=np.concatenate([self.dense, other.dense]))
        if self.codes is not None and other.codes is not None and self.n_categories == other.n_categories:
            return SampleMetric(
                self.reduce, codes=np.concatenate([self.codes, other.codes]), n_categories=self.n_categories
            )
        raise ValueError("cannot pool SampleMetrics of different kinds")


def mean_metric(values: np.ndarray) -> SampleMetric:
    """The mean of per-sample values ``float[n]`` (accuracy from correctness, Dice per case, absolute error ...)."""
    return SampleMetric(lambda s, n: s[..., 0] / n, dense=np.asarray(values, dtype=np.float64).reshape(-1, 1))


# ------------------------------------------------------------------------------------------------ intervals
def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, std (ddof=1), low, high)`` of the Student-t interval over replicates; NaN spread below two values."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return (np.nan, np.nan, np.nan, np.nan)
    mean = float(x.mean())
    if len(x) < 2:
        return (mean, np.nan, np.nan, np.nan)
    std = float(x.std(ddof=1))
    low, high = stats.t.interval(level, len(x) - 1, loc=mean, scale=std / np.sqrt(len(x)))
    return (mean, std, float(low), float(high))


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def bootstrap_ci(
    metric: SampleMetric, n_resamples: int = 2000, level: float = 0.95, seed: int | np.random.Generator = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the metric over test samples (``scipy.stats.bootstrap``)."""
    if metric.n < 2:
        return (np.nan, np.nan)
    res = stats.bootstrap(
        (np.arange(metric.n),),
        lambda i, axis=-1: metric.resample(i),
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        batch=_BATCH,
        rng=_rng(seed),
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def two_way_bootstrap_ci(
    metrics: Sequence[SampleMetric],
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
    shared_samples: bool = True,
) -> tuple[float, float]:
    """Percentile interval of the mean over replicates, resampling replicates and test samples.

    Each bootstrap replicate draws the replicates with replacement and one resample of the test samples, shared by
    the replicates when they were scored on the same samples (``shared_samples``, the default: a fixed test set),
    otherwise drawn per replicate; its value is the mean over the drawn replicates of the metric on the resample.
    With shared samples the statistics are evaluated on the distinct joint per-sample rows, weighted by how often
    each resample drew them (the same resamples as drawing indices, summed over fewer rows). With one
    replicate this is the percentile bootstrap over samples of ``bootstrap_ci``.

    Args:
        metrics: one ``SampleMetric`` per replicate (seed).
        n_resamples: bootstrap replicates.
        level: confidence level.
        seed: RNG seed or generator.
        shared_samples: the replicates hold the same samples in the same order.
    """
    rng = _rng(seed)
    s = len(metrics)
    if s == 0 or min(m.n for m in metrics) < 2:
        return (np.nan, np.nan)
    if shared_samples and len({m.n for m in metrics}) != 1:
        raise ValueError("shared_samples needs replicates of equal size")
    out = np.empty(n_resamples)
    if shared_samples:
        # resampling n samples with replacement = multinomial counts over the distinct joint rows (same law, cheaper)
        keys = np.concatenate([_data(m).astype(np.float64) for m in metrics], axis=1)
        _, rep, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        n, u = metrics[0].n, len(rep)
        for start in range(0, n_resamples, _BATCH):
            b = min(_BATCH, n_resamples - start)
            idx = inverse[rng.integers(0, n, size=(b, n))] + (np.arange(b) * u)[:, None]
            weights = np.bincount(idx.ravel(), minlength=b * u).reshape(b, u).astype(np.float64)  # [b, U] counts
            vals = np.stack([np.asarray(m.reduce(_onehot_sums(m, rep, weights), n)) for m in metrics], axis=-1)
            pick = rng.integers(0, s, size=(b, s))
            out[start : start + b] = np.take_along_axis(vals, pick, axis=1).mean(axis=1)
    else:
        for start in range(0, n_resamples, _BATCH):
            b = min(_BATCH, n_resamples - start)
            vals = np.stack([m.resample(rng.integers(0, m.n, size=(b, m.n))) for m in metrics], axis=-1)
            pick = rng.integers(0, s, size=(b, s))
            out[start : start + b] = np.take_along_axis(vals, pick, axis=1).mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(out, [alpha, 1 - alpha])
    return (float(low), float(high))


# ------------------------------------------------------------------------------------------------ comparisons
@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of method A with method B (``diff = A − B``, in the metric's units).

    Attributes:
        diff: mean over paired replicates of ``metric(A) − metric(B)``.
        ci_low: lower end of the paired bootstrap interval of ``diff``.
        ci_high: upper end.
        p_value: two-sided paired permutation p-value (NaN when no test is possible).
        n_pairs: paired replicates.
        n_samples: samples per replicate (0 when the test ran over replicates, without per-sample data).
        test: ``"permutation_samples"``, ``"permutation_seeds"`` or ``"none"``.
    """

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_pairs: int
    n_samples: int
    test: str


def _data(m: SampleMetric) -> np.ndarray:
    data = m.dense if m.dense is not None else m.codes
    assert data is not None
    return data


def _onehot_sums(m: SampleMetric, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights[R, n'] @ stats[rows]`` → ``[R, k]`` (dense) or weighted category counts ``[R, K]`` (codes)."""
    if m.dense is not None:
        return weights @ m.dense[rows]
    assert m.codes is not None
    k, codes = m.n_categories, m.codes[rows]  # [n', L]
    n_r = weights.shape[0]
    flat = (codes[None, :, :] + (np.arange(n_r) * k)[:, None, None]).ravel()
    w = np.broadcast_to(weights[:, :, None], (n_r, *codes.shape)).ravel()
    return np.bincount(flat, weights=w, minlength=n_r * k).reshape(n_r, k)


def _swap_pvalue(
    a: Sequence[SampleMetric], b: Sequence[SampleMetric], observed: float, n_resamples: int, rng: np.random.Generator
) -> float:
    """Two-sided Monte-Carlo p-value of the paired permutation test (each sample swapped between A and B w.p. ½).

    The null distribution is that of ``scipy.stats.permutation_test(..., permutation_type="samples")`` on the
    pooled statistics (the tests check the two agree); it is computed from the summed statistics — a swap of
    sample ``i`` moves ``stats_B[i] − stats_A[i]`` from B's sums to A's — and only over the samples where some
    replicate of A and B differ, because scipy's generic pairing loop costs O(n) passes over every batch.
    p = (1 + #{|T*| ≥ |T|}) / (R + 1), scipy's convention for a randomised test.
    """
    n = a[0].n
    differ = np.zeros(n, dtype=bool)
    for x, y in zip(a, b, strict=True):
        differ |= np.any(_data(x) != _data(y), axis=1)
    rows = np.flatnonzero(differ)
    full = np.arange(n)
    totals = [(x.sums(full), y.sums(full)) for x, y in zip(a, b, strict=True)]
    hits = 0
    tol = abs(observed) * (1 - 1e-12)
    for start in range(0, n_resamples, 2000):
        size = min(2000, n_resamples - start)
        swap = (rng.random((size, len(rows))) < 0.5).astype(np.float64)
        null = np.zeros(size)
        for (x, y), (sa, sb) in zip(zip(a, b, strict=True), totals, strict=True):
            moved = _onehot_sums(y, rows, swap) - _onehot_sums(x, rows, swap)  # [size, k]
            null += np.asarray(x.reduce(sa + moved, n)) - np.asarray(y.reduce(sb - moved, n))
        null /= len(a)
        hits += int(np.count_nonzero(np.abs(null) >= tol))
    return float((hits + 1) / (n_resamples + 1))


def paired_comparison(
    a: Sequence[SampleMetric] | Sequence[float],
    b: Sequence[SampleMetric] | Sequence[float],
    n_resamples: int = 9999,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> PairedResult:
    """Compare A with B on the same samples (``SampleMetric`` per replicate) or on paired replicate values.

    With per-sample data (one ``SampleMetric`` per replicate, all of equal ``n``, replicate ``r`` of A paired with
    replicate ``r`` of B, the same samples in the same order): the statistic is
    ``mean_r metric(A_r) − mean_r metric(B_r)``; the bootstrap resamples the samples once for both methods
    (paired, ``scipy.stats.bootstrap``), and the permutation test swaps each sample's statistics between A and B
    (the same swap in every replicate; see ``_swap_pvalue``).

    With floats (one value per replicate, no per-sample data): the same paired bootstrap and permutation test over
    the replicates (exact when ``2^r`` ≤ ``n_resamples``); no test below two pairs.
    """
    rng = _rng(seed)
    if len(a) != len(b):
        raise ValueError(f"paired_comparison needs as many replicates of A as of B, got {len(a)} and {len(b)}")
    r = len(a)
    if r == 0:
        return PairedResult(np.nan, np.nan, np.nan, np.nan, 0, 0, "none")
    if isinstance(a[0], SampleMetric):
        ma = [m for m in a if isinstance(m, SampleMetric)]
        mb = [m for m in b if isinstance(m, SampleMetric)]
        n = ma[0].n
        if any(m.n != n for m in [*ma, *mb]):
            raise ValueError("paired_comparison needs every replicate of A and B on the same samples")
        d = float(np.mean([x.value() - y.value() for x, y in zip(ma, mb, strict=True)]))
        if n < 2:
            return PairedResult(d, np.nan, np.nan, np.nan, r, n, "none")
        boot = stats.bootstrap(
            (np.arange(n),),
            lambda i, axis=-1: np.mean([x.resample(i) - y.resample(i) for x, y in zip(ma, mb, strict=True)], axis=0),
            vectorized=True,
            n_resamples=n_boot,
            confidence_level=level,
            method="percentile",
            batch=_BATCH,
            rng=rng,
        )
        ci = boot.confidence_interval
        p = 1.0 if d == 0 else _swap_pvalue(ma, mb, d, n_resamples, rng)
        return PairedResult(d, float(ci.low), float(ci.high), p, r, n, "permutation_samples")
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(xa) & np.isfinite(xb)
    xa, xb = xa[ok], xb[ok]
    d = float(np.mean(xa - xb)) if len(xa) else np.nan
    if len(xa) < 2:
        return PairedResult(d, np.nan, np.nan, np.nan, len(xa), 0, "none")
    perm = stats.permutation_test(
        (xa, xb),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        rng=rng,
    )
    deltas = xa - xb
    if np.ptp(deltas) == 0:
        low = high = float(deltas[0])
    else:
        boot = stats.bootstrap(
            (deltas,), np.mean, n_resamples=n_boot, confidence_level=level, method="percentile", rng=rng
        )
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    p = float(perm.pvalue) if d != 0 else 1.0
    return PairedResult(d, low, high, min(p, 1.0), len(xa), 0, "permutation_seeds")


def probability_of_improvement(a: Sequence[float], b: Sequence[float], lower_is_better: bool = False) -> float:
    """P(X > Y) + ½ P(X = Y) for X a replicate score of A and Y one of B (rliable), via Mann–Whitney U.

    NaN unless both have at least one finite value. ``lower_is_better`` flips the direction (error metrics).
    """
    x = np.asarray([v for v in a if np.isfinite(v)], dtype=np.float64)
    y = np.asarray([v for v in b if np.isfinite(v)], dtype=np.float64)
    if len(x) == 0 or len(y) == 0:
        return np.nan
    if lower_is_better:
        x, y = -x, -y
    if np.all(np.concatenate([x, y]) == x[0]):
        return 0.5
    u = stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    return float(u / (len(x) * len(y)))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count in the family).

    ``p_(i) ← max_{j ≤ i} min(1, (m − j + 1) · p_(j))`` over the sorted finite p-values.

    Example:
        >>> holm([0.01, 0.04, 0.03, float("nan")]).round(3).tolist()
        [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out
