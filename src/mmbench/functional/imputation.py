"""Pure tensor kernels of UL4M4 cluster-guided imputation (Ismkhan & Bouchachia, arXiv 2606.15743).

Everything here follows ``reference/ul4m4.md`` (the specification distilled from the official code,
h-ismkhan/Multimodal-Learning-with-Missing-Modalities-via-Unsupervised-Learning @ 0f84e8f, mainly
``CMU-MOSI/mosi-ul4m4.py`` class ``ClusterGuidedImputation``). The code here is written from that description.

Representation. Embeddings are a sequence of per-modality tensors ``X[m]: float[N, d_m]`` plus
``mask: bool[N, M]`` (``True`` = observed, DESIGN.md §2). Values in unobserved slots are garbage (zeros, NaN,
1e9, …): every kernel selects them away with ``torch.where`` before any arithmetic that could mix them into an
observed result, so they never influence an output.

Vectorisation. There is no Python loop over samples or centres: a loop runs over modalities and over chunks of
``chunk_size`` samples, so every ``[chunk, K]`` (or, in the completion, ``[chunk // K, K, K]``) intermediate
stays bounded. Tensors stay on the device of the inputs; random draws come from a seeded CPU
``torch.Generator`` so results do not depend on the device.

Public API:
    ``zscore_fit``, ``zscore``: per-modality z-score on observed training entries (ul4m4.md §1.2).
    ``partial_modality_distance``: the partial-modality distance D (paper Eq. 2, §1.3).
    ``kmeanspp_partial``: k-means++ seeding under D (§1.4).
    ``partial_kmeans``: exact Lloyd iterations with partial centres (paper Eq. 3, §1.4), or the official code's
    single update (``official_one_update=True``).
    ``greedy_complete``: the iterative greedy completion (paper Algorithm 2, §1.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "PartialKMeansResult",
    "greedy_complete",
    "kmeanspp_partial",
    "partial_kmeans",
    "partial_modality_distance",
    "zscore",
    "zscore_fit",
]

SIGMA_EPS = 1e-8
"""A standard deviation ``<= SIGMA_EPS`` is replaced by 1 (MOSI/EDF code, ul4m4.md §1.2)."""

INF_DISTANCE = 1e9
"""k-means++ replaces ``D = inf`` (nothing shared) by this before squaring (ul4m4.md §1.4)."""


class PartialKMeansResult(NamedTuple):
    """Output of ``partial_kmeans``.

    Attributes:
        centres: per modality ``float[K, d_m]``, raw-space (un-normalised) means; rows where ``centre_mask`` is
            ``False`` hold 0 and must not be read.
        centre_mask: ``bool[K, M]``, which modalities each centre has.
        assignment: ``long[N]`` cluster of each sample (from the last assignment step); −1 for a sample with no
            observed modality (such samples take no part in the clustering).
        seeds: ``long[K]`` the k-means++ seed samples (indices into the N samples).
        num_iter: number of centre updates performed.
        converged: whether a stopping rule fired before ``max_iter``.
    """

    centres: list[Tensor]
    centre_mask: Tensor
    assignment: Tensor
    seeds: Tensor
    num_iter: int
    converged: bool


# ------------------------------------------------------------------------------------------------- validation
def _check(X: Sequence[Tensor], mask: Tensor, what: str = "X") -> list[int]:
    """Validate ``X``/``mask`` and return the dims ``[d_m]``."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
        raise ValueError(f"{what} mask must be a bool tensor [N, M], got {getattr(mask, 'dtype', type(mask))}")
    N, M = mask.shape
    if len(X) != M:
        raise ValueError(f"{what} has {len(X)} modalities but its mask has M={M} columns")
    if M == 0:
        raise ValueError(f"{what} needs at least one modality")
    dims = []
    for m, x in enumerate(X):
        if x.dim() != 2 or x.shape[0] != N:
            raise ValueError(f"{what}[{m}] must have shape [N={N}, d_{m}], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{what}[{m}] must be floating point, got {x.dtype}")
        if x.device != mask.device:
            raise ValueError(f"{what}[{m}] is on {x.device} but the mask is on {mask.device}")
        if x.dtype != X[0].dtype:
            raise ValueError(f"{what}[{m}] has dtype {x.dtype}, {what}[0] has {X[0].dtype}; use one dtype")
        dims.append(int(x.shape[1]))
    return dims


