"""BraTS NIfTI folders: case discovery, label regions, preprocessing, a decoded-volume cache and patch sampling.

These are the Lightning-free parts of the BraTS data module; they read users' own BraTS data and the
semi-synthetic cases of ``mmbench.data.synthetic_brats`` the same way.

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

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmbench.data.base import MultimodalDataModule
from mmbench.errors import DataIntegrityError
from mmbench.masks import EvalProtocol, MissingnessSpec
from mmbench.registry import DATASETS
from mmbench.types import Task

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

MODALITIES = ("flair", "t1", "t1ce", "t2")
"""Canonical modality order (mask columns, channel order of ``image``)."""

REGIONS = ("et", "tc", "wt")
"""Region channel order of the targets: enhancing tumour, tumour core, whole tumour."""

AFFINE_ATOL = 1e-3
"""Largest difference (mm) tolerated between the affines of a case's files."""

_CACHE_VERSION = "1"


class LabelConvention(str, Enum):
    """Which label values a BraTS segmentation uses."""

    BRATS2021 = "brats2021"
    """BraTS 2018–2021: 0 background, 1 NCR/NET, 2 ED, 4 ET (3 unused)."""
    BRATS2023 = "brats2023"
    """BraTS 2023+: 0 background, 1 NCR, 2 ED (SNFH), 3 ET."""

    def __str__(self) -> str:
        return self.value


