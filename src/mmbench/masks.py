"""The mask contract: pattern ids and names, missingness specs and evaluation protocols.

A mask is ``bool[B, M]``; column ``i`` is ``modalities[i]``; ``True`` = observed (DESIGN.md §2).
A *pattern* is the set of observed modalities, identified by ``pattern_id = Σ_i mask[i]·2^i`` (1 … 2^M−1) and
named by the observed modality names joined by ``+`` in canonical order.

Every spec here is a distribution over patterns (i.i.d. per sample). A mask is drawn by inverse-CDF sampling from
one counter-based uniform ``u = h(mask_seed, split, sample_index[, epoch])`` (splitmix64), so it is a pure
function of those values: the same for any number of workers or processes, any batch order and every method.

Importing this module does not import torch (the functions that make tensors import it), so that parsing a sweep
spec's missingness and protocol entries (``mmbench sweep --dry-run``) stays light. Hence no ``from __future__ import
annotations`` here: with postponed annotations jsonargparse resolves a spec class's constructor types by executing
the module's ``TYPE_CHECKING`` block, which imports torch; annotations naming ``Tensor`` are quoted instead.
"""

import hashlib
import math
import zlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from mmbench.schema import ALL

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "ALL",
    "AllPatterns",
    "BernoulliMissing",
    "EvalProtocol",
    "FixedPattern",
    "MaskTable",
    "MissingnessSpec",
    "PatternDistribution",
    "PatternProtocol",
    "PerClassFraction",
    "RateProtocol",
    "ShaSpecCodeSampler",
    "WarmupThen",
    "all_pattern_ids",
    "counter_uniform",
    "pattern_id_from_name",
    "pattern_ids",
    "pattern_mask",
    "pattern_name",
    "zero_fill",
]


# ----------------------------------------------------------------------------------------------------- patterns
def pattern_ids(mask: "Tensor") -> "Tensor":
    """Pattern id of each row: ``Σ_i mask[:, i]·2^i``.

    Args:
        mask: ``bool[B, M]``.

    Returns:
        ``long[B]`` in ``0 … 2^M−1`` (0 only for a row with nothing observed).
    """
    import torch

    weights = 2 ** torch.arange(mask.shape[-1], device=mask.device)  # [M]
    return (mask.long() * weights).sum(-1)


def pattern_mask(pid: int, num_modalities: int) -> "Tensor":
    """``bool[M]`` mask of pattern ``pid``."""
    import torch

    if not 1 <= pid < 2**num_modalities:
        raise ValueError(f"pattern id {pid} is outside 1..{2**num_modalities - 1} for {num_modalities} modalities")
    return torch.tensor([(pid >> i) & 1 == 1 for i in range(num_modalities)], dtype=torch.bool)


def pattern_name(pid: int, modalities: Sequence[str]) -> str:
    """Observed modality names joined by ``+`` in canonical order, e.g. ``"flair+t1ce"``."""
    mask = pattern_mask(pid, len(modalities))
    return "+".join(m for m, on in zip(modalities, mask.tolist(), strict=True) if on)


def pattern_id_from_name(name: str, modalities: Sequence[str]) -> int:
    """Inverse of ``pattern_name``; names may come in any order. Unknown names raise ``ValueError``."""
    parts = [p.strip() for p in name.split("+") if p.strip()]
    unknown = [p for p in parts if p not in modalities]
    if unknown or not parts:
        raise ValueError(
            f"pattern {name!r} names unknown modalities {unknown}; expected names from {list(modalities)} joined by '+'"
        )
    return sum(2 ** modalities.index(p) for p in set(parts))


def all_pattern_ids(num_modalities: int) -> list[int]:
    """Every non-empty pattern id, ordered by number of observed modalities, then id (BraTS table order)."""
    ids = range(1, 2**num_modalities)
    return sorted(ids, key=lambda i: (bin(i).count("1"), i))