def _check_chunk(chunk_size: int) -> int:
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return int(chunk_size)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


# ---------------------------------------------------------------------------------------------------- z-score
def _masked_group_sums(
    x: Tensor, observed: Tensor, group: Tensor, num_groups: int, chunk_size: int
) -> tuple[Tensor, Tensor]:
    """Per-group sums and counts of the observed rows of ``x`` (float64 accumulators).

    One helper serves both the global mean (one group) and the centre update, so ``K = 1`` reproduces the
    global mean bit for bit.

    Args:
        x: ``float[N, d]`` (unobserved rows: garbage).
        observed: ``bool[N]``.
        group: ``long[N]`` group of each row in ``0 … num_groups−1`` (rows with −1 are ignored).
        num_groups: number of groups G.
        chunk_size: rows per chunk.

    Returns:
        ``(sums float64[G, d], counts float64[G])``.
    """
    sums = torch.zeros(num_groups, x.shape[1], dtype=torch.float64, device=x.device)
    counts = torch.zeros(num_groups, dtype=torch.float64, device=x.device)
    groups = torch.arange(num_groups, device=x.device)
    for sl in _chunks(x.shape[0], chunk_size):
        obs = observed[sl]
        xc = torch.where(obs[:, None], x[sl], 0.0)  # garbage never enters the sum
        onehot = (group[sl, None] == groups[None, :]) & obs[:, None]  # [n, G]
        w = onehot.to(x.dtype)
        sums += (w.T @ xc).to(torch.float64)  # [G, d]
        counts += onehot.sum(0).to(torch.float64)
    return sums, counts


def zscore_fit(
    X: Sequence[Tensor], mask: Tensor, *, chunk_size: int = 4096, eps: float = SIGMA_EPS
) -> tuple[list[Tensor], list[Tensor]]:
    """Per-modality, per-dimension mean and standard deviation over the observed entries only.

    Implements ul4m4.md §1.2 (official MOSI/EDF ``_compute_normalization_stats``): ``μ_m`` and ``σ_m`` are taken
    over the training samples that observe ``m``; ``σ`` is the unbiased std (``torch.std``) and any
    ``σ <= eps`` is replaced by 1. A modality observed by fewer than two samples gets ``σ = 1``, and one observed
    by none gets ``μ = 0`` (no statistic exists; callers that need it should reject such data).

    Args:
        X: per modality ``float[N, d_m]`` (training embeddings; unobserved slots are garbage).
        mask: ``bool[N, M]``, ``True`` = observed.
        chunk_size: rows per chunk.
        eps: smallest standard deviation kept.

    Returns:
        ``(mu, sigma)``: per modality ``float[d_m]`` each, in the dtype and on the device of ``X``.
    """
    _check(X, mask)
    chunk_size = _check_chunk(chunk_size)
    N = mask.shape[0]
    mu: list[Tensor] = []
    sigma: list[Tensor] = []
    zeros = torch.zeros(N, dtype=torch.long, device=mask.device)
    for m, x in enumerate(X):
        obs = mask[:, m]
        sums, counts = _masked_group_sums(x, obs, zeros, 1, chunk_size)
        n = float(counts[0])
        mean64 = sums[0] / max(n, 1.0)
        mean = mean64.to(x.dtype)
        ss = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        for sl in _chunks(N, chunk_size):
            dev = torch.where(obs[sl, None], x[sl].to(torch.float64) - mean64, 0.0)
            ss += dev.square().sum(0)
        if n > 1:
            std = (ss / (n - 1)).sqrt().to(x.dtype)
            std = torch.where(std > eps, std, torch.ones_like(std))
        else:
            std = torch.ones_like(mean)
        mu.append(mean)
        sigma.append(std)
    return mu, sigma


def zscore(X: Sequence[Tensor], mask: Tensor, mu: Sequence[Tensor], sigma: Sequence[Tensor]) -> list[Tensor]:
    """``z = (x − μ) / σ`` on observed rows; unobserved rows become exactly 0 (ul4m4.md §1.2).

    Args:
        X: per modality ``float[N, d_m]``.
        mask: ``bool[N, M]``.
        mu: per modality ``float[d_m]``.
        sigma: per modality ``float[d_m]`` (already guarded, > 0).

    Returns:
        Per modality ``float[N, d_m]``.
    """
    _check(X, mask)
    return [torch.where(mask[:, m, None], (x - mu[m]) / sigma[m], 0.0) for m, x in enumerate(X)]


