"""FeaturesDataModule: UCI mfeat default, generic ``.npz`` and the MultiBench/MMSA MOSI pickle layout."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbench.data.features import DEFAULT_VIEWS, FeaturesDataModule, load_mfeat, make_mosi_fixture
from mmbench.errors import DataIntegrityError
from mmbench.types import Task

REPO = Path(__file__).resolve().parents[2]


def _splits(dm: FeaturesDataModule) -> dict[str, int]:
    dm.setup()
    return {s: len(dm._dataset(s)) for s in ("train", "val", "test")}


def _check_batch(dm: FeaturesDataModule, target_shape: tuple[int, ...], target_dtype: torch.dtype) -> None:
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    b = batch["mask"].shape[0]
    assert set(batch) >= {"inputs", "mask", "target", "index"}
    assert list(batch["inputs"]) == list(dm.modalities)
    for m, x in batch["inputs"].items():
        assert x.shape == (b, *dm.input_shapes[m]) and x.dtype == torch.float32
    assert batch["mask"].shape == (b, len(dm.modalities)) and batch["mask"].dtype == torch.bool
    assert batch["target"].shape == (b, *target_shape) and batch["target"].dtype == target_dtype


# ------------------------------------------------------------------------------------------------ mfeat
def test_mfeat_default_views_split_and_standardisation():
    dm = FeaturesDataModule(batch_size=32)
    assert dm.modalities == ("text", "audio", "vision")
    assert dm.input_shapes == {"text": (216,), "audio": (76,), "vision": (47,)}
    assert dm.task is Task.MULTICLASS and dm.num_classes == 10
    assert dm.dataset_variant == "mfeat(text=fac,audio=fou,vision=zer)"
    assert _splits(dm) == {"train": 1600, "val": 200, "test": 200}
    for split, per_class in (("train", 160), ("val", 20), ("test", 20)):
        assert torch.bincount(dm._dataset(split).target).tolist() == [per_class] * 10
    train = dm._dataset("train").inputs["audio"]
    torch.testing.assert_close(train.mean(0), torch.zeros(76), atol=1e-4, rtol=0)
    torch.testing.assert_close(train.std(0, unbiased=False), torch.ones(76), atol=1e-3, rtol=0)
    _check_batch(dm, (), torch.int64)
    # the split is seeded: same seed, same split; another seed, another split
    assert FeaturesDataModule().split_hash == dm.split_hash != FeaturesDataModule(split_seed=1).split_hash


def test_mfeat_views_are_configurable_and_checked():
    dm = FeaturesDataModule(views={"pixels": "pix", "shape": "mor"}, standardize=False)
    assert dm.input_shapes == {"pixels": (240,), "shape": (6,)}
    raw, labels = load_mfeat({"pixels": "pix"})
    dm.setup("fit")
    # unstandardised rows are the file's rows
    row = dm._dataset("train").inputs["pixels"][0].numpy()
    assert any(np.allclose(row, r) for r in raw["pixels"][labels == int(dm._dataset("train").target[0])])
    with pytest.raises(ValueError, match=r"unknown mfeat view\(s\) \['xyz'\]; expected some of"):
        FeaturesDataModule(views={"text": "xyz"})
    with pytest.raises(ValueError, match=r"did you forget --data\.init_args\.path"):
        FeaturesDataModule(task="regression")
    with pytest.raises(ValueError, match="choose mfeat modalities with views"):
        FeaturesDataModule(modalities=["text"])


# -------------------------------------------------------------------------------------------------- npz
@pytest.fixture(scope="module")
def mfeat() -> tuple[dict[str, np.ndarray], np.ndarray]:
    return load_mfeat(DEFAULT_VIEWS)


def test_npz_multiclass_with_explicit_split_indices(mfeat, tmp_path):
    inputs, labels = mfeat
    idx = np.random.default_rng(0).permutation(300)
    path = tmp_path / "views.npz"
    np.savez(
        path,
        audio=inputs["audio"][:300],
        text=inputs["text"][:300],
        labels=labels[:300],
        train_idx=idx[:200],
        val_idx=idx[200:250],
        test_idx=idx[250:],
    )
    dm = FeaturesDataModule(path=str(path), batch_size=16)
    assert dm.modalities == ("audio", "text")  # file order
    assert dm.task is Task.MULTICLASS and dm.num_classes == int(labels[:300].max()) + 1
    assert _splits(dm) == {"train": 200, "val": 50, "test": 50}
    assert dm._dataset("test").target.tolist() == labels[:300][np.sort(idx[250:])].tolist()
    assert dm.dataset_variant == "npz:views.npz"
    _check_batch(dm, (), torch.int64)
    picked = FeaturesDataModule(path=str(path), modalities=["text"])
    assert picked.modalities == ("text",)


def test_npz_multilabel_and_regression_are_inferred(mfeat, tmp_path):
    inputs, _ = mfeat
    rng = np.random.default_rng(0)
    multi = (rng.random((200, 5)) < 0.3).astype(np.int64)
    np.savez(tmp_path / "ml.npz", a=inputs["audio"][:200], b=inputs["vision"][:200], labels=multi)
    dm = FeaturesDataModule(path=str(tmp_path / "ml.npz"), batch_size=8)
    assert dm.task is Task.MULTILABEL and dm.num_classes == 5
    assert _splits(dm) == {"train": 160, "val": 20, "test": 20}
    _check_batch(dm, (5,), torch.float32)

    score = rng.normal(size=(200, 1)).astype(np.float32)
    np.savez(tmp_path / "reg.npz", a=inputs["audio"][:200], labels=score)
    dm = FeaturesDataModule(path=str(tmp_path / "reg.npz"), batch_size=8)
    assert dm.task is Task.REGRESSION and dm.num_classes == 1
    _check_batch(dm, (), torch.float32)


def test_npz_sequences_pooled_or_kept(tmp_path):
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(50, 6, 3)).astype(np.float32)
    seq[:, :2] = 0.0  # two leading padding frames
    np.savez(tmp_path / "seq.npz", s=seq, labels=np.arange(50) % 2)
    pooled = FeaturesDataModule(path=str(tmp_path / "seq.npz"), standardize=False)
    assert pooled.input_shapes == {"s": (3,)} and pooled.dataset_variant == "npz:seq.npz(pooled)"
    pooled.setup("fit")
    ds = pooled._dataset("train")
    # mean over the 4 real frames only, not the padding
    order = np.flatnonzero(pooled._codes == 0)
    np.testing.assert_allclose(ds.inputs["s"].numpy(), seq[order, 2:].mean(1), rtol=1e-5)
    kept = FeaturesDataModule(path=str(tmp_path / "seq.npz"), pool=False)
    assert kept.input_shapes == {"s": (6, 3)}
    kept.setup("fit")
    x = kept._dataset("train").inputs["s"]
    assert (x[:, :2] == 0).all()  # padding stays zero after standardisation
    torch.testing.assert_close(x[:, 2:].reshape(-1, 3).mean(0), torch.zeros(3), atol=1e-5, rtol=0)


def test_npz_errors_name_file_and_key(mfeat, tmp_path):
    inputs, labels = mfeat
    path = tmp_path / "bad.npz"
    np.savez(path, audio=inputs["audio"][:20], target=labels[:20])
    with pytest.raises(DataIntegrityError, match=r"bad\.npz has no 'labels' array; keys are \['audio', 'target'\]"):
        FeaturesDataModule(path=str(path))
    np.savez(path, audio=inputs["audio"][:20], text=inputs["text"][:19], labels=labels[:20])
    with pytest.raises(DataIntegrityError, match=r"bad\.npz: 'text' has 19 samples but 'labels' has 20"):
        FeaturesDataModule(path=str(path))
    np.savez(path, audio=inputs["audio"][:20], labels=labels[:20], train_idx=np.arange(10))
    with pytest.raises(DataIntegrityError, match="give all three or none"):
        FeaturesDataModule(path=str(path))
    np.savez(
        path, audio=inputs["audio"][:20], labels=labels[:20], train_idx=np.arange(12), val_idx=[10, 12], test_idx=[13]
    )
    with pytest.raises(DataIntegrityError, match=r"\['val_idx'\] repeats indices or overlaps"):
        FeaturesDataModule(path=str(path))
    np.savez(path, audio=inputs["audio"][:20], labels=labels[:20])
    with pytest.raises(DataIntegrityError, match=r"has no array\(s\) \['vision'\]"):
        FeaturesDataModule(path=str(path), modalities=["audio", "vision"])
    with pytest.raises(DataIntegrityError, match="multilabel labels must be"):
        FeaturesDataModule(path=str(path), task="multilabel")
    with pytest.raises(DataIntegrityError, match="does not exist"):
        FeaturesDataModule(path=str(tmp_path / "absent.npz"))
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"expected \.npz, \.pkl or \.pickle"):
        FeaturesDataModule(path=str(tmp_path / "x.csv"))


# ----------------------------------------------------------------------------------------------- pickle
@pytest.fixture(scope="module")
def mosi_pickle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mosi_fixture(tmp_path_factory.mktemp("mosi") / "mosi.pkl", sizes=(60, 20, 20), seq_len=5)


def test_mosi_pickle_layout_pooled(mosi_pickle):
    dm = FeaturesDataModule(path=str(mosi_pickle), batch_size=16)
    assert dm.modalities == ("text", "audio", "vision")
    assert dm.input_shapes == {"text": (216,), "audio": (76,), "vision": (47,)}
    assert dm.task is Task.REGRESSION and dm.num_classes == 1
    assert dm.dataset_variant == "mosi-pickle:mosi.pkl(pooled)"
    assert _splits(dm) == {"train": 60, "val": 20, "test": 20}
    with open(mosi_pickle, "rb") as f:
        raw = pickle.load(f)
    for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        np.testing.assert_allclose(dm._dataset(split).target.numpy(), raw[key]["labels"].reshape(-1))
    _check_batch(dm, (), torch.float32)
    assert dm.split_hash == FeaturesDataModule(path=str(mosi_pickle)).split_hash


def test_mosi_pickle_sequences_kept(mosi_pickle):
    dm = FeaturesDataModule(path=str(mosi_pickle), pool=False, batch_size=16)
    assert dm.input_shapes == {"text": (5, 216), "audio": (5, 76), "vision": (5, 47)}
    assert dm.dataset_variant == "mosi-pickle:mosi.pkl(sequence)"
    _check_batch(dm, (), torch.float32)
    with open(mosi_pickle, "rb") as f:
        raw = pickle.load(f)
    pad = ~np.any(raw["train"]["text"] != 0, axis=-1)
    x = dm._dataset("train").inputs["text"].numpy()
    assert pad.any() and (x[pad] == 0).all()


def _write(path: Path, data: object) -> Path:
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path


def test_mosi_pickle_errors_name_file_split_and_key(mosi_pickle, tmp_path):
    with open(mosi_pickle, "rb") as f:
        good = pickle.load(f)

    data = {k: dict(v) for k, v in good.items()}
    del data["valid"]["vision"]
    path = _write(tmp_path / "novision.pkl", data)
    with pytest.raises(DataIntegrityError, match=r"novision\.pkl: split 'valid' has no key 'vision'"):
        FeaturesDataModule(path=str(path))

    data = {k: dict(v) for k, v in good.items() if k != "test"}
    path = _write(tmp_path / "notest.pkl", data)
    with pytest.raises(DataIntegrityError, match=r"notest\.pkl has no split 'test'; expected top-level keys"):
        FeaturesDataModule(path=str(path))

    data = {k: dict(v) for k, v in good.items()}
    data["train"]["audio"] = data["train"]["audio"][:-3]
    path = _write(tmp_path / "short.pkl", data)
    with pytest.raises(
        DataIntegrityError, match=r"short\.pkl: split 'train': 'audio' has 57 samples but 'labels' has 60"
    ):
        FeaturesDataModule(path=str(path))

    data = {k: {kk: vv for kk, vv in v.items() if kk != "labels"} for k, v in good.items()}
    path = _write(tmp_path / "nolabels.pkl", data)
    with pytest.raises(DataIntegrityError, match=r"has no key 'labels' \(or MMSA's 'regression_labels'\)"):
        FeaturesDataModule(path=str(path))

    (tmp_path / "junk.pkl").write_bytes(b"\x00junk")
    with pytest.raises(DataIntegrityError, match=r"junk\.pkl is not a readable pickle"):
        FeaturesDataModule(path=str(tmp_path / "junk.pkl"))


def test_mosi_pickle_mmsa_keys_and_non_finite_values(mosi_pickle, tmp_path):
    with open(mosi_pickle, "rb") as f:
        good = pickle.load(f)
    data = {}
    for k, v in good.items():
        part = {kk: vv for kk, vv in v.items() if kk != "labels"}
        part["regression_labels"] = v["labels"].reshape(-1)
        part["audio"] = v["audio"].copy()
        data[k] = part
    data["train"]["audio"][0, -1, 0] = -np.inf  # MOSI's COVAREP audio has -inf
    path = _write(tmp_path / "mmsa.pkl", data)
    with pytest.warns(UserWarning, match=r"mmsa\.pkl\['train'\]\['audio'\]: 1 non-finite value"):
        dm = FeaturesDataModule(path=str(path))
    dm.setup("fit")
    assert torch.isfinite(dm._dataset("train").inputs["audio"]).all()
    np.testing.assert_allclose(dm._dataset("train").target.numpy(), good["train"]["labels"].reshape(-1))


def test_mosi_pickle_yaml_smoke(mosi_pickle, tmp_path, monkeypatch):
    from mmbench.cli import cli_main

    monkeypatch.chdir(tmp_path)
    cli_main(
        [
            "fit",
            "--config",
            str(REPO / "experiments/trainer/default.yaml"),
            "--config",
            str(REPO / "experiments/data/mosi_pickle.yaml"),
            "--config",
            str(REPO / "experiments/methods/late_fusion.yaml"),
            f"--data.init_args.path={mosi_pickle}",
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
        ]
    )
    import pandas as pd

    rows = pd.read_csv(tmp_path / "results.csv")
    assert {"mae", "corr", "acc2_has0", "acc2_non0", "f1_has0", "f1_non0"} <= set(rows["metric"])


# ------------------------------------------------------------------------------ MMSA layouts, Python 2 pickles
MMSA_T = {"text": 6, "audio": 8, "vision": 7}  # unaligned: each modality has its own sequence length


def make_mmsa_fixture(
    path: Path, aligned: bool, protocol: int = pickle.DEFAULT_PROTOCOL, seed: int = 0
) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """MMSA's ``aligned_50.pkl`` / ``unaligned_50.pkl`` layout from real mfeat views (a format fixture, not MOSI).

    Per split: ``raw_text`` and ``id`` (object arrays of ``str``), ``text`` / ``audio`` / ``vision`` ``float32[N, T,
    D]`` zero-padded at the end after ``*_lengths`` real frames (unaligned: ``T`` per modality, ``audio_lengths`` and
    ``vision_lengths`` lists of ``int``; aligned: one ``T``, lengths arrays), ``text_bert`` ``int64[N, 3, T]``,
    ``annotations`` (``str`` array), ``classification_labels`` and ``regression_labels`` ``float32[N]``.

    Returns:
        ``(path, {split: {modality: real frames per sample}})`` (MMSA stores no ``text_lengths``).
    """
    inputs, digits = load_mfeat(DEFAULT_VIEWS)
    rng = np.random.Generator(np.random.PCG64(seed))
    data: dict[str, dict[str, object]] = {}
    real: dict[str, dict[str, np.ndarray]] = {}
    start = 0
    for split, n in (("train", 30), ("valid", 10), ("test", 10)):
        rows = np.arange(start, start + n)
        start += n
        part: dict[str, object] = {}
        real[split] = {}
        for m in ("text", "audio", "vision"):
            T = 5 if aligned else MMSA_T[m]
            lengths = rng.integers(1, T + 1, size=n)
            x = inputs[m][rows]  # [n, D]; mfeat features are never all-zero, so real frames are non-zero
            seq = x[:, None, :] * (1.0 + 0.1 * rng.standard_normal((n, T, 1)))
            seq = np.where(np.arange(T)[None, :, None] < lengths[:, None, None], seq, 0.0).astype(np.float32)
            part[m] = seq
            real[split][m] = lengths
            if m != "text":
                part[f"{m}_lengths"] = lengths if aligned else [int(v) for v in lengths]
        part["raw_text"] = np.array([f"sample {i} says something" for i in rows], dtype=object)
        part["id"] = np.array([f"video{i // 3}$_${i % 3}" for i in rows], dtype=object)
        part["text_bert"] = rng.integers(0, 1000, size=(n, 3, 5 if aligned else MMSA_T["text"]))
        y = np.clip(digits[rows] - 4, -3, 3).astype(np.float32)
        part["regression_labels"] = y
        part["classification_labels"] = (np.sign(y) + 1).astype(np.float32)
        part["annotations"] = np.array(["Negative", "Neutral", "Positive"])[(np.sign(y) + 1).astype(int)]
        data[split] = part
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return path, real


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_mmsa_layout_with_lengths_loads(tmp_path, aligned, protocol):
    path, real = make_mmsa_fixture(tmp_path / "mmsa.pkl", aligned, protocol)
    with open(path, "rb") as f:
        raw = pickle.load(f)  # the test's own file
    dm = FeaturesDataModule(path=str(path), standardize=False)
    assert dm.task is Task.REGRESSION and _splits(dm) == {"train": 30, "val": 10, "test": 10}
    for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        ds = dm._dataset(split)
        np.testing.assert_allclose(ds.target.numpy(), raw[key]["regression_labels"])
        for m in ("text", "audio", "vision"):  # pooled = mean over the first *_lengths frames (reference)
            lengths = real[key][m]
            if m != "text":
                np.testing.assert_array_equal(np.asarray(raw[key][f"{m}_lengths"]), lengths)
            ref = np.stack([s[:n].mean(0) for s, n in zip(raw[key][m], lengths, strict=True)])
            np.testing.assert_allclose(ds.inputs[m].numpy(), ref, rtol=1e-5, atol=1e-6)
    kept = FeaturesDataModule(path=str(path), pool=False)
    T = {m: 5 for m in MMSA_T} if aligned else MMSA_T
    assert kept.input_shapes == {m: (T[m], d) for m, d in (("text", 216), ("audio", 76), ("vision", 47))}
    assert kept.split_hash == FeaturesDataModule(path=str(path), pool=False).split_hash


def _py2_pickle(obj: object) -> bytes:
    """Pickle ``obj`` as Python 2 + numpy 1.x wrote it (protocol 2, ``str`` as BINSTRING, ``numpy.core`` names).

    Handles dicts, ``str``, ``int`` and numeric numpy arrays: the opcodes of numpy's own Python 2 test file
    ``numpy/_core/tests/data/astype_copy.pkl``.
    """
    out = bytearray(pickle.PROTO + b"\x02")

    def string(s: str) -> None:
        raw = s.encode("latin1")
        out.extend((pickle.SHORT_BINSTRING + bytes([len(raw)])) if len(raw) < 256 else pickle.BINSTRING)
        if len(raw) >= 256:
            out.extend(len(raw).to_bytes(4, "little"))
        out.extend(raw)

    def integer(i: int) -> None:
        out.extend(pickle.BININT + int(i).to_bytes(4, "little", signed=True))

    def emit(o: object) -> None:
        if isinstance(o, dict):
            out.extend(pickle.EMPTY_DICT + pickle.MARK)
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(pickle.SETITEMS)
        elif isinstance(o, str):
            string(o)
        elif isinstance(o, int):
            integer(o)
        elif isinstance(o, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            integer(0)
            out.extend(pickle.TUPLE1)
            string("b")
            out.extend(pickle.TUPLE3 + pickle.REDUCE + pickle.MARK)
            integer(1)
            out.extend(pickle.MARK)
            for s in o.shape:
                integer(s)
            out.extend(pickle.TUPLE)
            out.extend(b"cnumpy\ndtype\n")
            string(o.dtype.str[1:])
            integer(0)
            integer(1)
            out.extend(pickle.TUPLE3 + pickle.REDUCE + pickle.MARK)
            integer(3)
            string(o.dtype.str[0])
            out.extend(pickle.NONE * 3)
            integer(-1)
            integer(-1)
            integer(0)
            out.extend(pickle.TUPLE + pickle.BUILD + pickle.NEWFALSE)
            raw = np.ascontiguousarray(o).tobytes()
            out.extend(pickle.BINSTRING + len(raw).to_bytes(4, "little") + raw)
            out.extend(pickle.TUPLE + pickle.BUILD)
        else:
            raise TypeError(type(o))

    emit(obj)
    return bytes(out + pickle.STOP)


def test_python2_latin1_pickle_loads(mosi_pickle, tmp_path):
    with open(mosi_pickle, "rb") as f:
        good = pickle.load(f)
    data = {k: {m: v[m] for m in ("text", "audio", "vision", "labels")} for k, v in good.items()}
    path = tmp_path / "py2.pkl"
    path.write_bytes(_py2_pickle(data))
    with pytest.raises(UnicodeDecodeError):  # the file really needs latin1: raw float bytes are not ASCII
        pickle.loads(path.read_bytes())
    dm = FeaturesDataModule(path=str(path), pool=False, standardize=False)
    ref = FeaturesDataModule(path=str(mosi_pickle), pool=False, standardize=False)
    assert dm.input_shapes == ref.input_shapes
    for split in ("train", "val", "test"):
        for m in dm.modalities:
            torch.testing.assert_close(dm._dataset(split).inputs[m], ref._dataset(split).inputs[m])
        torch.testing.assert_close(dm._dataset(split).target, ref._dataset(split).target)