def zero_fill(inputs: "Mapping[str, Tensor]", mask: "Tensor", modalities: Sequence[str]) -> "dict[str, Tensor]":
    """Zero the inputs of masked-out modalities so that nothing of them reaches a method.

    Args:
        inputs: ``{name: Tensor[B, ...]}``.
        mask: ``bool[B, M]``.
        modalities: canonical modality order (columns of ``mask``).

    Returns:
        A new dict; each tensor is multiplied by its mask column broadcast over the trailing dims.
    """
    import torch

    out = {}
    for i, name in enumerate(modalities):
        x = inputs[name]
        keep = mask[:, i].reshape(-1, *([1] * (x.dim() - 1)))  # [B, 1, ..., 1]
        out[name] = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return out


# ------------------------------------------------------------------------------------------- counter-based RNG
_U64 = np.uint64


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele et al. 2014), elementwise on ``uint64``."""
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def counter_uniform(seed: int, split: str, index: "np.ndarray | Tensor | Sequence[int]", epoch: int = 0) -> np.ndarray:
    """Uniform numbers in ``[0, 1)`` that are a pure function of ``(seed, split, index, epoch)``.

    Args:
        seed: the mask seed.
        split: split name (``"train"``, ``"val"``, ``"test:rate(0.5)"``, ...); hashed with CRC-32.
        index: ``[N]`` sample indices within the split.
        epoch: epoch counter (0 when masks are fixed across epochs).

    Returns:
        ``float64[N]``.
    """
    import torch

    idx = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64).astype(np.uint64)
    key = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    for part in (zlib.crc32(split.encode()), epoch):
        key = _splitmix64(key ^ _U64(part & 0xFFFFFFFFFFFFFFFF))
    h = _splitmix64(key ^ _splitmix64(idx))
    return (h >> _U64(11)).astype(np.float64) * 2.0**-53


def _patterns_from_uniform(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of pattern ids from ``probs[2^M]`` (index = pattern id) for uniforms ``u[N]``."""
    cdf = np.cumsum(probs)
    pid = np.searchsorted(cdf, u * cdf[-1], side="right")
    return np.minimum(pid, len(probs) - 1)


def _mask_table(pids: np.ndarray, num_modalities: int) -> "Tensor":
    import torch

    bits = (pids[:, None] >> np.arange(num_modalities)[None, :]) & 1  # [N, M]
    return torch.from_numpy(bits.astype(bool))


# ----------------------------------------------------------------------------------------------- train specs
class MissingnessSpec(ABC):
    """A distribution over missing-modality patterns, sampled i.i.d. per sample.

    Subclasses define ``pattern_probs``; ``masks`` turns ``(seed, split, index, epoch)`` into masks. A spec whose
    masks depend on the class labels (``PerClassFraction``) sets ``needs_labels``; the data module then passes the
    labels of the whole split to ``masks``.

    Args:
        resample_each_epoch: draw a new mask for every sample at every epoch (ShaSpec's random modes); the
            default keeps one mask per sample for the whole run (UL4M4's precomputed masks), so a method that
            caches per-sample state (imputations) sees the same data every epoch.
    """

    def __init__(self, resample_each_epoch: bool = False) -> None:
        self.resample_each_epoch = resample_each_epoch

    @property
    def needs_labels(self) -> bool:
        """Whether ``masks`` needs the class labels of the split (``labels=``); default ``False``."""
        return False

    @abstractmethod
    def pattern_probs(self, modalities: Sequence[str]) -> np.ndarray:
        """``float64[2^M]`` probabilities indexed by pattern id (entry 0 = nothing observed)."""

    def validate(self, modalities: Sequence[str]) -> None:
        """Raise ``ValueError`` if the spec cannot produce masks for ``modalities``."""
        probs = self.pattern_probs(modalities)
        if not np.isfinite(probs).all() or probs.sum() <= 0:
            raise ValueError(f"{type(self).__name__} gives no valid pattern for modalities {list(modalities)}")

    def masks(
        self,
        modalities: Sequence[str],
        seed: int,
        split: str,
        index: "Tensor",
        epoch: int = 0,
        labels: np.ndarray | None = None,
    ) -> "Tensor":
        """Masks for the samples ``index`` of ``split``.

        Args:
            modalities: canonical modality names (M of them).
            seed: mask seed.
            split: split name.
            index: ``long[N]`` sample indices within the split.
            epoch: current epoch; ignored unless ``resample_each_epoch``.
            labels: ``int[S]`` class label of every sample of the split (entry ``i`` = sample ``i``); used only by
                specs that set ``needs_labels``.

        Returns:
            ``bool[N, M]``.
        """
        u = counter_uniform(seed, split, index, epoch if self.resample_each_epoch else 0)
        return _mask_table(_patterns_from_uniform(self.pattern_probs(modalities), u), len(modalities))

    def describe(self) -> dict[str, object]:
        """Provenance for result rows: ``train_missing`` (spec name + arguments) and ``train_missing_rate``."""
        return {"train_missing": type(self).__name__, "train_missing_rate": float("nan")}

    def label(self) -> str:
        """Short name of the spec in sweep cell ids (``bernoulli0.5``, ``fixed-image``, ...); default: class name."""
        return type(self).__name__.lower()


