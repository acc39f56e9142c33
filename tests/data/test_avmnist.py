"""AV-MNIST: the embedded ``lite`` variant, the MultiBench ``.npy`` layout and the SMIL protocol."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbench.data.avmnist import (
    AVMNISTDataModule,
    _mnist_5k,
    load_avmnist_lite,
    make_multibench_fixture,
)
from mmbench.data.sources import packaged_path
from mmbench.errors import DataIntegrityError
from mmbench.masks import AllPatterns, BernoulliMissing, PatternProtocol, PerClassFraction

REPO = Path(__file__).resolve().parents[2]


def _sizes(dm: AVMNISTDataModule) -> dict[str, int]:
    dm.setup()
    return {s: len(dm._dataset(s)) for s in ("train", "val", "test")}


def _check_batch(dm: AVMNISTDataModule, audio_shape: tuple[int, ...], batch_size: int) -> None:
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert set(batch) >= {"inputs", "mask", "target", "index"}
    assert batch["inputs"]["image"].shape == (batch_size, 1, 28, 28)
    assert batch["inputs"]["audio"].shape == (batch_size, *audio_shape)
    assert batch["inputs"]["image"].dtype == batch["inputs"]["audio"].dtype == torch.float32
    assert batch["mask"].shape == (batch_size, 2) and batch["mask"].dtype == torch.bool
    assert batch["target"].dtype == torch.int64 and batch["index"].dtype == torch.int64
    assert int(batch["target"].min()) >= 0 and int(batch["target"].max()) <= 9


# ------------------------------------------------------------------------------------------------- lite
def test_lite_pairs_sizes_labels_and_determinism():
    images, mfcc, labels, split = load_avmnist_lite()
    assert images.shape == (3000, 28, 28) and mfcc.shape == (3000, 32, 13) and labels.shape == (3000,)
    assert np.bincount(labels).tolist() == [300] * 10
    assert [int((split == s).sum()) for s in range(3)] == [2400, 300, 300]
    # every image is a real MNIST digit of the pair's label, used once
    pool, pool_labels = _mnist_5k()
    label_of = {pool[i].tobytes(): int(pool_labels[i]) for i in range(len(pool))}
    assert [label_of[im.tobytes()] for im in images] == labels.tolist()
    assert len({im.tobytes() for im in images}) == 3000
    # every clip is an FSDD clip of the same label
    with np.load(packaged_path("fsdd_mfcc")) as fsdd:
        frames, clip_labels, lengths = fsdd["X"], fsdd["y"], fsdd["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first = {frames[s].tobytes(): int(y) for s, y in zip(starts, clip_labels, strict=True)}
    assert [first[m[0].tobytes()] for m in mfcc] == labels.tolist()
    again = load_avmnist_lite()
    for a, b in zip((images, mfcc, labels, split), again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_lite_datamodule_is_unchanged():
    dm = AVMNISTDataModule(batch_size=32)
    assert dm.dataset_variant == "lite"
    assert dm.input_shapes == {"image": (1, 28, 28), "audio": (32, 13)}
    assert _sizes(dm) == {"train": 2400, "val": 300, "test": 300}
    _check_batch(dm, (32, 13), 32)
    assert AVMNISTDataModule(audio_noise_std=0.5).dataset_variant == "lite(noise=0.5)"
    with pytest.raises(ValueError, match="takes no root"):
        AVMNISTDataModule(root="/somewhere")


# ------------------------------------------------------------------------------------------- multibench
@pytest.fixture(scope="module")
def multibench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_multibench_fixture(tmp_path_factory.mktemp("avmnist"), n_train=120, n_test=40)


def test_multibench_layout_splits_like_multibench(multibench_root):
    dm = AVMNISTDataModule(variant="multibench", root=str(multibench_root), val_size=20, batch_size=8)
    assert dm.input_shapes == {"image": (1, 28, 28), "audio": (1, 112, 112)}
    assert dm.dataset_variant == "multibench"
    assert _sizes(dm) == {"train": 100, "val": 20, "test": 40}
    _check_batch(dm, (1, 112, 112), 8)
    raw_img = np.load(multibench_root / "image/train_data.npy")
    raw_aud = np.load(multibench_root / "audio/train_data.npy")
    raw_lab = np.load(multibench_root / "train_labels.npy")
    val0 = dm._dataset("val")[0]  # the validation set is the LAST val_size training samples
    np.testing.assert_allclose(val0["inputs"]["image"].numpy().ravel(), raw_img[100] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(val0["inputs"]["audio"].numpy()[0], raw_aud[100] / 255.0, rtol=1e-6)
    assert int(val0["target"]) == raw_lab[100]
    test = dm._dataset("test")
    assert [int(test[i]["target"]) for i in range(len(test))] == np.load(multibench_root / "test_labels.npy").tolist()
    # 28x28 images are accepted as well as 784-vectors
    (multibench_root / "image").rename(multibench_root / "image_flat")
    try:
        (multibench_root / "image").mkdir()
        for part in ("train", "test"):
            flat = np.load(multibench_root / f"image_flat/{part}_data.npy")
            np.save(multibench_root / f"image/{part}_data.npy", flat.reshape(-1, 28, 28).astype(np.uint8))
        dm2 = AVMNISTDataModule(variant="multibench", root=str(multibench_root), val_size=20)
        dm2.setup("fit")
        torch.testing.assert_close(dm2._dataset("val")[0]["inputs"]["image"], val0["inputs"]["image"])
    finally:
        for f in (multibench_root / "image").iterdir():
            f.unlink()
        (multibench_root / "image").rmdir()
        (multibench_root / "image_flat").rename(multibench_root / "image")


def _copy_layout(src: Path, dst: Path) -> Path:
    for rel in ("image/train_data.npy", "image/test_data.npy", "audio/train_data.npy", "audio/test_data.npy"):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes((src / rel).read_bytes())
    for rel in ("train_labels.npy", "test_labels.npy"):
        (dst / rel).write_bytes((src / rel).read_bytes())
    return dst


def test_multibench_errors_name_the_file_and_expected_shape(multibench_root, tmp_path):
    with pytest.raises(ValueError, match="needs root"):
        AVMNISTDataModule(variant="multibench")
    root = _copy_layout(multibench_root, tmp_path / "a")
    (root / "audio/test_data.npy").unlink()
    with pytest.raises(DataIntegrityError, match=r"missing \[.*audio/test_data\.npy"):
        AVMNISTDataModule(variant="multibench", root=str(root), val_size=20)

    root = _copy_layout(multibench_root, tmp_path / "b")
    np.save(root / "image/train_data.npy", np.zeros((120, 30, 30), dtype=np.float32))
    with pytest.raises(
        DataIntegrityError, match=r"image/train_data\.npy has shape \(120, 30, 30\); expected \(N, 784\)"
    ):
        AVMNISTDataModule(variant="multibench", root=str(root), val_size=20)

    root = _copy_layout(multibench_root, tmp_path / "c")
    np.save(root / "audio/test_data.npy", np.zeros((40, 64, 64), dtype=np.float32))
    with pytest.raises(
        DataIntegrityError, match=r"audio/test_data\.npy has shape \(40, 64, 64\); expected \(N, 112, 112\)"
    ):
        AVMNISTDataModule(variant="multibench", root=str(root), val_size=20)

    root = _copy_layout(multibench_root, tmp_path / "d")
    np.save(root / "train_labels.npy", np.zeros(119, dtype=np.int64))
    with pytest.raises(DataIntegrityError, match=r"train_labels\.npy has 119 labels, .*has 120 images"):
        AVMNISTDataModule(variant="multibench", root=str(root), val_size=20)

    root = _copy_layout(multibench_root, tmp_path / "e")
    (root / "test_labels.npy").write_bytes(b"not an npy file")
    with pytest.raises(DataIntegrityError, match=r"test_labels\.npy is not a readable numeric \.npy"):
        AVMNISTDataModule(variant="multibench", root=str(root), val_size=20)

    root = _copy_layout(multibench_root, tmp_path / "f")
    np.save(root / "test_labels.npy", np.full(40, 11, dtype=np.int64))
    dm = AVMNISTDataModule(variant="multibench", root=str(root), val_size=20)
    with pytest.raises(DataIntegrityError, match=r"test_labels\.npy: labels must be digits 0-9"):
        dm.setup("test")

    with pytest.raises(ValueError, match=r"val_size must be in \[0, 120\)"):
        AVMNISTDataModule(variant="multibench", root=str(multibench_root))  # default 5000 > 120


def test_multibench_yaml_smoke(multibench_root, tmp_path, monkeypatch):
    from mmbench.cli import cli_main

    monkeypatch.chdir(tmp_path)
    cli_main(
        [
            "fit",
            "--config",
            str(REPO / "experiments/trainer/default.yaml"),
            "--config",
            str(REPO / "experiments/data/avmnist_multibench.yaml"),
            "--config",
            str(REPO / "experiments/methods/late_fusion.yaml"),
            f"--data.init_args.root={multibench_root}",
            "--data.init_args.val_size=20",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
        ]
    )
    assert (tmp_path / "results.csv").is_file()


# ------------------------------------------------------------------------------------------------- SMIL
def test_smil_sizes_follow_the_protocol():
    dm = AVMNISTDataModule(variant="smil")
    assert _sizes(dm) == {"train": 900, "val": 150, "test": 450}
    for split, per_class in (("train", 90), ("val", 15), ("test", 45)):
        assert torch.bincount(dm._dataset(split).target).tolist() == [per_class] * 10
    exact = AVMNISTDataModule(variant="smil", val_per_class=0)
    assert _sizes(exact) == {"train": 1050, "val": 0, "test": 450}
    torch.testing.assert_close(exact._dataset("test").inputs["image"], dm._dataset("test").inputs["image"])
    _check_batch(dm, (32, 13), 64)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.15, 0.2, 0.5, 1.0, 0.0])
def test_smil_exact_per_class_audio_counts(fraction):
    dm = AVMNISTDataModule(variant="smil", audio_fraction=fraction)
    dm.setup("fit")
    target = dm._dataset("train").target
    mask = dm.masks_for("train", torch.arange(len(target)))
    assert mask[:, 0].all()  # image always observed
    expected = math.floor(fraction * 90 + 0.5)
    assert [int(mask[target == c, 1].sum()) for c in range(10)] == [expected] * 10
    assert f"audio={fraction:g}" in dm.dataset_variant
    assert dm.describe()["train_missing"] == f"per_class_fraction(audio={fraction:g})"
    # masks are a pure function of (mask_seed, sample index): batches see the same rows
    idx = torch.tensor([5, 0, 17, 5])
    torch.testing.assert_close(dm.masks_for("train", idx), mask[idx])


def test_smil_masks_depend_on_mask_seed_only():
    def audio_rows(seed: int) -> torch.Tensor:
        dm = AVMNISTDataModule(variant="smil", audio_fraction=0.1, mask_seed=seed)
        dm.setup("fit")
        return dm.masks_for("train", torch.arange(900))[:, 1]

    a, b, c = audio_rows(0), audio_rows(0), audio_rows(1)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c) and int(a.sum()) == int(c.sum()) == 90


def test_smil_val_and_test_are_image_only():
    dm = AVMNISTDataModule(variant="smil", audio_fraction=0.2, eval_batch_size=450)
    dm.setup("validate")
    dm.setup("test")
    assert [p.name for p in dm.eval_protocols] == ["pattern(image)"]
    (loader,) = dm.test_dataloader()
    batch = next(iter(loader))
    assert batch["mask"].shape == (450, 2)
    assert batch["mask"][:, 0].all() and not batch["mask"][:, 1].any()
    batch = dm.apply_missingness(batch, "test")
    assert batch["inputs"]["audio"].abs().sum() == 0  # zero-filled: nothing of the audio reaches a method
    val = dm.apply_missingness(next(iter(dm.val_dataloader())), "val")
    assert val["mask"][:, 0].all() and not val["mask"][:, 1].any()


def test_smil_arguments_are_checked():
    with pytest.raises(ValueError, match="for variant 'smil' only"):
        AVMNISTDataModule(audio_fraction=0.2)
    with pytest.raises(ValueError, match="not both"):
        AVMNISTDataModule(variant="smil", audio_fraction=0.2, missingness=BernoulliMissing(0.5))
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        AVMNISTDataModule(variant="smil", audio_fraction=1.5)
    with pytest.raises(ValueError, match="are for a WAV folder"):
        AVMNISTDataModule(variant="smil", labels_csv="labels.csv")
    with pytest.raises(ValueError, match="needs class labels"):
        PerClassFraction("audio", 0.2).masks(("image", "audio"), 0, "train", torch.arange(3))
    # a user spec replaces the SMIL default; eval protocols can be overridden too
    dm = AVMNISTDataModule(variant="smil", missingness=BernoulliMissing(0.5), eval_protocols=[AllPatterns()])
    assert dm.dataset_variant == "smil"
    dm.setup("fit")
    m = dm.masks_for("train", torch.arange(900))
    assert 0.3 < m.float().mean() < 0.8


def test_pattern_protocol_table():
    table = PatternProtocol(["audio"]).table(("image", "audio"), 4, seed=0)
    assert table.protocol == "pattern(audio)"
    assert table.mask.tolist() == [[False, True]] * 4 and table.sample_index.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown modalities"):
        PatternProtocol(["video"]).table(("image", "audio"), 4, seed=0)
