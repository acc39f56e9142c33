"""BraTS: NIfTI case folders → the ``BraTSDataModule``, one module per role.

``files`` (naming, discovery, NIfTI reading) → ``splits`` (split files and their hash) → ``preprocess`` (label
regions, z-score, brain crop, ``load_case``) → ``cache`` (``.npy`` volume cache) → ``datasets`` (patch sampling,
patch and volume datasets) → ``datamodule``. Users' own BraTS data and the semi-synthetic cases of
``mmbench.data.synthetic_brats`` are read the same way; every name is re-exported here.

* **Naming.** A case is a folder ``<root>/<id>/`` holding ``<id>_{flair,t1,t1ce,t2,seg}`` (BraTS 2018–2021) or
  ``<id>-{t2f,t1n,t1c,t2w,seg}`` (BraTS 2023+), each ``.nii`` or ``.nii.gz``. Modalities are always returned in the
  canonical order ``MODALITIES = ("flair", "t1", "t1ce", "t2")`` (2023: t2f→flair, t1n→t1, t1c→t1ce, t2w→t2).
* **Labels → regions.** The label map becomes three overlapping boolean channels in the order ``REGIONS =
  ("et", "tc", "wt")``: 2018–2021 ET={4}, TC={1,4}, WT={1,2,4}; 2023+ ET={3}, TC={1,3}, WT={1,2,3}
  (``reference/peers-and-ecosystem.md`` §1.12). Any other label value raises.
* **Preprocessing.** Per-modality z-score over the nonzero (brain) voxels, background kept at 0, then a crop to
  the bounding box of the brain (union over modalities, and of the labels).
* **Layout.** Arrays keep the NIfTI voxel-axis order: ``image`` is ``float32[4, X, Y, Z]`` (``[C, D, H, W]`` for the
  networks), so the case's affine still maps array indices to world coordinates (offset by the crop).
* **Cache.** ``VolumeCache`` stores the preprocessed arrays as uncompressed ``.npy`` (read back memory-mapped) keyed
  by the source files' path, size and mtime plus the preprocessing options, so later epochs never decode gzip and a
  changed source file invalidates its entry.
* **Errors.** Every bad input raises ``BraTSDataError`` naming the case or file and what was expected; a bad case is
  never dropped silently from a split.
"""

from mmbench.data.brats.cache import VolumeCache
from mmbench.data.brats.datamodule import BraTSDataModule
from mmbench.data.brats.datasets import BraTSPatchDataset, BraTSVolumeDataset, foreground_indices, random_patch
from mmbench.data.brats.files import (
    AFFINE_ATOL,
    MODALITIES,
    REGION_LABELS,
    REGIONS,
    VALID_LABELS,
    BraTSCase,
    BraTSDataError,
    LabelConvention,
    discover_cases,
    find_case,
)
from mmbench.data.brats.preprocess import CaseVolume, brain_bbox, labels_to_regions, load_case, zscore_nonzero
from mmbench.data.brats.splits import random_split, read_split, split_hash, write_split

__all__ = [
    "AFFINE_ATOL",
    "MODALITIES",
    "REGIONS",
    "REGION_LABELS",
    "VALID_LABELS",
    "BraTSCase",
    "BraTSDataError",
    "BraTSDataModule",
    "BraTSPatchDataset",
    "BraTSVolumeDataset",
    "CaseVolume",
    "LabelConvention",
    "VolumeCache",
    "brain_bbox",
    "discover_cases",
    "find_case",
    "foreground_indices",
    "labels_to_regions",
    "load_case",
    "random_patch",
    "random_split",
    "read_split",
    "split_hash",
    "write_split",
    "zscore_nonzero",
]