def _fmt(x: float) -> str:
    return f"{float(x):g}"


def _check_rate(rate: float, what: str) -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0 or math.isnan(rate):
        raise ValueError(f"{what} must be in [0, 1], got {rate}")
    return rate


class BernoulliMissing(MissingnessSpec):
    """Each modality is missing independently with its rate, conditioned on at least ``min_present`` observed.

    The conditioning is exact (the pattern distribution is renormalised over patterns with enough observed
    modalities), so observed marginals are computable: ``pattern_probs`` gives them.

    Args:
        rate: missing probability, one for all modalities or ``{modality: rate}`` (unlisted modalities: 0).
        min_present: minimum number of observed modalities per sample (1 forbids an empty sample).
        resample_each_epoch: see ``MissingnessSpec``.
    """

    def __init__(
        self, rate: float | dict[str, float] = 0.5, min_present: int = 1, resample_each_epoch: bool = False
    ) -> None:
        super().__init__(resample_each_epoch)
        if isinstance(rate, Mapping):
            self.rate: float | dict[str, float] = {k: _check_rate(v, f"rate[{k!r}]") for k, v in rate.items()}
        else:
            self.rate = _check_rate(rate, "rate")
        if min_present < 0:
            raise ValueError(f"min_present must be >= 0, got {min_present}")
        self.min_present = int(min_present)

    def _rates(self, modalities: Sequence[str]) -> np.ndarray:
        if isinstance(self.rate, dict):
            unknown = sorted(set(self.rate) - set(modalities))
            if unknown:
                raise ValueError(f"rate names unknown modalities {unknown}; expected some of {list(modalities)}")
            return np.array([self.rate.get(m, 0.0) for m in modalities])
        return np.full(len(modalities), self.rate)

    def pattern_probs(self, modalities: Sequence[str]) -> np.ndarray:  # noqa: D102
        M = len(modalities)
        if self.min_present > M:
            raise ValueError(f"min_present={self.min_present} cannot be met with {M} modalities {list(modalities)}")
        q = 1.0 - self._rates(modalities)  # observed probability per modality, [M]
        bits = (np.arange(2**M)[:, None] >> np.arange(M)[None, :]) & 1  # [2^M, M]
        probs = np.prod(np.where(bits == 1, q, 1.0 - q), axis=1)
        probs[bits.sum(1) < self.min_present] = 0.0
        if probs.sum() <= 0:
            raise ValueError(
                f"BernoulliMissing(rate={self.rate}, min_present={self.min_present}) cannot leave "
                f"{self.min_present} modality(ies) observed: every such pattern has probability 0"
            )
        return probs / probs.sum()

    def describe(self) -> dict[str, object]:  # noqa: D102
        rate = self.rate if isinstance(self.rate, float) else float("nan")
        return {"train_missing": f"bernoulli(min_present={self.min_present})", "train_missing_rate": rate}

    def label(self) -> str:  # noqa: D102
        if isinstance(self.rate, dict):
            body = "-".join(f"{k}{_fmt(v)}" for k, v in sorted(self.rate.items()))
            label = f"bernoulli-{body}"
        else:
            label = f"bernoulli{_fmt(self.rate)}"
        return label + (f"-min{self.min_present}" if self.min_present != 1 else "")