# --------------------------------------------------------------------------------------------------- distance
def _sq_dists(za: Tensor, zb: Tensor, na2: Tensor, nb2: Tensor) -> Tensor:
    """``‖za_i − zb_k‖²`` via ``‖a‖² + ‖b‖² − 2a·b`` (one GEMM), clamped at 0. ``[n, d], [K, d] → [n, K]``."""
    return torch.addmm(na2[:, None] + nb2[None, :], za, zb.T, alpha=-2.0).clamp_min_(0.0)


def _block_sq_distance(
    za: Sequence[Tensor],
    ma: Tensor,
    na2: Tensor,
    zb: Sequence[Tensor],
    mb: Tensor,
    nb2: Tensor,
    dims: Sequence[int],
) -> Tensor:
    """``D²`` between a block of clean z-space rows and a set of clean z-space objects.

    Args:
        za: per modality ``float[n, d_m]`` (0 where unobserved).
        ma: ``bool[n, M]``.
        na2: ``float[n, M]`` squared norms of ``za``.
        zb: per modality ``float[K, d_m]`` (0 where absent).
        mb: ``bool[K, M]``.
        nb2: ``float[K, M]`` squared norms of ``zb``.
        dims: ``[d_m]``.

    Returns:
        ``float[n, K]``; ``inf`` where nothing is shared.
    """
    n, K = ma.shape[0], mb.shape[0]
    num = torch.zeros(n, K, dtype=za[0].dtype, device=ma.device)
    cnt = torch.zeros(n, K, dtype=za[0].dtype, device=ma.device)
    for m, d in enumerate(dims):
        shared = ma[:, m, None] & mb[None, :, m]  # [n, K]
        sq = _sq_dists(za[m], zb[m], na2[:, m], nb2[:, m]) / d  # per-coordinate MSE, [n, K]
        num += torch.where(shared, sq, 0.0)
        cnt += shared
    return torch.where(cnt > 0, num / cnt, math.inf)


def partial_modality_distance(
    Xa: Sequence[Tensor],
    mask_a: Tensor,
    Xb: Sequence[Tensor],
    mask_b: Tensor,
    mu: Sequence[Tensor] | None = None,
    sigma: Sequence[Tensor] | None = None,
    *,
    squared: bool = False,
    chunk_size: int = 4096,
) -> Tensor:
    """The partial-modality distance D between every row of ``a`` and every row of ``b`` (paper Eq. 2).

    ``D(a, b) = sqrt( (1/|S|) · Σ_{m∈S} ‖z_a^m − z_b^m‖² / d_m )`` with ``S`` the modalities observed in both
    and ``D = +inf`` when ``S = ∅`` (ul4m4.md §1.3; official ``_partial_modality_distance``). This is the
    paraphrase "per modality the mean over its ``d_m`` coordinates of squared differences, then the mean over
    shared modalities, then sqrt"; ul4m4.md agrees with it. Dividing by ``d_m`` makes duplicated dimensions
    neutral; dividing by ``|S|`` puts pairs sharing one or several modalities on one scale. D is not a metric.

    Args:
        Xa: per modality ``float[Na, d_m]``.
        mask_a: ``bool[Na, M]``.
        Xb: per modality ``float[Nb, d_m]``.
        mask_b: ``bool[Nb, M]``.
        mu: per modality ``float[d_m]`` z-score means (from ``zscore_fit`` on training data), or ``None`` when
            ``Xa``/``Xb`` are already in z-space.
        sigma: per modality ``float[d_m]`` (with ``mu``).
        squared: return ``D²`` instead of ``D``.
        chunk_size: rows of ``a`` per chunk.

    Returns:
        ``float[Na, Nb]``.
    """
    dims = _check(Xa, mask_a, "Xa")
    if _check(Xb, mask_b, "Xb") != dims:
        raise ValueError(f"Xa and Xb have different modality dims: {dims} vs {[x.shape[1] for x in Xb]}")
    chunk_size = _check_chunk(chunk_size)
    if (mu is None) != (sigma is None):
        raise ValueError("give both mu and sigma, or neither")
    if mu is not None and sigma is not None:
        za, zb = zscore(Xa, mask_a, mu, sigma), zscore(Xb, mask_b, mu, sigma)
    else:
        za = [torch.where(mask_a[:, m, None], x, 0.0) for m, x in enumerate(Xa)]
        zb = [torch.where(mask_b[:, m, None], x, 0.0) for m, x in enumerate(Xb)]
    na2 = torch.stack([z.square().sum(1) for z in za], 1)  # [Na, M]
    nb2 = torch.stack([z.square().sum(1) for z in zb], 1)  # [Nb, M]
    out = torch.cat(
        [
            _block_sq_distance([z[sl] for z in za], mask_a[sl], na2[sl], zb, mask_b, nb2, dims)
            for sl in _chunks(mask_a.shape[0], chunk_size)
        ]
        or [torch.empty(0, mask_b.shape[0], dtype=za[0].dtype, device=mask_a.device)]
    )
    return out if squared else out.sqrt()


