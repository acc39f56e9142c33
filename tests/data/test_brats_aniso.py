"""Anisotropic 3-D patches (issue 12 item 5): ``patch_size=[D, H, W]`` from the CLI to the method's sliding window.

Training patches, padding of volumes smaller than the patch along one axis, the method's padding to the network's
multiple and sliding-window evaluation, all per axis; a fit + test of a segmentation method through the CLI.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from torch import Tensor, nn

import mmbench.methods  # noqa: F401  (registers the methods)
from mmbench.cli import main
from mmbench.data.brats import MODALITIES, BraTSDataModule, BraTSPatchDataset, random_patch
from mmbench.data.brats.datasets import as_patch_size
from mmbench.data.synthetic import SyntheticDataModule
from mmbench.masks import BernoulliMissing
from mmbench.methods.base import MissingModalityMethod
from mmbench.registry import METHODS
from mmbench.runner import cli_main
from mmbench.types import MethodOutput, Task

ROOT = Path(__file__).resolve().parents[2]
EXP = ROOT / "experiments"
BRAIN = (10, 24, 9)  # the brain box of every written case = the cropped volume
PATCH = (8, 12, 12)  # anisotropic, and larger than the brain along W only


# ------------------------------------------------------------------------------------------------ helpers
def _write_cases(root: Path, n: int = 8) -> None:
    """``n`` BraTS-2021-named cases: a box brain of ``BRAIN`` voxels (noise, distinct values) in a zero margin."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for c in range(n):
        rng = np.random.default_rng(c)
        case = root / f"case{c}"
        case.mkdir(parents=True)
        box = (slice(1, 1 + BRAIN[0]), slice(1, 1 + BRAIN[1]), slice(1, 1 + BRAIN[2]))
        for i, m in enumerate(MODALITIES):
            vol = np.zeros((BRAIN[0] + 2, BRAIN[1] + 2, BRAIN[2] + 2), np.float32)
            vol[box] = 100 * (i + 1) + rng.normal(0, 5, BRAIN)
            nib.save(nib.Nifti1Image(vol, affine), case / f"case{c}_{m}.nii.gz")
        seg = np.zeros(vol.shape, np.uint8)
        seg[4:7, 10 + c : 14 + c, 3:6] = 2
        seg[5:6, 11 + c : 13 + c, 4:5] = 4
        nib.save(nib.Nifti1Image(seg, affine), case / f"case{c}_seg.nii.gz")


def _locate(patch: np.ndarray, volume: np.ndarray) -> list[tuple[tuple[bool, ...], tuple[int, ...]]]:
    """Every (flips, start) with ``patch == flip(volume[:, start : start + patch])`` (``[C, X, Y, Z]`` arrays)."""
    size = patch.shape[1:]
    found = []
    for flips in product([False, True], repeat=3):
        unflipped = np.flip(patch, tuple(a + 1 for a in range(3) if flips[a])) if any(flips) else patch
        ranges = [range(n - p + 1) for n, p in zip(volume.shape[1:], size, strict=True)]
        for start in product(*ranges):
            box = tuple(slice(s, s + p) for s, p in zip(start, size, strict=True))
            if np.array_equal(volume[(slice(None), *box)], unflipped):
                found.append((flips, start))
    return found


class PointwiseLinear(MissingModalityMethod):
    """A dense method that is one 1×1×1 convolution of the stacked modalities: its output at a voxel depends on
    that voxel only, so sliding windows must reproduce the full-volume output. Records the window shapes."""

    supported_tasks = (Task.SEGMENTATION,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        torch.manual_seed(0)
        self.conv = nn.Conv3d(self.num_modalities, self.num_classes, kernel_size=1).double()
        self.seen: list[tuple[int, ...]] = []

    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:
        x = torch.cat([inputs[m] for m in self.modalities], dim=1)  # [B, M, D, H, W]
        self.seen.append(tuple(x.shape[2:]))
        return MethodOutput(logits=self.conv(x.double() * mask[:, :, None, None, None]))


# ----------------------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    ("value", "expected"),
    [(32, (32, 32, 32)), ([80, 160, 160], (80, 160, 160)), ((16, 32, 24), (16, 32, 24)), (np.int64(9), (9, 9, 9))],
)
def test_patch_size_normalises_to_the_three_tuple(value: Any, expected: tuple[int, int, int]) -> None:
    got = as_patch_size(value, minimum=8)
    assert got == expected
    assert all(type(p) is int for p in got)