class FixedPattern(MissingnessSpec):
    """Every sample observes exactly ``observed`` (dedicated training, or a fixed evaluation pattern).

    Args:
        observed: names of the observed modalities.
    """

    def __init__(self, observed: list[str]) -> None:
        super().__init__(False)
        if not observed:
            raise ValueError("FixedPattern needs at least one observed modality")
        self.observed = list(observed)

    def pattern_probs(self, modalities: Sequence[str]) -> np.ndarray:  # noqa: D102
        probs = np.zeros(2 ** len(modalities))
        probs[pattern_id_from_name("+".join(self.observed), modalities)] = 1.0
        return probs

    def describe(self) -> dict[str, object]:  # noqa: D102
        return {"train_missing": f"fixed({'+'.join(self.observed)})", "train_missing_rate": float("nan")}

    def label(self) -> str:  # noqa: D102
        return "fixed-" + "+".join(self.observed)


class PatternDistribution(MissingnessSpec):
    """A given distribution over patterns, e.g. ``{"image": 0.3, "audio": 0.2, "image+audio": 0.5}``.

    Args:
        weights: pattern name → non-negative weight (normalised to sum to 1).
        resample_each_epoch: see ``MissingnessSpec``.
    """

    def __init__(self, weights: dict[str, float], resample_each_epoch: bool = False) -> None:
        super().__init__(resample_each_epoch)
        if not weights or any(float(w) < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"PatternDistribution weights must be non-negative and sum > 0, got {weights}")
        self.weights = {k: float(v) for k, v in weights.items()}

    def pattern_probs(self, modalities: Sequence[str]) -> np.ndarray:  # noqa: D102
        probs = np.zeros(2 ** len(modalities))
        for name, w in self.weights.items():
            probs[pattern_id_from_name(name, modalities)] += w
        return probs / probs.sum()

    def describe(self) -> dict[str, object]:  # noqa: D102
        body = ",".join(f"{k}:{v:g}" for k, v in self.weights.items())
        return {"train_missing": f"patterns({body})", "train_missing_rate": float("nan")}

    def label(self) -> str:  # noqa: D102
        return "patterns"


class ShaSpecCodeSampler(MissingnessSpec):
    """The official ShaSpec code's random mode: ``k ~ U{1..M}``, then a uniform subset of ``k`` modalities.

    ``P(pattern) = 1/M · 1/C(M, k)``: the full set has probability ``1/M`` (ShaSpec ``train_SS.py``, mode
    ``'random'``; reference notes §4).

    Args:
        resample_each_epoch: the official code draws a new pattern every step; default True here.
    """

    def __init__(self, resample_each_epoch: bool = True) -> None:
        super().__init__(resample_each_epoch)

    def pattern_probs(self, modalities: Sequence[str]) -> np.ndarray:  # noqa: D102
        M = len(modalities)
        probs = np.zeros(2**M)
        for k in range(1, M + 1):
            for subset in combinations(range(M), k):
                probs[sum(2**i for i in subset)] = 1.0 / M / math.comb(M, k)
        return probs

    def describe(self) -> dict[str, object]:  # noqa: D102
        return {"train_missing": "shaspec_code", "train_missing_rate": float("nan")}

    def label(self) -> str:  # noqa: D102
        return "shaspec-code"


class WarmupThen(MissingnessSpec):
    """Full modality for the first ``warmup_epochs`` epochs, then ``then``.

    Args:
        warmup_epochs: number of full-modality epochs (E).
        then: the spec used from epoch E on.
    """

    def __init__(self, warmup_epochs: int, then: MissingnessSpec) -> None:
        super().__init__(True)
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.warmup_epochs = int(warmup_epochs)
        self.then = then

    def pattern_probs(self, modalities: Sequence[str]) -> np.ndarray:  # noqa: D102
        return self.then.pattern_probs(modalities)

    @property
    def needs_labels(self) -> bool:  # noqa: D102
        return self.then.needs_labels

    def masks(  # noqa: D102
        self,
        modalities: Sequence[str],
        seed: int,
        split: str,
        index: "Tensor",
        epoch: int = 0,
        labels: np.ndarray | None = None,
    ) -> "Tensor":
        import torch

        if split == "train" and epoch < self.warmup_epochs:
            return torch.ones(len(index), len(modalities), dtype=torch.bool)
        return self.then.masks(modalities, seed, split, index, max(epoch - self.warmup_epochs, 0), labels=labels)

    def describe(self) -> dict[str, object]:  # noqa: D102
        inner = self.then.describe()
        return {**inner, "train_missing": f"warmup({self.warmup_epochs})+{inner['train_missing']}"}

    def label(self) -> str:  # noqa: D102
        return f"warmup{self.warmup_epochs}-{self.then.label()}"


