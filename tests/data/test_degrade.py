"""AV-MNIST-lite-degraded: PCA energy, babble SNR, train-only fit, no cross-split leakage, determinism."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from mmbench.data import degrade as D
from mmbench.data.avmnist import AVMNISTDataModule, load_avmnist_lite, load_avmnist_lite_degraded


@pytest.fixture(scope="module")
def lite():
    return load_avmnist_lite()


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------------ images
@pytest.mark.parametrize("energy", [0.25, 0.5, 0.9])
def test_pca_energy_kept_on_train_is_the_requested_share(lite, energy):
    images, _, _, split = lite
    train = images[split == 0].reshape(-1, 784).astype(np.float64)
    basis = D.fit_pca_energy(train, energy)
    measured = D.energy_kept(train, basis)
    assert measured == pytest.approx(basis.kept_energy, abs=1e-9)
    # the fewest components reaching the request: one component fewer falls short of it
    assert basis.kept_energy >= energy
    assert basis.kept_energy - basis.ratios[basis.k - 1] < energy


def test_pca_matches_sklearn(lite):
    from sklearn.decomposition import PCA

    images, _, _, split = lite
    train = images[split == 0].reshape(-1, 784).astype(np.float64)
    test = images[split == 2].reshape(-1, 784).astype(np.float64)
    basis = D.fit_pca_energy(train, D.DEFAULT_PCA_ENERGY)
    ref = PCA(n_components=basis.k, svd_solver="full").fit(train)
    np.testing.assert_allclose(basis.ratios[: basis.k], ref.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(D.pca_reconstruct(test, basis), ref.inverse_transform(ref.transform(test)), atol=1e-6)
    # the benchmark's share: a handful of components of MNIST, not the digit itself
    assert 3 <= basis.k <= 6


def test_pca_basis_is_fitted_on_train_only(lite):
    images, _, _, split = lite
    out, basis = D.degrade_images(images, split, 0.25)
    scrambled = images.copy()
    rng = np.random.default_rng(0)
    held_out = split != 0
    scrambled[held_out] = rng.integers(0, 256, size=scrambled[held_out].shape, dtype=np.uint8)
    out2, basis2 = D.degrade_images(scrambled, split, 0.25)
    np.testing.assert_array_equal(basis.components, basis2.components)
    np.testing.assert_array_equal(out[split == 0], out2[split == 0])
    assert not np.allclose(out[held_out], out2[held_out])
    # held-out images are projected with the training basis
    flat = scrambled[held_out].reshape(-1, 784)
    np.testing.assert_allclose(out2[held_out].reshape(-1, 784), D.pca_reconstruct(flat, basis), atol=1e-3)


def test_pca_energy_rejects_bad_share():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        D.fit_pca_energy(np.eye(4), 0.0)


# ------------------------------------------------------------------------------------------------------- audio
def test_valid_frames_are_fsdd_lengths(lite):
    from mmbench.data.sources import packaged_path

    lengths = np.load(packaged_path("fsdd_mfcc"))["lengths"]
    frames = D.valid_frames(lite[1])
    np.testing.assert_array_equal(np.sort(frames), np.sort(np.minimum(lengths, lite[1].shape[1])))


def test_mfcc_round_trip_is_exact_without_noise(lite):
    mfcc = lite[1][:50]
    back = D.mel_power_to_mfcc(D.mfcc_to_mel_power(mfcc), mfcc.shape[-1])
    np.testing.assert_allclose(back, mfcc, atol=1e-8)


@pytest.mark.parametrize("target", [-5.0, 0.0, 10.0])
def test_mix_at_snr_measures_the_requested_snr(target):
    rng = np.random.default_rng(1)
    s, n = rng.random((20, 128)) ** 3, rng.random((20, 128))
    mixed, gain = D.mix_at_snr(s, n, target)
    assert D.snr_db(s, mixed - s) == pytest.approx(target, abs=1e-9)
    assert D.snr_db(s, gain * n) == pytest.approx(target, abs=1e-9)


def test_babble_on_real_clips_has_the_requested_snr(lite):
    """The pipeline of ``degrade_audio``, clip by clip: each clip's SNR against its babble is the target."""
    _, mfcc, _, split = lite
    sources, offsets = D.babble_draws(split, D.DEFAULT_TALKERS)
    lengths = D.valid_frames(mfcc)
    power = D.mfcc_to_mel_power(mfcc)
    out, _ = D.degrade_audio(mfcc, split, 3.0, D.DEFAULT_TALKERS)
    for i in range(0, len(mfcc), 97):
        n = int(lengths[i])
        noise = D.babble_power(power, lengths, i, sources[i], offsets[i])
        mixed, _ = D.mix_at_snr(power[i, :n], noise, 3.0)
        assert D.snr_db(power[i, :n], mixed - power[i, :n]) == pytest.approx(3.0, abs=1e-9)
        np.testing.assert_allclose(out[i, :n], D.mel_power_to_mfcc(mixed), rtol=1e-5, atol=1e-3)
        assert not out[i, n:].any()  # padding stays zero
    assert not np.allclose(out, mfcc, atol=1.0)