@pytest.mark.parametrize("value", [0, -4, 7, [16, 32], [16, 32, 32, 32], [0, 32, 32], [16, 7, 16], True, 2.5, "32"])
def test_bad_patch_size_is_one_line_naming_the_field_and_value(value: Any) -> None:
    shown = str(list(value)) if isinstance(value, list) else repr(value)
    with pytest.raises(ValueError, match=r"^patch_size must be an int or three ints \[D, H, W\], each >= 8") as exc:
        BraTSDataModule(patch_size=value)
    message = str(exc.value)
    assert "\n" not in message
    assert message.endswith(f"got {shown}")


def test_datamodule_links_the_three_tuple(tmp_path: Path) -> None:
    assert BraTSDataModule(patch_size=32).input_shapes == {m: (1, 32, 32, 32) for m in MODALITIES}  # int: a cube
    dm = BraTSDataModule(patch_size=[80, 160, 160], cache_dir=str(tmp_path))  # type: ignore[arg-type]  # as YAML gives it
    assert dm.patch_size == (80, 160, 160)
    assert dm.input_shapes == {m: (1, 80, 160, 160) for m in MODALITIES}
    model = PointwiseLinear(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
    assert model.roi_size == (80, 160, 160)  # what the method's sliding window uses
    assert dm.dataset_variant == BraTSDataModule(patch_size=32).dataset_variant  # the patch lives in the config


# ---------------------------------------------------------------------------------------------- training
def test_training_batches_are_anisotropic_patches_inside_the_volume(tmp_path: Path) -> None:
    _write_cases(tmp_path / "data")
    dm = BraTSDataModule(
        root=str(tmp_path / "data"), patch_size=PATCH, batch_size=3, samples_per_case=2, fg_prob=0.5,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    dm.setup("fit")
    dataset = dm._dataset("train")
    assert isinstance(dataset, BraTSPatchDataset)
    n_cases = len(dataset.loader.cases)
    seen = 0
    for batch in dm.train_dataloader():
        B = batch["target"].shape[0]
        for m in MODALITIES:
            assert batch["inputs"][m].shape == (B, 1, *PATCH)
        assert batch["target"].shape == (B, 3, *PATCH)
        for b in range(B):
            vol = dataset.loader.load(int(batch["index"][b]) % n_cases)
            assert vol.image.shape[1:] == BRAIN  # the crop: W (9) is smaller than the patch (12)
            # the patch volume: W zero-padded symmetrically to 12 (1 plane before, 2 after), D and H untouched
            padded = np.pad(np.asarray(vol.image), [(0, 0), (0, 0), (0, 0), (1, 2)])
            patch = torch.cat([batch["inputs"][m][b] for m in MODALITIES]).numpy()
            found = _locate(patch, padded)
            assert len(found) == 1, found  # exactly one sub-block of the volume (distinct noise values)
            flips, start = found[0]
            assert start[2] == 0  # W spans the whole padded axis
            box = tuple(slice(s, s + p) for s, p in zip(start, PATCH, strict=True))
            region = np.pad(np.asarray(vol.regions), [(0, 0), (0, 0), (0, 0), (1, 2)])[(slice(None), *box)]
            axes = tuple(a + 1 for a in range(3) if flips[a])
            expected = np.flip(region, axes) if axes else region
            np.testing.assert_array_equal(batch["target"][b].numpy(), expected)  # labels follow the image
            seen += 1
    assert seen == n_cases * 2


def test_patch_larger_than_the_volume_along_one_axis_only() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 20, 11, 18)).astype(np.float32)
    regions = np.zeros((3, 20, 11, 18), bool)
    regions[:, 15:17, 2:4, 14:16] = True
    for fg_prob in (0.0, 1.0):
        for seed in range(5):
            img, reg = random_patch(image, regions, (6, 16, 5), np.random.default_rng(seed), fg_prob, flip_prob=0.0)
            assert img.shape == (2, 6, 16, 5)
            assert reg is not None
            assert reg.shape == (3, 6, 16, 5)
            # H (11 < 16) is padded symmetrically, 2 planes before and 3 after; the other axes are cropped
            assert not img[:, :, :2].any() and not img[:, :, 13:].any()
            inner = img[:, :, 2:13]
            starts = [
                (x, z)
                for x in range(20 - 6 + 1)
                for z in range(18 - 5 + 1)
                if np.array_equal(image[:, x : x + 6, :, z : z + 5], inner)
            ]
            assert len(starts) == 1
            x, z = starts[0]
            np.testing.assert_array_equal(reg[:, :, 2:13], regions[:, x : x + 6, :, z : z + 5])
            if fg_prob == 1.0:
                assert reg.any()  # centred on tumour, even though the patch is clamped inside the volume


# ---------------------------------------------------------------------------------- method: padding, windows
def test_unet_method_pads_each_axis_to_its_multiple() -> None:
    shapes = {m: (1, 12, 20, 8) for m in MODALITIES}  # none a multiple of 8 along every axis
    model = METHODS.get("zero_fill")(MODALITIES, shapes, Task.SEGMENTATION, 3, unet_widths=(4, 8, 8, 8)).eval()
    assert model.spatial_multiple == 8
    x = torch.randn(1, 1, 12, 20, 8)
    assert model.pad_spatial(x).shape == (1, 1, 16, 24, 16)  # ceil to 8 per axis, at least 2·8
    inputs = {m: torch.randn(2, 1, 12, 20, 8) for m in MODALITIES}
    mask = torch.ones(2, 4, dtype=torch.bool)
    with torch.no_grad():
        out = model(inputs, mask).logits
        assert out.shape == (2, 3, 12, 20, 8)
        big = {m: torch.randn(1, 1, 17, 33, 13) for m in MODALITIES}
        assert model.predict_logits(big, mask[:1]).shape == (1, 3, 17, 33, 13)  # sliding windows of 12×20×8


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_sliding_window_of_an_anisotropic_patch_equals_the_full_volume_for_a_pointwise_model(mode: str) -> None:
    shapes = {m: (1, 4, 8, 6) for m in MODALITIES}
    model = PointwiseLinear(MODALITIES, shapes, Task.SEGMENTATION, 3, sw_mode=mode, sw_overlap=0.5).eval()
    assert model.roi_size == (4, 8, 6)
    g = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(2, 1, 9, 19, 7, generator=g) for m in MODALITIES}
    mask = torch.tensor([[True, False, True, True], [False, True, True, False]])
    with torch.no_grad():
        stitched = model.predict_logits(inputs, mask)
        windows = list(model.seen)
        direct = model(inputs, mask).logits
    assert stitched.shape == direct.shape == (2, 3, 9, 19, 7)  # output shape = input shape
    assert set(windows) == {(4, 8, 6)}
    # per-axis stride ⌊roi·0.5⌋ plus a last window flush with the edge: D 0,2,4,5; H 0,4,8,11; W 0,1
    assert len(windows) == 4 * 4 * 2
    torch.testing.assert_close(stitched, direct, rtol=0, atol=1e-12)


def test_roi_size_is_one_edge_or_one_per_axis_and_checked() -> None:
    shapes = {m: (1, 8, 16, 12) for m in MODALITIES}
    assert PointwiseLinear(MODALITIES, shapes, Task.SEGMENTATION, 3, roi_size=12).roi_size == (12, 12, 12)
    assert PointwiseLinear(MODALITIES, shapes, Task.SEGMENTATION, 3, roi_size=(4, 8, 6)).roi_size == (4, 8, 6)
    for bad in [(8, 0, 8), (8, 8), 0]:
        with pytest.raises(ValueError, match=r"^roi_size .* does not give a positive size for each of the 3 spatial"):
            PointwiseLinear(MODALITIES, shapes, Task.SEGMENTATION, 3, roi_size=bad)


SEG_METHODS = sorted(n for n in METHODS.names() if Task.SEGMENTATION in getattr(METHODS.get(n), "supported_tasks", ()))