class PerClassFraction(MissingnessSpec):
    """SMIL's training missingness: a fixed share of each class's training samples observe ``modality``.

    Exactly ``k_c = floor(fraction·n_c + 0.5)`` training samples of class ``c`` observe ``modality``; every other
    modality is always observed.

    Which samples observe it is a pure function of ``(mask_seed, labels)``: within each class, the ``k_c`` samples
    with the smallest counter-based uniforms ``u(mask_seed, "train:per_class_fraction", index)``. The choice needs
    the labels of the whole training split (``needs_labels``: the data module passes them to ``masks``).
    Samples of any other split observe every modality except ``modality`` (SMIL/ShaSpec evaluate image-only).
    ``pattern_probs`` gives the marginal (``fraction`` of samples with all modalities).

    Args:
        modality: the partially observed modality (``"audio"`` in SMIL).
        fraction: share of each class's training samples that observe it, in ``[0, 1]``.
    """

    def __init__(self, modality: str = "audio", fraction: float = 0.2) -> None:
        super().__init__(False)
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        self.modality = modality
        self.fraction = fraction
        self._cache: tuple[tuple[object, ...], Tensor] | None = None

    @property
    def needs_labels(self) -> bool:  # noqa: D102
        return True

    def _column(self, modalities: Sequence[str]) -> int:
        if self.modality not in modalities:
            raise ValueError(f"PerClassFraction modality {self.modality!r} is not one of {list(modalities)}")
        if len(modalities) < 2:
            raise ValueError("PerClassFraction needs at least one other, always observed, modality")
        return list(modalities).index(self.modality)

    def pattern_probs(self, modalities: Sequence[str]) -> np.ndarray:  # noqa: D102
        j = self._column(modalities)
        full = 2 ** len(modalities) - 1
        probs = np.zeros(full + 1)
        probs[full] = self.fraction
        probs[full - 2**j] += 1.0 - self.fraction
        return probs

    def count(self, n: int) -> int:
        """Samples that observe ``modality`` in a class of ``n`` training samples (round half up)."""
        return min(n, math.floor(self.fraction * n + 0.5))

    def class_masks(self, labels: np.ndarray, modalities: Sequence[str], seed: int) -> "Tensor":
        """Training masks ``bool[N, M]`` for samples with ``labels`` ``int[N]`` (sample ``i`` = row ``i``)."""
        import torch

        j = self._column(modalities)
        labels = np.asarray(labels)
        mask = np.ones((len(labels), len(modalities)), dtype=bool)
        mask[:, j] = False
        u = counter_uniform(seed, "train:per_class_fraction", np.arange(len(labels)))
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            chosen = members[np.argsort(u[members], kind="stable")[: self.count(len(members))]]
            mask[chosen, j] = True
        return torch.from_numpy(mask)

    def eval_masks(self, modalities: Sequence[str], n: int) -> "Tensor":
        """``bool[n, M]``: every modality except ``modality``."""
        import torch

        mask = torch.ones(n, len(modalities), dtype=torch.bool)
        mask[:, self._column(modalities)] = False
        return mask

    def masks(  # noqa: D102
        self,
        modalities: Sequence[str],
        seed: int,
        split: str,
        index: "Tensor",
        epoch: int = 0,
        labels: np.ndarray | None = None,
    ) -> "Tensor":
        if split != "train":
            return self.eval_masks(modalities, len(index))
        if labels is None:
            raise ValueError(
                "PerClassFraction needs class labels to draw masks: pass labels= (the training split's labels; "
                "MultimodalDataModule.masks_for does)"
            )
        labels = np.asarray(labels)
        key = (seed, tuple(modalities), hashlib.sha256(labels.astype("<i8").tobytes()).digest())
        if self._cache is None or self._cache[0] != key:  # one table per (seed, labels): masks_for runs per batch
            self._cache = (key, self.class_masks(labels, modalities, seed))
        return self._cache[1][index.cpu().long()]

    def describe(self) -> dict[str, object]:  # noqa: D102
        return {
            "train_missing": f"per_class_fraction({self.modality}={self.fraction:g})",
            "train_missing_rate": 1.0 - self.fraction,
        }


