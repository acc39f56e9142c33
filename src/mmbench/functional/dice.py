"""Region overlap and surface-distance scores for BraTS-style segmentation (pure functions).

Conventions (BraTS challenge, mmFormer/RFNet evaluation; ``reference/peers-and-ecosystem.md`` §2.7, §4.1):

* **Dice** per case and region: ``2|P∩G| / (|P| + |G|)``. Empty prediction on empty ground truth scores **1**
  (torchmetrics' ``DiceScore`` would skip the case instead); empty ground truth with a non-empty prediction scores
  **0**, as does an empty prediction on non-empty ground truth.
* **HD95**: the larger of the two directed 95th-percentile surface distances (MedPy/MONAI definition), in mm.
  Both sets empty → **0**; exactly one empty → ``empty_value``, by default the diagonal of the volume in mm
  (373.13 for BraTS' 240×240×155 grid at 1 mm, the value the BraTS 2021+ evaluation reports).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

__all__ = ["hd95", "region_dice", "region_hd95"]


def region_dice(pred: Tensor, target: Tensor) -> Tensor:
    """Dice of each case and region, with the BraTS convention for empty regions.

    Args:
        pred: ``bool[B, R, *spatial]`` predicted region masks (e.g. ``R = 3``: ET, TC, WT).
        target: ``bool[B, R, *spatial]`` ground-truth region masks (any dtype; nonzero = inside).

    Returns:
        ``float32[B, R]``: 1 where both are empty, 0 where exactly one is empty.

    Example:
        >>> p = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]]], dtype=torch.bool)
        >>> g = torch.tensor([[[1, 0, 0, 0]], [[0, 0, 0, 0]]], dtype=torch.bool)
        >>> region_dice(p, g)
        tensor([[0.6667],
                [1.0000]])
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    if pred.dim() < 3:
        raise ValueError(f"expected [B, R, *spatial], got shape {tuple(pred.shape)}")
    p = pred.bool().flatten(2)  # [B, R, N]
    g = target.bool().flatten(2)
    inter = (p & g).sum(-1, dtype=torch.int64).double()  # [B, R]
    denom = (p.sum(-1, dtype=torch.int64) + g.sum(-1, dtype=torch.int64)).double()
    dice = torch.where(denom > 0, 2.0 * inter / denom.clamp_min(1.0), torch.ones_like(denom))
    return dice.float()


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (the volume border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))


def hd95(
    pred: np.ndarray | Tensor,
    target: np.ndarray | Tensor,
    spacing: Sequence[float] | None = None,
    empty_value: float | None = None,
) -> float:
    """95th-percentile symmetric Hausdorff distance between two binary masks.

    ``max(P95_{p∈∂P} d(p, ∂G), P95_{g∈∂G} d(g, ∂P))`` with surfaces ``∂`` from a face-connected erosion and
    Euclidean distances from ``scipy.ndimage.distance_transform_edt`` (computed inside the masks' joint bounding
    box, which gives the same distances).

    Args:
        pred: ``bool[*spatial]`` prediction.
        target: ``bool[*spatial]`` ground truth.
        spacing: voxel size per axis in mm (default 1).
        empty_value: score when exactly one mask is empty; default: the volume's diagonal in mm.

    Returns:
        The distance in mm; 0 when both masks are empty.
    """
    p = np.asarray(pred.detach().cpu() if isinstance(pred, Tensor) else pred).astype(bool)
    g = np.asarray(target.detach().cpu() if isinstance(target, Tensor) else target).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f"pred shape {p.shape} differs from target shape {g.shape}")
    sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * p.ndim
    if len(sp) != p.ndim:
        raise ValueError(f"spacing {sp} does not match the {p.ndim} dims of the masks")
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        return 0.0
    if not (has_p and has_g):
        if empty_value is not None:
            return float(empty_value)
        return math.sqrt(sum((n * s) ** 2 for n, s in zip(p.shape, sp, strict=True)))
    union = p | g
    box = []
    for axis in range(p.ndim):
        idx = np.flatnonzero(union.any(axis=tuple(a for a in range(p.ndim) if a != axis)))
        box.append(slice(int(idx[0]), int(idx[-1]) + 1))
    sp_, sg_ = _surface(p)[tuple(box)], _surface(g)[tuple(box)]
    d_to_g = ndimage.distance_transform_edt(~sg_, sampling=sp)  # distance to the nearest target surface voxel
    d_to_p = ndimage.distance_transform_edt(~sp_, sampling=sp)
    return float(max(np.percentile(d_to_g[sp_], 95), np.percentile(d_to_p[sg_], 95)))


def region_hd95(
    pred: Tensor, target: Tensor, spacing: Sequence[float] | None = None, empty_value: float | None = None
) -> Tensor:
    """``hd95`` of each case and region.

    Args:
        pred: ``bool[B, R, *spatial]``.
        target: ``bool[B, R, *spatial]``.
        spacing: voxel size per spatial axis in mm.
        empty_value: as in ``hd95``.

    Returns:
        ``float32[B, R]`` in mm.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    out = torch.empty(pred.shape[:2], dtype=torch.float32)
    for b in range(pred.shape[0]):
        for r in range(pred.shape[1]):
            out[b, r] = hd95(pred[b, r], target[b, r], spacing, empty_value)
    return out
