"""Raw audio: WAV decoding, resampling, MFCC/log-mel features, AudioFolder labels and the AV-MNIST ``wav`` variant.

Real speech: Debian ``asterisk-core-sounds-en-wav`` (one speaker, recorded digits 0-9, 8 kHz). Synthetic speech:
``espeak-ng`` clips generated at test time (labelled synthetic; used where many clips are needed). Both are
installed by ``.ci/setup-audio.sh``; the tests skip with a reason when they are absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmbench.data import audio as audio_module
from mmbench.data.audio import AudioFeatures, AudioFolder, make_spoken_digits_fixture, read_wav
from mmbench.data.avmnist import AVMNISTDataModule, _mnist_5k
from mmbench.errors import DataIntegrityError

ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison/digits")
needs_asterisk = pytest.mark.skipif(
    not (ALLISON / "0.wav").is_file(),
    reason="real digit recordings absent: run .ci/setup-audio.sh (apt asterisk-core-sounds-en-wav)",
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng absent: run .ci/setup-audio.sh (apt espeak-ng)"
)
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-029")
SPEEDS = (130, 190)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def espeak_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 synthetic clips, 10 per digit, FSDD naming ``{digit}_{voice}_{i}.wav`` (22.05 kHz)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng absent: run .ci/setup-audio.sh (apt espeak-ng)")
    root = tmp_path_factory.mktemp("espeak")
    for v, voice in enumerate(VOICES):
        for s, speed in enumerate(SPEEDS):
            for digit in range(10):
                out = root / f"{digit}_v{v}_{s}.wav"
                subprocess.run(
                    ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), str(digit)], check=True, timeout=30
                )
    return root


# ---------------------------------------------------------------------------------------------- real clips
@needs_asterisk
def test_read_wav_real_recording_is_mono_float_at_native_rate():
    wave, rate = read_wav(ALLISON / "7.wav")
    assert rate == 8000
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert 0.2 * rate < wave.numel() < 1.0 * rate
    assert 0 < wave.abs().max() <= 1.0


@needs_asterisk
@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_features_of_real_digits_have_fixed_shape_and_differ(kind):
    feats = AudioFeatures(kind=kind, n_features=20, frames=32)
    out = torch.stack([feats.from_file(ALLISON / f"{d}.wav") for d in range(10)])
    assert out.shape == (10, 32, 20) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    dist = torch.cdist(out.flatten(1), out.flatten(1))
    assert (dist + torch.eye(10) * 1e9).min() > 0  # every digit's features differ from every other's


@needs_asterisk
def test_resampling_and_crop_pad_give_the_configured_frames():
    wave, rate = read_wav(ALLISON / "3.wav")
    for target_rate, frames, hop in [(16000, 48, 320), (8000, 8, 256), (4000, 64, 64)]:
        feats = AudioFeatures(sample_rate=target_rate, frames=frames, hop_length=hop, n_fft=2 * hop)
        fitted = feats.fit_length(wave, rate)
        assert fitted.numel() == feats.num_samples == (frames - 1) * hop
        assert feats(wave, rate).shape == (frames, 20)
    # resampling really happens: duration is preserved up to the final crop/pad
    up = AudioFeatures(sample_rate=16000, frames=200, hop_length=160, n_fft=320).fit_length(wave, rate)
    n_resampled = int(torch.nonzero(up.abs() > 0).max()) + 1
    assert abs(n_resampled - 2 * wave.numel()) < 0.01 * 2 * wave.numel()


@needs_asterisk
@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_batched_features_equal_per_clip_features(kind, tmp_path):
    for d in range(10):
        shutil.copy(ALLISON / f"{d}.wav", tmp_path / f"{d}_allison_0.wav")
    folder = AudioFolder(tmp_path, AudioFeatures(kind=kind))
    batched = folder.features_tensor()  # one transform over all clips: top_db must still act per clip
    single = torch.stack([folder.features.from_file(f) for f in folder.files])
    torch.testing.assert_close(batched, single)
    wave, rate = read_wav(folder.files[4])
    direct = folder.features._transform(folder.features.fit_length(wave, rate)).T  # torchaudio on one clip
    torch.testing.assert_close(single[4], direct)


@needs_asterisk
def test_padding_is_silence_so_trailing_frames_are_identical():
    wave, _ = read_wav(ALLISON / "1.wav")
    frames = 2 * (wave.numel() // 256 + 1) + 4  # about twice the clip
    out = AudioFeatures(kind="logmel", frames=frames).from_file(ALLISON / "1.wav")
    tail = out[-3:]
    torch.testing.assert_close(tail, tail[:1].expand_as(tail))
    assert not torch.allclose(out[2], out[-1])


@needs_asterisk
def test_stereo_and_other_rates_are_mixed_down_and_resampled(tmp_path):
    wave, rate = read_wav(ALLISON / "5.wav")
    stereo = np.stack([wave.numpy(), wave.numpy()], axis=1)
    sf.write(tmp_path / "5_x_0.wav", stereo, rate, subtype="PCM_16")
    mono, r = read_wav(tmp_path / "5_x_0.wav")
    assert r == rate and mono.shape == wave.shape
    torch.testing.assert_close(mono, wave, atol=1e-4, rtol=0)


# -------------------------------------------------------------------------------------------- AudioFolder
@needs_espeak
def test_audio_folder_labels_from_fsdd_names(espeak_folder):
    folder = AudioFolder(espeak_folder)
    assert len(folder) == 100 and folder.num_classes == 10
    assert np.bincount(folder.labels).tolist() == [10] * 10
    for f, y in zip(folder.files, folder.labels, strict=True):
        assert f.name.startswith(f"{y}_")
    x, y = folder[0]
    assert x.shape == (32, 20) and x.dtype == torch.float32 and isinstance(y, int)


@needs_espeak
def test_audio_folder_labels_from_csv_with_string_classes(espeak_folder, tmp_path):
    words = ["zero", "one"]
    rows = [f"{f.name},{words[int(f.name[0])]}" for f in sorted(espeak_folder.glob("[01]_*.wav"))]
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\n" + "\n".join(rows) + "\n")
    folder = AudioFolder(espeak_folder, AudioFeatures(kind="logmel", n_features=16, frames=10), labels_csv=csv)
    assert folder.classes == ["one", "zero"]
    assert len(folder) == 20
    assert folder.features_tensor().shape == (20, 10, 16)


@needs_espeak
def test_audio_folder_custom_label_pattern(espeak_folder, tmp_path):
    for f in list(espeak_folder.glob("*_v0_0.wav"))[:3]:
        shutil.copy(f, tmp_path / f"clip-{f.name[0]}.wav")
    folder = AudioFolder(tmp_path, label_pattern=r"clip-(?P<label>\d)")
    assert sorted(folder.labels.tolist()) == sorted(int(f.name[-5]) for f in folder.files)


def _one_clip(folder: Path, name: str) -> None:
    sf.write(folder / name, np.zeros(800, dtype=np.float32), 8000)


def test_audio_folder_errors_name_the_file(tmp_path):
    with pytest.raises(DataIntegrityError, match="no audio files"):
        AudioFolder(tmp_path)
    _one_clip(tmp_path, "3_a_0.wav")
    _one_clip(tmp_path, "speech.wav")
    with pytest.raises(DataIntegrityError, match=r"speech\.wav.*labels_csv"):
        AudioFolder(tmp_path)
    bad_csv = tmp_path / "l.csv"
    bad_csv.write_text("path,label\n3_a_0.wav,3\n")
    with pytest.raises(DataIntegrityError, match=r"l\.csv: missing column\(s\) \['file'\]"):
        AudioFolder(tmp_path, labels_csv=bad_csv)
    bad_csv.write_text("file,label\n3_a_0.wav,3\nnope.wav,4\n")
    with pytest.raises(DataIntegrityError, match=r"line 3: file .*nope\.wav does not exist"):
        AudioFolder(tmp_path, labels_csv=bad_csv)
    (tmp_path / "speech.wav").write_bytes(b"RIFF not really a wav")
    folder = AudioFolder(tmp_path, label_pattern=r"(\d|s)")
    with pytest.raises(DataIntegrityError, match=r"cannot read audio file .*speech\.wav"):
        folder.features_tensor()
    with pytest.raises(DataIntegrityError, match="does not exist"):
        AudioFolder(tmp_path / "absent")


def test_audio_features_rejects_bad_config():
    with pytest.raises(ValueError, match="kind must be"):
        AudioFeatures(kind="stft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_mels >= 40"):
        AudioFeatures(n_features=40, n_mels=20)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        AudioFeatures(frames=0)


def test_spoken_digits_fixture_real_copies_or_tones(tmp_path, monkeypatch):
    root = make_spoken_digits_fixture(tmp_path / "a", per_class=3)
    folder = AudioFolder(root)
    assert len(folder) == 30 and np.bincount(folder.labels).tolist() == [3] * 10
    feats = folder.features_tensor()
    assert torch.isfinite(feats).all()
    assert not torch.equal(feats[0], feats[1])  # copies of one source clip are perturbed, so they differ
    monkeypatch.setattr(audio_module, "ASTERISK_DIGITS", tmp_path / "absent")
    tones = AudioFolder(make_spoken_digits_fixture(tmp_path / "b", per_class=2))
    assert len(tones) == 20 and torch.isfinite(tones.features_tensor()).all()


# ---------------------------------------------------------------------------------- AV-MNIST "wav" variant
@needs_espeak
def test_avmnist_wav_variant_pairs_images_with_clips_within_class(espeak_folder):
    dm = AVMNISTDataModule(variant="wav", root=str(espeak_folder), batch_size=16)
    assert dm.input_shapes == {"image": (1, 28, 28), "audio": (32, 20)}
    assert dm.dataset_variant == "wav(wav:mfcc20x32@8000Hz)"
    dm.setup("fit")
    dm.setup("test")
    sizes = {s: len(dm._dataset(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 80, "val": 10, "test": 10}
    pool, pool_labels = _mnist_5k()
    label_of = {pool[i].tobytes(): int(pool_labels[i]) for i in range(len(pool))}
    for split in ("train", "val", "test"):
        ds = dm._dataset(split)
        images = (ds.inputs["image"].squeeze(1) * 255).round().to(torch.uint8).numpy()
        assert [label_of[im.tobytes()] for im in images] == ds.target.tolist()
    train = dm._dataset("train")
    assert abs(float(train.inputs["audio"].mean())) < 1e-4  # standardised with training statistics
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["inputs"]["audio"].shape == (16, 32, 20) and batch["mask"].dtype == torch.bool
    assert dm.split_hash == AVMNISTDataModule(variant="wav", root=str(espeak_folder)).split_hash


def test_avmnist_wav_variant_needs_root_and_rejects_non_digit_labels(tmp_path):
    with pytest.raises(ValueError, match="needs root"):
        AVMNISTDataModule(variant="wav")
    _one_clip(tmp_path, "12_a_0.wav")
    dm = AVMNISTDataModule(variant="wav", root=str(tmp_path))
    with pytest.raises(DataIntegrityError, match="label 12, which no image has"):
        dm.setup("fit")


def test_avmnist_smil_from_a_wav_folder(tmp_path):
    base = make_spoken_digits_fixture(tmp_path / "base", per_class=3)
    with pytest.raises(DataIntegrityError, match="needs 150 pairs of digit 0, the source has 3"):
        AVMNISTDataModule(variant="smil", root=str(base)).setup("fit")
    full = tmp_path / "full"
    full.mkdir()
    for f in sorted(base.iterdir()):  # 150 clips per digit: 50 copies of each of the 3 (format test only)
        for k in range(50):
            shutil.copy(f, full / f.name.replace("_fixture_", f"_copy{k}_"))
    dm = AVMNISTDataModule(variant="smil", root=str(full), audio_fraction=0.1)
    assert dm.dataset_variant == "smil(wav:mfcc20x32@8000Hz,audio=0.1)"
    assert dm.input_shapes == {"image": (1, 28, 28), "audio": (32, 20)}
    dm.setup("fit")
    dm.setup("test")
    assert {s: len(dm._dataset(s)) for s in ("train", "val", "test")} == {"train": 900, "val": 150, "test": 450}
    target = dm._dataset("train").target
    mask = dm.masks_for("train", torch.arange(900))
    assert [int(mask[target == c, 1].sum()) for c in range(10)] == [9] * 10


@needs_espeak
def test_avmnist_wav_yaml_smoke(espeak_folder, tmp_path, monkeypatch):
    from mmbench.cli import cli_main

    monkeypatch.chdir(tmp_path)
    cli_main(
        [
            "fit",
            "--config",
            str(REPO / "experiments/trainer/default.yaml"),
            "--config",
            str(REPO / "experiments/data/avmnist_wav.yaml"),
            "--config",
            str(REPO / "experiments/methods/late_fusion.yaml"),
            f"--data.init_args.root={espeak_folder}",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
        ]
    )
    assert (tmp_path / "results.csv").is_file()
