"""Sliding-window inference over whole volumes (behaviour modelled on MONAI's ``sliding_window_inference``).

Windows of ``roi_size`` are placed on a regular grid with stride ``⌊roi·(1 − overlap)⌋`` per axis, plus a last
window flush with the far edge, so every voxel is covered. Window predictions are blended with an importance map
(``"constant"``: plain average; ``"gaussian"``: a Gaussian with σ = 0.125·roi per axis, which down-weights window
borders where a network lacks context) and the weighted sum is divided by the summed weights. A volume smaller than
the window is zero-padded symmetrically and the result is cropped back. Accumulation is in float64 by default, so a
pointwise predictor gives exactly its direct output.

Everything is per axis: the window may be anisotropic (the official ShaSpec tile is 80×160×160), and its stride,
the padding of a volume smaller than the window along some axes only, and the Gaussian's σ follow each axis's own
window length.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from enum import Enum
from itertools import product

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BlendMode", "as_window_size", "sliding_window_inference", "window_starts"]


class BlendMode(str, Enum):
    """How overlapping window outputs are combined."""

    CONSTANT = "constant"
    GAUSSIAN = "gaussian"

    def __str__(self) -> str:
        return self.value


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start offsets of the windows along one axis.

    Args:
        size: axis length (``>= roi``).
        roi: window length.
        overlap: fraction of overlap between neighbouring windows, in ``[0, 1)``.

    Returns:
        Increasing offsets from 0 to ``size − roi``.

    Example:
        >>> window_starts(10, 4, 0.5)
        [0, 2, 4, 6]
        >>> window_starts(11, 4, 0.5)
        [0, 2, 4, 6, 7]
    """
    if roi > size:
        raise ValueError(f"window {roi} is larger than the axis {size}")
    stride = max(int(roi * (1.0 - overlap)), 1)
    starts = list(range(0, size - roi + 1, stride))
    if starts[-1] != size - roi:
        starts.append(size - roi)
    return starts


def as_window_size(roi_size: int | Sequence[int], ndim: int = 3, name: str = "roi_size") -> tuple[int, ...]:
    """One window edge for every axis, or one per axis, as a tuple of ``ndim`` positive ints.

    Args:
        roi_size: ``r`` (a cube) or ``(r_1, ..., r_ndim)`` (e.g. the official ShaSpec tile ``(80, 160, 160)``).
        ndim: number of spatial axes.
        name: the field named in the error.

    Raises:
        ValueError: wrong length or a non-positive entry (one line naming ``name`` and the value).

    Example:
        >>> as_window_size(4), as_window_size([2, 4, 4])
        ((4, 4, 4), (2, 4, 4))
    """
    roi = tuple(roi_size) if isinstance(roi_size, Sequence) else (roi_size,) * ndim
    if len(roi) != ndim or any(isinstance(r, bool) or not hasattr(r, "__index__") or r < 1 for r in roi):
        shown = list(roi_size) if isinstance(roi_size, Sequence) else roi_size
        raise ValueError(f"{name} {shown} does not give a positive size for each of the {ndim} spatial axes")
    return tuple(operator.index(r) for r in roi)


