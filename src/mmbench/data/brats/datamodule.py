"""``BraTSDataModule``: BraTS case folders (or the semi-synthetic default) as a ``MultimodalDataModule``."""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import DataLoader, Dataset

from mmbench.data.base import MultimodalDataModule
from mmbench.data.brats.datasets import (
    BraTSPatchDataset,
    BraTSVolumeDataset,
    PatchSize,
    _EpochSampler,
    as_patch_size,
)
from mmbench.data.brats.files import (
    MODALITIES,
    REGIONS,
    BraTSCase,
    discover_cases,
    read_synthetic_marker,
)
from mmbench.data.brats.splits import random_split, read_split, split_hash
from mmbench.masks import EvalProtocol, MissingnessSpec
from mmbench.registry import DATASETS
from mmbench.types import Task

__all__ = ["BraTSDataModule", "default_cache_root"]


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
    are whole brain-cropped volumes (a batch holds rows of one case only: ``eval_batch_size``) that methods evaluate
    with sliding-window inference over windows of ``patch_size`` (``MissingModalityMethod.predict_logits``). Dice
    is computed per case on the cropped volume.

    ``patch_size`` is one edge (a cube) or ``(D, H, W)``, e.g. the official ShaSpec ``[80, 160, 160]``: YAML
    ``patch_size: 32`` or ``patch_size: [80, 160, 160]``, command line ``--data.init_args.patch_size=[16,32,32]``.
    It is normalised once (``as_patch_size``) to the 3-tuple that ``input_shapes`` carries to the method (its
    sliding window and padding then work per axis); the value as written stays in the run's ``config.yaml``.

    Args:
        root: BraTS case folders; ``None`` = semi-synthetic cases in the cache.
        split_dir: folder with ``train.txt``/``val.txt``/``test.txt`` case ids (default: a seeded 75/12.5/12.5 split,
            written to the cache for the semi-synthetic set).
        num_synthetic_cases: cases generated when ``root`` is ``None``.
        synthetic_seed: generator seed of the semi-synthetic cases.
        spacing_mm: grid of the semi-synthetic cases.
        patch_size: training patch edge, or ``(D, H, W)`` edges, in voxels (>= 8 along every axis) = the
            sliding-window size at evaluation.
        samples_per_case: training patches per case per epoch.
        fg_prob: probability that a patch is centred on tumour.
        cache_dir: decoded-volume cache (default: ``$MMBENCH_CACHE`` or ``.cache/mmbench``).
        missingness: see ``MultimodalDataModule``.
        eval_protocols: see ``MultimodalDataModule``.
        mask_seed: see ``MultimodalDataModule``.
        batch_size: training batch size.
        eval_batch_size: rows of one case scored in one batch at validation/test, at most this many (under
            ``AllPatterns`` a case's 15 patterns: 15). Volumes of different cases are never collated. 1 (the
            default) scores each row alone. On CPU a batch of >= 2 also selects PyTorch's oneDNN convolution
            instead of its batch-1 im2col path: per row 1.9× (ShaSpec) and 2.8× (``zero_fill``) faster for the
            CPU-scale U-Nets (``pytest tests/benchmarks/test_bench_eval_batch.py -m slow -s``); logits agree to
            float32 rounding.
        num_workers: DataLoader workers.
    """

    name = "brats"
    group_eval_rows = True

    def __init__(
        self,
        root: str | None = None,
        split_dir: str | None = None,
        num_synthetic_cases: int = 24,
        synthetic_seed: int = 0,
        spacing_mm: float = 2.0,
        patch_size: PatchSize = 64,
        samples_per_case: int = 2,
        fg_prob: float = 0.5,
        cache_dir: str | None = None,
        missingness: MissingnessSpec | None = None,
        eval_protocols: list[EvalProtocol] | None = None,
        mask_seed: int = 0,
        batch_size: int = 2,
        eval_batch_size: int = 1,
        num_workers: int = 0,
    ) -> None:
        super().__init__(missingness, eval_protocols, mask_seed, batch_size, eval_batch_size, num_workers)
        patch = as_patch_size(patch_size, "patch_size", minimum=8)
        self.root = root
        self.split_dir = split_dir
        self.num_synthetic_cases = num_synthetic_cases
        self.synthetic_seed = synthetic_seed
        self.spacing_mm = spacing_mm
        self.patch_size: tuple[int, int, int] = patch
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
        return {m: (1, *self.patch_size) for m in MODALITIES}

    @property
    def task(self) -> Task:  # noqa: D102
        return Task.SEGMENTATION

    @property
    def num_classes(self) -> int:  # noqa: D102
        return len(REGIONS)

    @property
    def dataset_variant(self) -> str:  # noqa: D102
        marker = read_synthetic_marker(self._data_root())  # a generated set is never "real", wherever it lies
        if marker is not None:
            return marker.dataset_variant
        if self.root is None:
            return f"semi-synthetic({self.num_synthetic_cases}x{self.spacing_mm:g}mm,seed={self.synthetic_seed})"
        return "real"

    def _data_root(self) -> Path:
        if self.root is not None:
            return Path(self.root)
        from mmbench.data.synthetic_brats import GENERATOR_VERSION, generate_cases

        n, seed, mm = self.num_synthetic_cases, self.synthetic_seed, self.spacing_mm
        root = self.cache_root / f"brats_synth_n{n}_s{seed}_{mm:g}mm_g{GENERATOR_VERSION}"
        marker = root / ".complete"
        if not marker.is_file():
            generate_cases(root, self.num_synthetic_cases, self.synthetic_seed, self.spacing_mm)
            marker.write_text("ok\n")
        return root

    def splits(self) -> dict[str, list[str]]:
        """Case ids per split (from ``split_dir`` or a seeded split of the cases found)."""
        if self._splits is None:
            root = self._data_root()
            read_synthetic_marker(root)  # a tampered or malformed marker stops here, before any training
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
