"""UL4M4 kernels: properties of D, degenerate cases, and equality with a plain loop reference.

The ``ref_*`` functions below are a direct, unvectorised transcription of ``reference/ul4m4.md`` §1.2-1.5
(Python/NumPy loops over samples, centres and candidates; the greedy completion is the literal loop). They are
also imported by ``tests/benchmarks/test_bench_ul4m4.py`` for the speed comparison.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmbench.functional.imputation import (
    PartialKMeansResult,
    greedy_complete,
    kmeanspp_partial,
    partial_kmeans,
    partial_modality_distance,
    zscore,
    zscore_fit,
)

# ------------------------------------------------------------------------------------------ loop reference
Obj = list  # one object: per modality an np.ndarray or None (absent)


def ref_objects(X: list[np.ndarray], mask: np.ndarray) -> list[Obj]:
    N, M = mask.shape
    return [[X[m][i].copy() if mask[i, m] else None for m in range(M)] for i in range(N)]


def ref_zscore_fit(objs: list[Obj], dims: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    mu, sd = [], []
    for m, d in enumerate(dims):
        rows = [o[m] for o in objs if o[m] is not None]
        if not rows:
            mu.append(np.zeros(d))
            sd.append(np.ones(d))
            continue
        a = np.stack(rows)
        s = a.std(0, ddof=1) if len(rows) > 1 else np.ones(d)
        mu.append(a.mean(0))
        sd.append(np.where(s > 1e-8, s, 1.0))
    return mu, sd


def ref_normalise(o: Obj, mu: list[np.ndarray], sd: list[np.ndarray]) -> Obj:
    return [None if v is None else (v - mu[m]) / sd[m] for m, v in enumerate(o)]


def ref_d2(a: Obj, b: Obj, dims: list[int]) -> float:
    shared = [m for m in range(len(dims)) if a[m] is not None and b[m] is not None]
    if not shared:
        return math.inf
    return sum(float(np.sum((a[m] - b[m]) ** 2)) / dims[m] for m in shared) / len(shared)


def ref_kmeanspp(zs: list[Obj], K: int, seed: int, dims: list[int]) -> list[int]:
    N = len(zs)
    u = torch.rand(K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).tolist()
    seeds = [min(int(u[0] * N), N - 1)]
    best = [math.inf] * N
    for k in range(K):
        for i in range(N):
            best[i] = min(best[i], ref_d2(zs[i], zs[seeds[k]], dims))
        if k + 1 == K:
            break
        w = [1e18 if math.isinf(b) else b for b in best]
        cum = np.cumsum(w)
        if cum[-1] > 0:
            target = u[k + 1] * cum[-1]
            nxt = next((i for i in range(N) if cum[i] > target), N - 1)
        else:
            nxt = int(u[k + 1] * N)
        seeds.append(min(nxt, N - 1))
    return seeds


def ref_kmeans(
    objs: list[Obj],
    K: int,
    mu: list[np.ndarray],
    sd: list[np.ndarray],
    max_iter: int,
    tol: float,
    seed: int,
    seeds: list[int] | None = None,
) -> tuple[list[Obj], list[int], list[int], int]:
    """Seeding (unless ``seeds`` is given) + exact Lloyd, re-seeding and stopping rules of ``partial_kmeans``."""
    dims = [len(v) for v in mu]
    M, N = len(dims), len(objs)
    zs = [ref_normalise(o, mu, sd) for o in objs]
    if seeds is None:
        seeds = ref_kmeanspp(zs, K, seed, dims)
    centres = [[None if v is None else v.copy() for v in objs[s]] for s in seeds]
    prev, assign, num_iter = None, [0] * N, 0
    for _ in range(max_iter):
        zc = [ref_normalise(c, mu, sd) for c in centres]
        assign, d2min = [], []
        for i in range(N):
            d = [ref_d2(zs[i], zc[k], dims) for k in range(K)]
            assign.append(int(np.argmin(d)))
            d2min.append(min(d))
        if prev is not None and assign == prev:
            break
        new = []
        for k in range(K):
            c = []
            for m in range(M):
                rows = [objs[i][m] for i in range(N) if assign[i] == k and objs[i][m] is not None]
                c.append(np.mean(rows, 0) if rows else None)
            new.append(c)
        num_iter += 1
        empty = [k for k in range(K) if all(v is None for v in new[k])]
        order = sorted((i for i in range(N) if d2min[i] > 0), key=lambda i: -d2min[i])
        reseeded = False
        for k, i in zip(empty, order, strict=False):
            new[k] = [None if v is None else v.copy() for v in objs[i]]
            reseeded = True
        shifts = []
        for k in range(K):
            old_has = [v is not None for v in centres[k]]
            new_has = [v is not None for v in new[k]]
            if old_has != new_has:
                shifts.append(math.inf)
            elif not any(new_has):
                shifts.append(0.0)
            else:
                shifts.append(math.sqrt(ref_d2(zc[k], ref_normalise(new[k], mu, sd), dims)))
        centres, prev = new, assign
        if not reseeded and max(shifts) < tol:
            break
    return centres, assign, seeds, num_iter


def ref_complete(
    objs: list[Obj], centres: list[Obj], mu: list[np.ndarray], sd: list[np.ndarray]
) -> list[list[np.ndarray]]:
    """Literal Algorithm 2 (ul4m4.md §1.5), one sample at a time, plus the fallbacks of §9.7."""
    dims = [len(v) for v in mu]
    M, K = len(dims), len(centres)
    zc = [ref_normalise(c, mu, sd) for c in centres]
    out = []
    for x in objs:
        missing = [m for m in range(M) if x[m] is None]
        if len(missing) == M:
            out.append([mu[m].copy() for m in range(M)])
            continue
        result = list(x)
        if missing:
            zx = ref_normalise(x, mu, sd)
            cands, zcand = [], []  # candidate j: x with its missing modalities that centre j has taken from c_j
            for j in range(K):
                cand, zcd = list(x), list(zx)
                for m in missing:
                    if centres[j][m] is not None:
                        cand[m], zcd[m] = centres[j][m], zc[j][m]
                cands.append(cand)
                zcand.append(zcd)
            dist = [[ref_d2(zcand[j], zc[ll], dims) for ll in range(K)] for j in range(K)]
            active = list(range(K))
            while missing and active:
                best, best_j = math.inf, None
                for j in active:
                    for ll in range(K):
                        if dist[j][ll] < best:
                            best, best_j = dist[j][ll], j
                if best_j is None:
                    break
                active.remove(best_j)
                for m in list(missing):
                    if cands[best_j][m] is not None:
                        result[m] = cands[best_j][m]
                        missing.remove(m)
            for m in missing:  # no centre has m
                result[m] = mu[m].copy()
        out.append(result)
    return out


# ------------------------------------------------------------------------------------------------- helpers
def make_data(
    N: int, dims: list[int], p_obs: list[float], seed: int, n_groups: int = 4, dtype: torch.dtype = torch.float64
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Clustered embeddings with per-modality scales/offsets and a random mask (>= 1 observed per sample)."""
    g = torch.Generator().manual_seed(seed)
    group = torch.randint(n_groups, (N,), generator=g)
    X = []
    for d in dims:
        means = torch.randn(n_groups, d, generator=g, dtype=torch.float64) * 3
        scale = torch.rand(d, generator=g, dtype=torch.float64) * 5 + 0.1
        X.append(((means[group] + torch.randn(N, d, generator=g, dtype=torch.float64)) * scale + 7).to(dtype))
    mask = torch.rand(N, len(dims), generator=g) < torch.tensor(p_obs)
    empty = ~mask.any(1)
    mask[empty, torch.randint(len(dims), (int(empty.sum()),), generator=g)] = True
    return X, mask


