"""BraTS case folders: naming schemes and label conventions, case discovery and NIfTI reading."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import nibabel as nib
import numpy as np

from mmbench.errors import DataIntegrityError

__all__ = [
    "AFFINE_ATOL",
    "MODALITIES",
    "REGIONS",
    "REGION_LABELS",
    "SYNTHETIC_MARKER",
    "VALID_LABELS",
    "BraTSCase",
    "BraTSDataError",
    "LabelConvention",
    "SyntheticMarker",
    "discover_cases",
    "find_case",
    "read_synthetic_marker",
    "synthetic_content_sha256",
]

MODALITIES = ("flair", "t1", "t1ce", "t2")
"""Canonical modality order (mask columns, channel order of ``image``)."""

REGIONS = ("et", "tc", "wt")
"""Region channel order of the targets: enhancing tumour, tumour core, whole tumour."""

AFFINE_ATOL = 1e-3
"""Largest difference (mm) tolerated between the affines of a case's files."""


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


# ------------------------------------------------------------------------------------------- synthetic marker
SYNTHETIC_MARKER = "mmbench-synthetic.json"
"""Marker file at the root of a set written by ``mmbench data brats-synth`` (or the default generated cache)."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SyntheticMarker:
    """The content of a ``mmbench-synthetic.json`` marker.

    Attributes:
        generator_version: ``mmbench.data.synthetic_brats`` generator that wrote the set (e.g. ``"2"``).
        seed: dataset seed.
        spacing_mm: voxel size of the written grid.
        count: number of cases.
        case_ids: the case folders, in index order.
        sha256: ``synthetic_content_sha256`` of those folders when they were written.
    """

    generator_version: str
    seed: int
    spacing_mm: float
    count: int
    case_ids: tuple[str, ...]
    sha256: str

    @property
    def dataset_variant(self) -> str:
        """``dataset_variant`` of results on this set, e.g. ``semi-synthetic(gen=v2,128x4mm,seed=0)``."""
        return f"semi-synthetic(gen=v{self.generator_version},{self.count}x{self.spacing_mm:g}mm,seed={self.seed})"


def synthetic_content_sha256(root: str | Path, case_ids: Sequence[str]) -> str:
    """sha256 over ``"<case>/<file> <sha256 of the file>"`` lines of every file in the listed case folders."""
    root = Path(root)
    h = hashlib.sha256()
    for case_id in case_ids:
        folder = root / case_id
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        for f in files:
            h.update(f"{case_id}/{f.name} {hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


_MARKER_CACHE: dict[tuple[str, int, int], SyntheticMarker] = {}


def read_synthetic_marker(root: str | Path) -> SyntheticMarker | None:
    """Read and verify the synthetic marker of a BraTS root; ``None`` when the root has none (real data).

    The case files are re-hashed and compared with the marker's ``sha256`` (once per process and marker version),
    so a set edited after it was generated, or a marker copied onto other data, is refused rather than labelled.

    Args:
        root: BraTS root folder.

    Returns:
        The marker, or ``None``.

    Raises:
        BraTSDataError: the marker is not JSON, lacks a field or has one of the wrong type, its case count or case
            folders do not match, or the files no longer hash to its ``sha256`` (one line naming the file and field).
    """
    path = Path(root) / SYNTHETIC_MARKER
    if not path.is_file():
        return None
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key in _MARKER_CACHE:
        return _MARKER_CACHE[key]
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BraTSDataError(f"{path}: not a valid synthetic-set marker (not JSON: {e})") from None
    if not isinstance(data, dict):
        raise BraTSDataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    checks = {
        "generator_version": (lambda v: isinstance(v, str) and v.isalnum(), "a version string such as '2'"),
        "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
        "spacing_mm": (
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0,
            "a positive number",
        ),
        "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
        "case_ids": (
            lambda v: isinstance(v, list) and all(isinstance(c, str) and c and "/" not in c for c in v),
            "a list of case folder names",
        ),
        "sha256": (lambda v: isinstance(v, str) and bool(_HEX64.fullmatch(v)), "64 lower-case hex digits"),
    }
    for field, (ok, expected) in checks.items():
        if field not in data:
            raise BraTSDataError(f"{path}: field {field!r} is missing (expected {expected})")
        if not ok(data[field]):
            raise BraTSDataError(f"{path}: field {field!r} is {data[field]!r}, expected {expected}")
    if len(data["case_ids"]) != data["count"]:
        raise BraTSDataError(f"{path}: field 'count' is {data['count']}, but 'case_ids' lists {len(data['case_ids'])}")
    missing = [c for c in data["case_ids"] if not (Path(root) / c).is_dir()]
    if missing:
        raise BraTSDataError(f"{path}: field 'case_ids' names {len(missing)} folder(s) not under {root}: {missing[:5]}")
    actual = synthetic_content_sha256(root, data["case_ids"])
    if actual != data["sha256"]:
        raise BraTSDataError(
            f"{path}: field 'sha256' is {data['sha256'][:12]}…, but the listed case files hash to {actual[:12]}…: "
            "the set changed after it was generated; regenerate it with `mmbench data brats-synth`"
        )
    marker = SyntheticMarker(
        generator_version=data["generator_version"],
        seed=data["seed"],
        spacing_mm=float(data["spacing_mm"]),
        count=data["count"],
        case_ids=tuple(data["case_ids"]),
        sha256=data["sha256"],
    )
    _MARKER_CACHE[key] = marker
    return marker
