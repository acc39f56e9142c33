"""``MultimodalDataModule``: the base of every data module, and the datasets that carry masks.

A data module declares ``modalities`` (canonical order), ``input_shapes``, ``task`` and ``num_classes`` at
construction time (LightningCLI links them into the method) and builds one ``Dataset`` per split whose items are
``{"inputs": {name: Tensor}, "target": Tensor, "index": int}`` with every modality present.

Masks are attached here, never by methods:

* train/val batches get ``mask = missingness.masks(modalities, mask_seed, split, index, epoch)`` in
  ``on_before_batch_transfer`` (main process, so independent of worker count; on the host, so no device sync),
  then masked-out inputs are zero-filled on the device in ``on_after_batch_transfer``;
* test batches come from one ``EvalDataset`` per evaluation protocol, whose rows are (sample, mask) pairs of
  that protocol's ``MaskTable``; its hash goes into every result row.

Under DDP, val/test loaders shard without padding (``UnrepeatedDistributedSampler``) so each row counts once.

Data modules whose samples differ in shape (BraTS volumes) set ``group_eval_rows``: their val/test batches hold
rows of *one* sample only (:class:`SampleGroupedBatchSampler`), e.g. one case under up to ``eval_batch_size`` of
its 15 patterns, so that evaluation can batch without collating volumes of different sizes.

Worker count never changes results. The training order is a pure function of (run seed ``PL_GLOBAL_SEED``, split,
epoch) (:class:`EpochRandomSampler`; Lightning calls its ``set_epoch``), not of how many iterators were made: a
persistent multi-worker loader prefetches from a fresh sampler iterator where a 0-worker loader does not, which
shifted every later epoch's order. Worker seeds come from the loader's own ``torch.Generator``, so no loader draws
from the global RNG that model initialisation and dropout use (a loader without a generator draws from it once
per iterator: once per epoch with 0 workers, once per run with persistent workers); each worker seeds ``random``
and ``numpy`` from its torch seed (``seed_worker``). Random augmentations are per-sample seeded (e.g.
``BraTSPatchDataset``), so they do not depend on which worker draws them.
"""

from __future__ import annotations

import hashlib
import os
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from mmbench.errors import MMBenchError
from mmbench.masks import (
    AllPatterns,
    BernoulliMissing,
    EvalProtocol,
    FixedPattern,
    MaskTable,
    MissingnessSpec,
    WarmupThen,
    zero_fill,
)
from mmbench.types import Task

__all__ = [
    "EpochRandomSampler",
    "EvalDataset",
    "MultimodalDataModule",
    "SampleGroupedBatchSampler",
    "TensorSplit",
    "index_hash",
    "loader_generator",
    "seed_worker",
]

SPLITS = ("train", "val", "test")


def index_hash(*parts: Sequence[Any]) -> str:
    """Stable ``sha256:<16 hex>`` of sequences of ids/indices (used for ``split_hash``)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(("|".join(str(p) for p in part) + "#").encode())
    return "sha256:" + h.hexdigest()[:16]


def loader_generator(split: str, purpose: str, epoch: int = 0) -> torch.Generator:
    """A ``torch.Generator`` for ``purpose`` (``"sampler"`` or ``"workers"``) of ``split``'s loader in ``epoch``.

    Seeded from the run seed (``PL_GLOBAL_SEED``, set by ``seed_everything``; 0 when unset), the split, the purpose
    and the epoch, so shuffling is reproducible, differs across seeds, and never draws from the global RNG.
    """
    seed = os.environ.get("PL_GLOBAL_SEED", "0") or "0"
    digest = hashlib.sha256(f"{seed}|{split}|{purpose}|{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class EpochRandomSampler(RandomSampler):
    """A shuffling sampler whose order is a pure function of (run seed, split, epoch).

    Lightning calls ``set_epoch`` at the start of every training epoch. A ``RandomSampler`` subclass, so Lightning
    still sees a shuffled loader (and shuffles its ``DistributedSampler`` under DDP).

    Args:
        data_source: the dataset.
        split: split name (part of the seed).
    """

    def __init__(self, data_source: Dataset, split: str) -> None:
        super().__init__(data_source)  # type: ignore[arg-type]
        self.split = split
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``."""
        self.epoch = int(epoch)

    def __iter__(self) -> Any:
        n = len(self.data_source)
        order = torch.randperm(n, generator=loader_generator(self.split, "sampler", self.epoch))
        yield from order.tolist()


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed ``random`` and ``numpy`` from the worker's torch seed (base seed + worker id)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class TensorSplit(Dataset):
    """An in-memory split: ``inputs[name]`` is ``[N, ...]``, ``target`` is ``[N, ...]``.

    Args:
        inputs: per-modality tensors with a common first dimension N.
        target: targets, first dimension N.
    """

    def __init__(self, inputs: dict[str, Tensor], target: Tensor) -> None:
        sizes = {k: v.shape[0] for k, v in inputs.items()}
        if len(set(sizes.values()) | {target.shape[0]}) != 1:
            raise ValueError(f"inputs and target disagree on the number of samples: {sizes}, target {target.shape[0]}")
        self.inputs = inputs
        self.target = target

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"inputs": {k: v[i] for k, v in self.inputs.items()}, "target": self.target[i], "index": i}


