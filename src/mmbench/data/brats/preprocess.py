"""Preprocessing of one case: label regions, z-score over the brain, the brain crop, ``load_case``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmbench.data.brats.files import (
    MODALITIES,
    REGION_LABELS,
    VALID_LABELS,
    BraTSCase,
    BraTSDataError,
    LabelConvention,
    _check_geometry,
    _read_nifti,
)

__all__ = ["CaseVolume", "brain_bbox", "labels_to_regions", "load_case", "zscore_nonzero"]


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