# ------------------------------------------------------------------------------------------------- clustering
def kmeanspp_partial(Z: Sequence[Tensor], mask: Tensor, num_clusters: int, *, seed: int = 0) -> Tensor:
    """k-means++ seeding under D (ul4m4.md §1.4; official MOSI/EDF ``_initialize_centres``).

    The draws are pinned down so that any implementation can reproduce them: ``u = torch.rand(K,
    generator=torch.Generator().manual_seed(seed), dtype=torch.float64)`` (on CPU). The first seed is
    ``floor(u_0 · N)``. Seed ``k ≥ 1`` is drawn with probability ``∝ w_i = min_{s chosen} D²(z_i, z_s)``, with
    ``D = inf`` replaced by ``1e9`` before squaring, by inverse CDF: the first ``i`` with
    ``cumsum(w)_i > u_k · Σw``. If ``Σw = 0`` (every sample coincides with a seed), ``floor(u_k · N)``.
    Each centre is a copy of a real sample and inherits its (possibly partial) modalities.

    Args:
        Z: per modality ``float[N, d_m]`` z-normalised embeddings (unobserved rows garbage).
        mask: ``bool[N, M]``.
        num_clusters: K, ``1 <= K <= N``.
        seed: seed of the CPU generator.

    Returns:
        ``long[K]`` indices of the seed samples.
    """
    dims = _check(Z, mask, "Z")
    N = mask.shape[0]
    if not 1 <= num_clusters <= N:
        raise ValueError(f"num_clusters must be in 1..N={N}, got {num_clusters}")
    dev = mask.device
    z = [torch.where(mask[:, m, None], x, 0.0) for m, x in enumerate(Z)]
    nz2 = torch.stack([x.square().sum(1) for x in z], 1)  # [N, M]
    u = torch.rand(num_clusters, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64).tolist()
    seeds = [min(int(u[0] * N), N - 1)]
    best = torch.full((N,), math.inf, dtype=z[0].dtype, device=dev)  # D² to the nearest chosen seed
    for k in range(num_clusters):
        s = seeds[k]
        zs = [x[s : s + 1] for x in z]
        d2 = _block_sq_distance(z, mask, nz2, zs, mask[s : s + 1], nz2[s : s + 1], dims)[:, 0]  # [N]
        if bool(mask[s].any()):
            d2[s] = 0.0  # exact self-distance (the GEMM form leaves rounding noise)
        best = torch.minimum(best, d2)
        if k + 1 == num_clusters:
            break
        w = torch.where(torch.isinf(best), INF_DISTANCE**2, best.to(torch.float64))  # [N]
        cum = torch.cumsum(w, 0)
        total = float(cum[-1])
        if total > 0:
            target = torch.tensor([u[k + 1] * total], dtype=torch.float64, device=dev)
            nxt = int(torch.searchsorted(cum, target, right=True)[0])
        else:
            nxt = int(u[k + 1] * N)
        seeds.append(min(nxt, N - 1))
    return torch.tensor(seeds, dtype=torch.long, device=dev)


def _centre_z(centres: Sequence[Tensor], cmask: Tensor, mu: Sequence[Tensor], sigma: Sequence[Tensor]) -> list[Tensor]:
    return [torch.where(cmask[:, m, None], (c - mu[m]) / sigma[m], 0.0) for m, c in enumerate(centres)]