def with_garbage(X: list[torch.Tensor], mask: torch.Tensor, value: float) -> list[torch.Tensor]:
    return [torch.where(mask[:, m, None], x, torch.full_like(x, value)) for m, x in enumerate(X)]


def to_np(X: list[torch.Tensor]) -> list[np.ndarray]:
    return [x.numpy() for x in X]


def centre_objects(centres: list[torch.Tensor], cmask: torch.Tensor) -> list[Obj]:
    K, M = cmask.shape
    return [[centres[m][k].numpy() if cmask[k, m] else None for m in range(M)] for k in range(K)]


# ---------------------------------------------------------------------------------------------------- z-score
def test_zscore_uses_observed_entries_only() -> None:
    X, mask = make_data(50, [3, 4], [0.6, 0.7], seed=0)
    mu, sigma = zscore_fit(with_garbage(X, mask, float("nan")), mask)
    for m in range(2):
        rows = X[m][mask[:, m]]
        torch.testing.assert_close(mu[m], rows.mean(0))
        torch.testing.assert_close(sigma[m], rows.std(0))


def test_zscore_guards_constant_dimension() -> None:
    X, mask = make_data(30, [3], [1.0], seed=1)
    X[0][:, 1] = 5.0
    _, sigma = zscore_fit(X, mask)
    assert sigma[0][1] == 1.0
    assert torch.isfinite(torch.cat(zscore(X, mask, *zscore_fit(X, mask)))).all()


