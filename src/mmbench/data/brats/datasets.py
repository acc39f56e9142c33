"""Patch sampling and the patch / whole-volume datasets of BraTS cases."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from mmbench.data.brats.cache import VolumeCache
from mmbench.data.brats.files import (
    MODALITIES,
    BraTSCase,
    BraTSDataError,
    LabelConvention,
)
from mmbench.data.brats.preprocess import CaseVolume, load_case

__all__ = [
    "BraTSPatchDataset",
    "BraTSVolumeDataset",
    "PatchSize",
    "as_patch_size",
    "foreground_indices",
    "random_patch",
]


def foreground_indices(regions: np.ndarray, max_per_region: int = 10_000) -> list[np.ndarray]:
    """Flat voxel indices of each region, evenly subsampled to at most ``max_per_region`` (memory bound).

    Args:
        regions: ``bool[R, X, Y, Z]``.
        max_per_region: cap per region.

    Returns:
        ``R`` arrays of ``int64`` flat indices into ``X·Y·Z`` (empty for an empty region).
    """
    out = []
    for r in range(regions.shape[0]):
        idx = np.flatnonzero(regions[r])
        if idx.size > max_per_region:
            idx = idx[np.linspace(0, idx.size - 1, max_per_region).astype(np.int64)]
        out.append(idx)
    return out


def random_patch(
    image: np.ndarray,
    regions: np.ndarray | None,
    patch_size: Sequence[int],
    rng: np.random.Generator,
    fg_prob: float = 0.5,
    flip_prob: float = 0.5,
    foreground: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One random training patch with foreground oversampling and random flips.

    With probability ``fg_prob`` the patch is centred on a tumour voxel: a region is drawn uniformly among the
    non-empty ones (so small regions such as ET are oversampled, as ShaSpec's and nnU-Net's samplers do), then a
    voxel of it; otherwise the patch position is uniform. Patches are shifted to lie inside the volume; a volume
    smaller than the patch is zero-padded symmetrically first (0 = z-scored background, no tumour). Each spatial axis
    is then flipped with probability ``flip_prob``.

    Args:
        image: ``float[C, X, Y, Z]``.
        regions: ``bool[R, X, Y, Z]`` or ``None`` (then no foreground oversampling).
        patch_size: ``(PX, PY, PZ)``.
        rng: the sample's generator.
        fg_prob: probability of centring on a tumour voxel.
        flip_prob: per-axis flip probability.
        foreground: precomputed ``foreground_indices(regions)`` (computed here if ``None``).

    Returns:
        ``(float32[C, PX, PY, PZ], bool[R, PX, PY, PZ] or None)``, contiguous copies.
    """
    spatial = image.shape[1:]
    psize = tuple(int(p) for p in patch_size)
    if len(psize) != len(spatial):
        raise ValueError(f"patch_size {psize} does not match the {len(spatial)} spatial dims of image {image.shape}")
    if regions is not None and foreground is None:
        foreground = foreground_indices(regions)
    before = [max(p - s, 0) // 2 for p, s in zip(psize, spatial, strict=True)]
    if any(p > s for p, s in zip(psize, spatial, strict=True)):
        pad = [(0, 0)] + [(b, max(p - s, 0) - b) for b, p, s in zip(before, psize, spatial, strict=True)]
        image = np.pad(image, pad)
        regions = np.pad(regions, pad) if regions is not None else None
    padded = image.shape[1:]
    centre = None
    if regions is not None and rng.random() < fg_prob:
        nonempty = [f for f in foreground or () if f.size]
        if nonempty:
            pick = nonempty[int(rng.integers(len(nonempty)))]
            flat = int(pick[int(rng.integers(pick.size))])
            centre = [c + b for c, b in zip(np.unravel_index(flat, spatial), before, strict=True)]
    if centre is None:
        start = [int(rng.integers(n - p + 1)) for n, p in zip(padded, psize, strict=True)]
    else:
        start = [min(max(int(c) - p // 2, 0), n - p) for c, p, n in zip(centre, psize, padded, strict=True)]
    box = tuple(slice(a, a + p) for a, p in zip(start, psize, strict=True))
    img = image[(slice(None), *box)]
    reg = regions[(slice(None), *box)] if regions is not None else None
    for axis in range(1, len(spatial) + 1):
        if rng.random() < flip_prob:
            img = np.flip(img, axis)
            reg = np.flip(reg, axis) if reg is not None else None
    out_img = np.ascontiguousarray(img, dtype=np.float32)
    out_reg = np.ascontiguousarray(reg, dtype=bool) if reg is not None else None
    return out_img, out_reg


PatchSize = tuple[int, int, int] | int
"""A patch or window size: ``(D, H, W)`` (e.g. the official ShaSpec ``(80, 160, 160)``), or one edge for a cube.

The tuple comes first in the union only for the error message: jsonargparse reports its first subtype's complaint,
so ``[16, 32]`` reads "Expected a tuple with 3 elements" rather than "expected int"; ``32`` still parses as the int.
"""


def as_patch_size(value: int | Sequence[int], name: str = "patch_size", minimum: int = 1) -> tuple[int, int, int]:
    """The one normalisation of a patch size: an int ``p`` → ``(p, p, p)``, three ints → ``(D, H, W)``.

    Args:
        value: one edge, or one edge per spatial axis (a list from YAML / the command line, or a tuple).
        name: the field named in the error (``patch_size``, ``roi_size`` ...).
        minimum: smallest accepted edge along every axis.

    Returns:
        ``(D, H, W)`` as Python ints.

    Raises:
        ValueError: not an int or three ints, or an edge below ``minimum``; one line naming ``name`` and the value.

    Example:
        >>> as_patch_size(32), as_patch_size([80, 160, 160])
        ((32, 32, 32), (80, 160, 160))
    """
    many = isinstance(value, Sequence) and not isinstance(value, str)
    size: tuple[object, ...] = tuple(cast(Sequence[int], value)) if many else (value,) * 3
    shown = list(size) if many else repr(value)
    problem = f"{name} must be an int or three ints [D, H, W], each >= {minimum}, got {shown}"
    if len(size) != 3 or any(isinstance(p, bool) or not hasattr(p, "__index__") for p in size):
        raise ValueError(problem)
    d, h, w = (operator.index(cast(int, p)) for p in size)
    if min(d, h, w) < minimum:
        raise ValueError(problem)
    return d, h, w


class _CaseLoader:
    """Loads cases through a ``VolumeCache`` when a cache dir is given, else decodes them every time."""

    def __init__(
        self,
        cases: Sequence[BraTSCase],
        cache_dir: str | Path | None,
        label_convention: LabelConvention | str | None,
        require_labels: bool,
    ) -> None:
        if not cases:
            raise BraTSDataError("no cases given")
        if require_labels:
            unlabelled = [c.case_id for c in cases if c.seg is None]
            if unlabelled:
                raise BraTSDataError(f"cases without a label file: {unlabelled}")
        self.cases = list(cases)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.label_convention = label_convention
        self._cache: VolumeCache | None = None

    def load(self, i: int) -> CaseVolume:
        if self.cache_dir is None:
            return load_case(self.cases[i], self.label_convention)
        if self._cache is None:  # created lazily, in the worker process
            self._cache = VolumeCache(self.cache_dir)
        return self._cache.load(self.cases[i], self.label_convention)


class BraTSPatchDataset(Dataset[dict[str, Any]]):
    """Random training patches of BraTS cases (see ``random_patch``).

    Item ``idx`` is a patch of case ``idx % len(cases)``; its randomness comes from
    ``numpy.random.default_rng([seed, epoch, idx])``, so patches do not depend on worker count or order. Call
    ``set_epoch`` before each epoch's loader iterator is created (e.g. in ``on_train_epoch_start``) to draw new
    patches; the epoch lives in shared memory, so persistent DataLoader workers see it. Without ``cache_dir`` every
    item decodes its case's NIfTI files.

    Args:
        cases: labelled cases.
        patch_size: patch edge, or ``(D, H, W)`` edges, in voxels (``as_patch_size``).
        samples_per_case: items per case per epoch.
        fg_prob: probability of centring on a tumour voxel.
        flip_prob: per-axis flip probability.
        cache_dir: ``VolumeCache`` folder, or ``None`` for no cache.
        seed: sampling seed.
        label_convention: overrides the naming-implied label convention.

    Items:
        ``{"inputs": {modality: float32[1, PX, PY, PZ]}, "target": bool[3, PX, PY, PZ], "index": int}``.
    """

    def __init__(
        self,
        cases: Sequence[BraTSCase],
        patch_size: PatchSize | Sequence[int] = 64,
        samples_per_case: int = 1,
        fg_prob: float = 0.5,
        flip_prob: float = 0.5,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        label_convention: LabelConvention | str | None = None,
    ) -> None:
        self.loader = _CaseLoader(cases, cache_dir, label_convention, require_labels=True)
        self.patch_size = as_patch_size(patch_size)
        self.samples_per_case = int(samples_per_case)
        self.fg_prob = fg_prob
        self.flip_prob = flip_prob
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # shared with DataLoader workers
        self._foreground: dict[int, list[np.ndarray]] = {}

    @property
    def epoch(self) -> int:
        """The epoch whose patches are drawn."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw the patches of ``epoch`` from now on (also in already running workers)."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.loader.cases) * self.samples_per_case

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} patches")
        case_idx = idx % len(self.loader.cases)
        vol = self.loader.load(case_idx)
        assert vol.regions is not None  # required at construction
        if case_idx not in self._foreground:
            self._foreground[case_idx] = foreground_indices(vol.regions)
        rng = np.random.default_rng([self.seed, self.epoch, idx])
        img, reg = random_patch(
            vol.image, vol.regions, self.patch_size, rng, self.fg_prob, self.flip_prob, self._foreground[case_idx]
        )
        assert reg is not None
        return {
            "inputs": {m: torch.from_numpy(img[i : i + 1]) for i, m in enumerate(MODALITIES)},
            "target": torch.from_numpy(reg),
            "index": idx,
        }


class BraTSVolumeDataset(Dataset[dict[str, Any]]):
    """Whole preprocessed (cropped) volumes, for validation/test with sliding-window inference.

    Volumes differ in shape, so use ``batch_size=1``.

    Args:
        cases: the cases.
        cache_dir: ``VolumeCache`` folder, or ``None`` for no cache.
        label_convention: overrides the naming-implied label convention.
        require_labels: whether every case needs a label file.

    Items:
        ``{"inputs": {modality: float32[1, X, Y, Z]}, "target": bool[3, X, Y, Z], "index": int, "case_id": str}``
        (``target`` is absent for unlabelled cases).
    """

    def __init__(
        self,
        cases: Sequence[BraTSCase],
        cache_dir: str | Path | None = None,
        label_convention: LabelConvention | str | None = None,
        require_labels: bool = True,
    ) -> None:
        self.loader = _CaseLoader(cases, cache_dir, label_convention, require_labels)

    def __len__(self) -> int:
        return len(self.loader.cases)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        vol = self.loader.load(idx)
        image = np.array(vol.image, dtype=np.float32)  # writable copy of a possible memory map
        item: dict[str, Any] = {
            "inputs": {m: torch.from_numpy(image[i : i + 1]) for i, m in enumerate(MODALITIES)},
            "index": idx,
            "case_id": vol.case_id,
        }
        if vol.regions is not None:
            item["target"] = torch.from_numpy(np.array(vol.regions, dtype=bool))
        return item


class _EpochSampler(torch.utils.data.RandomSampler):
    """A ``RandomSampler`` whose ``set_epoch`` (called by Lightning before each epoch) reaches the patch dataset."""

    def __init__(self, dataset: BraTSPatchDataset, seed: int) -> None:
        super().__init__(dataset, generator=torch.Generator().manual_seed(seed))
        self.patches = dataset
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        self.patches.set_epoch(epoch)
        assert self.generator is not None
        self.generator.manual_seed(self.seed + epoch)