def _assign(
    z: Sequence[Tensor],
    mask: Tensor,
    nz2: Tensor,
    zc: Sequence[Tensor],
    cmask: Tensor,
    dims: Sequence[int],
    chunk_size: int,
) -> tuple[Tensor, Tensor]:
    """Exact assignment ``argmin_k D(z_i, c_k)`` (ties and all-inf rows → lowest index, like the official loop).

    Returns:
        ``(assignment long[N], d2min float[N])``.
    """
    nc2 = torch.stack([c.square().sum(1) for c in zc], 1)  # [K, M]
    assign, d2min = [], []
    for sl in _chunks(mask.shape[0], chunk_size):
        d2 = _block_sq_distance([x[sl] for x in z], mask[sl], nz2[sl], zc, cmask, nc2, dims)  # [n, K]
        val, idx = d2.min(1)
        assign.append(idx)
        d2min.append(val)
    return torch.cat(assign), torch.cat(d2min)


def _update(
    X: Sequence[Tensor], mask: Tensor, assign: Tensor, num_clusters: int, chunk_size: int
) -> tuple[list[Tensor], Tensor]:
    """Paper Eq. 3: ``c_k^m`` = raw mean over the members of k that observe m; absent if none does."""
    centres, has = [], []
    for m, x in enumerate(X):
        sums, counts = _masked_group_sums(x, mask[:, m], assign, num_clusters, chunk_size)
        present = counts > 0
        centres.append(torch.where(present[:, None], sums / counts.clamp_min(1.0)[:, None], 0.0).to(x.dtype))
        has.append(present)
    return centres, torch.stack(has, 1)


def _centre_shift(zc_old: Sequence[Tensor], m_old: Tensor, zc_new: Sequence[Tensor], m_new: Tensor) -> Tensor:
    """Per centre ``D(old, new)``; ``inf`` if its modality set changed, 0 if it has none in both (``float[K]``)."""
    num = torch.zeros(m_old.shape[0], dtype=zc_old[0].dtype, device=m_old.device)
    for m, (a, b) in enumerate(zip(zc_old, zc_new, strict=True)):
        num += torch.where(m_old[:, m] & m_new[:, m], (a - b).square().mean(1), 0.0)
    cnt = (m_old & m_new).sum(1)
    shift = torch.where(cnt > 0, num / cnt.clamp_min(1), 0.0).sqrt()
    return torch.where((m_old != m_new).any(1), math.inf, shift)