# --------------------------------------------------------------------------------------------------- distance
def test_distance_matches_definition_and_ignores_unshared() -> None:
    dims = [3, 5, 2]
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(1, d, generator=g, dtype=torch.float64) for d in dims]
    b = [torch.randn(1, d, generator=g, dtype=torch.float64) for d in dims]
    ma = torch.tensor([[True, True, False]])
    mb = torch.tensor([[True, False, True]])
    d = partial_modality_distance(a, ma, b, mb)
    assert d.shape == (1, 1)
    expected = math.sqrt(float(((a[0] - b[0]) ** 2).mean()))  # only modality 0 is shared
    assert d.item() == pytest.approx(expected)
    # changing modalities that are not shared changes nothing, garbage included
    a2 = [a[0], a[1] * 100, torch.full((1, 2), float("nan"), dtype=torch.float64)]
    b2 = [b[0], torch.full((1, 5), float("inf"), dtype=torch.float64), b[2] - 9]
    assert partial_modality_distance(a2, ma, b2, mb).item() == d.item()
    # mean over shared modalities of the per-coordinate MSE
    full = torch.ones(1, 3, dtype=torch.bool)
    per_mod = [float(((x - y) ** 2).mean()) for x, y in zip(a, b, strict=True)]
    assert partial_modality_distance(a, full, b, full).item() == pytest.approx(math.sqrt(sum(per_mod) / 3))


def test_distance_is_inf_when_nothing_shared() -> None:
    X, _ = make_data(4, [3, 2], [1.0, 1.0], seed=2)
    ma = torch.tensor([[True, False]] * 4)
    mb = torch.tensor([[False, True]] * 4)
    d = partial_modality_distance(X, ma, X, mb)
    assert torch.isinf(d).all()
    assert torch.isfinite(partial_modality_distance(X, ma, X, ma)).all()


