"""Fusion kernels against per-row loop references; masked-out entries never influence the output."""

from __future__ import annotations

import pytest
import torch

from mmbench.functional.fusion import (
    fill_inputs,
    fill_missing,
    fill_weights,
    masked_concat,
    masked_mean,
    masked_mean_var,
)


def _case(seed=0, B=6, M=3, shape=(4, 2, 2)):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, M, *shape, generator=g)
    mask = torch.rand(B, M, generator=g) < 0.6
    mask[0] = False  # a row with nothing observed
    mask[1] = True
    return feats, mask


def _ref_rows(feats, mask, fn):
    return torch.stack([fn(feats[b][mask[b]]) for b in range(feats.shape[0])])


@pytest.mark.parametrize("shape", [(4,), (4, 2, 2)], ids=["vector", "map"])
def test_means_match_the_loop_reference(shape):
    feats, mask = _case(shape=shape)
    zero = torch.zeros(shape)
    ref_mean = _ref_rows(feats, mask, lambda x: x.mean(0) if len(x) else zero)
    torch.testing.assert_close(masked_mean(feats, mask), ref_mean)
    ref_var = _ref_rows(feats, mask, lambda x: x.var(0, unbiased=False) if len(x) else zero)
    torch.testing.assert_close(masked_mean_var(feats, mask), torch.cat([ref_mean, ref_var], 1))
    ref_cat = torch.stack([torch.where(mask[b].reshape(-1, *[1] * len(shape)), feats[b], 0.0) for b in range(6)])
    torch.testing.assert_close(masked_concat(feats, mask), ref_cat.flatten(1, 2))


def test_kernels_ignore_masked_out_entries():
    feats, mask = _case()
    noisy = torch.where(mask.reshape(*mask.shape, 1, 1, 1), feats, torch.full_like(feats, float("nan")))
    for fn in (masked_mean, masked_mean_var, masked_concat):
        torch.testing.assert_close(fn(noisy, mask), fn(feats, mask))
    w = fill_weights(mask, "mean", training=False)
    torch.testing.assert_close(fill_missing(noisy, noisy, mask, w)[mask], feats[mask])
    assert torch.isfinite(fill_missing(noisy, noisy, mask, w)).all()


def test_fill_missing_gives_missing_modalities_the_observed_mean():
    feats, mask = _case()
    out = fill_missing(feats, feats, mask, fill_weights(mask, "mean", training=False))
    mean = masked_mean(feats, mask)
    for b in range(feats.shape[0]):
        for i in range(feats.shape[1]):
            torch.testing.assert_close(out[b, i], feats[b, i] if mask[b, i] else mean[b])


def test_first_available_in_eval_is_the_first_observed_modality():
    _, mask = _case()
    w = fill_weights(mask, "first_available", training=False)
    for b in range(mask.shape[0]):
        expected = torch.zeros(mask.shape[1])
        if mask[b].any():
            expected[int(mask[b].nonzero()[0])] = 1.0
        torch.testing.assert_close(w[b], expected)


def test_fill_inputs_replaces_only_masked_out_rows():
    mask = torch.tensor([[True, False], [False, True]])
    inputs = {"a": torch.randn(2, 3), "b": torch.randn(2, 1, 2, 2)}
    values = {"a": torch.full((3,), 7.0), "b": torch.full((1, 1, 1), -1.0)}
    out = fill_inputs(inputs, mask, values, ["a", "b"])
    torch.testing.assert_close(out["a"][0], inputs["a"][0])
    torch.testing.assert_close(out["a"][1], torch.full((3,), 7.0))
    torch.testing.assert_close(out["b"][0], torch.full((1, 2, 2), -1.0))
    torch.testing.assert_close(out["b"][1], inputs["b"][1])