# naming scheme per convention: (separator, canonical modality → file suffix)
_NAMING: dict[LabelConvention, tuple[str, dict[str, str]]] = {
    LabelConvention.BRATS2021: ("_", {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"}),
    LabelConvention.BRATS2023: ("-", {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}),
}
_EXTENSIONS = (".nii.gz", ".nii")

VALID_LABELS: dict[LabelConvention, tuple[int, ...]] = {
    LabelConvention.BRATS2021: (0, 1, 2, 4),
    LabelConvention.BRATS2023: (0, 1, 2, 3),
}
"""Allowed label values per convention."""

REGION_LABELS: dict[LabelConvention, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    LabelConvention.BRATS2021: ((4,), (1, 4), (1, 2, 4)),
    LabelConvention.BRATS2023: ((3,), (1, 3), (1, 2, 3)),
}
"""Label values of each region (ET, TC, WT) per convention."""


class BraTSDataError(DataIntegrityError):
    """A BraTS case, file or split is malformed; the message names it and says what was expected."""


# ------------------------------------------------------------------------------------------------ discovery
@dataclass(frozen=True)
class BraTSCase:
    """The files of one case.

    Attributes:
        case_id: folder name, e.g. ``"BraTS2021_00000"`` or ``"BraTS-GLI-00000-000"``.
        images: canonical modality → file, in ``MODALITIES`` order.
        seg: label file, or ``None`` for unlabelled cases.
        convention: label convention implied by the naming scheme.
    """

    case_id: str
    images: dict[str, Path]
    seg: Path | None
    convention: LabelConvention

    @property
    def files(self) -> list[Path]:
        """Every file of the case (images, then the label file if any)."""
        return [*self.images.values(), *([self.seg] if self.seg is not None else [])]


def _expected_names(case_id: str, convention: LabelConvention, keys: Sequence[str]) -> str:
    sep, suffixes = _NAMING[convention]
    return ", ".join(f"{case_id}{sep}{suffixes[k]}.nii[.gz]" for k in keys)


def find_case(case_dir: str | Path, require_seg: bool = True) -> BraTSCase:
    """Identify the files of one case folder (either naming scheme).

    Args:
        case_dir: ``<root>/<id>``; files must be named ``<id>_<modality>`` or ``<id>-<modality>``.
        require_seg: whether a missing label file is an error.

    Returns:
        The case.

    Raises:
        BraTSDataError: the folder is missing or holds no BraTS files, mixes both naming schemes, holds a modality
            twice (``.nii`` and ``.nii.gz``), or lacks a modality (or the label file when ``require_seg``).
    """
    case_dir = Path(case_dir)
    case_id = case_dir.name
    if not case_dir.is_dir():
        raise BraTSDataError(f"case {case_id!r}: folder {case_dir} does not exist")
    names = sorted(p.name for p in case_dir.iterdir() if p.is_file())
    found: dict[LabelConvention, dict[str, Path]] = {}
    for convention, (sep, suffixes) in _NAMING.items():
        hits: dict[str, Path] = {}
        for key, suffix in suffixes.items():
            present = [f"{case_id}{sep}{suffix}{ext}" for ext in _EXTENSIONS if f"{case_id}{sep}{suffix}{ext}" in names]
            if len(present) > 1:
                raise BraTSDataError(f"case {case_id!r} ({case_dir}): {key} is present twice ({', '.join(present)})")
            if present:
                hits[key] = case_dir / present[0]
        if hits:
            found[convention] = hits
    if not found:
        raise BraTSDataError(
            f"case {case_id!r} ({case_dir}) holds no BraTS files: expected "
            f"{_expected_names(case_id, LabelConvention.BRATS2021, [*MODALITIES, 'seg'])} (2018–2021) or "
            f"{_expected_names(case_id, LabelConvention.BRATS2023, [*MODALITIES, 'seg'])} (2023+); found {names}"
        )
    if len(found) > 1:
        raise BraTSDataError(f"case {case_id!r} ({case_dir}) mixes 2018–2021 and 2023+ file naming: {names}")
    convention, hits = next(iter(found.items()))
    missing = [m for m in MODALITIES if m not in hits]
    if require_seg and "seg" not in hits:
        missing.append("seg")
    if missing:
        raise BraTSDataError(
            f"case {case_id!r} ({case_dir}) is missing {', '.join(missing)}: expected "
            f"{_expected_names(case_id, convention, missing)}; found {names}"
        )
    return BraTSCase(
        case_id=case_id, images={m: hits[m] for m in MODALITIES}, seg=hits.get("seg"), convention=convention
    )


def _has_nifti(folder: Path) -> bool:
    return any(p.name.endswith(_EXTENSIONS) for p in folder.iterdir())


def discover_cases(
    root: str | Path, case_ids: Sequence[str] | None = None, require_seg: bool = True
) -> list[BraTSCase]:
    """Find the cases under ``root``.

    Args:
        root: folder of case folders.
        case_ids: the cases to take (e.g. from ``read_split``), in this order; every one must be a valid case
            folder. ``None``: every non-hidden sub-folder that contains a ``.nii``/``.nii.gz`` file, sorted by name
            (each must then be a valid case).
        require_seg: whether each case needs a label file.

    Returns:
        The cases.

    Raises:
        BraTSDataError: ``root`` is missing, no case is found, listed case folders are missing (all are named), or a
            case is malformed (see ``find_case``).
    """
    root = Path(root)
    if not root.is_dir():
        raise BraTSDataError(f"BraTS root {root} is not a folder")
    if case_ids is None:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _has_nifti(p))
        if not folders:
            raise BraTSDataError(f"no BraTS case folders (sub-folders holding .nii/.nii.gz files) under {root}")
    else:
        missing = [c for c in case_ids if not (root / c).is_dir()]
        if missing:
            shown = ", ".join(missing[:10]) + (f", … ({len(missing)} in all)" if len(missing) > 10 else "")
            raise BraTSDataError(f"{len(missing)} listed case(s) have no folder under {root}: {shown}")
        folders = [root / c for c in case_ids]
    return [find_case(f, require_seg=require_seg) for f in folders]


# ---------------------------------------------------------------------------------------------------- splits
def read_split(path: str | Path) -> list[str]:
    """Case ids of a split file: one per line; blank lines and lines starting with ``#`` are ignored.

    Raises:
        FileNotFoundError: the file does not exist.
        BraTSDataError: the file lists no ids, or lists an id twice.
    """
    path = Path(path)
    ids = [s for line in path.read_text().splitlines() if (s := line.strip()) and not s.startswith("#")]
    if not ids:
        raise BraTSDataError(f"split file {path} lists no case ids (expected one case id per line)")
    dups = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dups:
        raise BraTSDataError(f"split file {path} lists case ids more than once: {dups}")
    return ids


def split_hash(case_ids: Sequence[str]) -> str:
    """sha256 (hex) of the sorted case ids joined by newlines; independent of the order of the file."""
    return hashlib.sha256("\n".join(sorted(case_ids)).encode()).hexdigest()


def random_split(
    case_ids: Sequence[str],
    fractions: Sequence[float] = (0.75, 0.125, 0.125),
    seed: int = 0,
    names: Sequence[str] = ("train", "val", "test"),
) -> dict[str, list[str]]:
    """A seeded random partition of ``case_ids`` (sorted ids within each split).

    Split sizes are the rounded cumulative fractions, so they always add up to ``len(case_ids)``
    (24 cases at 0.75/0.125/0.125 → 18/3/3). The result depends on the set of ids, not their order.

    Args:
        case_ids: the ids (unique).
        fractions: one non-negative weight per split name (normalised to sum 1).
        seed: permutation seed.
        names: split names.

    Returns:
        ``{name: [case ids]}``.
    """
    if len(fractions) != len(names):
        raise ValueError(f"{len(fractions)} fractions for {len(names)} split names {list(names)}")
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {list(fractions)}")
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise ValueError("case_ids contains duplicates")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    bounds = np.rint(np.cumsum(fractions) / sum(fractions) * len(ids)).astype(int)
    starts = [0, *bounds[:-1].tolist()]
    return {n: sorted(order[a:b]) for n, a, b in zip(names, starts, bounds.tolist(), strict=True)}


def write_split(split_dir: str | Path, splits: Mapping[str, Sequence[str]]) -> dict[str, Path]:
    """Write ``<split_dir>/<name>.txt`` (one case id per line) for each split.

    Args:
        split_dir: folder (created).
        splits: ``{name: case ids}``, e.g. from ``random_split``.

    Returns:
        ``{name: file}``.

    Raises:
        BraTSDataError: a split is empty or a case id is in two splits.
    """
    owner: dict[str, str] = {}
    for name, ids in splits.items():
        if not ids:
            raise BraTSDataError(f"split {name!r} is empty; every split file must list at least one case")
        for i in ids:
            if i in owner:
                raise BraTSDataError(f"case {i!r} is in both split {owner[i]!r} and split {name!r}")
            owner[i] = name
    out = Path(split_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, ids in splits.items():
        paths[name] = out / f"{name}.txt"
        paths[name].write_text("\n".join(ids) + "\n")
    return paths


# -------------------------------------------------------------------------------------------- preprocessing
def labels_to_regions(
    seg: np.ndarray, convention: LabelConvention | str = LabelConvention.BRATS2021, source: str = "<array>"
) -> np.ndarray:
    """Label map → overlapping region masks (ET, TC, WT).

    Args:
        seg: ``int or float[X, Y, Z]`` label map (float values must be integral).
        convention: which label values are expected (``VALID_LABELS``).
        source: name used in error messages (the file).

    Returns:
        ``bool[3, X, Y, Z]``, channels in ``REGIONS`` order.

    Raises:
        BraTSDataError: a value is not integral or outside the convention's label set (the message names ``source``
            and the offending values).

    Example:
        >>> seg = np.array([[[0, 1, 2, 4]]])
        >>> labels_to_regions(seg).reshape(3, -1).astype(int).tolist()
        [[0, 0, 0, 1], [0, 1, 0, 1], [0, 1, 1, 1]]
    """
    conv = LabelConvention(convention)
    valid = VALID_LABELS[conv]
    if seg.dtype.kind == "f" and (not np.all(np.isfinite(seg)) or np.any(seg != np.rint(seg))):
        bad = np.unique(seg[~np.isfinite(seg) | (seg != np.rint(seg))])[:10]
        raise BraTSDataError(f"{source}: non-integer label values {bad.tolist()}; expected {conv.value} labels {valid}")
    lo, hi = (seg.min(), seg.max()) if seg.size else (0, 0)
    if lo < 0 or hi > 255:
        present = np.unique(seg).astype(np.int64)
    else:
        present = np.flatnonzero(np.bincount(seg.astype(np.uint8, copy=False).ravel(), minlength=256))
    bad_values = sorted(set(present.tolist()) - set(valid))
    if bad_values:
        hint = ""
        if conv is LabelConvention.BRATS2021 and bad_values == [3]:
            hint = " (label 3 suggests BraTS 2023+ labels: use label_convention='brats2023')"
        raise BraTSDataError(
            f"{source}: label values {bad_values} are outside the {conv.value} set {valid}; "
            f"values present: {present.tolist()}{hint}"
        )
    lut = np.zeros((3, 256), dtype=bool)  # region × label value → member
    for r, labels in enumerate(REGION_LABELS[conv]):
        lut[r, list(labels)] = True
    return lut[:, seg.astype(np.uint8, copy=False)]


def zscore_nonzero(image: np.ndarray) -> np.ndarray:
    """Per-channel z-score over the nonzero (brain) voxels; background stays exactly 0.

    Args:
        image: ``[C, X, Y, Z]``.

    Returns:
        ``float32[C, X, Y, Z]``. A channel with no nonzero voxel stays all-zero; one with constant brain intensity
        is only centred.
    """
    out = np.zeros(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        x = image[c]
        brain = x != 0
        if not brain.any():
            continue
        vals = x[brain].astype(np.float64)
        mean, std = vals.mean(), vals.std()
        out[c][brain] = ((vals - mean) / (std if std > 0 else 1.0)).astype(np.float32)
    return out


def brain_bbox(image: np.ndarray, extra: np.ndarray | None = None) -> tuple[slice, ...]:
    """Bounding box of the nonzero voxels of any channel (and of ``extra``'s nonzero voxels).

    Args:
        image: ``[C, X, Y, Z]``.
        extra: optional ``[X, Y, Z]`` or ``[R, X, Y, Z]`` array (e.g. labels) whose nonzero voxels are included.

    Returns:
        One slice per spatial axis.

    Raises:
        BraTSDataError: everything is zero.
    """
    mask = (image != 0).any(axis=0)
    if extra is not None:
        mask |= (extra != 0).reshape(-1, *mask.shape).any(axis=0)
    slices = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        if idx.size == 0:
            raise BraTSDataError("every voxel of the image is zero: no brain to crop to")
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(slices)


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode a NIfTI file to ``([X, Y, Z] array, affine)``; any read error is re-raised naming the file."""
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise TypeError(f"expected a NIfTI image, got {type(img).__name__}")
        data = np.asarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:  # nibabel, gzip, zlib and OS errors all mean the same thing to the user
        raise BraTSDataError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BraTSDataError(f"{path}: expected a 3D volume, got shape {data.shape}")
    return data, affine


@dataclass
class CaseVolume:
    """One preprocessed case.

    Attributes:
        case_id: the case id.
        image: ``float32[4, X, Y, Z]`` in ``MODALITIES`` order (may be a read-only memory map from the cache).
        regions: ``bool[3, X, Y, Z]`` in ``REGIONS`` order, or ``None`` for an unlabelled case.
        affine: ``float64[4, 4]`` of the *source* grid (before cropping).
        bbox: ``((start, stop), …)`` per spatial axis: where ``image`` lies in the source grid.
        source_shape: spatial shape of the source grid.
    """

    case_id: str
    image: np.ndarray
    regions: np.ndarray | None
    affine: np.ndarray
    bbox: tuple[tuple[int, int], ...]
    source_shape: tuple[int, ...]


def load_case(
    case: BraTSCase,
    label_convention: LabelConvention | str | None = None,
    normalize: bool = True,
    crop: bool = True,
) -> CaseVolume:
    """Decode, check and preprocess one case (no cache; see ``VolumeCache``).

    Args:
        case: the case's files.
        label_convention: overrides the convention implied by the file naming.
        normalize: per-modality z-score over the nonzero voxels.
        crop: crop to the bounding box of the brain (union over modalities) and of the labels.

    Returns:
        The case volume.

    Raises:
        BraTSDataError: a file cannot be decoded (e.g. a truncated ``.nii.gz``), is not 3D, its shape or affine
            differs from the FLAIR file's, a label value is invalid, or every image voxel is zero.
    """
    conv = LabelConvention(label_convention) if label_convention is not None else case.convention
    ref_path = case.images[MODALITIES[0]]
    arrays: list[np.ndarray] = []
    ref_shape: tuple[int, ...] = ()
    ref_affine = np.eye(4)
    for i, modality in enumerate(MODALITIES):
        path = case.images[modality]
        data, affine = _read_nifti(path)
        if i == 0:
            ref_shape, ref_affine = data.shape, affine
        else:
            _check_geometry(case.case_id, path, data.shape, affine, ref_path, ref_shape, ref_affine)
        arrays.append(data.astype(np.float32, copy=False))
    image = np.stack(arrays)  # [4, X, Y, Z]
    regions = None
    if case.seg is not None:
        seg, affine = _read_nifti(case.seg)
        _check_geometry(case.case_id, case.seg, seg.shape, affine, ref_path, ref_shape, ref_affine)
        regions = labels_to_regions(seg, conv, source=str(case.seg))
    try:
        box = brain_bbox(image, regions) if crop else tuple(slice(0, n) for n in ref_shape)
    except BraTSDataError as exc:
        raise BraTSDataError(f"case {case.case_id!r}: {exc}") from exc
    if normalize:
        image = zscore_nonzero(image)
    image = np.ascontiguousarray(image[(slice(None), *box)])
    if regions is not None:
        regions = np.ascontiguousarray(regions[(slice(None), *box)])
    return CaseVolume(
        case_id=case.case_id,
        image=image,
        regions=regions,
        affine=ref_affine,
        bbox=tuple((s.start, s.stop) for s in box),
        source_shape=tuple(ref_shape),
    )


def _check_geometry(
    case_id: str,
    path: Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    ref_path: Path,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
) -> None:
    if shape != ref_shape:
        raise BraTSDataError(
            f"case {case_id!r}: {path.name} has shape {shape}, expected {ref_shape} as {ref_path.name}"
        )
    if not np.allclose(affine, ref_affine, atol=AFFINE_ATOL):
        raise BraTSDataError(
            f"case {case_id!r}: the affine of {path.name} differs from that of {ref_path.name} "
            f"(max |Δ| = {np.abs(affine - ref_affine).max():.4g} > {AFFINE_ATOL}):\n{affine}\nexpected\n{ref_affine}"
        )


# ------------------------------------------------------------------------------------------------------ cache
class VolumeCache:
    """Preprocessed volumes stored as uncompressed ``.npy``, so later epochs skip the gzip decode.

    An entry is ``<cache_dir>/<case_id>/<key>/{image.npy, regions.npy, meta.json}``. The key is a sha256 of each
    source file's resolved path, size and modification time plus the preprocessing options and a format version:
    touching or replacing a source file invalidates the entry (stale entries of the case are deleted when the new
    one is written). Entries appear atomically (written to a temporary folder, then renamed), so concurrent
    DataLoader workers can share a cache. Sizes: ``4·4 + 3`` bytes per cropped voxel, about 12 MB per 2 mm case and
    60 MB per 1 mm BraTS case.

    Args:
        cache_dir: the cache folder (created).
    """

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def key(
        self,
        case: BraTSCase,
        label_convention: LabelConvention | str | None = None,
        normalize: bool = True,
        crop: bool = True,
    ) -> str:
        """The entry key of ``case`` under these options (changes when a source file changes)."""
        conv = LabelConvention(label_convention) if label_convention is not None else case.convention
        parts = [f"v{_CACHE_VERSION}", conv.value, f"normalize={normalize}", f"crop={crop}"]
        for path in case.files:
            st = path.stat()
            parts.append(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]

    def load(
        self,
        case: BraTSCase,
        label_convention: LabelConvention | str | None = None,
        normalize: bool = True,
        crop: bool = True,
        mmap: bool = True,
    ) -> CaseVolume:
        """The case's volume from the cache, decoding and storing it on first use.

        Args:
            case: the case's files.
            label_convention: as in ``load_case``.
            normalize: as in ``load_case``.
            crop: as in ``load_case``.
            mmap: return read-only memory maps (patch sampling then reads only the pages it needs).

        Returns:
            The case volume.
        """
        key = self.key(case, label_convention, normalize, crop)
        entry = self.cache_dir / case.case_id / key
        if not (entry / "meta.json").is_file():
            vol = load_case(case, label_convention, normalize, crop)
            self._write(entry, vol)
        meta = json.loads((entry / "meta.json").read_text())
        mode: Any = "r" if mmap else None
        return CaseVolume(
            case_id=meta["case_id"],
            image=np.load(entry / "image.npy", mmap_mode=mode),
            regions=np.load(entry / "regions.npy", mmap_mode=mode) if meta["has_regions"] else None,
            affine=np.asarray(meta["affine"], dtype=np.float64),
            bbox=tuple((int(a), int(b)) for a, b in meta["bbox"]),
            source_shape=tuple(meta["source_shape"]),
        )

    @staticmethod
    def _write(entry: Path, vol: CaseVolume) -> None:
        tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        np.save(tmp / "image.npy", vol.image)
        if vol.regions is not None:
            np.save(tmp / "regions.npy", vol.regions)
        meta = {
            "case_id": vol.case_id,
            "has_regions": vol.regions is not None,
            "affine": vol.affine.tolist(),
            "bbox": [list(b) for b in vol.bbox],
            "source_shape": list(vol.source_shape),
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            tmp.rename(entry)
        except OSError:  # another worker wrote the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
        for stale in entry.parent.iterdir():
            if stale.name != entry.name and not stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)


# --------------------------------------------------------------------------------------------------- patches
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


def _as_size(patch_size: int | Sequence[int]) -> tuple[int, int, int]:
    size = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(patch_size)
    if len(size) != 3 or any(int(p) < 1 for p in size):
        raise ValueError(f"patch_size must be a positive int or three positive ints, got {patch_size}")
    return int(size[0]), int(size[1]), int(size[2])


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
        patch_size: patch edge(s) in voxels.
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
        patch_size: int | Sequence[int] = 64,
        samples_per_case: int = 1,
        fg_prob: float = 0.5,
        flip_prob: float = 0.5,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        label_convention: LabelConvention | str | None = None,
    ) -> None:
        self.loader = _CaseLoader(cases, cache_dir, label_convention, require_labels=True)
        self.patch_size = _as_size(patch_size)
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


def default_cache_root() -> Path:
    """``$MMBENCH_CACHE`` or ``.cache/mmbench`` under the working directory."""
    return Path(os.environ.get("MMBENCH_CACHE", ".cache/mmbench"))


@DATASETS.register("brats")
class BraTSDataModule(MultimodalDataModule):
    """BraTS 3-D segmentation: four MRI contrasts, three overlapping regions (ET, TC, WT).

    With ``root=None`` the data are the **semi-synthetic** BraTS cases of ``mmbench.data.synthetic_brats`` (real
    MNI152 anatomy from nilearn, synthetic contrasts and tumours), generated once into the cache and read back
    through the real NIfTI loader. Otherwise ``root`` is a folder of BraTS case folders (2018–2021 or 2023+ naming).

    Training items are random patches (``patch_size``, foreground oversampling, flips); validation and test items
    are whole brain-cropped volumes (batch size 1) that methods evaluate with sliding-window inference over windows
    of ``patch_size`` (``MissingModalityMethod.predict_logits``). Dice is computed per case on the cropped volume.

    Args:
        root: BraTS case folders; ``None`` = semi-synthetic cases in the cache.
        split_dir: folder with ``train.txt``/``val.txt``/``test.txt`` case ids (default: a seeded 75/12.5/12.5 split,
            written to the cache for the semi-synthetic set).
        num_synthetic_cases: cases generated when ``root`` is ``None``.
        synthetic_seed: generator seed of the semi-synthetic cases.
        spacing_mm: grid of the semi-synthetic cases.
        patch_size: training patch edge (voxels) = sliding-window size at evaluation.
        samples_per_case: training patches per case per epoch.
        fg_prob: probability that a patch is centred on tumour.
        cache_dir: decoded-volume cache (default: ``$MMBENCH_CACHE`` or ``.cache/mmbench``).
        missingness: see ``MultimodalDataModule``.
        eval_protocols: see ``MultimodalDataModule``.
        mask_seed: see ``MultimodalDataModule``.
        batch_size: training batch size.
        num_workers: DataLoader workers.
    """

    name = "brats"

    def __init__(
        self,
        root: str | None = None,
        split_dir: str | None = None,
        num_synthetic_cases: int = 24,
        synthetic_seed: int = 0,
        spacing_mm: float = 2.0,
        patch_size: int = 64,
        samples_per_case: int = 2,
        fg_prob: float = 0.5,
        cache_dir: str | None = None,
        missingness: MissingnessSpec | None = None,
        eval_protocols: list[EvalProtocol] | None = None,
        mask_seed: int = 0,
        batch_size: int = 2,
        num_workers: int = 0,
    ) -> None:
        super().__init__(missingness, eval_protocols, mask_seed, batch_size, 1, num_workers)
        if patch_size < 8:
            raise ValueError(f"patch_size must be >= 8 voxels, got {patch_size}")
        self.root = root
        self.split_dir = split_dir
        self.num_synthetic_cases = num_synthetic_cases
        self.synthetic_seed = synthetic_seed
        self.spacing_mm = spacing_mm
        self.patch_size = int(patch_size)
        self.samples_per_case = samples_per_case
        self.fg_prob = fg_prob
        self.cache_root = Path(cache_dir) if cache_dir else default_cache_root()
        self._splits: dict[str, list[str]] | None = None
        self._cases: dict[str, BraTSCase] = {}
        self.validate()

    @property
    def modalities(self) -> tuple[str, ...]:  # noqa: D102
        return tuple(MODALITIES)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:  # noqa: D102
        p = self.patch_size
        return {m: (1, p, p, p) for m in MODALITIES}

    @property
    def task(self) -> Task:  # noqa: D102
        return Task.SEGMENTATION

    @property
    def num_classes(self) -> int:  # noqa: D102
        return len(REGIONS)

    @property
    def dataset_variant(self) -> str:  # noqa: D102
        if self.root is None:
            return f"semi-synthetic({self.num_synthetic_cases}x{self.spacing_mm:g}mm,seed={self.synthetic_seed})"
        return "real"

    def _data_root(self) -> Path:
        if self.root is not None:
            return Path(self.root)
        root = self.cache_root / f"brats_synth_n{self.num_synthetic_cases}_s{self.synthetic_seed}_{self.spacing_mm:g}mm"
        marker = root / ".complete"
        if not marker.is_file():
            from mmbench.data.synthetic_brats import generate_cases

            generate_cases(root, self.num_synthetic_cases, self.synthetic_seed, self.spacing_mm)
            marker.write_text("ok\n")
        return root

    def splits(self) -> dict[str, list[str]]:
        """Case ids per split (from ``split_dir`` or a seeded split of the cases found)."""
        if self._splits is None:
            root = self._data_root()
            if self.split_dir is not None:
                d = Path(self.split_dir)
                self._splits = {s: read_split(d / f"{s}.txt") for s in ("train", "val", "test")}
            else:
                ids = [c.case_id for c in discover_cases(root)]
                self._splits = random_split(ids, seed=0)
            for case in discover_cases(root, [i for ids in self._splits.values() for i in ids]):
                self._cases[case.case_id] = case
        return self._splits

    @property
    def split_hash(self) -> str:  # noqa: D102
        return split_hash([f"{s}:{i}" for s, ids in self.splits().items() for i in ids])

    def build_split(self, split: str) -> Dataset:  # noqa: D102
        cases = [self._cases[i] for i in self.splits()[split]]
        cache = self.cache_root / "volumes"
        if split == "train":
            return BraTSPatchDataset(
                cases, self.patch_size, self.samples_per_case, self.fg_prob, cache_dir=cache, seed=self.mask_seed
            )
        return BraTSVolumeDataset(cases, cache_dir=cache)

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        dataset = self._dataset("train")
        assert isinstance(dataset, BraTSPatchDataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=_EpochSampler(dataset, self.mask_seed),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )
