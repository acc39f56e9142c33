"""Sliding-window inference: exactness for pointwise predictors, conv predictors away from window borders, padding."""

from __future__ import annotations

from itertools import product

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