@pytest.mark.parametrize("name", SEG_METHODS)
def test_every_segmentation_method_trains_and_slides_an_anisotropic_patch(name: str) -> None:
    """Each registered segmentation method on an 8×16×12 patch (not a multiple of its U-Net's 8 along W): the
    unsupervised stage, a training step, the forward output shape and sliding windows over a larger volume."""
    dm = SyntheticDataModule(
        task="segmentation", input_shapes={m: [1, 8, 16, 12] for m in MODALITIES}, num_samples=(4, 2, 2), batch_size=2,
        missingness=BernoulliMissing(0.3, min_present=1),
    )  # fmt: skip
    dm.setup("fit")
    torch.manual_seed(0)
    extra = {"sw_blend": "probabilities"} if name == "shaspec" else {}  # ShaSpec's own blending path too
    model = METHODS.get(name)(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, sw_overlap=0.5, **extra)
    assert model.roi_size == (8, 16, 12)
    model.fit_unsupervised(dm)
    batch = dm.apply_missingness(next(iter(dm.train_dataloader())), "train")
    assert batch["inputs"]["t1"].shape == (2, 1, 8, 16, 12)
    loss = model.loss(model(batch["inputs"], batch["mask"]), batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    mask = torch.tensor([[True, False, True, True]])
    patch = {m: torch.randn(1, 1, 8, 16, 12) for m in MODALITIES}
    big = {m: torch.randn(1, 1, 11, 21, 13) for m in MODALITIES}
    with torch.no_grad():
        direct = model(patch, mask).logits
        assert direct.shape == (1, 3, 8, 16, 12)
        torch.testing.assert_close(model.predict_logits(patch, mask), direct)  # one window = forward
        assert model.predict_logits(big, mask).shape == (1, 3, 11, 21, 13)


# ------------------------------------------------------------------------------------------------- the CLI
def test_cli_rejects_bad_patch_sizes_in_one_line(tmp_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["fit", "--config", str(EXP / "data/brats_synth.yaml"), "--config", str(EXP / "methods/zero_fill_seg.yaml")]
    for value, needle in [
        ("[16,32]", "data.patch_size: Expected a tuple with 3 elements. Got value: [16, 32]"),
        ("[16,0,32]", "patch_size must be an int or three ints [D, H, W], each >= 8, got [16, 0, 32]"),
    ]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([*base, f"--data.init_args.patch_size={value}", "--trainer.accelerator=cpu"])
        err = capsys.readouterr().err
        assert exc.value.code == 2
        assert err.count("\n") == 1 and needle in err, err


def test_paper_yaml_states_the_official_anisotropic_patch(tmp_cwd: Path) -> None:
    cfg = yaml.safe_load((EXP / "paper/shaspec_brats_table1.yaml").read_text())
    assert cfg["data"]["init_args"]["patch_size"] == [80, 160, 160]
    cli = cli_main(
        ["--config", str(EXP / "paper/shaspec_brats_table1.yaml"), "--trainer.accelerator=cpu",
         "--model.init_args.seg_widths=[4,8,8,8,8]"],
        run=False,
    )  # fmt: skip
    assert cli.datamodule.patch_size == (80, 160, 160)
    assert cli.model.input_shapes == {m: (1, 80, 160, 160) for m in MODALITIES}
    assert cli.model.roi_size == (80, 160, 160)  # the official 80×160×160 sliding-window tile


def test_cli_fit_and_test_with_an_anisotropic_patch(tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMBENCH_CACHE", str(ROOT / ".cache/mmbench"))  # the smoke tests' semi-synthetic set
    patch = [16, 40, 32]
    cli = cli_main(
        [
            "fit", "--config", str(EXP / "data/brats_synth.yaml"), "--config", str(EXP / "methods/zero_fill_seg.yaml"),
            "--data.init_args.num_synthetic_cases=8", "--data.init_args.spacing_mm=4", "--data.init_args.root=null",
            "--data.init_args.split_dir=null", f"--data.init_args.patch_size=[{','.join(map(str, patch))}]",
            "--model.init_args.unet_widths=[4,8]", "--trainer.max_steps=2", "--trainer.limit_val_batches=0",
            "--trainer.limit_test_batches=2", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]
    )  # fmt: skip
    assert cli.trainer.state.finished
    assert cli.datamodule.input_shapes["t1ce"] == (1, *patch)
    assert cli.model.roi_size == tuple(patch)
    run = Path(str(cli.trainer.log_dir))
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["init_args"]["patch_size"] == patch
    with open(run / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["metric"] for r in rows} >= {"dice_et", "dice_tc", "dice_wt"}
    assert {r["dataset_variant"] for r in rows} == {"semi-synthetic(gen=v2,8x4mm,seed=0)"}  # as with an int patch
    assert len({r["config_hash"] for r in rows}) == 1 and rows[0]["config_hash"]  # the config holds the patch
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
