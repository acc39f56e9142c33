"""BraTS region Dice (functional and Metric) and HD95, against hand computations and the empty-region conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmbench.functional.dice import hd95, region_dice, region_hd95
from mmbench.metrics.segmentation import BraTSRegionDice


def _masks(shape: tuple[int, ...], *boxes: tuple[slice, ...] | None) -> torch.Tensor:
    out = torch.zeros(len(boxes), *shape, dtype=torch.bool)
    for i, box in enumerate(boxes):
        if box is not None:
            out[(i, *box)] = True
    return out


def test_region_dice_by_hand_and_conventions() -> None:
    shape = (4, 4, 4)
    # region 0: |P| = 8, |G| = 4, |P∩G| = 4 → 8/12; region 1: both empty → 1; region 2: empty GT, P non-empty → 0
    pred = _masks(shape, (slice(0, 2), slice(0, 2), slice(0, 2)), None, (slice(0, 1), slice(0, 1), slice(0, 1)))
    target = _masks(shape, (slice(0, 1), slice(0, 2), slice(0, 2)), None, None)
    # second case: P empty, GT non-empty → 0 for every region
    pred2 = torch.zeros(3, *shape, dtype=torch.bool)
    target2 = torch.ones(3, *shape, dtype=torch.bool)
    dice = region_dice(torch.stack([pred, pred2]), torch.stack([target, target2]))
    assert dice.dtype == torch.float32
    torch.testing.assert_close(dice, torch.tensor([[8 / 12, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    # perfect prediction and an int target
    torch.testing.assert_close(region_dice(target[None], target[None].int()), torch.tensor([[1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="differs from target shape"):
        region_dice(pred[None], target[None, :2])


def test_metric_averages_per_case_dice_over_updates() -> None:
    g = torch.Generator().manual_seed(0)
    preds = [torch.randn(2, 3, 5, 6, 4, generator=g) for _ in range(3)]
    targets = [torch.rand(2, 3, 5, 6, 4, generator=g) > 0.6 for _ in range(3)]
    targets[1][0, 0] = False  # an empty ET with (almost surely) a non-empty prediction → 0
    preds[2][1, 0] = -1.0  # and an empty-on-empty case → 1
    targets[2][1, 0] = False
    metric = BraTSRegionDice()
    for p, t in zip(preds, targets, strict=True):
        metric.update(p, t)
    out = metric.compute()
    assert set(out) == {"dice_et", "dice_tc", "dice_wt", "dice_mean"}

    # reference: per-case Dice with numpy, then the mean over the 6 cases
    ref = np.zeros((6, 3))
    for k, (p, t) in enumerate((p[b], t[b]) for p, t in zip(preds, targets, strict=True) for b in range(2)):
        for r in range(3):
            pm, tm = p[r].numpy() > 0, t[r].numpy()
            denom = pm.sum() + tm.sum()
            ref[k, r] = 1.0 if denom == 0 else 2 * (pm & tm).sum() / denom
    assert ref[2, 0] == 0.0
    assert ref[5, 0] == 1.0
    for r, name in enumerate(["et", "tc", "wt"]):
        assert out[f"dice_{name}"].item() == pytest.approx(ref[:, r].mean(), abs=1e-6)
    assert out["dice_mean"].item() == pytest.approx(ref.mean(), abs=1e-6)


def test_threshold_modes() -> None:
    target = torch.zeros(1, 3, 2, 2, 2, dtype=torch.bool)
    target[:, :, 0] = True
    logits = torch.where(target, torch.tensor(0.3), torch.tensor(-0.3))
    probs = torch.sigmoid(logits)
    assert BraTSRegionDice()(logits, target)["dice_mean"].item() == 1.0
    assert BraTSRegionDice(from_logits=False)(probs, target)["dice_mean"].item() == 1.0
    # probabilities read as logits: every prob > 0 → everything predicted → Dice 2·4/(8+4)
    assert BraTSRegionDice()(probs, target)["dice_mean"].item() == pytest.approx(8 / 12)
    assert BraTSRegionDice(from_logits=False, threshold=0.6)(probs, target)["dice_mean"].item() == 0.0
    assert BraTSRegionDice()(target, target)["dice_mean"].item() == 1.0  # boolean predictions pass through


def test_state_merge_equals_single_pass() -> None:
    """Two "ranks" with different numbers of cases: summed states give the exact global per-case mean."""
    g = torch.Generator().manual_seed(1)
    preds = torch.randn(5, 3, 4, 4, 4, generator=g)
    target = torch.rand(5, 3, 4, 4, 4, generator=g) > 0.5
    single = BraTSRegionDice()
    single.update(preds, target)
    rank0, rank1 = BraTSRegionDice(), BraTSRegionDice()
    rank0.update(preds[:1], target[:1])
    rank1.update(preds[1:], target[1:])
    rank0.merge_state(rank1)
    assert rank0.count.item() == 5
    for k, v in single.compute().items():
        torch.testing.assert_close(rank0.compute()[k], v)


def test_metric_errors_and_empty_compute() -> None:
    metric = BraTSRegionDice()
    with pytest.raises(ValueError, match=r"expected \[B, 3, \*spatial\]"):
        metric.update(torch.zeros(1, 2, 3, 3, 3), torch.zeros(1, 2, 3, 3, 3))
    with pytest.warns(UserWarning, match="compute"):
        assert math.isnan(BraTSRegionDice().compute()["dice_et"].item())


# ------------------------------------------------------------------------------------------------- HD95
def _reference_hd95(p: np.ndarray, g: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Brute force: all pairwise distances between surface voxels."""
    struct = ndimage.generate_binary_structure(p.ndim, 1)
    sp = np.argwhere(p & ~ndimage.binary_erosion(p, struct)) * spacing
    sg = np.argwhere(g & ~ndimage.binary_erosion(g, struct)) * spacing
    d = np.sqrt(((sp[:, None, :] - sg[None, :, :]) ** 2).sum(-1))
    return float(max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95)))


def test_hd95_against_brute_force_and_known_shift() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3):
        p = ndimage.gaussian_filter(rng.random((12, 10, 9)), 1.5) > 0.52  # irregular blobs
        g = ndimage.gaussian_filter(rng.random((12, 10, 9)), 1.5) > 0.52
        assert p.any()
        assert g.any()
        spacing = (1.0, 2.0, 1.5)
        assert hd95(p, g, spacing) == pytest.approx(_reference_hd95(p, g, spacing))
    a = np.zeros((20, 20, 20), bool)
    a[5:10, 5:10, 5:10] = True
    b = np.roll(a, 3, axis=0)
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(torch.from_numpy(a), torch.from_numpy(b), spacing=(2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert hd95(a, a) == 0.0


def test_hd95_empty_conventions() -> None:
    empty = np.zeros((240, 240, 155), bool)
    some = empty.copy()
    some[100, 100, 70] = True
    assert hd95(empty, empty) == 0.0
    assert hd95(some, empty) == pytest.approx(373.13, abs=0.01)  # BraTS: diagonal of 240×240×155 at 1 mm
    assert hd95(empty, some) == pytest.approx(373.13, abs=0.01)
    assert math.isnan(hd95(some, empty, empty_value=float("nan")))
    out = region_hd95(torch.zeros(1, 2, 4, 4, 4, dtype=torch.bool), torch.zeros(1, 2, 4, 4, 4, dtype=torch.bool))
    assert out.shape == (1, 2)
    assert out.sum().item() == 0.0
