"""BraTS NIfTI loading: naming schemes, label conventions, preprocessing, cache, patches and every error path."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmbench.data.brats import (
    MODALITIES,
    BraTSCase,
    BraTSDataError,
    BraTSPatchDataset,
    BraTSVolumeDataset,
    LabelConvention,
    VolumeCache,
    brain_bbox,
    discover_cases,
    find_case,
    labels_to_regions,
    load_case,
    random_patch,
    random_split,
    read_split,
    split_hash,
    write_split,
    zscore_nonzero,
)

SHAPE = (14, 16, 12)
AFFINE = np.array([[-2.0, 0, 0, 90], [0, -2.0, 0, 120], [0, 0, 2.0, -70], [0, 0, 0, 1]])
SUFFIX_2023 = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}


def _brain() -> np.ndarray:
    """An ellipsoidal brain inside SHAPE, leaving a zero margin (for the crop)."""
    x, y, z = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return ((x - 7) / 5) ** 2 + ((y - 8) / 6) ** 2 + ((z - 6) / 4) ** 2 <= 1


def _labels(et: int) -> np.ndarray:
    """NCR at the centre, ET around it, ED around that (label value ``et`` for ET)."""
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[5:10, 6:11, 4:9] = 2
    seg[6:9, 7:10, 5:8] = et
    seg[7, 8, 6] = 1
    return seg


def write_case(
    root: Path,
    case_id: str,
    scheme: str = "2021",
    ext: str = ".nii.gz",
    seg: np.ndarray | None = None,
    skip: tuple[str, ...] = (),
    seed: int = 0,
) -> Path:
    """A case folder: modality ``i`` is ``(i + 1)·100 + noise`` inside the brain and 0 outside."""
    rng = np.random.default_rng(seed)
    case_dir = root / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    sep = "_" if scheme == "2021" else "-"
    brain = _brain()
    arrays = {
        m: np.where(brain, (i + 1) * 100 + rng.normal(0, 5, SHAPE), 0).astype(np.float32)
        for i, m in enumerate(MODALITIES)
    }
    arrays["seg"] = seg if seg is not None else _labels(4 if scheme == "2021" else 3)
    for key, data in arrays.items():
        if key in skip:
            continue
        suffix = key if scheme == "2021" else SUFFIX_2023[key]
        nib.save(nib.Nifti1Image(data, AFFINE), case_dir / f"{case_id}{sep}{suffix}{ext}")
    return case_dir


def expected_regions(seg: np.ndarray, et: int) -> np.ndarray:
    return np.stack([seg == et, (seg == 1) | (seg == et), seg > 0])


# ------------------------------------------------------------------------------------------------- discovery
@pytest.mark.parametrize("scheme", ["2021", "2023"])
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_both_namings_and_extensions_load_in_canonical_order(tmp_path: Path, scheme: str, ext: str) -> None:
    case_id = "BraTS2021_00007" if scheme == "2021" else "BraTS-GLI-00007-000"
    write_case(tmp_path, case_id, scheme, ext)
    (case,) = discover_cases(tmp_path)
    assert case.case_id == case_id
    assert tuple(case.images) == MODALITIES
    assert case.convention is (LabelConvention.BRATS2021 if scheme == "2021" else LabelConvention.BRATS2023)
    assert all(p.name.endswith(ext) for p in case.files)

    vol = load_case(case, normalize=False, crop=False)
    assert vol.image.shape == (4, *SHAPE)
    assert vol.image.dtype == np.float32
    brain = _brain()
    # channel i holds modality i (2023: t2f→flair, t1n→t1, t1c→t1ce, t2w→t2)
    for i in range(4):
        assert abs(vol.image[i][brain].mean() - (i + 1) * 100) < 3
    et = 4 if scheme == "2021" else 3
    assert vol.regions is not None
    assert vol.regions.dtype == bool
    np.testing.assert_array_equal(vol.regions, expected_regions(_labels(et), et))
    np.testing.assert_allclose(vol.affine, AFFINE)


def test_discover_sorted_and_by_split_ids(tmp_path: Path) -> None:
    for cid in ["case_b", "case_a", "case_c"]:
        write_case(tmp_path, cid)
    (tmp_path / ".cache").mkdir()  # hidden and non-case folders are ignored
    (tmp_path / "splits").mkdir()
    assert [c.case_id for c in discover_cases(tmp_path)] == ["case_a", "case_b", "case_c"]
    assert [c.case_id for c in discover_cases(tmp_path, ["case_c", "case_a"])] == ["case_c", "case_a"]


def test_unlabelled_case_allowed_only_when_not_required(tmp_path: Path) -> None:
    write_case(tmp_path, "c1", skip=("seg",))
    with pytest.raises(BraTSDataError, match=r"'c1'.*missing seg.*c1_seg\.nii\[\.gz\]"):
        find_case(tmp_path / "c1")
    case = find_case(tmp_path / "c1", require_seg=False)
    assert case.seg is None
    vol = load_case(case)
    assert vol.regions is None
    item = BraTSVolumeDataset([case], require_labels=False)[0]
    assert "target" not in item
    assert item["inputs"]["flair"].shape[0] == 1


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("scheme", "missing", "expected_name"), [("2021", "t1ce", "c1_t1ce"), ("2023", "t1ce", "c1-t1c")]
)
def test_missing_modality_names_case_and_expected_file(
    tmp_path: Path, scheme: str, missing: str, expected_name: str
) -> None:
    write_case(tmp_path, "c1", scheme, skip=(missing,))
    with pytest.raises(BraTSDataError, match=rf"case 'c1' .* is missing t1ce: expected {expected_name}\.nii\[\.gz\]"):
        discover_cases(tmp_path)


def test_bad_case_in_split_raises_instead_of_dropping(tmp_path: Path) -> None:
    write_case(tmp_path, "good")
    write_case(tmp_path, "bad", skip=("flair",))
    with pytest.raises(BraTSDataError, match=r"'bad'.*missing flair"):
        discover_cases(tmp_path, ["good", "bad"])
    with pytest.raises(BraTSDataError, match=r"2 listed case\(s\) have no folder.*ghost1, ghost2"):
        discover_cases(tmp_path, ["good", "ghost1", "ghost2"])


def test_folder_without_brats_files_and_mixed_or_duplicate_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(BraTSDataError, match=r"'empty'.*holds no BraTS files.*empty_flair\.nii\[\.gz\].*empty-t2f"):
        find_case(tmp_path / "empty")
    case_dir = write_case(tmp_path, "dup")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINE), case_dir / "dup_t2.nii")
    with pytest.raises(BraTSDataError, match=r"t2 is present twice \(dup_t2\.nii\.gz, dup_t2\.nii\)"):
        find_case(case_dir)
    mixed = write_case(tmp_path, "mixed")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINE), mixed / "mixed-t2f.nii.gz")
    with pytest.raises(BraTSDataError, match="mixes 2018–2021 and 2023"):
        find_case(mixed)


def test_shape_mismatch_names_both_files(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path, "c1")
    nib.save(nib.Nifti1Image(np.ones((14, 16, 11), np.float32), AFFINE), case_dir / "c1_t2.nii.gz")
    with pytest.raises(
        BraTSDataError, match=r"'c1': c1_t2\.nii\.gz has shape \(14, 16, 11\), expected \(14, 16, 12\) as c1_flair"
    ):
        load_case(find_case(case_dir))


def test_affine_mismatch_names_both_files(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path, "c1")
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.0
    nib.save(nib.Nifti1Image(_labels(4), shifted), case_dir / "c1_seg.nii.gz")
    with pytest.raises(BraTSDataError, match=r"'c1': the affine of c1_seg\.nii\.gz differs from that of c1_flair"):
        load_case(find_case(case_dir))


def test_truncated_gzip_is_reraised_naming_the_file(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path, "c1")
    path = case_dir / "c1_t1.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    case = find_case(case_dir)
    with pytest.raises(BraTSDataError, match=r"could not read .*c1_t1\.nii\.gz") as info:
        load_case(case)
    assert isinstance(info.value.__cause__, (EOFError, OSError, ValueError, gzip.BadGzipFile))


def test_non_3d_file(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path, "c1")
    nib.save(nib.Nifti1Image(np.ones((*SHAPE, 2), np.float32), AFFINE), case_dir / "c1_t1.nii.gz")
    with pytest.raises(BraTSDataError, match=r"c1_t1\.nii\.gz: expected a 3D volume, got shape \(14, 16, 12, 2\)"):
        load_case(find_case(case_dir))


def test_all_zero_case(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path, "c1", seg=np.zeros(SHAPE, np.uint8))
    for m in MODALITIES:
        nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINE), case_dir / f"c1_{m}.nii.gz")
    with pytest.raises(BraTSDataError, match="'c1': every voxel of the image is zero"):
        load_case(find_case(case_dir))


# ------------------------------------------------------------------------------------------------- labels
def test_label_regions_both_conventions_by_hand() -> None:
    seg = np.array([0, 1, 2, 4, 4, 2]).reshape(1, 2, 3)
    np.testing.assert_array_equal(
        labels_to_regions(seg, "brats2021").reshape(3, -1),
        [[0, 0, 0, 1, 1, 0], [0, 1, 0, 1, 1, 0], [0, 1, 1, 1, 1, 1]],
    )
    seg23 = np.array([0, 1, 2, 3, 3, 2], dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_array_equal(
        labels_to_regions(seg23, LabelConvention.BRATS2023).reshape(3, -1),
        [[0, 0, 0, 1, 1, 0], [0, 1, 0, 1, 1, 0], [0, 1, 1, 1, 1, 1]],
    )


@pytest.mark.parametrize(
    ("values", "convention", "pattern"),
    [
        (
            [0, 1, 3],
            "brats2021",
            r"seg\.nii\.gz: label values \[3\] are outside the brats2021 set.*use label_convention='brats2023'",
        ),
        ([0, 4, 2], "brats2023", r"seg\.nii\.gz: label values \[4\] are outside the brats2023 set \(0, 1, 2, 3\)"),
        ([0, 1, 300], "brats2021", r"label values \[300\]"),
        ([0, -1], "brats2021", r"label values \[-1\]"),
        ([0.0, 1.5], "brats2021", r"non-integer label values \[1\.5\]"),
    ],
)
def test_invalid_label_values_raise(values: list[float], convention: str, pattern: str) -> None:
    with pytest.raises(BraTSDataError, match=pattern):
        labels_to_regions(np.array(values).reshape(1, 1, -1), convention, source="x/seg.nii.gz")


def test_invalid_label_in_file_names_the_file(tmp_path: Path) -> None:
    seg = _labels(3)  # 2023 labels under 2018–2021 file naming
    seg[0, 0, 0] = 3
    write_case(tmp_path, "c1", seg=seg)
    with pytest.raises(BraTSDataError, match=r"c1_seg\.nii\.gz: label values \[3\].*label_convention='brats2023'"):
        load_case(find_case(tmp_path / "c1"))
    vol = load_case(find_case(tmp_path / "c1"), label_convention="brats2023", crop=False)  # explicit override
    assert vol.regions is not None
    assert vol.regions[0, 0, 0, 0]


# ------------------------------------------------------------------------------------------------- preprocessing
def test_zscore_inside_brain_background_zero() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((2, 6, 6, 6), np.float32)
    img[0, 1:5, 1:5, 1:5] = rng.normal(300, 40, (4, 4, 4))
    img[1, 2:4, 2:4, 2:4] = rng.normal(-50, 3, (2, 2, 2))
    out = zscore_nonzero(img)
    for c in range(2):
        brain = img[c] != 0
        assert abs(out[c][brain].mean()) < 1e-5
        assert abs(out[c][brain].std() - 1) < 1e-5
        assert np.all(out[c][~brain] == 0)
    assert np.all(zscore_nonzero(np.zeros((1, 3, 3, 3))) == 0)


def test_crop_is_union_of_modalities_and_labels(tmp_path: Path) -> None:
    img = np.zeros((4, *SHAPE), np.float32)
    img[0, 3:6, 4:8, 2:5] = 1
    img[2, 4:9, 5:7, 3:4] = 1  # extends the box along x and z is untouched
    seg = np.zeros(SHAPE, np.uint8)
    seg[5, 10, 4] = 2  # a label voxel outside every image's support widens y
    assert brain_bbox(img) == (slice(3, 9), slice(4, 8), slice(2, 5))
    assert brain_bbox(img, seg) == (slice(3, 9), slice(4, 11), slice(2, 5))

    write_case(tmp_path, "c1")
    vol = load_case(find_case(tmp_path / "c1"))
    idx = np.argwhere(_brain())
    lo, hi = idx.min(0), idx.max(0) + 1
    assert vol.bbox == tuple(zip(lo.tolist(), hi.tolist(), strict=True))
    assert vol.image.shape == (4, *(hi - lo).tolist())
    assert vol.source_shape == SHAPE
    brain = _brain()[tuple(slice(a, b) for a, b in vol.bbox)]
    for c in range(4):
        assert abs(vol.image[c][brain].mean()) < 1e-4
        assert abs(vol.image[c][brain].std() - 1) < 1e-4


# ------------------------------------------------------------------------------------------------- cache
def test_cache_second_load_skips_nibabel_and_source_change_invalidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_case(tmp_path / "data", "c1")
    case = find_case(tmp_path / "data" / "c1")
    calls: list[str] = []
    real_load = nib.load

    def spy(path: str, *args: object, **kwargs: object) -> object:
        calls.append(Path(path).name)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(nib, "load", spy)
    cache = VolumeCache(tmp_path / "cache")
    first = cache.load(case)
    assert len(calls) == 5
    key = cache.key(case)
    entry = tmp_path / "cache" / "c1" / key
    assert {p.name for p in entry.iterdir()} == {"image.npy", "regions.npy", "meta.json"}

    second = cache.load(case)  # no decode at all
    assert len(calls) == 5
    assert isinstance(second.image, np.memmap)
    direct = load_case(case)
    np.testing.assert_array_equal(second.image, direct.image)
    np.testing.assert_array_equal(first.regions, direct.regions)
    assert second.bbox == direct.bbox
    np.testing.assert_allclose(second.affine, direct.affine)

    calls.clear()
    path = case.images["t2"]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "edited" source file
    assert cache.key(case) != key
    cache.load(case)
    assert len(calls) == 5
    assert not entry.exists()  # the stale entry is removed
    assert cache.key(case, normalize=False) != cache.key(case)  # options are part of the key


def test_cache_dataset_matches_raw_dataset(tmp_path: Path) -> None:
    write_case(tmp_path / "data", "c1")
    write_case(tmp_path / "data", "c2", seed=1)
    cases = discover_cases(tmp_path / "data")
    raw = BraTSPatchDataset(cases, patch_size=8, samples_per_case=2, seed=3)
    cached = BraTSPatchDataset(cases, patch_size=8, samples_per_case=2, seed=3, cache_dir=tmp_path / "cache")
    for i in range(len(raw)):
        a, b = raw[i], cached[i]
        for m in MODALITIES:
            assert torch.equal(a["inputs"][m], b["inputs"][m])
        assert torch.equal(a["target"], b["target"])


# ------------------------------------------------------------------------------------------------- patches
def _volume() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 20, 22, 18)).astype(np.float32)
    regions = np.zeros((3, 20, 22, 18), bool)
    regions[:, 15:17, 2:4, 14:16] = True
    regions[0] = False  # ET empty
    return image, regions


def test_patch_shape_and_foreground_oversampling() -> None:
    image, regions = _volume()
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(50):
        img, reg = random_patch(image, regions, (8, 8, 8), rng, fg_prob=1.0, flip_prob=0.5)
        assert img.shape == (4, 8, 8, 8)
        assert img.dtype == np.float32
        assert img.flags.c_contiguous
        assert reg is not None
        assert reg.shape == (3, 8, 8, 8)
        hits += bool(reg[2].any())
    assert hits == 50  # always contains tumour
    rng = np.random.default_rng(0)
    bg_hits = sum(bool(random_patch(image, regions, (8, 8, 8), rng, fg_prob=0.0)[1][2].any()) for _ in range(50))
    assert bg_hits < 25  # the tumour is a small corner: uniform patches rarely contain it


def test_patch_is_the_flip_of_the_unflipped_patch() -> None:
    image, regions = _volume()
    a, ra = random_patch(image, regions, (8, 9, 10), np.random.default_rng(7), fg_prob=0.5, flip_prob=0.0)
    b, rb = random_patch(image, regions, (8, 9, 10), np.random.default_rng(7), fg_prob=0.5, flip_prob=1.0)
    np.testing.assert_array_equal(b, a[:, ::-1, ::-1, ::-1])
    assert ra is not None
    assert rb is not None
    np.testing.assert_array_equal(rb, ra[:, ::-1, ::-1, ::-1])
    # and the patch is a sub-block of the volume
    found = [
        (x, y, z)
        for x in range(20 - 8 + 1)
        for y in range(22 - 9 + 1)
        for z in range(18 - 10 + 1)
        if np.array_equal(image[:, x : x + 8, y : y + 9, z : z + 10], a)
    ]
    assert len(found) == 1


def test_patch_pads_small_volume() -> None:
    image, regions = _volume()  # [4, 20, 22, 18]
    img, reg = random_patch(image, regions, (24, 22, 20), np.random.default_rng(0), fg_prob=1.0, flip_prob=0.0)
    assert img.shape == (4, 24, 22, 20)
    assert reg is not None
    # axes 0 and 2 are zero-padded symmetrically: (24−20)/2 = 2 and (20−18)/2 = 1 planes on each side
    np.testing.assert_array_equal(img[:, 2:22, :, 1:19], image)
    np.testing.assert_array_equal(reg[:, 2:22, :, 1:19], regions)
    for pad in (img[:, :2], img[:, 22:], img[..., :1], img[..., 19:]):
        assert not pad.any()


def test_patch_dataset_items_deterministic_and_collate(tmp_path: Path) -> None:
    for i in range(3):
        write_case(tmp_path, f"c{i}", seed=i)
    cases = discover_cases(tmp_path)
    ds = BraTSPatchDataset(cases, patch_size=(8, 8, 6), samples_per_case=2, seed=0)
    assert len(ds) == 6
    item = ds[4]
    assert set(item) == {"inputs", "target", "index"}
    assert item["index"] == 4
    assert tuple(item["inputs"]) == MODALITIES
    assert item["inputs"]["t1"].shape == (1, 8, 8, 6)
    assert item["inputs"]["t1"].dtype == torch.float32
    assert item["target"].shape == (3, 8, 8, 6)
    assert item["target"].dtype == torch.bool
    again = BraTSPatchDataset(cases, patch_size=(8, 8, 6), samples_per_case=2, seed=0)[4]
    assert torch.equal(item["inputs"]["flair"], again["inputs"]["flair"])
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["inputs"]["flair"], item["inputs"]["flair"])
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["inputs"]["t2"].shape == (3, 1, 8, 8, 6)
    assert batch["target"].shape == (3, 3, 8, 8, 6)
    with pytest.raises(IndexError):
        ds[6]


def test_set_epoch_reaches_persistent_workers(tmp_path: Path) -> None:
    write_case(tmp_path, "c0")
    write_case(tmp_path, "c1", seed=1)
    ds = BraTSPatchDataset(discover_cases(tmp_path), patch_size=6, samples_per_case=2, seed=0)
    loader = DataLoader(ds, batch_size=4, num_workers=1, persistent_workers=True)
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        (batch,) = list(loader)
        epochs.append(batch["inputs"]["flair"])
        expected = torch.stack([ds[i]["inputs"]["flair"] for i in range(4)])  # same draws in the main process
        assert torch.equal(batch["inputs"]["flair"], expected)
    assert not torch.equal(epochs[0], epochs[1])


def test_patch_dataset_rejects_unlabelled_cases(tmp_path: Path) -> None:
    write_case(tmp_path, "c1", skip=("seg",))
    case = find_case(tmp_path / "c1", require_seg=False)
    with pytest.raises(BraTSDataError, match=r"without a label file: \['c1'\]"):
        BraTSPatchDataset([case])


def test_volume_dataset_item(tmp_path: Path) -> None:
    write_case(tmp_path, "c1")
    item = BraTSVolumeDataset(discover_cases(tmp_path), cache_dir=tmp_path / ".cache")[0]
    assert item["case_id"] == "c1"
    assert item["inputs"]["flair"].shape[0] == 1
    assert item["target"].shape == (3, *item["inputs"]["flair"].shape[1:])


# ------------------------------------------------------------------------------------------------- splits
def test_split_files_roundtrip_hash_and_errors(tmp_path: Path) -> None:
    ids = [f"BraTSSynth_{i:05d}" for i in range(24)]
    splits = random_split(ids, seed=0)
    assert [len(v) for v in splits.values()] == [18, 3, 3]
    assert sorted(i for v in splits.values() for i in v) == ids
    assert random_split(list(reversed(ids)), seed=0) == splits  # order-independent
    assert random_split(ids, seed=1) != splits
    paths = write_split(tmp_path / "splits", splits)
    assert read_split(paths["val"]) == splits["val"]
    assert split_hash(splits["train"]) == split_hash(list(reversed(splits["train"])))
    assert split_hash(splits["train"]) != split_hash(splits["train"][1:])
    # the one split_hash format of every data module (base.index_hash): sha256:<16 hex> of the sorted ids
    digest = hashlib.sha256("\n".join(sorted(splits["train"])).encode()).hexdigest()
    assert split_hash(splits["train"]) == f"sha256:{digest[:16]}"

    empty = tmp_path / "empty.txt"
    empty.write_text("\n# only a comment\n\n")
    with pytest.raises(BraTSDataError, match=r"split file .*empty\.txt lists no case ids"):
        read_split(empty)
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    with pytest.raises(BraTSDataError, match=r"dup\.txt lists case ids more than once: \['a'\]"):
        read_split(dup)
    with pytest.raises(BraTSDataError, match="'a' is in both split 'train' and split 'test'"):
        write_split(tmp_path, {"train": ["a"], "test": ["a"]})
    with pytest.raises(BraTSDataError, match="split 'val' is empty"):
        write_split(tmp_path, {"train": ["a"], "val": []})


def test_case_files_property() -> None:
    case = BraTSCase("x", {m: Path(f"x_{m}.nii") for m in MODALITIES}, None, LabelConvention.BRATS2021)
    assert [p.name for p in case.files] == [f"x_{m}.nii" for m in MODALITIES]