class EvalDataset(Dataset):
    """Rows of a ``MaskTable`` over a split: row ``r`` = sample ``table.sample_index[r]`` with ``table.mask[r]``.

    Args:
        base: the split's dataset.
        table: the protocol's mask table.
    """

    def __init__(self, base: Dataset, table: MaskTable) -> None:
        self.base = base
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, r: int) -> dict[str, Any]:
        item = dict(self.base[int(self.table.sample_index[r])])
        item["mask"] = self.table.mask[r]
        return item


class SampleGroupedBatchSampler(Sampler[list[int]]):
    """Evaluation batches whose rows share one sample.

    Row ids are grouped by ``sample_index`` and each group is cut into chunks of at most ``batch_size`` rows.
    Groups come in the order of their sample's first row, rows keep their table order inside a group; every row is
    in exactly one batch. Under ``AllPatterns`` (pattern-major rows ``r = p·N + n``) the batches of case ``n`` are
    its 15 patterns, ``[n, N + n, …, 14·N + n]`` at ``batch_size >= 15``.

    Args:
        sample_index: ``long[R]``, the sample of each row (``MaskTable.sample_index``, or ``arange(N)``).
        batch_size: rows per batch, >= 1.

    Example:
        >>> list(SampleGroupedBatchSampler(torch.tensor([0, 1, 0, 1, 0, 1]), batch_size=2))
        [[0, 2], [4], [1, 3], [5]]
    """

    def __init__(self, sample_index: Tensor, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        groups: dict[int, list[int]] = {}
        for row, sample in enumerate(sample_index.tolist()):
            groups.setdefault(int(sample), []).append(row)
        self.batches = [rows[i : i + batch_size] for rows in groups.values() for i in range(0, len(rows), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(b) for b in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


class MultimodalDataModule(pl.LightningDataModule, ABC):
    """Base data module: per-sample masks from a ``MissingnessSpec``, evaluation under ``EvalProtocol``s.

    Subclasses set the class attributes ``name`` (registry name) and implement ``modalities``,
    ``input_shapes``, ``task``, ``num_classes``, ``dataset_variant`` and ``build_split``.

    Args:
        missingness: training/validation masks; ``None`` = every modality observed (full-modality training).
        eval_protocols: test protocols; ``None`` = ``[AllPatterns()]``.
        mask_seed: seed of every mask (train, val and test tables); fixed across methods.
        batch_size: training batch size.
        eval_batch_size: val/test batch size (default: ``batch_size``); with ``group_eval_rows``, at most this many
            rows *of one sample* per batch.
        num_workers: DataLoader workers.
    """

    name: str = ""
    group_eval_rows: bool = False
    """Val/test batches hold rows of one sample only (samples of different shapes cannot be collated)."""

    def __init__(
        self,
        missingness: MissingnessSpec | None = None,
        eval_protocols: list[EvalProtocol] | None = None,
        mask_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.missingness = missingness if missingness is not None else BernoulliMissing(0.0)
        self.eval_protocols = list(eval_protocols) if eval_protocols is not None else [AllPatterns()]
        if not self.eval_protocols:
            raise ValueError("eval_protocols is empty: give at least one protocol (e.g. AllPatterns)")
        names = [p.name for p in self.eval_protocols]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_protocols has duplicate names: {names}")
        self.mask_seed = int(mask_seed)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.datasets: dict[str, Dataset] = {}
        self._tables: dict[str, MaskTable] = {}

    # ----------------------------------------------------------------------------------------- declared facts
    @property
    @abstractmethod
    def modalities(self) -> tuple[str, ...]:
        """Canonical modality order; column ``i`` of every mask is ``modalities[i]``."""

    @property
    @abstractmethod
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of each modality's input (no batch dimension)."""

    @property
    @abstractmethod
    def task(self) -> Task:
        """What is predicted."""

    @property
    @abstractmethod
    def num_classes(self) -> int:
        """Number of classes / labels / regression targets / segmentation channels."""

    @property
    @abstractmethod
    def dataset_variant(self) -> str:
        """Variant recorded in result rows (e.g. ``"lite"``, ``"semi-synthetic"``)."""

    @abstractmethod
    def build_split(self, split: str) -> Dataset:
        """The dataset of ``split`` (``"train"``, ``"val"`` or ``"test"``) with every modality present."""

    @property
    def split_hash(self) -> str:
        """Hash of the split definition (override when splits come from files)."""
        return index_hash([self.name, self.dataset_variant])

    @property
    def training_regime(self) -> str:
        """``full`` (all observed), ``dedicated`` (one fixed pattern, after any warm-up) or ``non-dedicated``."""
        probs = self.missingness.pattern_probs(self.modalities)
        full_id = 2 ** len(self.modalities) - 1
        if probs[full_id] == 1.0 and not isinstance(self.missingness, WarmupThen):
            return "full"
        after_warmup = self.missingness.then if isinstance(self.missingness, WarmupThen) else self.missingness
        if isinstance(after_warmup, FixedPattern):  # a full-modality warm-up before a fixed pattern is dedicated too
            return "dedicated"
        return "non-dedicated"

    def validate(self) -> None:
        """Check the specs against the modalities (called by subclasses at the end of ``__init__``)."""
        self.missingness.validate(self.modalities)
        for name in self.input_shapes:
            if name not in self.modalities:
                raise ValueError(f"input_shapes names {name!r}, which is not one of {self.modalities}")

    # ------------------------------------------------------------------------------------------------ masks
    def masks_for(self, split: str, index: Tensor, epoch: int = 0) -> Tensor:
        """Training-spec masks ``bool[N, M]`` of samples ``index`` of ``split`` (pure in its arguments).

        A spec that ``needs_labels`` gets the labels of the whole split (``split_labels``).
        """
        labels = self.split_labels(split) if self.missingness.needs_labels else None
        return self.missingness.masks(self.modalities, self.mask_seed, split, index, epoch, labels=labels)

    def split_labels(self, split: str) -> np.ndarray:
        """``int[N]`` class label of every sample of ``split`` (entry ``i`` = sample ``i``), for label-aware specs.

        The default reads ``TensorSplit.target``; override it for datasets that hold their targets elsewhere.

        Raises:
            ValueError: the split's dataset does not expose its labels.
        """
        dataset = self._dataset(split)
        if not isinstance(dataset, TensorSplit):
            raise ValueError(
                f"{type(self.missingness).__name__} needs class labels, but the {split!r} split of "
                f"{type(self).__name__} is a {type(dataset).__name__}, not a TensorSplit (override split_labels)"
            )
        return dataset.target.numpy()

    def mask_table(self, protocol: EvalProtocol, split: str = "test") -> MaskTable:
        """The evaluation mask table of ``protocol`` on ``split`` (cached)."""
        key = f"{split}:{protocol.name}"
        if key not in self._tables:
            n = len(self._dataset(split))  # type: ignore[arg-type]
            self._tables[key] = protocol.table(self.modalities, n, self.mask_seed, split)
        return self._tables[key]

    def apply_missingness(self, batch: dict[str, Any], split: str, epoch: int = 0) -> dict[str, Any]:
        """Attach ``mask`` (unless present) and zero-fill masked-out inputs. Used for every batch a method sees."""
        if "mask" not in batch:
            batch["mask"] = self.masks_for(split, batch["index"], epoch).to(batch["index"].device)
        batch["inputs"] = zero_fill(batch["inputs"], batch["mask"], self.modalities)
        return batch

    def _mask_split_epoch(self) -> tuple[str, int]:
        """The mask split (``"train"`` while training, else ``"val"``) and the epoch of the running loop."""
        trainer = self.trainer
        training = trainer is not None and trainer.training
        return ("train" if training else "val"), (trainer.current_epoch if trainer is not None else 0)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Attach the mask while ``index`` is still on the host (the mask RNG runs on the host).

        Drawing it after the transfer would read the device ``index`` back to the host: a sync every step.
        """
        if "mask" not in batch:
            split, epoch = self._mask_split_epoch()
            batch["mask"] = self.masks_for(split, batch["index"], epoch)
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Zero-fill masked-out inputs on the device (and attach the mask if no earlier hook did)."""
        return self.apply_missingness(batch, *self._mask_split_epoch())

    # --------------------------------------------------------------------------------------------- datasets
    def _dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
            self.datasets[split] = self.build_split(split)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:  # noqa: D102
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage or "", SPLITS):
            self._dataset(split)

    @property
    def pin_memory(self) -> bool:
        """Pin loader batches when the attached Trainer runs on CUDA (asynchronous host-to-device copies)."""
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader(
        self, dataset: Dataset, shuffle: bool, batch_size: int, split: str, sample_index: Tensor | None = None
    ) -> DataLoader:
        """``sample_index`` (evaluation loaders of ``group_eval_rows`` modules): the sample of each row."""
        trainer = self.trainer
        devices = trainer.world_size if trainer is not None else 1
        batching: dict[str, Any] = {"batch_size": batch_size, "sampler": None}
        if self.group_eval_rows and not shuffle and batch_size > 1:
            if devices > 1:
                raise MMBenchError(
                    f"{type(self).__name__}: eval_batch_size={batch_size} groups the {split} rows of each case into "
                    "batches, which is not supported with more than one device; use eval_batch_size 1 there"
                )
            rows = sample_index if sample_index is not None else torch.arange(len(dataset))  # type: ignore[arg-type]
            batching = {"batch_sampler": SampleGroupedBatchSampler(rows, batch_size)}
        elif not shuffle and devices > 1:
            # shard without padding so that every evaluation row counts exactly once
            assert trainer is not None
            batching["sampler"] = UnrepeatedDistributedSampler(
                dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
            )
        elif shuffle:
            # own generator: the order depends on the seed only, not on the global RNG or the worker count
            batching["sampler"] = EpochRandomSampler(dataset, split)
        return DataLoader(
            dataset,
            **batching,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            generator=loader_generator(split, "workers"),
            worker_init_fn=seed_worker if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader(self._dataset("train"), True, self.batch_size, "train")

    def val_dataloader(self) -> DataLoader:  # noqa: D102
        return self._loader(self._dataset("val"), False, self.eval_batch_size, "val")

    def test_dataloader(self) -> list[DataLoader]:  # noqa: D102
        base = self._dataset("test")
        loaders = []
        for protocol in self.eval_protocols:
            table = self.mask_table(protocol)
            loaders.append(
                self._loader(EvalDataset(base, table), False, self.eval_batch_size, "test", table.sample_index)
            )
        return loaders

    def predict_dataloader(self) -> DataLoader:  # noqa: D102
        return self.test_dataloader()[0]

    def describe(self) -> dict[str, object]:
        """Provenance columns contributed by the data module."""
        return {
            "dataset": self.name,
            "dataset_variant": self.dataset_variant,
            "split_hash": self.split_hash,
            "task": str(self.task),
            "training_regime": self.training_regime,
            "mask_seed": self.mask_seed,
            **self.missingness.describe(),
        }