def partial_kmeans(
    X: Sequence[Tensor],
    mask: Tensor,
    num_clusters: int,
    mu: Sequence[Tensor],
    sigma: Sequence[Tensor],
    *,
    max_iter: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    chunk_size: int = 4096,
    official_one_update: bool = False,
) -> PartialKMeansResult:
    """Partial-modality k-means: k-means++ seeding, then exact Lloyd iterations under D (ul4m4.md §1.4).

    Distances are taken in z-space (``mu``/``sigma``), centres are raw-space means (paper Eq. 3; official
    ``_kmeans_update_step``).

    Default (``official_one_update=False``): exact Lloyd, the paper's algorithm. One iteration = assignment
    ``argmin_k D(z_i, c_k)`` (ties and all-inf rows → lowest k, as the official loop) + update. It stops when an
    assignment equals the previous one, or when no cluster was re-seeded and every centre moved by
    ``D(old, new) < tol``, or after ``max_iter`` updates. The caps (``max_iter``/``tol``) are *not* the official
    code's behaviour (see below); they only bound a loop the official code never runs.

    ``official_one_update=True`` reproduces the centres of the official MOSI/EDF scripts
    (``ClusterGuidedImputation.fit``, ``max_kmeans_iters=100``, drift tolerance 1e-6): those scripts assign every
    sample exactly to the k-means++ seeds, then run an "Elkan" pass *against the same, unchanged seeds*. Each
    sample's upper bound already equals the smallest of its exact lower bounds, so the pass changes no assignment,
    ``changed_any`` stays ``False`` and the loop exits after its first centre update ("Converged at iteration 1").
    The official centres are therefore *one* Lloyd update from the seeds: assign to the seeds, average the members
    per modality (Eq. 3), stop. In this mode at most one update runs (``min(max_iter, 1)``; ``tol`` is unused),
    ``converged`` is ``True``, the returned assignment is the one against the seeds, and an empty cluster is not
    re-seeded: as in the official code it becomes a centre with no modality (a dead centre no sample is ever near).
    The MM-IMDb script differs again (dense exact assignment for up to 50 iterations until the assignment stops
    changing, i.e. Lloyd with ``tol = 0``; stale centres kept for empty clusters or modalities; ul4m4.md §1.4, §6.8).

    Other differences from the official code (ul4m4.md §6.7-9, §9.5-7), in both modes:

    * exact dense assignment, no Elkan pruning (D is not a metric, so the official pruning is only a heuristic);
    * the k-means++ draws use a pinned torch generator (``kmeanspp_partial``), not ``np.random``: the same seeds as
      the official code cannot be drawn, so "reproduces the official centres" means *given the same seeds*;
    * samples with no observed modality are left out (assignment −1); the official MOSI/EDF loop assigns them to
      centre 0 (all distances are ``inf``), where they add nothing to any mean, so the centres are the same;
    * Lloyd mode: an *empty* cluster (no member observes any modality) is re-seeded deterministically: empty
      clusters in index order take the samples with the largest ``D²`` to their assigned centre (``inf`` first,
      ties by sample index), restricted to ``D² > 0``; the centre becomes a copy of the sample and its
      modalities. Clusters left without a candidate stay empty (no modality). A centre whose modality set changed
      counts as an infinite shift;
    * a modality no member of a cluster observes is absent from that centre (MOSI/EDF; MM-IMDb keeps the stale
      value); ``greedy_complete`` falls back to the global mean for a modality *no* centre has, where MOSI asserts
      and MM-IMDb leaves zeros;
    * the z-score statistics (``zscore_fit``) use the unbiased std with ``σ <= 1e-8 → 1`` (MOSI/EDF); the MM-IMDb
      script uses the biased ``np.std`` plus 1e-8.

    Args:
        X: per modality ``float[N, d_m]`` raw training embeddings (unobserved slots garbage).
        mask: ``bool[N, M]``.
        num_clusters: K (``1 <=`` K ``<=`` number of samples with an observed modality).
        mu: per modality ``float[d_m]`` from ``zscore_fit``.
        sigma: per modality ``float[d_m]`` from ``zscore_fit``.
        max_iter: maximum number of centre updates (0 keeps the seeds).
        tol: centre-shift tolerance in units of D (Lloyd mode only).
        seed: seed of the k-means++ draws (see ``kmeanspp_partial``).
        chunk_size: samples per chunk.
        official_one_update: stop after the single update the official MOSI/EDF code performs (see above).

    Returns:
        A ``PartialKMeansResult``.
    """
    dims = _check(X, mask)
    chunk_size = _check_chunk(chunk_size)
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    N, K = mask.shape[0], int(num_clusters)
    keep = mask.any(1)
    kept = torch.nonzero(keep)[:, 0]
    if not 1 <= K <= kept.numel():
        raise ValueError(
            f"num_clusters must be in 1..{kept.numel()} (samples with an observed modality), got {num_clusters}"
        )
    if kept.numel() < N:  # drop the samples with nothing observed
        X, mask = [x[kept] for x in X], mask[kept]
    z = zscore(X, mask, mu, sigma)  # [n, d_m] each, clean
    nz2 = torch.stack([x.square().sum(1) for x in z], 1)  # [n, M]
    seeds = kmeanspp_partial(z, mask, K, seed=seed)
    centres = [torch.where(mask[seeds, m, None], x[seeds], 0.0) for m, x in enumerate(X)]
    cmask = mask[seeds].clone()
    zc = _centre_z(centres, cmask, mu, sigma)
    prev: Tensor | None = None
    assign = torch.zeros(mask.shape[0], dtype=torch.long, device=mask.device)
    num_iter, converged = 0, False
    for _ in range(min(max_iter, 1) if official_one_update else max_iter):
        assign, d2min = _assign(z, mask, nz2, zc, cmask, dims, chunk_size)
        if prev is not None and torch.equal(assign, prev):
            converged = True
            break
        new_centres, new_cmask = _update(X, mask, assign, K, chunk_size)
        num_iter += 1
        if official_one_update:  # the official Elkan pass re-assigns against the unchanged seeds and exits
            centres, cmask, converged = new_centres, new_cmask, True
            break
        empty = torch.nonzero(~new_cmask.any(1))[:, 0]
        reseeded = False
        if empty.numel() > 0:
            key = torch.where(d2min > 0, d2min, -1.0)
            order = torch.sort(key, descending=True, stable=True).indices
            pick = order[: empty.numel()]
            pick = pick[key[pick] > 0]
            if pick.numel() > 0:
                tgt = empty[: pick.numel()]
                for m, x in enumerate(X):
                    new_centres[m][tgt] = torch.where(mask[pick, m, None], x[pick], 0.0)
                new_cmask[tgt] = mask[pick]
                reseeded = True
        new_zc = _centre_z(new_centres, new_cmask, mu, sigma)
        shift = _centre_shift(zc, cmask, new_zc, new_cmask)
        centres, cmask, zc, prev = new_centres, new_cmask, new_zc, assign
        if not reseeded and bool((shift < tol).all()):
            converged = True
            break
    if kept.numel() < N:
        full = torch.full((N,), -1, dtype=torch.long, device=mask.device)
        full[kept] = assign
        assign, seeds = full, kept[seeds]
    return PartialKMeansResult(centres, cmask, assign, seeds, num_iter, converged)