def _distances_after_fit(X: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    mu, sigma = zscore_fit(X, mask)
    return partial_modality_distance(X, mask, X, mask, mu, sigma)


def test_distance_invariant_to_affine_change_of_one_modality() -> None:
    X, mask = make_data(40, [4, 3], [0.7, 0.8], seed=3)
    base = _distances_after_fit(X, mask)
    g = torch.Generator().manual_seed(9)
    scale = (torch.rand(4, generator=g, dtype=torch.float64) + 0.5) * torch.tensor([1.0, -1.0, 3.0, -0.2])
    shift = torch.randn(4, generator=g, dtype=torch.float64) * 50
    moved = _distances_after_fit([X[0] * scale + shift, X[1]], mask)
    torch.testing.assert_close(moved, base)
    # without the z-score the distance does change (the test can fail)
    raw = partial_modality_distance(X, mask, X, mask)
    raw_moved = partial_modality_distance([X[0] * scale + shift, X[1]], mask, X, mask)
    assert not torch.allclose(raw, raw_moved)


def test_distance_invariant_to_duplicated_dimensions() -> None:
    X, mask = make_data(40, [4, 3], [0.7, 0.8], seed=4)
    base = _distances_after_fit(X, mask)
    torch.testing.assert_close(_distances_after_fit([torch.cat([X[0], X[0]], 1), X[1]], mask), base)
    torch.testing.assert_close(_distances_after_fit([X[0], torch.cat([X[1]] * 3, 1)], mask), base)


def test_distance_chunking_is_invisible() -> None:
    X, mask = make_data(37, [3, 2], [0.6, 0.6], seed=5)
    mu, sigma = zscore_fit(X, mask)
    full = partial_modality_distance(X, mask, X, mask, mu, sigma, squared=True)
    torch.testing.assert_close(partial_modality_distance(X, mask, X, mask, mu, sigma, squared=True, chunk_size=4), full)


# -------------------------------------------------------------------------------------------- vs loop reference
CASES = [
    pytest.param(70, [3, 5, 2], [0.7, 0.6, 0.5], 5, id="mixed"),
    pytest.param(60, [4, 3, 2], [0.9, 0.8, 0.06], 8, id="rare-modality-partial-centres"),
    pytest.param(50, [2, 6], [0.5, 0.5], 1, id="K1"),
    pytest.param(40, [3, 3, 3], [1.0, 1.0, 1.0], 4, id="complete"),
]


@pytest.mark.parametrize(("N", "dims", "p_obs", "K"), CASES)
def test_kernels_equal_loop_reference(N: int, dims: list[int], p_obs: list[float], K: int) -> None:
    X, mask = make_data(N, dims, p_obs, seed=N + K)
    Xg = with_garbage(X, mask, float("nan"))
    objs = ref_objects(to_np(X), mask.numpy())

    mu, sigma = zscore_fit(Xg, mask)
    rmu, rsd = ref_zscore_fit(objs, dims)
    for m in range(len(dims)):
        np.testing.assert_allclose(mu[m].numpy(), rmu[m], rtol=1e-10)
        np.testing.assert_allclose(sigma[m].numpy(), rsd[m], rtol=1e-10)

    # seeding alone
    z = zscore(Xg, mask, mu, sigma)
    zs = [ref_normalise(o, rmu, rsd) for o in objs]
    assert kmeanspp_partial(z, mask, K, seed=3).tolist() == ref_kmeanspp(zs, K, 3, dims)

    # the whole clustering
    res = partial_kmeans(Xg, mask, K, mu, sigma, max_iter=30, tol=1e-9, seed=3, chunk_size=16)
    rcentres, rassign, rseeds, rnum = ref_kmeans(objs, K, rmu, rsd, max_iter=30, tol=1e-9, seed=3)
    assert res.seeds.tolist() == rseeds
    assert res.assignment.tolist() == rassign
    assert res.num_iter == rnum
    for k in range(K):
        for m in range(len(dims)):
            assert bool(res.centre_mask[k, m]) == (rcentres[k][m] is not None)
            if rcentres[k][m] is not None:
                np.testing.assert_allclose(res.centres[m][k].numpy(), rcentres[k][m], rtol=1e-9, atol=1e-12)

    # the completion, on fresh samples with random masks (some empty, some complete)
    Xt, mt = make_data(45, dims, [0.5] * len(dims), seed=100 + K)
    mt[:3] = False
    mt[3:6] = True
    out = greedy_complete(with_garbage(Xt, mt, 1e9), mt, res.centres, res.centre_mask, mu, sigma, chunk_size=7)
    ref = ref_complete(ref_objects(to_np(Xt), mt.numpy()), rcentres, rmu, rsd)
    for m in range(len(dims)):
        np.testing.assert_allclose(out[m].numpy(), np.stack([r[m] for r in ref]), rtol=1e-9, atol=1e-12)


def test_empty_clusters_are_reseeded_like_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmbench.functional.imputation as imp

    dims = [3, 4]
    X, mask = make_data(40, dims, [0.7, 0.7], seed=14)
    seeds = [3, 3, 17, 3]  # duplicated seeds: clusters 1 and 3 are empty after the first assignment
    monkeypatch.setattr(imp, "kmeanspp_partial", lambda *a, **k: torch.tensor(seeds))
    mu, sigma = zscore_fit(X, mask)
    res = partial_kmeans(X, mask, 4, mu, sigma, max_iter=20, tol=1e-9)
    objs = ref_objects(to_np(X), mask.numpy())
    rcentres, rassign, _, rnum = ref_kmeans(objs, 4, *ref_zscore_fit(objs, dims), 20, 1e-9, 0, seeds=seeds)
    assert res.assignment.tolist() == rassign
    assert res.num_iter == rnum
    assert sorted(set(rassign)) == [0, 1, 2, 3]  # the re-seeded clusters did get members
    for k in range(4):
        for m in range(2):
            assert bool(res.centre_mask[k, m]) == (rcentres[k][m] is not None)
            if rcentres[k][m] is not None:
                np.testing.assert_allclose(res.centres[m][k].numpy(), rcentres[k][m], rtol=1e-9)


def test_rare_modality_case_really_has_partial_centres() -> None:
    X, mask = make_data(60, [4, 3, 2], [0.9, 0.8, 0.06], seed=68)
    mu, sigma = zscore_fit(X, mask)
    res = partial_kmeans(X, mask, 8, mu, sigma, max_iter=30, tol=1e-9, seed=3)
    assert not bool(res.centre_mask.all())


# ------------------------------------------------------------------------------------------ degenerate cases
def test_k1_is_mean_fill() -> None:
    X, mask = make_data(80, [3, 4], [0.6, 0.5], seed=6)
    mu, sigma = zscore_fit(X, mask)
    res = partial_kmeans(X, mask, 1, mu, sigma)
    assert bool(res.centre_mask.all())
    out = greedy_complete(X, mask, res.centres, res.centre_mask, mu, sigma)
    for m in range(2):
        mean = X[m][mask[:, m]].mean(0)
        torch.testing.assert_close(out[m][~mask[:, m]], mean.expand(int((~mask[:, m]).sum()), -1))
        assert torch.equal(res.centres[m][0], mu[m])  # the same accumulation: bit for bit
        assert torch.equal(out[m][mask[:, m]], X[m][mask[:, m]])


def test_complete_centres_give_nearest_centre_on_observed() -> None:
    dims = [3, 4, 2]
    X, mask = make_data(200, dims, [0.6, 0.6, 0.6], seed=7)
    mu, sigma = zscore_fit(X, mask)
    g = torch.Generator().manual_seed(1)
    K = 6
    centres = [torch.randn(K, d, generator=g, dtype=torch.float64) * sigma[m] + mu[m] for m, d in enumerate(dims)]
    cmask = torch.ones(K, 3, dtype=torch.bool)
    out = greedy_complete(X, mask, centres, cmask, mu, sigma)
    nearest = partial_modality_distance(X, mask, centres, cmask, mu, sigma).argmin(1)  # D on observed modalities
    for m in range(3):
        miss = ~mask[:, m]
        assert torch.equal(out[m][miss], centres[m][nearest[miss]])


def test_partial_centres_terminate_and_fill_everything() -> None:
    dims = [3, 2, 4]
    X, mask = make_data(60, dims, [0.5, 0.5, 0.5], seed=8)
    mask[:2] = False  # samples with nothing observed
    mu, sigma = zscore_fit(X, mask)
    g = torch.Generator().manual_seed(2)
    centres = [torch.randn(5, d, generator=g, dtype=torch.float64) for d in dims]
    cmask = torch.tensor(
        [[True, False, False], [False, True, False], [True, True, False], [False, False, False], [True, False, False]]
    )  # modality 2: no centre has it; centre 3 is dead
    out = greedy_complete(with_garbage(X, mask, float("nan")), mask, centres, cmask, mu, sigma)
    for m in range(3):
        assert torch.isfinite(out[m]).all()
        assert torch.equal(out[m][mask[:, m]], X[m][mask[:, m]])
    assert torch.equal(out[2][~mask[:, 2]], mu[2].expand(int((~mask[:, 2]).sum()), -1))  # no centre has it
    for m in range(3):
        assert torch.equal(out[m][:2], mu[m].expand(2, -1))  # empty samples: global means
    for m in range(2):  # modalities some centre has are filled from a centre that has them
        filled = out[m][2:][~mask[2:, m]]
        owners = centres[m][cmask[:, m]]
        assert bool((filled[:, None, :] == owners[None]).all(-1).any(-1).all())


# -------------------------------------------------------------------------------------- garbage and chunking
def test_garbage_in_unobserved_slots_changes_nothing() -> None:
    dims = [3, 4]
    X, mask = make_data(90, dims, [0.6, 0.6], seed=9, dtype=torch.float32)
    results = []
    for value in (0.0, float("nan"), 1e9, float("inf")):
        Xg = with_garbage(X, mask, value)
        mu, sigma = zscore_fit(Xg, mask)
        res = partial_kmeans(Xg, mask, 4, mu, sigma, seed=1)
        results.append((mu, sigma, res, greedy_complete(Xg, mask, res.centres, res.centre_mask, mu, sigma)))
    mu0, sigma0, res0, out0 = results[0]
    for mu, sigma, res, out in results[1:]:
        for m in range(2):
            assert torch.equal(mu[m], mu0[m])
            assert torch.equal(sigma[m], sigma0[m])
            assert torch.equal(res.centres[m], res0.centres[m])
            assert torch.equal(out[m], out0[m])
        assert torch.equal(res.assignment, res0.assignment)


def test_chunk_size_does_not_change_results() -> None:
    X, mask = make_data(64, [3, 2, 2], [0.6, 0.6, 0.4], seed=10)
    mu, sigma = zscore_fit(X, mask)
    a = partial_kmeans(X, mask, 5, mu, sigma, seed=2, chunk_size=4096)
    b = partial_kmeans(X, mask, 5, mu, sigma, seed=2, chunk_size=5)
    assert torch.equal(a.assignment, b.assignment)
    assert torch.equal(a.centre_mask, b.centre_mask)
    oa = greedy_complete(X, mask, a.centres, a.centre_mask, mu, sigma, chunk_size=4096)
    ob = greedy_complete(X, mask, a.centres, a.centre_mask, mu, sigma, chunk_size=3)
    for m in range(3):
        torch.testing.assert_close(a.centres[m], b.centres[m])
        assert torch.equal(oa[m], ob[m])


def test_empty_samples_are_left_out_of_the_clustering() -> None:
    X, mask = make_data(40, [3, 2], [0.7, 0.7], seed=11)
    mask[5] = False
    mu, sigma = zscore_fit(X, mask)
    res = partial_kmeans(X, mask, 3, mu, sigma, seed=0)
    assert res.assignment[5] == -1
    assert (res.assignment[torch.arange(40) != 5] >= 0).all()
    assert 5 not in res.seeds.tolist()


def test_seeding_is_deterministic_and_seed_dependent() -> None:
    X, mask = make_data(80, [3, 2], [0.7, 0.7], seed=12)
    z = zscore(X, mask, *zscore_fit(X, mask))
    a, b = kmeanspp_partial(z, mask, 6, seed=0), kmeanspp_partial(z, mask, 6, seed=0)
    assert torch.equal(a, b)
    assert len(set(a.tolist())) == 6
    assert any(not torch.equal(a, kmeanspp_partial(z, mask, 6, seed=s)) for s in range(1, 4))


def test_errors_name_the_bad_value() -> None:
    X, mask = make_data(10, [3, 2], [1.0, 1.0], seed=13)
    mu, sigma = zscore_fit(X, mask)
    with pytest.raises(ValueError, match=r"num_clusters must be in 1\.\.10"):
        partial_kmeans(X, mask, 11, mu, sigma)
    with pytest.raises(ValueError, match="2 modalities but its mask has M=3"):
        zscore_fit(X, torch.ones(10, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        zscore_fit(X, mask, chunk_size=0)


# ------------------------------------------------------------------------------- the official single update
def ref_one_update(objs: list[Obj], seeds: list[int], mu: list[np.ndarray], sd: list[np.ndarray]) -> list[Obj]:
    """Hand-written: assign every sample to its nearest seed (strict ``<``, first wins), average once (Eq. 3)."""
    dims = [len(v) for v in mu]
    M, K = len(dims), len(seeds)
    zs = [ref_normalise(o, mu, sd) for o in objs]
    assign = []
    for z in zs:
        best, best_k = math.inf, 0
        for k in range(K):
            d = ref_d2(z, zs[seeds[k]], dims)
            if d < best:
                best, best_k = d, k
        assign.append(best_k)
    centres = []
    for k in range(K):
        rows = [[o[m] for o, a in zip(objs, assign, strict=True) if a == k and o[m] is not None] for m in range(M)]
        centres.append([np.mean(r, 0) if r else None for r in rows])
    return centres


def ref_official_elkan(
    objs: list[Obj], seeds: list[int], mu: list[np.ndarray], sd: list[np.ndarray], max_iter: int = 100
) -> tuple[list[Obj], int]:
    """The official MOSI/EDF fit loop as ul4m4.md §1.4 describes it: exact first assignment to the seeds, then
    Elkan passes with upper/lower bounds, an update, and the stop rule "no assignment changed or drift < 1e-6".

    Returns:
        ``(centres, number of centre updates)``.
    """
    dims = [len(v) for v in mu]
    N, K, M = len(objs), len(seeds), len(dims)
    zs = [ref_normalise(o, mu, sd) for o in objs]

    def dist(a: Obj, b: Obj) -> float:
        return math.sqrt(ref_d2(a, b, dims))

    centres = [[None if v is None else v.copy() for v in objs[s]] for s in seeds]
    zc = [ref_normalise(c, mu, sd) for c in centres]
    lower = np.zeros((N, K))
    upper = np.full(N, math.inf)
    assign = np.zeros(N, dtype=int)
    for i in range(N):
        best, best_k = math.inf, 0
        for k in range(K):
            lower[i, k] = dist(zs[i], zc[k])
            if lower[i, k] < best:
                best, best_k = lower[i, k], k
        assign[i], upper[i] = best_k, best
    stale = np.ones(N, dtype=bool)
    updates = 0
    for _ in range(max_iter):
        cc = np.array([[dist(zc[a], zc[b]) if a != b else 0.0 for b in range(K)] for a in range(K)])
        changed = False
        for i in range(N):
            cur = assign[i]
            for k in range(K):
                if k == cur or upper[i] <= lower[i, k] or upper[i] <= 0.5 * cc[cur, k]:
                    continue
                if stale[i]:
                    upper[i] = lower[i, cur] = dist(zs[i], zc[cur])
                    stale[i] = False
                if upper[i] <= lower[i, k]:
                    continue
                lower[i, k] = dist(zs[i], zc[k])
                if lower[i, k] < upper[i]:
                    assign[i], upper[i], cur, changed = k, lower[i, k], k, True
        new = []
        for k in range(K):
            rows = [[objs[i][m] for i in range(N) if assign[i] == k and objs[i][m] is not None] for m in range(M)]
            new.append([np.mean(r, 0) if r else None for r in rows])
        updates += 1
        new_z = [ref_normalise(c, mu, sd) for c in new]
        delta = np.array([dist(zc[k], new_z[k]) for k in range(K)])
        lower = np.maximum(0.0, lower - delta)
        upper += delta[assign]
        stale[:] = True
        centres, zc = new, new_z
        if not changed or np.all(delta < 1e-6):
            break
    return centres, updates


def _assert_centres_equal(res: PartialKMeansResult, ref: list[Obj]) -> None:
    K, M = res.centre_mask.shape
    for k in range(K):
        for m in range(M):
            assert bool(res.centre_mask[k, m]) == (ref[k][m] is not None), (k, m)
            if ref[k][m] is not None:
                np.testing.assert_allclose(res.centres[m][k].numpy(), ref[k][m], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("N", "dims", "p_obs", "K"), CASES)
def test_official_one_update_reproduces_a_hand_written_one_update_loop(
    N: int, dims: list[int], p_obs: list[float], K: int
) -> None:
    X, mask = make_data(N, dims, p_obs, seed=N + K)
    objs = ref_objects(to_np(X), mask.numpy())
    mu, sigma = zscore_fit(with_garbage(X, mask, float("nan")), mask)
    rmu, rsd = ref_zscore_fit(objs, dims)
    res = partial_kmeans(with_garbage(X, mask, float("nan")), mask, K, mu, sigma, seed=3, official_one_update=True)
    assert res.num_iter == 1 and res.converged
    ref = ref_one_update(objs, res.seeds.tolist(), rmu, rsd)
    _assert_centres_equal(res, ref)
    # the official Elkan loop, run with its cap of 100 iterations, exits after that one update with these centres
    elkan, updates = ref_official_elkan(objs, res.seeds.tolist(), rmu, rsd)
    assert updates == 1
    _assert_centres_equal(res, elkan)


def test_official_one_update_differs_from_lloyd_and_keeps_dead_centres(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmbench.functional.imputation as imp

    X, mask = make_data(70, [3, 5, 2], [0.7, 0.6, 0.5], seed=75)
    mu, sigma = zscore_fit(X, mask)
    lloyd = partial_kmeans(X, mask, 5, mu, sigma, max_iter=30, tol=1e-9, seed=3)
    one = partial_kmeans(X, mask, 5, mu, sigma, max_iter=30, tol=1e-9, seed=3, official_one_update=True)
    assert lloyd.num_iter > 1  # so the two modes can differ here
    assert torch.equal(lloyd.seeds, one.seeds)
    assert any(not torch.allclose(a, b) for a, b in zip(lloyd.centres, one.centres, strict=True))
    # duplicated seeds: the official code leaves the shadowed cluster empty (no modality) instead of re-seeding
    monkeypatch.setattr(imp, "kmeanspp_partial", lambda *a, **k: torch.tensor([3, 3, 17]))
    res = partial_kmeans(X, mask, 3, mu, sigma, official_one_update=True)
    assert not bool(res.centre_mask[1].any())
    objs = ref_objects(to_np(X), mask.numpy())
    _assert_centres_equal(res, ref_one_update(objs, [3, 3, 17], *ref_zscore_fit(objs, [3, 5, 2])))
    assert partial_kmeans(X, mask, 3, mu, sigma, max_iter=0, official_one_update=True).num_iter == 0