def test_babble_sources_stay_in_their_split_and_exclude_the_clip(lite):
    split = lite[3]
    sources, _ = D.babble_draws(split, 6)
    assert sources.shape == (len(split), 6)
    assert np.all(split[sources] == split[:, None])
    assert not np.any(sources == np.arange(len(split))[:, None])
    assert all(len(set(row)) == 6 for row in sources.tolist())


def test_no_audio_leaks_across_splits(lite):
    mfcc, split = lite[1][:900], lite[3][:900]  # a subset keeps it quick; every split has ~90+ clips
    out, _ = D.degrade_audio(mfcc, split, 0.0, 6)
    for changed in (0, 2):  # perturb the training clips, then the test clips
        other = mfcc.copy()
        other[split == changed] += np.float32(5.0) * (other[split == changed] != 0)
        out2, _ = D.degrade_audio(other, split, 0.0, 6)
        np.testing.assert_array_equal(out[split != changed], out2[split != changed])
        assert not np.allclose(out[split == changed], out2[split == changed])


def test_degraded_arrays_are_identical_across_processes():
    here = _digest(load_avmnist_lite_degraded())
    code = (
        "import hashlib, numpy as np\n"
        "from mmbench.data.avmnist import load_avmnist_lite_degraded\n"
        "h = hashlib.sha256()\n"
        "for a in load_avmnist_lite_degraded():\n"
        "    h.update(np.ascontiguousarray(a).tobytes())\n"
        "print(h.hexdigest())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert there.stdout.strip() == here


# ------------------------------------------------------------------------------------------------- data module
def test_lite_degraded_data_module(lite):
    dm = AVMNISTDataModule(variant="lite-degraded", snr_db=5.0, babble_talkers=4)
    assert dm.dataset_variant == "lite-degraded(pca=0.25,snr=5,babble=4)"
    assert dm.split_hash == AVMNISTDataModule(variant="lite").split_hash
    dm.setup("fit")
    train = dm._dataset("train")
    assert train.inputs["image"].shape == (2400, 1, 28, 28) and train.inputs["audio"].shape == (2400, 32, 13)
    images, _, labels, split = lite
    np.testing.assert_array_equal(train.target.numpy(), labels[split == 0])
    clean = images[split == 0].astype(np.float32) / 255.0
    assert not np.allclose(train.inputs["image"].squeeze(1).numpy(), clean, atol=0.05)
    audio = train.inputs["audio"].numpy()
    np.testing.assert_allclose(audio.reshape(-1, 13).mean(0), 0.0, atol=1e-4)  # standardised with train stats


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "lite", "snr_db": 0.0}, "for variant 'lite-degraded' only"),
        ({"variant": "lite-degraded", "pca_energy": 1.5}, "pca_energy"),
        ({"variant": "lite-degraded", "babble_talkers": 0}, "babble_talkers"),
        ({"variant": "lite-degraded", "snr_db": float("inf")}, "snr_db"),
    ],
)
def test_lite_degraded_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AVMNISTDataModule(**kwargs)