# ------------------------------------------------------------------------------------------------- completion
def _pattern_terms(observed: Sequence[bool], cmask: Tensor, cc: Tensor) -> tuple[Tensor, Tensor]:
    """The sample-independent part of ``D²(candidate_j, c_l)`` for one observed pattern ``O``.

    Candidate ``j`` (``x`` with its missing modalities that centre ``j`` has taken from ``c_j``) against centre
    ``l`` has the squared-distance numerator ``P[i, l] + Q[j, l]``, with an observed part
    ``P[i, l] = Σ_{m ∈ O ∩ C_l} ‖z_i^m − z_{c_l}^m‖²/d_m`` and an imputed part
    ``Q[j, l] = Σ_{m ∉ O, m ∈ C_j ∩ C_l} ‖z_{c_j}^m − z_{c_l}^m‖²/d_m``; the shared count
    ``cnt[j, l] = |O ∩ C_l| + |C_j ∩ C_l ∖ O|`` depends on the pattern only. So
    ``D² = P[i, l] · R[j, l] + S[j, l]`` with ``R = 1/cnt`` and ``S = Q/cnt`` (``R = 0``, ``S = inf`` where
    nothing is shared).

    Args:
        observed: the pattern, one bool per modality.
        cmask: ``bool[K, M]``.
        cc: ``float[M, K, K]`` centre–centre per-coordinate MSE ``‖z_{c_j}^m − z_{c_l}^m‖²/d_m``.

    Returns:
        ``(R, S)``, ``float[K, K]`` each (rows: candidate ``j``, columns: centre ``l``).
    """
    K = cmask.shape[0]
    obs = torch.tensor(list(observed), dtype=torch.bool, device=cmask.device)
    cnt = (cmask & obs[None, :]).sum(1).to(cc.dtype)[None, :].repeat(K, 1)  # |O ∩ C_l|, [K, K]
    Q = torch.zeros(K, K, dtype=cc.dtype, device=cc.device)
    for m, seen in enumerate(observed):
        if not seen:
            pair = cmask[:, m, None] & cmask[None, :, m]  # [K(j), K(l)]
            Q += torch.where(pair, cc[m], 0.0)
            cnt += pair
    shared = cnt > 0
    R = torch.where(shared, 1.0 / cnt, 0.0)
    S = torch.where(shared, Q / cnt, math.inf)
    return R, S


