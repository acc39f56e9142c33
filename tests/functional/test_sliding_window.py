"""Sliding-window inference: exactness for pointwise predictors, conv predictors away from window borders, padding."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mmbench.functional.sliding_window import sliding_window_inference, window_starts


def pointwise(x: Tensor) -> Tensor:
    """Channel mixing per voxel with correctly rounded ops only, so its value cannot depend on the window layout."""
    return torch.cat([2 * x, x[:, :1] - x[:, 1:2] * x[:, 1:2], torch.maximum(x[:, :1], x[:, 1:2]).abs()], dim=1)


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize(
    ("shape", "roi", "overlap", "sw"),
    [((2, 2, 20, 17, 11), (8, 8, 8), 0.5, 1), ((1, 2, 13, 9, 10), (6, 5, 4), 0.25, 3), ((1, 2, 5, 9, 3), 8, 0.5, 2)],
)
def test_pointwise_predictor_is_exact(
    mode: str, shape: tuple[int, ...], roi: int | tuple[int, ...], overlap: float, sw: int
) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    out = sliding_window_inference(x, roi, pointwise, overlap=overlap, sw_batch_size=sw, mode=mode)
    assert out.shape == (shape[0], 4, *shape[2:])
    assert out.dtype == x.dtype
    assert torch.equal(out, pointwise(x))


def _affected(size: int, roi: int, overlap: float, radius: int) -> set[int]:
    """Positions along one axis that lie within ``radius`` of an inner window border (not the volume border)."""
    hit = set()
    for s in window_starts(size, roi, overlap):
        for p in range(s, s + roi):
            near_left = p - s < radius and s > 0
            near_right = s + roi - 1 - p < radius and s + roi < size
            if near_left or near_right:
                hit.add(p)
    return hit


def test_constant_mode_conv_matches_full_volume_away_from_window_borders() -> None:
    torch.manual_seed(0)
    conv = nn.Conv3d(2, 3, kernel_size=3, padding=1).eval()
    x = torch.randn(2, 2, 24, 20, 18)
    roi, overlap = (12, 10, 8), 0.5
    with torch.no_grad():
        full = conv(x)
        out = sliding_window_inference(x, roi, conv, overlap=overlap, sw_batch_size=4, mode="constant")
    affected = [_affected(n, r, overlap, radius=1) for n, r in zip(x.shape[2:], roi, strict=True)]
    interior = torch.ones(x.shape[2:], dtype=torch.bool)
    for axis, hit in enumerate(affected):
        idx = torch.tensor(sorted(hit))
        interior.index_fill_(axis, idx, False)
    assert 0.2 < interior.float().mean() < 0.9  # the check covers a real share of the volume
    torch.testing.assert_close(out[..., interior], full[..., interior], rtol=1e-5, atol=1e-5)
    # the voxels next to inner window borders do differ (zero padding inside the window): the mask is meaningful
    assert (out - full).abs()[..., ~interior].max() > 1e-3


def test_gaussian_mode_downweights_window_borders() -> None:
    torch.manual_seed(0)
    conv = nn.Conv3d(1, 1, kernel_size=3, padding=1).eval()
    x = torch.randn(1, 1, 24, 24, 24)
    with torch.no_grad():
        full = conv(x)
        err_const = (sliding_window_inference(x, 12, conv, mode="constant") - full).abs().mean()
        err_gauss = (sliding_window_inference(x, 12, conv, mode="gaussian") - full).abs().mean()
    assert err_gauss < 0.5 * err_const


def test_volume_smaller_than_roi_is_padded_and_cropped() -> None:
    torch.manual_seed(0)
    conv = nn.Conv3d(3, 2, kernel_size=3, padding=1).eval()
    x = torch.randn(1, 3, 7, 10, 5)
    seen: list[tuple[int, ...]] = []

    def predictor(w: Tensor) -> Tensor:
        seen.append(tuple(w.shape))
        return conv(w)

    with torch.no_grad():
        out = sliding_window_inference(x, (16, 16, 16), predictor, overlap=0.5)
        full = conv(x)
    assert seen == [(1, 3, 16, 16, 16)]  # one window over the zero-padded volume
    torch.testing.assert_close(out, full, rtol=1e-5, atol=1e-6)  # zero padding = the conv's own zero padding


def test_windows_batched_and_cover_volume() -> None:
    x = torch.zeros(2, 1, 20, 20, 20)
    shapes: list[tuple[int, ...]] = []

    def predictor(w: Tensor) -> Tensor:
        shapes.append(tuple(w.shape))
        return torch.ones_like(w)

    out = sliding_window_inference(x, 8, predictor, overlap=0.5, sw_batch_size=5)
    n_pos = len(window_starts(20, 8, 0.5)) ** 3  # starts 0, 4, 8, 12 → 64 positions
    assert n_pos == 64
    assert [s[0] for s in shapes] == [10] * 12 + [8]  # 5 positions × B=2 per call, last call 4 × 2
    assert torch.equal(out, torch.ones_like(x))


def test_window_starts_and_errors() -> None:
    assert window_starts(8, 8, 0.5) == [0]
    assert window_starts(20, 8, 0.0) == [0, 8, 12]
    for size, roi, overlap in product([9, 16, 31], [4, 7], [0.0, 0.25, 0.5, 0.9]):
        starts = window_starts(size, roi, overlap)
        covered = {p for s in starts for p in range(s, s + roi)}
        assert covered == set(range(size))
        assert starts[-1] == size - roi
    x = torch.zeros(1, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_inference(x, 4, pointwise, overlap=1.0)
    with pytest.raises(ValueError, match="roi_size"):
        sliding_window_inference(x, (4, 4), pointwise)
    with pytest.raises(ValueError, match=r"predictor returned shape \(1, 1, 2, 2, 2\)"):
        sliding_window_inference(x, 4, lambda w: w[:, :, ::2, ::2, ::2])
    with pytest.raises(ValueError, match="mode"):
        sliding_window_inference(x, 4, pointwise, mode="median")


# ------------------------------------------------------------------------------------- anisotropic windows
def test_anisotropic_tiling_per_axis_covers_every_voxel() -> None:
    """The windows are exactly the per-axis grids' product, each the volume's block there, together covering it."""
    shape, roi, overlap = (11, 23, 9), (3, 8, 5), 0.5
    x = torch.arange(2 * 1 * 11 * 23 * 9, dtype=torch.float64).reshape(2, 1, *shape)  # distinct values
    windows: list[Tensor] = []

    def predictor(w: Tensor) -> Tensor:
        windows.append(w.clone())
        return w

    out = sliding_window_inference(x, roi, predictor, overlap=overlap, sw_batch_size=1, mode="constant")
    assert out.shape == x.shape
    assert torch.equal(out, x)
    # per axis: stride ⌊roi·(1 − overlap)⌋ = 1, 4, 2, plus a last window flush with the far edge
    starts = [window_starts(n, r, overlap) for n, r in zip(shape, roi, strict=True)]
    assert starts == [list(range(9)), [0, 4, 8, 12, 15], [0, 2, 4]]
    positions = list(product(*starts))
    assert len(windows) == len(positions) == 9 * 5 * 3
    count = torch.zeros(shape, dtype=torch.int64)
    for w, pos in zip(windows, positions, strict=True):
        box = tuple(slice(s, s + r) for s, r in zip(pos, roi, strict=True))
        assert torch.equal(w, x[(slice(None), slice(None), *box)])  # the right block, both volumes of the batch
        count[box] += 1
    assert int(count.min()) >= 1  # every voxel is covered
    # and each voxel is covered by the product of its per-axis counts
    per_axis = [
        torch.tensor([sum(s <= p < s + r for s in st) for p in range(n)])
        for st, n, r in zip(starts, shape, roi, strict=True)
    ]
    assert torch.equal(count, per_axis[0][:, None, None] * per_axis[1][None, :, None] * per_axis[2][None, None, :])


def test_gaussian_weights_follow_each_axis_window_length() -> None:
    """Blended output = Σ_k w(x − s_k)·y_k / Σ_k w(x − s_k) with w the outer product of per-axis Gaussians of
    σ = 0.125·roi_axis (scipy's window as the reference); y_k is a different constant for each window."""
    from scipy.signal.windows import gaussian

    shape, roi, overlap = (7, 13, 10), (4, 8, 6), 0.5
    x = torch.zeros(1, 1, *shape, dtype=torch.float64)
    calls: list[int] = []

    def predictor(w: Tensor) -> Tensor:
        calls.append(len(calls))
        return torch.full_like(w, float(len(calls)))  # window k (1-based) predicts k everywhere

    out = sliding_window_inference(x, roi, predictor, overlap=overlap, sw_batch_size=1, mode="gaussian")
    starts = [window_starts(n, r, overlap) for n, r in zip(shape, roi, strict=True)]

    def blended(sigmas: list[float]) -> np.ndarray:
        weight = np.einsum("i,j,k->ijk", *[gaussian(r, s) for r, s in zip(roi, sigmas, strict=True)])
        weight = weight / weight.max()
        num, den = np.zeros(shape), np.zeros(shape)
        for k, pos in enumerate(product(*starts), start=1):
            box = tuple(slice(s, s + r) for s, r in zip(pos, roi, strict=True))
            num[box] += k * weight
            den[box] += weight
        return num / den

    assert len(calls) == 3 * 3 * 3
    np.testing.assert_allclose(out[0, 0].numpy(), blended([0.125 * r for r in roi]), rtol=1e-12, atol=0)
    # one σ for every axis (a cubic window's) gives another blend: the check sees the per-axis σ
    assert not np.allclose(out[0, 0].numpy(), blended([0.125 * 6] * 3), rtol=1e-3)


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_anisotropic_window_larger_than_the_volume_along_one_axis(mode: str) -> None:
    """Padding only along the short axis; a linear (1×1×1 conv) predictor reproduces the full-volume output."""
    torch.manual_seed(0)
    conv = nn.Conv3d(2, 3, kernel_size=1).double().eval()
    x = torch.randn(2, 2, 5, 21, 14, dtype=torch.float64)
    seen: list[tuple[int, ...]] = []

    def predictor(w: Tensor) -> Tensor:
        seen.append(tuple(w.shape[2:]))
        return conv(w)

    with torch.no_grad():
        out = sliding_window_inference(x, (8, 10, 6), predictor, overlap=0.25, sw_batch_size=2, mode=mode)
        full = conv(x)
    assert out.shape == (2, 3, 5, 21, 14)
    assert set(seen) == {(8, 10, 6)}
    # D: one window over 5 voxels padded to 8; H: stride 7 → 0, 7, 11; W: stride 4 → 0, 4, 8 (9 positions)
    assert len(seen) == 5  # 9 positions in calls of 2
    torch.testing.assert_close(out, full, rtol=0, atol=1e-12)
