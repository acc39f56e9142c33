"""UL4M4Imputer: fit/transform contract, state round trip, no peeking, clear errors."""

from __future__ import annotations

import io

import pytest
import torch

from mmbench.functional.imputation import greedy_complete, partial_kmeans, zscore_fit
from mmbench.nn.imputer import UL4M4Imputer

DIMS = [4, 6, 3]


def make_split(N: int, seed: int, p_obs: float = 0.6) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    group = torch.randint(3, (N,), generator=g)
    X = [
        torch.randn(3, d, generator=g)[group] * 4 + torch.randn(N, d, generator=g) * torch.rand(d, generator=g) + 2
        for d in DIMS
    ]
    mask = torch.rand(N, len(DIMS), generator=g) < p_obs
    mask[~mask.any(1), 0] = True
    return X, mask


def garbage(X: list[torch.Tensor], mask: torch.Tensor, value: float) -> list[torch.Tensor]:
    return [torch.where(mask[:, m, None], x, torch.full_like(x, value)) for m, x in enumerate(X)]


def state_copy(imp: UL4M4Imputer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in imp.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def train() -> tuple[list[torch.Tensor], torch.Tensor]:
    return make_split(300, seed=0)


@pytest.fixture(scope="module")
def val() -> tuple[list[torch.Tensor], torch.Tensor]:
    return make_split(120, seed=1, p_obs=0.5)


def test_transform_completes_and_keeps_observed_bits(train, val) -> None:
    imp = UL4M4Imputer(num_clusters=6).fit(*train)
    X, mask = val
    out = imp.transform(X, mask)
    assert [o.shape for o in out] == [x.shape for x in X]
    for m, (o, x) in enumerate(zip(out, X, strict=True)):
        assert o.dtype == x.dtype
        assert torch.isfinite(o).all()
        assert torch.equal(o[mask[:, m]], x[mask[:, m]])  # bit for bit
    assert imp.num_iter is not None
    assert imp.num_iter >= 1


def test_imputer_equals_the_kernels(train, val) -> None:
    imp = UL4M4Imputer(num_clusters=5, max_iter=20, tol=1e-6, seed=4).fit(*train)
    mu, sigma = zscore_fit(*train)
    res = partial_kmeans(*train, 5, mu, sigma, max_iter=20, tol=1e-6, seed=4)
    expected = greedy_complete(*val, res.centres, res.centre_mask, mu, sigma)
    for o, e in zip(imp.transform(*val), expected, strict=True):
        assert torch.equal(o, e)


def test_k1_is_mean_fill_in_raw_space(train, val) -> None:
    imp = UL4M4Imputer(num_clusters=1).fit(*train)
    Xt, mt = train
    X, mask = val
    out = imp.transform(X, mask)
    offset = 0
    for m, d in enumerate(DIMS):
        mean = Xt[m][mt[:, m]].double().mean(0).float()
        miss = ~mask[:, m]
        torch.testing.assert_close(out[m][miss], mean.expand(int(miss.sum()), -1))
        assert torch.equal(out[m][miss], imp.mu[offset : offset + d].expand(int(miss.sum()), -1))
        offset += d


def test_transform_does_not_change_the_state_and_fit_reads_only_its_arguments(train, val) -> None:
    imp = UL4M4Imputer(num_clusters=6).fit(*train)
    before = state_copy(imp)
    imp.transform(*val)
    imp.transform(*make_split(50, seed=7, p_obs=0.3))
    assert_same_state(state_copy(imp), before)
    # a second imputer fitted on the same train data alone has the same state: nothing else leaked in
    assert_same_state(state_copy(UL4M4Imputer(num_clusters=6).fit(*train)), before)
    # and fitting on other data does change it (the check can fail)
    other = state_copy(UL4M4Imputer(num_clusters=6).fit(*val))
    assert not torch.equal(other["mu"], before["mu"])


def test_samples_are_imputed_independently(train, val) -> None:
    imp = UL4M4Imputer(num_clusters=6).fit(*train)
    X, mask = val
    full = imp.transform(X, mask)
    idx = torch.tensor([5, 17, 18, 90])
    part = imp.transform([x[idx] for x in X], mask[idx])
    for f, p in zip(full, part, strict=True):
        assert torch.equal(f[idx], p)


def test_garbage_in_unobserved_slots_changes_nothing(train, val) -> None:
    ref = UL4M4Imputer(num_clusters=6).fit(*train)
    ref_out = ref.transform(*val)
    Xv, mv = val
    for value in (float("nan"), 1e9, -float("inf")):
        imp = UL4M4Imputer(num_clusters=6).fit(garbage(train[0], train[1], value), train[1])
        assert_same_state(state_copy(imp), state_copy(ref))
        for o, r in zip(imp.transform(garbage(Xv, mv, value), mv), ref_out, strict=True):
            assert torch.equal(o, r)


def test_state_dict_round_trip_into_a_fresh_module(train, val) -> None:
    imp = UL4M4Imputer(num_clusters=7, seed=3).fit(*train)
    buf = io.BytesIO()
    torch.save(imp.state_dict(), buf)
    buf.seek(0)
    fresh = UL4M4Imputer(num_clusters=7, seed=3)
    assert not fresh.is_fitted
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.is_fitted
    assert_same_state(state_copy(fresh), state_copy(imp))
    for a, b in zip(fresh.transform(*val), imp.transform(*val), strict=True):
        assert torch.equal(a, b)


def test_state_dict_keeps_the_fit_dtype(train, val) -> None:
    X64 = [x.double() for x in train[0]]
    imp = UL4M4Imputer(num_clusters=3).fit(X64, train[1])
    fresh = UL4M4Imputer()
    fresh.load_state_dict(imp.state_dict())
    assert fresh.centres.dtype == torch.float64
    out = fresh.transform([x.double() for x in val[0]], val[1])
    assert all(o.dtype == torch.float64 for o in out)


def test_errors_name_the_bad_value(train, val) -> None:
    X, mask = val
    with pytest.raises(ValueError, match="before fit"):
        UL4M4Imputer().transform(X, mask)
    imp = UL4M4Imputer(num_clusters=4).fit(*train)
    with pytest.raises(ValueError, match="expected 3 modalities"):
        imp.transform(X[:2], mask[:, :2])
    with pytest.raises(ValueError, match=r"X has 2 modalities but mask has M=3"):
        imp.transform(X[:2], mask)
    with pytest.raises(ValueError, match=r"X\[1\] has 5 features, but the imputer was fitted with d_1=6"):
        imp.transform([X[0], X[1][:, :5], X[2]], mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        imp.transform(X, mask.float())
    with pytest.raises(ValueError, match="num_clusters must be >= 1, got 0"):
        UL4M4Imputer(num_clusters=0)
    with pytest.raises(ValueError, match="tol must be >= 0, got -1"):
        UL4M4Imputer(tol=-1.0)
    Xt, mt = train
    with pytest.raises(ValueError, match="num_clusters=500 exceeds the 300"):
        UL4M4Imputer(num_clusters=500).fit(Xt, mt)
    never = mt.clone()
    never[:, 2] = False
    never[:, 0] = True
    with pytest.raises(ValueError, match=r"modalities \[2\] are observed in no training sample"):
        UL4M4Imputer().fit(Xt, never)


def test_empty_and_complete_samples(train) -> None:
    imp = UL4M4Imputer(num_clusters=4).fit(*train)
    X, _ = make_split(4, seed=9)
    mask = torch.tensor([[False, False, False], [True, True, True], [True, False, False], [False, False, False]])
    out = imp.transform(garbage(X, mask, float("nan")), mask)
    mu = imp.mu.split(DIMS)
    for m in range(3):
        assert torch.equal(out[m][0], mu[m])
        assert torch.equal(out[m][3], mu[m])
        assert torch.equal(out[m][1], X[m][1])
        assert torch.isfinite(out[m]).all()


def test_official_one_update_switch_reaches_the_kernel(train) -> None:
    X, mask = train
    imp = UL4M4Imputer(num_clusters=6, max_iter=100, tol=1e-6, seed=2, official_one_update=True).fit(X, mask)
    assert imp.num_iter == 1
    mu, sigma = zscore_fit(X, mask)
    res = partial_kmeans(X, mask, 6, mu, sigma, max_iter=100, tol=1e-6, seed=2, official_one_update=True)
    assert torch.equal(imp.centres, torch.cat(res.centres, 1))
    lloyd = UL4M4Imputer(num_clusters=6, max_iter=100, tol=1e-6, seed=2).fit(X, mask)
    assert lloyd.num_iter is not None and lloyd.num_iter > 1
    assert not torch.equal(lloyd.centres, imp.centres)
    assert "official_one_update=True" in repr(imp)
