"""``SyntheticDataModule``: small, learnable, fully synthetic data for every task (tests and smoke runs).

Each sample has a latent class ``y``; modality ``m`` is ``class_pattern_m[y] + noise`` in its own shape, so every
modality carries signal and methods can learn in a few steps. Segmentation targets are three nested boxes
(WT ⊇ TC ⊇ ET) whose position depends on the sample; every modality shows a contrast-specific subset of them.
Not a benchmark: it exists so that contracts can be tested on every task without real data.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from mmbench.data.base import MultimodalDataModule, TensorSplit
from mmbench.masks import EvalProtocol, MissingnessSpec
from mmbench.registry import DATASETS
from mmbench.types import Task

__all__ = ["SyntheticDataModule"]

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


@DATASETS.register("synthetic")
class SyntheticDataModule(MultimodalDataModule):
    """Synthetic multimodal data.

    Args:
        task: task kind.
        input_shapes: per-modality sample shape; for segmentation every shape must be ``(1, D, H, W)``.
        num_classes: classes (multiclass), labels (multilabel), outputs (regression); 3 for segmentation.
        num_samples: ``(train, val, test)`` sizes.
        noise: noise std.
        data_seed: generator seed.
        missingness: see ``MultimodalDataModule``.
        eval_protocols: see ``MultimodalDataModule``.
        mask_seed: see ``MultimodalDataModule``.
        batch_size: see ``MultimodalDataModule``.
        eval_batch_size: see ``MultimodalDataModule``.
        num_workers: see ``MultimodalDataModule``.
    """

    name = "synthetic"

    def __init__(
        self,
        task: Literal["multiclass", "multilabel", "regression", "segmentation"] | Task = "multiclass",
        input_shapes: dict[str, list[int]] | None = None,
        num_classes: int = 3,
        num_samples: tuple[int, int, int] = (96, 32, 32),
        noise: float = 0.5,
        data_seed: int = 0,
        missingness: MissingnessSpec | None = None,
        eval_protocols: list[EvalProtocol] | None = None,
        mask_seed: int = 0,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(missingness, eval_protocols, mask_seed, batch_size, eval_batch_size, num_workers)
        self._task = Task(task)
        if input_shapes is None:
            input_shapes = (
                {"a": [1, 16, 16, 16], "b": [1, 16, 16, 16]}
                if self._task is Task.SEGMENTATION
                else {"a": [12], "b": [6, 5], "c": [1, 12, 12]}
            )
        self._shapes = {k: tuple(int(s) for s in v) for k, v in input_shapes.items()}
        if self._task is Task.SEGMENTATION:
            bad = {k: v for k, v in self._shapes.items() if len(v) != 4 or v[0] != 1}
            if bad:
                raise ValueError(f"segmentation input shapes must be (1, D, H, W); got {bad}")
            num_classes = 3
        self._num_classes = int(num_classes)
        self.num_samples = tuple(num_samples)
        self.noise = noise
        self.data_seed = data_seed
        self.validate()

    @property
    def modalities(self) -> tuple[str, ...]:  # noqa: D102
        return tuple(self._shapes)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:  # noqa: D102
        return dict(self._shapes)

    @property
    def task(self) -> Task:  # noqa: D102
        return self._task

    @property
    def num_classes(self) -> int:  # noqa: D102
        return self._num_classes

    @property
    def dataset_variant(self) -> str:  # noqa: D102
        return f"synthetic-{self._task.value}"

    def build_split(self, split: str) -> Dataset:  # noqa: D102
        n = self.num_samples[_SPLIT_OFFSET[split]]
        g = torch.Generator().manual_seed(self.data_seed)
        protos = {m: torch.randn(self._num_classes, *s, generator=g) for m, s in self._shapes.items()}
        g.manual_seed(self.data_seed * 1000 + 1 + _SPLIT_OFFSET[split])
        if self._task is Task.SEGMENTATION:
            return self._segmentation(n, g)
        y = torch.randint(self._num_classes, (n,), generator=g)
        inputs = {m: protos[m][y] + self.noise * torch.randn(n, *s, generator=g) for m, s in self._shapes.items()}
        target: Any = y
        if self._task is Task.MULTILABEL:
            target = torch.nn.functional.one_hot(y, self._num_classes).bool()
            target |= torch.rand(n, self._num_classes, generator=g) < 0.2
            target = target.float()
        elif self._task is Task.REGRESSION:
            target = (y.float() - (self._num_classes - 1) / 2).unsqueeze(1).repeat(1, self._num_classes)
        return TensorSplit(inputs, target)

    def _segmentation(self, n: int, g: torch.Generator) -> Dataset:
        shape = next(iter(self._shapes.values()))[1:]  # (D, H, W)
        D, H, W = shape
        target = torch.zeros(n, 3, D, H, W, dtype=torch.bool)  # channels ET, TC, WT
        inputs = {m: self.noise * torch.randn(n, 1, D, H, W, generator=g) for m in self._shapes}
        for i in range(n):
            c = [int(torch.randint(s // 4, 3 * s // 4, (1,), generator=g)) for s in shape]
            for ch, r in ((2, 4), (1, 3), (0, 1)):  # WT ⊇ TC ⊇ ET
                d, h, w = (slice(max(ci - r, 0), ci + r) for ci in c)
                target[i, ch, d, h, w] = True
            for j, m in enumerate(self._shapes):
                ch = j % 3  # modality j shows region j mod 3 brightly, the whole tumour faintly
                inputs[m][i, 0] += 2.0 * target[i, ch].float() + 0.5 * target[i, 2].float()
        return TensorSplit(inputs, target)