def greedy_complete(
    X: Sequence[Tensor],
    mask: Tensor,
    centres: Sequence[Tensor],
    centre_mask: Tensor,
    mu: Sequence[Tensor],
    sigma: Sequence[Tensor],
    *,
    chunk_size: int = 4096,
) -> list[Tensor]:
    """Iterative greedy completion (paper Algorithm 2; ul4m4.md §1.5; official ``impute_sample``), batched.

    For an incomplete sample ``x`` the algorithm builds K candidates (candidate ``j`` = ``x`` with each missing
    modality that centre ``j`` has copied from ``c_j``), then repeatedly takes the globally smallest pair
    ``(j*, l*) = argmin D(candidate_j, c_l)`` over the still-active candidates, retires ``j*`` and copies the
    still-missing modalities that ``j*`` has. Candidates never change, so ``score_j = min_l D²(candidate_j, c_l)``
    is computed once, and the loop visits candidates in ascending ``(score_j, j)`` order (the official strict
    ``<`` scan in ``(j, l)`` order breaks ties towards the lowest ``j``). Modality ``m`` is therefore filled
    from the first candidate in that order whose centre has ``m``: ``j*(m) = argmin_{j : m ∈ C_j} score_j``,
    which is what this batched kernel computes. With complete centres it is the nearest centre on the observed
    modalities; with ``K = 1`` it is mean-fill.

    Faithful quirk kept: candidate ``j`` scored against its own centre counts the imputed modalities as
    shared with zero error, so a centre sharing none of ``x``'s observed modalities scores 0.

    Fallbacks (ul4m4.md §9.7): a modality that no centre has takes the global mean ``μ_m``; a sample with no
    observed modality takes ``μ`` for every modality. Observed entries are returned bit for bit.

    Args:
        X: per modality ``float[N, d_m]`` raw embeddings (unobserved slots garbage).
        mask: ``bool[N, M]``.
        centres: per modality ``float[K, d_m]`` raw centres (rows absent in ``centre_mask`` are ignored).
        centre_mask: ``bool[K, M]``.
        mu: per modality ``float[d_m]`` training means (the z-score ones).
        sigma: per modality ``float[d_m]``.
        chunk_size: budget of the intermediates: ``max(1, chunk_size // K)`` samples per chunk, so the
            ``[chunk, K, K]`` tensors hold about ``chunk_size · K`` elements.

    Returns:
        Per modality ``float[N, d_m]``, completed, in the dtype of ``X``.
    """
    dims = _check(X, mask)
    chunk_size = _check_chunk(chunk_size)
    if _check(centres, centre_mask, "centres") != dims:
        raise ValueError(f"centres dims {[c.shape[1] for c in centres]} differ from X dims {dims}")
    N, M = mask.shape
    K = centre_mask.shape[0]
    if K < 1:
        raise ValueError("greedy_complete needs at least one centre, got K=0")
    dev, dtype = mask.device, X[0].dtype
    centres = [c.to(device=dev, dtype=dtype) for c in centres]
    centre_mask = centre_mask.to(dev)
    mu = [t.to(device=dev, dtype=dtype) for t in mu]
    sigma = [t.to(device=dev, dtype=dtype) for t in sigma]
    zc = _centre_z(centres, centre_mask, mu, sigma)
    nc2 = torch.stack([c.square().sum(1) for c in zc], 1)  # [K, M]
    # exact pairwise differences (no GEMM cancellation; the diagonal is exactly 0)
    cc = torch.stack(
        [
            torch.cdist(c, c, compute_mode="donot_use_mm_for_euclid_dist").square() / d
            for c, d in zip(zc, dims, strict=True)
        ]
    )  # [M, K, K]
    # source[i, m]: centre index filling (i, m), or −1 for the global mean; observed slots are kept anyway
    source = torch.full((N, M), -1, dtype=torch.long, device=dev)
    n_obs = mask.sum(1)
    rows = torch.nonzero((n_obs > 0) & (n_obs < M))[:, 0]  # incomplete samples with something observed
    has_any = centre_mask.any(0)  # [M]
    rows_per_chunk = max(1, chunk_size // max(K, 1))
    patterns, inv = torch.unique(mask[rows].to(torch.uint8), dim=0, return_inverse=True)  # [U, M], [R]
    for u, pattern in enumerate(patterns.bool().tolist()):  # at most 2^M − 2 patterns
        R, S = _pattern_terms(pattern, centre_mask, cc)  # [K, K] each
        seen = [m for m in range(M) if pattern[m]]
        unseen = [m for m in range(M) if not pattern[m]]
        members = rows[inv == u]
        for sl in _chunks(members.numel(), rows_per_chunk):
            idx = members[sl]
            P = torch.zeros(idx.numel(), K, dtype=dtype, device=dev)  # observed part of the numerator, [n, K]
            for m in seen:
                z = (X[m][idx] - mu[m]) / sigma[m]  # every row observes m
                sq = _sq_dists(z, zc[m], z.square().sum(1), nc2[:, m]) / dims[m]
                P += torch.where(centre_mask[None, :, m], sq, 0.0)
            score = torch.addcmul(S[None], P[:, None, :], R[None]).amin(2)  # min_l D², [n, K(j)]
            for m in unseen:
                j = torch.where(centre_mask[None, :, m], score, math.inf).argmin(1)  # first candidate having m
                source[idx, m] = torch.where(has_any[m], j, -1)
    out = []
    for m, x in enumerate(X):
        o = torch.empty_like(x)
        for sl in _chunks(N, chunk_size):
            src = source[sl, m]
            fill = torch.where((src >= 0)[:, None], centres[m][src.clamp_min(0)], mu[m])
            o[sl] = torch.where(mask[sl, m, None], x[sl], fill)
        out.append(o)
    return out
