"""Semi-synthetic BraTS generator: real BraTS format, determinism, contrast-specific tumour appearance, integrity."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mmbench.data import sources
from mmbench.data.brats import LabelConvention, discover_cases, load_case, read_split
from mmbench.data.synthetic_brats import (
    CONTRASTS,
    generate_case,
    generate_cases,
    load_mni152_maps,
    random_split,
    write_split,
)
from mmbench.errors import DataIntegrityError

SPACING = 4.0  # coarse grid for speed: 50×59×48


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    t0 = time.perf_counter()
    generate_cases(root, num_cases=3, seed=0, spacing_mm=SPACING)
    print(f"generated 3 cases at {SPACING} mm in {time.perf_counter() - t0:.2f}s")
    return root


def _read(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def test_writes_brats_format_that_the_loader_reads(synth_root: Path) -> None:
    ids = [f"BraTSSynth_{i:05d}" for i in range(3)]
    assert sorted(p.name for p in synth_root.iterdir() if p.is_dir()) == ids
    assert sorted(p.name for p in (synth_root / ids[0]).iterdir()) == sorted(
        f"{ids[0]}_{s}.nii.gz" for s in ("flair", "seg", "t1", "t1ce", "t2")
    )
    manifest = json.loads((synth_root / "synthetic_brats.json").read_text())
    assert manifest["case_ids"] == ids
    assert manifest["spacing_mm"] == SPACING
    assert "semi-synthetic" in manifest["description"]

    cases = discover_cases(synth_root)
    assert [c.case_id for c in cases] == ids
    assert all(c.convention is LabelConvention.BRATS2021 for c in cases)
    for case in cases:
        img = nib.load(case.images["flair"])
        assert img.shape == (50, 59, 48)
        np.testing.assert_allclose(np.diag(img.affine)[:3], [SPACING] * 3)
        assert img.header.get_zooms() == (SPACING,) * 3
        seg = _read(case.seg)  # type: ignore[arg-type]
        assert seg.dtype == np.uint8
        assert set(np.unique(seg).tolist()) <= {0, 1, 2, 4}
        assert (seg > 0).sum() > 20  # every case has a tumour
        # skull-stripped: identical brain support (>= 1) in every contrast, exactly 0 outside; tumour inside it
        brain = _read(case.images["flair"]) > 0
        for m in CONTRASTS:
            data = _read(case.images[m])
            assert data.dtype == np.int16
            np.testing.assert_array_equal(data > 0, brain)
        assert not (seg[~brain] > 0).any()
        vol = load_case(case)
        assert vol.image.shape[0] == 4
        assert vol.regions is not None
        assert vol.regions[2].sum() == (seg > 0).sum()


def test_case_depends_only_on_seed_and_index(synth_root: Path, tmp_path: Path) -> None:
    generate_cases(tmp_path, num_cases=1, seed=0, spacing_mm=SPACING)
    name = "BraTSSynth_00000"
    for suffix in ("t1ce", "seg"):
        np.testing.assert_array_equal(
            _read(tmp_path / name / f"{name}_{suffix}.nii.gz"), _read(synth_root / name / f"{name}_{suffix}.nii.gz")
        )
    case2 = generate_case(2, seed=0, spacing_mm=SPACING)
    np.testing.assert_array_equal(
        case2.images["flair"], _read(synth_root / "BraTSSynth_00002/BraTSSynth_00002_flair.nii.gz")
    )
    case1 = generate_case(1, seed=0, spacing_mm=SPACING)
    other_seed = generate_case(2, seed=1, spacing_mm=SPACING)
    assert not np.array_equal(case1.seg, case2.seg)
    assert not np.array_equal(other_seed.images["t2"], case2.images["t2"])


def test_tumour_appearance_is_contrast_specific() -> None:
    """ET bright on T1c only; oedema bright on FLAIR and T2 (reference/data-sources.md §3)."""
    checked_et = 0
    for index in range(4):
        case = generate_case(index, seed=0, spacing_mm=SPACING)
        seg = case.seg
        # normal-appearing white matter, away from the tumour (and its blur)
        nawm = (case.tissue["wm"] > 0.9) & ~ndimage.binary_dilation(seg > 0, iterations=2)
        assert nawm.sum() > 500
        regions = {k: r for k, r in {"wm": nawm, "et": seg == 4, "ed": seg == 2}.items() if r.sum() >= 10}
        mean = {m: {k: float(case.images[m][r].mean()) for k, r in regions.items()} for m in CONTRASTS}
        if "et" in regions:
            checked_et += 1
            assert mean["t1ce"]["et"] > 1.1 * mean["t1ce"]["wm"], (index, mean["t1ce"])
            assert mean["t1"]["et"] < 0.9 * mean["t1"]["wm"], (index, mean["t1"])
        for m in ("flair", "t2"):
            assert mean[m]["ed"] > 1.4 * mean[m]["wm"], (index, m, mean[m])
        assert mean["t1"]["ed"] < mean["t1"]["wm"]  # oedema is hypointense on T1
        csf = (case.tissue["csf"] > 0.7) & (seg == 0)
        assert csf.sum() > 50
        assert case.images["t2"][csf].mean() > mean["t2"]["wm"]  # CSF bright on T2 ...
        assert case.images["flair"][csf].mean() < mean["flair"]["wm"]  # ... and suppressed on FLAIR
    assert checked_et >= 2


def test_template_checksum_mismatch_names_file_and_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "0" * 64
    monkeypatch.setitem(
        sources.PACKAGED_FILES, "mni152_gm", dataclasses.replace(sources.PACKAGED_FILES["mni152_gm"], sha256=wrong)
    )
    monkeypatch.setattr(sources, "_VERIFIED", set())
    load_mni152_maps.cache_clear()
    try:
        with pytest.raises(
            DataIntegrityError,
            match=rf"mni_icbm152_gm_tal_nlin_sym_09a_converted\.nii\.gz: expected sha256 {wrong}, got 97a5ca69bd24",
        ):
            load_mni152_maps(SPACING)
    finally:
        load_mni152_maps.cache_clear()


def test_template_resampling_grid() -> None:
    maps = load_mni152_maps(SPACING)
    assert maps.t1.shape == (50, 59, 48)
    # voxel (i, j, k) at 4 mm is the mean of 1 mm voxels 4i … 4i+3: its centre lies 1.5 mm past the 1 mm voxel 4i
    np.testing.assert_allclose(maps.affine @ [0, 0, 0, 1], [-96.5, -132.5, -70.5, 1])
    np.testing.assert_allclose(maps.affine @ [1, 1, 1, 1], [-92.5, -128.5, -66.5, 1])
    for m in (maps.t1, maps.gm, maps.wm, maps.brain):
        assert m.min() >= 0.0
        assert m.max() <= 1.0
    assert not maps.t1.flags.writeable
    assert load_mni152_maps(SPACING) is maps  # cached per process


def test_split_helpers(synth_root: Path, tmp_path: Path) -> None:
    ids = [c.case_id for c in discover_cases(synth_root)]
    splits = random_split(ids, fractions=(1, 1, 1), seed=0)
    assert all(len(v) == 1 for v in splits.values())
    paths = write_split(tmp_path, splits)
    assert [c.case_id for c in discover_cases(synth_root, read_split(paths["test"]))] == splits["test"]