# ----------------------------------------------------------------------------------------- evaluation protocols
@dataclass(frozen=True)
class MaskTable:
    """The evaluation masks of one protocol on one split.

    Attributes:
        protocol: protocol name (``"all_patterns"``, ``"rate(0.5)"``).
        modalities: canonical modality order.
        sample_index: ``long[R]`` sample of each row.
        mask: ``bool[R, M]`` mask of each row.
    """

    protocol: str
    modalities: tuple[str, ...]
    sample_index: "Tensor"
    mask: "Tensor"

    @property
    def hash(self) -> str:
        """Stable ``sha256:<16 hex>`` of protocol, modalities, rows and masks (independent of process/platform)."""
        import torch

        h = hashlib.sha256()
        h.update(f"{self.protocol}|{','.join(self.modalities)}|".encode())
        h.update(self.sample_index.to(torch.int64).numpy().astype("<i8").tobytes())
        h.update(self.mask.to(torch.uint8).numpy().tobytes())
        return "sha256:" + h.hexdigest()[:16]

    def __len__(self) -> int:
        return int(self.sample_index.numel())


class EvalProtocol(ABC):
    """How test samples are masked for evaluation."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Protocol name used in metric keys and result rows."""

    @abstractmethod
    def table(self, modalities: Sequence[str], num_samples: int, seed: int, split: str = "test") -> MaskTable:
        """The mask table for ``num_samples`` samples of ``split``."""


class AllPatterns(EvalProtocol):
    """Every sample under each of the ``2^M − 1`` patterns (the BraTS 15-combination protocol)."""

    @property
    def name(self) -> str:  # noqa: D102
        return "all_patterns"

    def table(self, modalities: Sequence[str], num_samples: int, seed: int, split: str = "test") -> MaskTable:  # noqa: D102
        import torch

        M = len(modalities)
        pids = all_pattern_ids(M)
        sample_index = torch.arange(num_samples).repeat(len(pids))  # [P·N], pattern-major
        masks = torch.stack([pattern_mask(p, M) for p in pids])  # [P, M]
        mask = masks.repeat_interleave(num_samples, dim=0)  # [P·N, M]
        return MaskTable(self.name, tuple(modalities), sample_index, mask)


class RateProtocol(EvalProtocol):
    """Each sample once, each modality missing with probability ``rate`` (at least ``min_present`` observed).

    Args:
        rate: missing probability per modality.
        min_present: minimum number of observed modalities.
    """

    def __init__(self, rate: float, min_present: int = 1) -> None:
        self.rate = _check_rate(rate, "rate")
        self.min_present = min_present
        self._spec = BernoulliMissing(rate, min_present)

    @property
    def name(self) -> str:  # noqa: D102
        return f"rate({self.rate:g})"

    def table(self, modalities: Sequence[str], num_samples: int, seed: int, split: str = "test") -> MaskTable:  # noqa: D102
        import torch

        index = torch.arange(num_samples)
        mask = self._spec.masks(modalities, seed, f"{split}:{self.name}", index)
        return MaskTable(self.name, tuple(modalities), index, mask)


class PatternProtocol(EvalProtocol):
    """Every test sample once, all under one pattern (e.g. ShaSpec Table 3's image-only test).

    Args:
        observed: names of the observed modalities.
    """

    def __init__(self, observed: list[str]) -> None:
        if not observed:
            raise ValueError("PatternProtocol needs at least one observed modality")
        self.observed = list(observed)

    @property
    def name(self) -> str:  # noqa: D102
        return f"pattern({'+'.join(self.observed)})"

    def table(self, modalities: Sequence[str], num_samples: int, seed: int, split: str = "test") -> MaskTable:  # noqa: D102
        import torch

        row = pattern_mask(pattern_id_from_name("+".join(self.observed), modalities), len(modalities))  # [M]
        mask = row.unsqueeze(0).repeat(num_samples, 1)  # [N, M]
        return MaskTable(self.name, tuple(modalities), torch.arange(num_samples), mask)