def _importance_map(roi: Sequence[int], mode: BlendMode, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[*roi]`` blending weights (max 1)."""
    if mode is BlendMode.CONSTANT:
        return torch.ones(tuple(roi), dtype=dtype, device=device)
    weights = torch.ones((), dtype=dtype, device=device)
    for n in roi:
        x = torch.arange(n, dtype=dtype, device=device) - (n - 1) / 2.0
        g = torch.exp(-0.5 * (x / (0.125 * n)) ** 2)  # [n]
        weights = weights.unsqueeze(-1) * g  # outer product, one axis at a time
    return weights / weights.max()


def sliding_window_inference(
    volume: Tensor,
    roi_size: int | Sequence[int],
    predictor: Callable[[Tensor], Tensor],
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    mode: BlendMode | str = BlendMode.GAUSSIAN,
    accumulate_dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Apply ``predictor`` to overlapping windows of ``volume`` and blend the outputs.

    Args:
        volume: ``[B, C, *spatial]`` (usually ``[B, C, D, H, W]``).
        roi_size: window size, one int for every axis or one per spatial axis.
        predictor: maps ``[N, C, *roi]`` to ``[N, C_out, *roi]``; ``N = k·B`` for ``k ≤ sw_batch_size`` window
            positions (all ``B`` volumes at each position).
        overlap: overlap fraction between neighbouring windows, in ``[0, 1)``.
        sw_batch_size: window positions per predictor call.
        mode: ``"constant"`` (uniform average) or ``"gaussian"`` (σ = 0.125·roi).
        accumulate_dtype: dtype of the weighted sums (float64 keeps a pointwise predictor exact; use float32 on
            devices without float64).

    Returns:
        ``[B, C_out, *spatial]`` in the predictor's output dtype.

    Example:
        >>> x = torch.rand(1, 2, 10, 9, 7)
        >>> y = sliding_window_inference(x, 4, lambda t: 2 * t)
        >>> bool(torch.equal(y, 2 * x))
        True
    """
    if volume.dim() < 3:
        raise ValueError(f"expected volume [B, C, *spatial], got shape {tuple(volume.shape)}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if sw_batch_size < 1:
        raise ValueError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
    if mode not in {m.value for m in BlendMode}:
        raise ValueError(f"mode must be one of {[m.value for m in BlendMode]}, got {mode!r}")
    blend = BlendMode(mode)
    spatial = tuple(volume.shape[2:])
    nd = len(spatial)
    roi = as_window_size(roi_size, nd)

    # pad symmetrically where the volume is smaller than the window
    pad_before = [max(r - s, 0) // 2 for r, s in zip(roi, spatial, strict=True)]
    pad_after = [max(r - s, 0) - b for r, s, b in zip(roi, spatial, pad_before, strict=True)]
    if any(pad_before) or any(pad_after):
        pads = [p for b, a in zip(reversed(pad_before), reversed(pad_after), strict=True) for p in (b, a)]
        volume = F.pad(volume, pads)
    padded = tuple(volume.shape[2:])
    B = volume.shape[0]

    positions = list(product(*(window_starts(n, r, overlap) for n, r in zip(padded, roi, strict=True))))
    weight = _importance_map(roi, blend, accumulate_dtype, volume.device)  # [*roi]
    out_sum: Tensor | None = None
    weight_sum = torch.zeros(padded, dtype=accumulate_dtype, device=volume.device)  # [*padded]
    out_dtype = volume.dtype
    for chunk_start in range(0, len(positions), sw_batch_size):
        chunk = positions[chunk_start : chunk_start + sw_batch_size]
        boxes = [tuple(slice(s, s + r) for s, r in zip(pos, roi, strict=True)) for pos in chunk]
        windows = torch.cat([volume[(slice(None), slice(None), *box)] for box in boxes])  # [k·B, C, *roi]
        pred = predictor(windows)
        if pred.dim() != nd + 2 or pred.shape[0] != windows.shape[0] or tuple(pred.shape[2:]) != roi:
            raise ValueError(
                f"predictor returned shape {tuple(pred.shape)} for windows {tuple(windows.shape)}; expected "
                f"[{windows.shape[0]}, C_out, {', '.join(map(str, roi))}]"
            )
        if out_sum is None:
            out_dtype = pred.dtype
            out_sum = torch.zeros((B, pred.shape[1], *padded), dtype=accumulate_dtype, device=volume.device)
        pred = pred.to(out_sum.device, accumulate_dtype)
        for k, box in enumerate(boxes):
            out_sum[(slice(None), slice(None), *box)] += pred[k * B : (k + 1) * B] * weight
            weight_sum[box] += weight
    assert out_sum is not None  # at least one window
    result = out_sum / weight_sum
    crop = tuple(slice(b, b + s) for b, s in zip(pad_before, spatial, strict=True))
    return result[(slice(None), slice(None), *crop)].to(out_dtype)
