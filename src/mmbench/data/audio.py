"""Raw audio → fixed-size MFCC / log-mel inputs: ``read_wav``, ``AudioFeatures`` and the ``AudioFolder`` dataset.

WAV files are read with ``soundfile`` (libsndfile), never ``torchaudio.load`` (which needs torchcodec/FFmpeg), mixed
down to mono, resampled with ``torchaudio.functional.resample`` and cropped or zero-padded **in the waveform
domain** to exactly the number of samples that gives ``frames`` STFT frames, so padded frames are true silence.
Features come from ``torchaudio.transforms.MFCC`` or ``MelSpectrogram`` + ``AmplitudeToDB``.

``AudioFolder`` is a folder of clips with labels from the file name (a regex; the default reads the Free Spoken
Digit Dataset's ``{digit}_{speaker}_{index}.wav``) or from a CSV ``file,label``. It is the audio half of
``AVMNISTDataModule(variant="wav")`` and usable alone as a single-modality ``Dataset``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import Tensor
from torch.utils.data import Dataset

from mmbench.errors import DataIntegrityError

__all__ = [
    "ASTERISK_DIGITS",
    "FSDD_LABEL_PATTERN",
    "AudioFeatures",
    "AudioFolder",
    "make_spoken_digits_fixture",
    "read_wav",
]

FSDD_LABEL_PATTERN = r"^(?P<label>\d+)_"
"""Label = the leading integer of the file name (FSDD ``7_jackson_32.wav``, AudioMNIST ``7_01_32.wav``)."""

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
ASTERISK_DIGITS = Path("/usr/share/asterisk/sounds/en_US_f_Allison/digits")
"""Real recorded digits 0-9 (one speaker, 8 kHz) from Debian ``asterisk-core-sounds-en-wav``."""


def read_wav(path: str | Path) -> tuple[Tensor, int]:
    """Read an audio file with soundfile and mix it down to mono.

    Args:
        path: a WAV (or FLAC/OGG) file.

    Returns:
        ``(waveform float32[L], sample_rate)``.

    Raises:
        DataIntegrityError: the file is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DataIntegrityError(f"audio file {path} does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [L, channels]
    except (RuntimeError, sf.SoundFileError) as e:
        raise DataIntegrityError(f"cannot read audio file {path}: {e}") from None
    if data.shape[0] == 0:
        raise DataIntegrityError(f"audio file {path} has no samples")
    return torch.from_numpy(np.ascontiguousarray(data.mean(axis=1))), int(rate)


class AudioFeatures:
    """Waveform → ``float32[frames, n_features]`` (time-major, as ``SequenceEncoder`` expects).

    ``frames = 1 + L // hop_length`` for a centred STFT, so the waveform is cropped (from the start) or zero-padded
    (at the end) to ``L = (frames − 1)·hop_length`` samples at ``sample_rate`` before the transform.

    The defaults suit 8 kHz spoken digits (FSDD, Asterisk prompts): 64 ms windows, 32 ms hop, 32 frames ≈ 1 s.
    SMIL (Ma et al. 2021) used 20 librosa MFCCs at 8 kHz padded to 20 frames; torchaudio's MFCC differs from
    librosa's in mel scale and DCT details, so features are alike, not identical.

    Args:
        kind: ``"mfcc"`` (``torchaudio.transforms.MFCC``, dB-scaled mel spectrum, DCT-II ortho) or ``"logmel"``
            (``MelSpectrogram`` + ``AmplitudeToDB``).
        sample_rate: rate every clip is resampled to (Hz).
        n_features: MFCC coefficients (``"mfcc"``) or mel bands (``"logmel"``).
        frames: number of STFT frames kept.
        n_fft: FFT size (window length).
        hop_length: hop between frames in samples.
        n_mels: mel bands behind the MFCCs (``"mfcc"`` only; must be ≥ ``n_features``).
        top_db: dynamic range kept below each clip's peak (dB); ``None`` keeps everything.
    """

    def __init__(
        self,
        kind: Literal["mfcc", "logmel"] = "mfcc",
        sample_rate: int = 8000,
        n_features: int = 20,
        frames: int = 32,
        n_fft: int = 512,
        hop_length: int = 256,
        n_mels: int = 40,
        top_db: float | None = 80.0,
    ) -> None:
        if kind not in ("mfcc", "logmel"):
            raise ValueError(f"kind must be 'mfcc' or 'logmel', got {kind!r}")
        for name, value in (
            ("sample_rate", sample_rate),
            ("n_features", n_features),
            ("frames", frames),
            ("n_fft", n_fft),
            ("hop_length", hop_length),
            ("n_mels", n_mels),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if kind == "mfcc" and n_features > n_mels:
            raise ValueError(f"n_features={n_features} MFCCs need n_mels >= {n_features}, got n_mels={n_mels}")
        self.kind = kind
        self.sample_rate = int(sample_rate)
        self.n_features = int(n_features)
        self.frames = int(frames)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.top_db = top_db
        mel = {"n_fft": self.n_fft, "hop_length": self.hop_length, "center": True}
        self._transform: torch.nn.Module
        if kind == "mfcc":
            mfcc = torchaudio.transforms.MFCC(
                sample_rate=self.sample_rate,
                n_mfcc=self.n_features,
                melkwargs={**mel, "n_mels": self.n_mels},
                log_mels=False,
            )
            mfcc.amplitude_to_DB = torchaudio.transforms.AmplitudeToDB("power", top_db=top_db)
            self._transform = mfcc
        else:
            self._transform = torch.nn.Sequential(
                torchaudio.transforms.MelSpectrogram(sample_rate=self.sample_rate, n_mels=self.n_features, **mel),
                torchaudio.transforms.AmplitudeToDB("power", top_db=top_db),
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(frames, n_features)``."""
        return (self.frames, self.n_features)

    @property
    def num_samples(self) -> int:
        """Waveform length (at ``sample_rate``) that yields exactly ``frames`` frames."""
        return (self.frames - 1) * self.hop_length

    def describe(self) -> str:
        """Short provenance string, e.g. ``mfcc20x32@8000Hz``."""
        return f"{self.kind}{self.n_features}x{self.frames}@{self.sample_rate}Hz"

    def fit_length(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """Resample ``waveform`` ``[L]`` to ``self.sample_rate``, then crop/zero-pad to ``num_samples``."""
        if sample_rate != self.sample_rate:
            waveform = torchaudio.functional.resample(waveform, sample_rate, self.sample_rate)
        n = self.num_samples
        if waveform.shape[-1] >= n:
            return waveform[..., :n]
        return torch.nn.functional.pad(waveform, (0, n - waveform.shape[-1]))

    def __call__(self, waveform: Tensor, sample_rate: int) -> Tensor:
        """Features of one mono clip.

        Args:
            waveform: ``float32[L]``.
            sample_rate: its rate in Hz.

        Returns:
            ``float32[frames, n_features]``.
        """
        return self.transform(self.fit_length(waveform.float(), sample_rate).unsqueeze(0))[0]

    def transform(self, fitted: Tensor) -> Tensor:
        """Features of clips already at ``sample_rate`` and ``num_samples`` long.

        Args:
            fitted: ``float32[B, num_samples]`` (see ``fit_length``).

        Returns:
            ``float32[B, frames, n_features]``.
        """
        with torch.no_grad():
            # [B, 1, L] -> [B, 1, n_features, frames]: AmplitudeToDB applies top_db per item of dim 0 only when the
            # spectrogram is 4-D (a 3-D one is read as channels of ONE item, which would couple clips in a batch)
            feats = self._transform(fitted.unsqueeze(1))[:, 0]  # [B, n_features, frames]
        return feats.transpose(1, 2).contiguous()

    def from_file(self, path: str | Path) -> Tensor:
        """Features of the audio file ``path`` (``float32[frames, n_features]``)."""
        waveform, rate = read_wav(path)
        return self(waveform, rate)


def _class_ids(raw: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Labels → class ids: integers are kept as ids (``"7"`` → 7); other strings are numbered in sorted order."""
    if all(re.fullmatch(r"\d+", s) for s in raw):
        ids = np.array([int(s) for s in raw], dtype=np.int64)
        return ids, [str(i) for i in range(int(ids.max()) + 1 if len(ids) else 0)]
    classes = sorted(set(raw))
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[s] for s in raw], dtype=np.int64), classes


class AudioFolder(Dataset):
    """A folder of labelled clips turned into fixed-size features (computed once, kept in memory).

    Items are ``(float32[frames, n_features], label)``. Files are sorted by relative path, so the order (and any
    split drawn from it) does not depend on the file system.

    Args:
        root: folder searched recursively for ``.wav``/``.flac``/``.ogg`` files.
        features: the feature extractor (default ``AudioFeatures()``: 20 MFCCs × 32 frames at 8 kHz).
        label_pattern: regex searched in each **file name**; the label is the group ``label`` or else group 1.
            Default: the leading integer (FSDD / AudioMNIST naming).
        labels_csv: a CSV with a header and columns ``file`` (relative to ``root`` or absolute) and ``label``;
            when given, only the listed files are used and ``label_pattern`` is ignored.

    Raises:
        DataIntegrityError: no audio files, a file name the pattern cannot label, a CSV without the ``file`` or
            ``label`` column, or a listed file that does not exist or cannot be read.
    """

    def __init__(
        self,
        root: str | Path,
        features: AudioFeatures | None = None,
        label_pattern: str = FSDD_LABEL_PATTERN,
        labels_csv: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.features = features if features is not None else AudioFeatures()
        if not self.root.is_dir():
            raise DataIntegrityError(f"audio folder {self.root} does not exist or is not a directory")
        if labels_csv is not None:
            self.files, raw = self._from_csv(Path(labels_csv))
        else:
            self.files, raw = self._from_names(label_pattern)
        self.labels, self.classes = _class_ids(raw)
        self._feats: Tensor | None = None

    def _from_names(self, label_pattern: str) -> tuple[list[Path], list[str]]:
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise DataIntegrityError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {self.root}")
        regex = re.compile(label_pattern)
        raw, bad = [], []
        for f in files:
            m = regex.search(f.name)
            if m is None:
                bad.append(f.name)
                continue
            raw.append(m.group("label") if "label" in regex.groupindex else m.group(1))
        if bad:
            raise DataIntegrityError(
                f"{len(bad)} file(s) under {self.root} do not match label_pattern {label_pattern!r} "
                f"(e.g. {bad[:3]}); rename them, change label_pattern or pass labels_csv"
            )
        return files, raw

    def _from_csv(self, path: Path) -> tuple[list[Path], list[str]]:
        if not path.is_file():
            raise DataIntegrityError(f"labels_csv {path} does not exist")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"file", "label"} - set(reader.fieldnames or [])
            if missing:
                raise DataIntegrityError(
                    f"{path}: missing column(s) {sorted(missing)}; expected a header with 'file' and 'label', "
                    f"got {reader.fieldnames}"
                )
            rows = list(reader)
        if not rows:
            raise DataIntegrityError(f"{path} lists no files")
        files, raw = [], []
        for line, row in enumerate(rows, start=2):
            file = Path(row["file"])
            file = file if file.is_absolute() else self.root / file
            if not file.is_file():
                raise DataIntegrityError(f"{path}, line {line}: file {file} does not exist")
            files.append(file)
            raw.append(str(row["label"]).strip())
        return files, raw

    @property
    def num_classes(self) -> int:
        """Number of classes (for integer labels: largest label + 1)."""
        return len(self.classes)

    def features_tensor(self) -> Tensor:
        """Features of every clip, ``float32[N, frames, n_features]`` (computed on first call)."""
        if self._feats is None:
            fitted = torch.stack([self.features.fit_length(*read_wav(f)) for f in self.files])  # [N, L]
            self._feats = torch.cat([self.features.transform(chunk) for chunk in fitted.split(512)])
        return self._feats

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.features_tensor()[i], int(self.labels[i])


def make_spoken_digits_fixture(root: str | Path, per_class: int = 10, seed: int = 0) -> Path:
    """Write a small **format fixture**: ``per_class`` 8 kHz WAV clips per digit, named ``{digit}_fixture_{i}.wav``.

    Source: the real Asterisk recordings (``ASTERISK_DIGITS``, one speaker) when that Debian package is installed,
    each copy perturbed (gain 0.5-1, shift up to 50 ms, noise at -40 dB) so copies differ; otherwise synthetic
    two-tone clips (digit ``d``: 300 + 80·d Hz and its fifth), which only exercise the file format. Either way it
    is not a dataset: it exists to smoke-test ``avmnist_wav.yaml`` (``--data.init_args.root=<root>``).

    Args:
        root: output folder (created).
        per_class: clips per digit.
        seed: perturbation seed.

    Returns:
        ``root`` as a ``Path``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.Generator(np.random.PCG64(seed))
    rate = 8000
    for digit in range(10):
        source = ASTERISK_DIGITS / f"{digit}.wav"
        if source.is_file():
            wave, r = read_wav(source)
            base = torchaudio.functional.resample(wave, r, rate).numpy() if r != rate else wave.numpy()
        else:
            t = np.arange(int(0.5 * rate)) / rate
            f0 = 300.0 + 80.0 * digit
            base = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(3 * np.pi * f0 * t)).astype(np.float32)
        for i in range(per_class):
            shift = int(rng.integers(0, int(0.05 * rate)))
            clip = np.concatenate([np.zeros(shift, dtype=np.float32), base * rng.uniform(0.5, 1.0)])
            clip = clip + 0.01 * float(np.abs(base).max()) * rng.standard_normal(len(clip)).astype(np.float32)
            sf.write(root / f"{digit}_fixture_{i}.wav", np.clip(clip, -1, 1), rate, subtype="PCM_16")
    return root
