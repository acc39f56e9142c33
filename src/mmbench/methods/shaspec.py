"""ShaSpec: shared-specific feature modelling for missing modalities (Wang et al., CVPR 2023, arXiv 2307.14126).

Equation numbers follow ``reference/shaspec.md`` §2 (the paper numbers them 1-9). M modalities, mask ``bool[B, M]``.

* (1) ``r_i = f_sha(x_i)`` with **one shared encoder** applied to every modality; ``s_i = f_spec_i(x_i)`` with one
  specific encoder per modality.
* (2) ``f_i = r_i + proj([r_i ; s_i])``: residual fusion, **one projection shared by all modalities**.
* (3) ``y = dec(f_1, …, f_M)``: the head (vector tasks) or U-Net decoder (segmentation) reads the M fused
  features **concatenated** in canonical modality order.
* (4) a missing modality n gets ``f_n = (1/K) Σ_{i observed} r_i``, the mean of the *shared* features of the
  K observed modalities of that sample (no projection, no specific part). Computed per sample from the mask with
  ``torch.where`` and mask weights; there is no Python branching on mask values.
* (5) DCO: a linear classifier predicts the modality id from the (spatially pooled) specific feature ``s_i``; CE.
* (6)-(8) DAO, chosen by ``dao``: ``"l1"`` (default, the BraTS choice) and ``"mse"`` compare shared features of
  modality pairs elementwise; ``"kl"`` is ``KL(p_a ‖ p_c)`` with ``p = softmax(Linear(pool(r)))`` projected to
  ``dao_dim``; ``"ce"`` is cross-entropy between ``softmax(Linear(pool(r)))`` over the M modality ids and the
  uniform distribution (not adversarial: the classifier minimises it too, as in the paper).
* (9) ``loss = task + alpha·DAO + beta·DCO`` with ``alpha = 0.1``, ``beta = 0.02``.

Paper rules (defaults): DAO and DCO use observed modalities only (a DAO pair counts when both ends are observed);
the pairwise DAOs compare **every pair of the sample's observed modalities** (``dao_pairs="all"``: Eq. 8's
"pairwise feature similarity" over the observed modalities, so every sample with >= 2 observed modalities
contributes); each objective is **summed over a sample's counted terms and averaged over the batch**
(``dao_reduction = dco_reduction = "batch"``: Eqs. 5 and 8 are sums over modalities / pairs, per sample), so the
weight of one sample's auxiliary terms is ``alpha / B`` whatever the other samples observe. The task loss always
uses Eq. (4) features.

Official-code switches (``billhhh/ShaSpec@081fe7a``, reference §4), each a constructor argument and recorded by
``variant()`` in the ``method_variant`` result column:

* ``missing_fill="first_available"``: ``f_n`` is one observed modality's shared feature (DualNet_SS.py:411). In
  ``--mode=random`` training the official "first" entry is a uniformly random observed modality
  (``random.sample`` order), so in training we draw one uniformly per sample; in evaluation it is the first
  observed modality in canonical order (``--mode=a,b`` lists modalities in order). Deterministic in eval and per
  sample, so neither no-peeking nor sample independence is affected.
* ``aux_on_missing=True``: DAO and DCO also include missing modalities, whose features are the encoders' responses
  to the zero-filled input (train_SS.py:285-299).
* ``missing_skips="zero_input"`` (segmentation): a missing modality's decoder skips are the shared encoder's
  activations on a zero volume (the official code zeroes the channel and encodes it). The default
  ``"masked_mean"`` fills each skip level with the same rule as the bottleneck (Eq. 4 mean, or the same chosen
  modality under ``first_available``).
* ``dao_pairs="cyclic"``: only the pairs ``(i, i+1 mod M)`` (train_SS.py:285-290). With per-sample masking a sample
  observing ``flair+t1ce`` or ``t1+t2`` then has no counted pair (DAO 0) and a triple counts 2 of its 3 pairs.
* ``dao_reduction="batch"`` (default) vs ``"counted"``: ``"counted"`` divides by the number of counted
  (sample, pair) entries, the previous mmbench reduction; then a counted row weighs ``alpha / #counted``, which
  grows as fewer rows are counted (at 5 % audio on Table 3 about 2.1 instead of 0.1 per sample). The official L1 DAO
  (``nn.L1Loss`` per pair, *summed* over the 4 cyclic pairs) is ``"batch"`` with ``aux_on_missing=True``.
* ``dco_reduction``: ``"batch"`` (default, Eq. 5 summed over a sample's modalities) or ``"counted"`` (mean over the
  counted (sample, modality) rows: the official ``CrossEntropyLoss`` over its 4·N rows).
* ``seg_loss="official"`` (segmentation): the code's task loss, soft Dice *without* numerator smoothing,
  ``1 − 2Σpg / (Σp + Σg + 1)`` averaged over samples and channels, plus ``BCEWithLogits`` (mean over voxels)
  *summed* over the 3 channels (loss_Dual.py). The default ``"harness"`` is ``task_loss``, the loss every mmbench
  segmentation method uses (smoothed Dice + channel-mean BCE); the paper names only "Dice loss".
* ``sw_blend="probabilities"`` (segmentation, with ``sw_mode="constant"``, ``sw_overlap=1/3`` for the code's
  ``eval.py``): windows are blended as sigmoid probabilities and returned as ``logit(p)``; the default
  ``"logits"`` blends logits.
* ``init="torch"``: PyTorch's default layer initialisation. The default ``"kaiming"`` is He-normal (fan_in, ReLU
  gain) with zero biases for every ``Linear``/``Conv`` of the method, as the official code initialises its convs
  (Kaiming-normal). Under PyTorch's default the vector path (stem, shared MLP, projection, 2-layer head) shrinks
  the signal so far that the loss gradient reaching the encoders is smaller than an L2 weight-decay term, and
  Adam with ``weight_decay=1e-2`` (the Table 3 optimiser) erases the encoders in two epochs (docs/reproduction.md §2).

Official-code preset (everything the code does that changes numbers): ``missing_fill=first_available
aux_on_missing=true dao_pairs=cyclic dao_reduction=batch dco_reduction=counted seg_loss=official
missing_skips=zero_input sw_mode=constant sw_overlap=0.3333 sw_blend=probabilities``.

Masked-out inputs are replaced by zeros before any encoder sees them, so nothing of them is ever read; as in the
official code, all 1 + M encoders run on every sample whatever is missing.

Architectures (all without BatchNorm, so rows never interact):

* **Vector tasks** (multiclass / multilabel / regression; AV-MNIST, feature vectors). Heterogeneous inputs cannot
  share an encoder as they are, so (our design, following the author's "align the dimension first", issue #15)
  a per-modality **stem** (``make_encoder``: LeNet-style convs for ``(C, H, W)`` images, 1-D convs for ``(T, F)``
  MFCC sequences, an MLP for ``(D,)`` vectors) maps each input to a common ``[stem_dim]`` vector; the shared
  encoder and the specific encoders are MLPs ``stem_dim → feature_dim`` on that vector, ``proj`` is a
  ``Linear(2F, F)``, and the head is two FC layers with dropout (paper §4: "2 FC layers with dropout").
* **Segmentation** (``(1, D, H, W)`` per modality, 3 sigmoid region channels): 3-D U-Net encoders
  (``mmbench.nn.unet3d``, InstanceNorm, residual blocks) for the shared and each specific encoder; fusion at the
  bottleneck with ``proj`` a 3³ conv ``2C → C`` without bias (as the official ``CompositionalLayer``); the decoder
  adds the 1×1-projected concatenation of the M shared skips at each level; Dice + BCE from ``task_loss``.
  Evaluation uses Gaussian sliding windows of ``roi_size``. Inputs whose sizes are not multiples of
  ``2^(L−1)`` are zero-padded at the far end and the logits cropped back.

Deviations from the paper and the official code (see also the notes in ``reference/shaspec.md`` §10):

* Segmentation backbone: a configurable 3-D U-Net, not ResNet-50-3D + ASPP; no weight standardisation; the
  decoder has no final ×(1,2,2) upsampling. Small CPU default ``seg_widths=(8, 16, 32, 64)``; a paper-scale
  preset is ``seg_widths=PAPER_SEG_WIDTHS`` with ``roi_size=PAPER_ROI_SIZE`` (80×160×160, bottleneck 256×5×10×10).
* DCO sees the pooled fused-in specific feature ``s`` (paper); the code uses the pooled pre-ASPP feature.
* The code's channel order is [ET, WT, TC]; mmbench's data modules use ET/TC/WT (the losses are symmetric in
  the channels, so this changes nothing but the order).
* DAO pairs: ``"all"`` = every unordered pair (default); ``"cyclic"`` = ``(i, i+1 mod M)`` as in the code (for
  M = 2 both are the single pair).

Example:
    >>> import torch
    >>> model = ShaSpec(["image", "audio"], {"image": (1, 28, 28), "audio": (32, 13)}, "multiclass", 10)
    >>> x = {"image": torch.rand(3, 1, 28, 28), "audio": torch.randn(3, 32, 13)}
    >>> mask = torch.tensor([[True, True], [True, False], [False, True]])
    >>> out = model(x, mask)
    >>> tuple(out.logits.shape), tuple(out.aux["fused"].shape)
    ((3, 10), (3, 2, 128))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmbench.functional.fusion import FillRule, fill_missing, fill_weights
from mmbench.functional.sliding_window import sliding_window_inference
from mmbench.masks import zero_fill
from mmbench.methods.base import MissingModalityMethod, task_loss
from mmbench.registry import METHODS
from mmbench.types import Batch, MethodOutput

__all__ = [
    "PAPER_ROI_SIZE",
    "PAPER_SEG_WIDTHS",
    "AuxReduction",
    "DAOPairs",
    "DAOType",
    "InitName",
    "MissingFill",
    "SWBlend",
    "SegLoss",
    "ShaSpec",
    "SkipFill",
    "dao_loss",
    "dco_loss",
    "modality_pairs",
    "official_seg_loss",
]

DAOType = Literal["l1", "mse", "kl", "ce"]
"""Distribution alignment objective: L1 / MSE pairwise (Eq. 8, p-norm), KL pairwise (Eq. 7), CE to uniform (Eq. 6)."""
MissingFill = FillRule
"""Eq. (4) mean of the observed shared features (paper) or one observed modality's shared feature (code)."""
SkipFill = Literal["masked_mean", "zero_input"]
"""Segmentation skips of a missing modality: filled like the bottleneck, or the shared encoder's zero response."""
DAOPairs = Literal["all", "cyclic"]
"""Which modality pairs the pairwise DAOs compare: every pair (paper) or the cyclic neighbours (code)."""
AuxReduction = Literal["batch", "counted"]
"""Sum over a sample's counted terms, mean over the batch (paper) / mean over the counted entries."""
SegLoss = Literal["harness", "official"]
"""Segmentation task loss: the harness's ``task_loss`` or the official Dice (no numerator smoothing) + summed BCE."""
SWBlend = Literal["logits", "probabilities"]
"""What overlapping sliding windows average: logits, or sigmoid probabilities (official ``eval.py``)."""
InitName = Literal["kaiming", "torch"]
"""Layer initialisation: He-normal as the official code, or PyTorch's defaults."""

PAPER_SEG_WIDTHS = (32, 64, 128, 256, 256)
"""Paper-scale U-Net widths: a 256-channel bottleneck like the official ASPP output; 66.8 M parameters for M = 4
(the official ResNet-50 + ASPP model has 187.7 M). The small default ``(8, 16, 32, 64)`` has 2.2 M."""
PAPER_ROI_SIZE = (80, 160, 160)
"""The official training patch and sliding-window tile (D, H, W)."""


def _check_choice(name: str, value: str, options: Any) -> Any:
    allowed = get_args(options)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------ pure kernels
def modality_pairs(num_modalities: int, which: DAOPairs = "all") -> list[tuple[int, int]]:
    """Modality index pairs of the pairwise DAO terms.

    ``"cyclic"``: ``(0,1), (1,2), …, (M−1,0)`` (train_SS.py:285-290; the single pair ``(0,1)`` for M = 2);
    ``"all"``: every unordered pair. Empty for M = 1.
    """
    if num_modalities < 2:
        return []
    if which == "all" or num_modalities == 2:
        return list(combinations(range(num_modalities), 2))
    return [(i, (i + 1) % num_modalities) for i in range(num_modalities)]


def _reduce(terms: Tensor, counted: Tensor, reduction: AuxReduction) -> Tensor:
    """Reduce per-(sample, term) values ``[B, T]`` over the ``counted`` entries to a scalar.

    ``"batch"``: ``(1/B) Σ_b Σ_{t counted} terms[b, t]`` (each sample's terms summed, then the batch mean);
    ``"counted"``: the mean over the counted entries (0 when none).
    """
    kept = torch.where(counted, terms, 0.0)
    if reduction == "batch":
        return kept.sum() / max(terms.shape[0], 1)
    return kept.sum() / counted.sum().clamp(min=1)


def official_seg_loss(logits: Tensor, target: Tensor) -> Tensor:
    """The official ShaSpec task loss (loss_Dual.py): unsmoothed-numerator soft Dice + BCE summed over channels.

    ``dice = 1 − 2Σ(p·g) / (Σp + Σg + 1)`` per sample and channel (``p = sigmoid(logits)``, sums over voxels),
    averaged over samples and channels; plus ``Σ_c BCEWithLogits(logits_c, g_c)`` (each the mean over samples and
    voxels).

    Args:
        logits: ``[B, C, *S]``.
        target: ``[B, C, *S]`` in {0, 1}.

    Returns:
        Scalar.
    """
    target = target.float()
    prob = torch.sigmoid(logits)
    dims = tuple(range(2, logits.dim()))
    dice = 1 - 2 * (prob * target).sum(dims) / (prob.sum(dims) + target.sum(dims) + 1.0)  # [B, C]
    bce = sum(F.binary_cross_entropy_with_logits(logits[:, c], target[:, c]) for c in range(logits.shape[1]))
    return dice.mean() + torch.as_tensor(bce)


def dao_loss(
    kind: DAOType,
    shared: Tensor,
    counted: Tensor,
    pairs: Sequence[tuple[int, int]],
    dao_logits: Tensor | None = None,
    reduction: AuxReduction = "batch",
) -> Tensor:
    """Distribution alignment objective (Eqs. 6-8) over the counted terms.

    Args:
        kind: ``"l1"``, ``"mse"`` (mean over feature elements of ``|r_a − r_c|`` or ``(r_a − r_c)²`` per sample and
            pair), ``"kl"`` (``KL(p_a ‖ p_c)``, ``p = softmax(dao_logits)``), ``"ce"`` (``−mean_k log q_k`` per sample
            and modality, ``q = softmax(dao_logits)`` over M modality ids: CE to the uniform distribution).
        shared: ``[B, M, *F]`` shared features.
        counted: ``bool[B, M]`` modalities whose terms count (the mask, or all True).
        pairs: modality pairs for the pairwise kinds.
        dao_logits: ``[B, M, K]`` for ``"kl"`` (K = ``dao_dim``) and ``"ce"`` (K = M).
        reduction: ``"batch"`` (sum over a sample's counted pairs / modalities, mean over the batch) or
            ``"counted"`` (mean over the counted entries).

    Returns:
        Scalar.
    """
    if kind in ("kl", "ce") and dao_logits is None:
        raise ValueError(f"dao={kind!r} needs dao_logits")
    if kind == "ce":
        assert dao_logits is not None
        terms = -dao_logits.log_softmax(-1).mean(-1)  # [B, M]: −Σ_k (1/M) log q_k
        return _reduce(terms, counted, reduction)
    if not pairs:
        return shared.sum() * 0.0
    a = torch.tensor([p[0] for p in pairs], device=shared.device)
    c = torch.tensor([p[1] for p in pairs], device=shared.device)
    both = counted[:, a] & counted[:, c]  # [B, P]
    if kind == "kl":
        assert dao_logits is not None
        logp = dao_logits.log_softmax(-1)  # [B, M, K]
        terms = (logp[:, a].exp() * (logp[:, a] - logp[:, c])).sum(-1)  # [B, P]
    else:
        diff = shared[:, a] - shared[:, c]  # [B, P, *F]
        elementwise = diff.abs() if kind == "l1" else diff.square()
        terms = elementwise.flatten(2).mean(-1)  # [B, P]
    return _reduce(terms, both, reduction)


def dco_loss(dco_logits: Tensor, counted: Tensor, reduction: AuxReduction = "batch") -> Tensor:
    """Domain classification objective (Eq. 5): CE of modality-id logits against the true id, over counted terms.

    Args:
        dco_logits: ``[B, M, M]``: row ``(b, i)`` classifies the specific feature of modality ``i`` of sample b.
        counted: ``bool[B, M]``.
        reduction: ``"batch"`` (sum over a sample's counted modalities, mean over the batch) or ``"counted"``.

    Returns:
        Scalar.
    """
    B, M = counted.shape
    target = torch.arange(M, device=dco_logits.device).expand(B, M)  # [B, M]
    ce = F.cross_entropy(dco_logits.flatten(0, 1), target.flatten(), reduction="none").reshape(B, M)
    return _reduce(ce, counted, reduction)


def _pool(x: Tensor) -> Tensor:
    """``[B, M, C, *S]`` → ``[B, M, C]`` (global average over spatial dims; identity for vectors)."""
    return x.flatten(3).mean(-1) if x.dim() > 3 else x


# ----------------------------------------------------------------------------------------------- the method
@METHODS.register("shaspec")
class ShaSpec(MissingModalityMethod):
    """ShaSpec (Wang et al., CVPR 2023): see the module docstring for the equations, switches and deviations.

    Encoders and decoders come from the task's backbone (``mmbench.nn.backbones``): vector tasks get per-modality
    stems to ``stem_dim`` and MLP shared/specific encoders of width ``feature_dim``; segmentation gets 3-D U-Net
    encoders of ``seg_widths`` on the volumes directly. The method itself is Eqs. 1-9.

    Args:
        dao: DAO type, ``"l1"`` (default), ``"mse"``, ``"kl"`` or ``"ce"``.
        alpha: DAO weight (0.1).
        beta: DCO weight (0.02).
        missing_fill: ``"mean"`` (Eq. 4, default) or ``"first_available"`` (official code).
        aux_on_missing: include missing modalities in DAO/DCO (official code); default False (paper).
        missing_skips: segmentation skips of missing modalities, ``"masked_mean"`` (default) or ``"zero_input"``.
        dao_pairs: ``"all"`` (default, every pair of observed modalities) or ``"cyclic"`` (official code).
        dao_reduction: ``"batch"`` (default, paper) or ``"counted"`` (previous mmbench mean over counted entries).
        dco_reduction: ``"batch"`` (default, paper) or ``"counted"`` (official code's CE mean).
        seg_loss: segmentation task loss, ``"harness"`` (default) or ``"official"``.
        sw_blend: segmentation sliding-window blending of ``"logits"`` (default) or ``"probabilities"`` (code).
        init: ``"kaiming"`` (default, He-normal as the official code) or ``"torch"`` (PyTorch defaults).
        dao_dim: output size of the KL DAO's linear projection (16).
        feature_dim: vector tasks: width F of ``r``, ``s`` and ``f`` (128; 0.27 M parameters on AV-MNIST, the
            paper reports 0.22 M).
        stem_dim: vector tasks: common width of the per-modality stems (128).
        head_hidden: vector tasks: hidden width of the 2-layer head (128).
        dropout: vector tasks: dropout before each head layer (0.2; the paper gives no rate, and 0.5 slows short
            runs markedly).
        seg_widths: segmentation: U-Net channels per level, ``L = len`` levels (``(8, 16, 32, 64)``).
        **kwargs: ``MissingModalityMethod`` arguments: the linked data facts and the sliding-window settings
            (``roi_size``, ``sw_overlap``, ``sw_mode``, ``sw_batch_size``).
    """

    def __init__(
        self,
        *args: Any,
        dao: DAOType = "l1",
        alpha: float = 0.1,
        beta: float = 0.02,
        missing_fill: MissingFill = "mean",
        aux_on_missing: bool = False,
        missing_skips: SkipFill = "masked_mean",
        dao_pairs: DAOPairs = "all",
        dao_reduction: AuxReduction = "batch",
        dco_reduction: AuxReduction = "batch",
        seg_loss: SegLoss = "harness",
        sw_blend: SWBlend = "logits",
        init: InitName = "kaiming",
        dao_dim: int = 16,
        feature_dim: int = 128,
        stem_dim: int = 128,
        head_hidden: int = 128,
        dropout: float = 0.2,
        seg_widths: tuple[int, ...] = (8, 16, 32, 64),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.dao: DAOType = _check_choice("dao", dao, DAOType)
        self.missing_fill: MissingFill = _check_choice("missing_fill", missing_fill, MissingFill)
        self.missing_skips: SkipFill = _check_choice("missing_skips", missing_skips, SkipFill)
        self.dao_pairs: DAOPairs = _check_choice("dao_pairs", dao_pairs, DAOPairs)
        self.dao_reduction: AuxReduction = _check_choice("dao_reduction", dao_reduction, AuxReduction)
        self.dco_reduction: AuxReduction = _check_choice("dco_reduction", dco_reduction, AuxReduction)
        self.seg_loss: SegLoss = _check_choice("seg_loss", seg_loss, SegLoss)
        self.sw_blend: SWBlend = _check_choice("sw_blend", sw_blend, SWBlend)
        self.init: InitName = _check_choice("init", init, InitName)
        self.alpha, self.beta, self.aux_on_missing = float(alpha), float(beta), bool(aux_on_missing)
        self.pairs = modality_pairs(self.num_modalities, self.dao_pairs)
        M = self.num_modalities

        backbone = self.make_backbone(feature_dim, seg_widths)
        stems = {m: backbone.stem(self.input_shapes[m], stem_dim) for m in self.modalities}
        stem_shapes = {shape for _, shape in stems.values()}
        if len(stem_shapes) != 1:
            raise ValueError(
                "ShaSpec's shared encoder needs one input shape for every modality: segmentation needs one "
                f"(C, D, H, W) shape shared by every modality, got {self.input_shapes}"
            )
        self.stems = nn.ModuleDict({m: stem for m, (stem, _) in stems.items()})  # Eq. 1 inputs (identity: volumes)
        trunk_shape = next(iter(stem_shapes))
        self.shared = backbone.trunk(trunk_shape)  # Eq. 1: ONE shared encoder
        self.specific = nn.ModuleDict({m: backbone.trunk(trunk_shape) for m in self.modalities})  # Eq. 1
        width = backbone.widths[-1]
        self.proj = backbone.mixer(2 * width, width)  # Eq. 2: one projection shared by all modalities
        self.decoder = backbone.decoder(  # Eq. 3: reads the M fused features concatenated, at every level
            [M * w for w in backbone.widths], self.num_classes, hidden=head_hidden, dropout=dropout, act_first=True
        )
        self.dco_head = nn.Linear(width, M)
        dao_out = {"ce": M, "kl": dao_dim}.get(self.dao)
        self.dao_head: nn.Module | None = nn.Linear(width, dao_out) if dao_out is not None else None
        if self.init == "kaiming":
            self._kaiming_init()

    def _kaiming_init(self) -> None:
        """He-normal weights (fan_in, ReLU gain), zero biases, for every Linear / Conv layer (not transposed)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------------------------------- forward
    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:
        """Predict from the observed modalities.

        Args:
            inputs: ``{name: Tensor[B, *input_shapes[name]]}``; masked-out entries are never read.
            mask: ``bool[B, M]``, True = observed.

        Returns:
            ``logits`` ``[B, C]`` (``[B, C, D, H, W]`` for segmentation) and ``aux``: ``shared`` ``r`` and
            ``specific`` ``s`` ``[B, M, *F]``, ``fused`` (the M features fed to the head, missing ones filled by
            Eq. 4) ``[B, M, *F]``, ``dco_logits`` ``[B, M, M]``, ``dao_logits`` ``[B, M, K]`` (KL/CE DAO only);
            segmentation adds ``skip{l}`` ``[B, M, C_l, *S_l]``, the per-modality skips fed to the decoder.
        """
        B, M = mask.shape
        x = zero_fill(inputs, mask, self.modalities)  # masked-out inputs become zeros before any encoder
        weights = fill_weights(mask, self.missing_fill, self.training)  # [B, M], one draw for every level
        u = torch.stack([self.stems[m](x[m]) for m in self.modalities], 1)  # [B, M, *U] (vectors: [B, M, stem_dim])
        u = self.pad_spatial(u)  # volumes: [B, M, C_in, D', H', W'] at the network's multiple
        levels = [t.unflatten(0, (B, M)) for t in self.shared(u.flatten(0, 1))]  # L × [B, M, C_l, *S_l]
        r = levels[-1]  # Eq. 1: [B, M, C, *S]
        s = torch.stack([self.specific[m](u[:, i])[-1] for i, m in enumerate(self.modalities)], 1)  # Eq. 1
        f = r + self.proj(torch.cat([r, s], 2).flatten(0, 1)).unflatten(
            0, (B, M)
        )  # Eq. 2: [B·M, 2C, *S] → [B, M, C, *S]
        fused = fill_missing(r, f, mask, weights)  # Eq. 4: [B, M, C, *S]
        if self.missing_skips == "masked_mean":
            skips = [fill_missing(k, k, mask, weights) for k in levels[:-1]]  # Eq. 4 at every skip level
        else:
            skips = levels[:-1]  # missing modalities keep the shared encoder's response to zeros (official code)
        logits = self.decoder([k.flatten(1, 2) for k in [*skips, fused]])  # Eq. 3: [B, M·C_l, *S_l] → [B, C, *S]
        aux = {f"skip{i}": k for i, k in enumerate(skips)}  # segmentation only (vectors have one level)
        aux.update(shared=r, specific=s, fused=fused, dco_logits=self.dco_head(_pool(s)))  # dco: [B, M, M]
        if self.dao_head is not None:
            aux["dao_logits"] = self.dao_head(_pool(r))  # [B, M, K]
        return MethodOutput(logits=self.crop_spatial(logits, x[self.modalities[0]].shape), aux=aux)

    # ---------------------------------------------------------------------------------------------- loss
    def loss(self, output: MethodOutput, batch: Batch) -> dict[str, Tensor]:
        """``{"loss": task + alpha·dao + beta·dco, "task", "dao", "dco"}`` (Eq. 9)."""
        mask = batch["mask"]
        counted = torch.ones_like(mask) if self.aux_on_missing else mask  # [B, M]
        if self.task.dense and self.seg_loss == "official":
            task = official_seg_loss(output.logits, batch["target"])
        else:
            task = task_loss(output.logits, batch["target"], self.task)
        shared, dao_logits = output.aux["shared"], output.aux.get("dao_logits")
        dao = dao_loss(self.dao, shared, counted, self.pairs, dao_logits, self.dao_reduction)
        dco = dco_loss(output.aux["dco_logits"], counted, self.dco_reduction)
        return {"loss": task + self.alpha * dao + self.beta * dco, "task": task, "dao": dao, "dco": dco}

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {
            "dao": self.dao,
            "alpha": self.alpha,
            "beta": self.beta,
            "missing_fill": self.missing_fill,
            "aux_on_missing": self.aux_on_missing,
            "missing_skips": self.missing_skips,
            "dao_pairs": self.dao_pairs,
            "dao_reduction": self.dao_reduction,
            "dco_reduction": self.dco_reduction,
            "seg_loss": self.seg_loss,
            "sw_blend": self.sw_blend,
            "sw_mode": self.sw_mode,
            "sw_overlap": self.sw_overlap,
            "init": self.init,
        }

    def predict_logits(self, inputs: Mapping[str, Tensor], mask: Tensor) -> Tensor:
        """Evaluation logits; with ``sw_blend="probabilities"`` the windows are averaged as sigmoid probabilities.

        Returns:
            ``[B, C, *S]`` logits; under ``"probabilities"`` ``logit(p)`` of the blended probabilities ``p``
            (clamped to ``[1e-7, 1 − 1e-7]``), so thresholding at 0 equals thresholding ``p`` at 0.5.
        """
        first = self.modalities[0]
        if self.sw_blend == "logits" or not self.task.dense or tuple(inputs[first].shape[2:]) == self.roi_size:
            return super().predict_logits(inputs, mask)
        B = mask.shape[0]
        channels = [inputs[m].shape[1] for m in self.modalities]
        volume = torch.cat([inputs[m] for m in self.modalities], dim=1)  # [B, ΣC_m, D, H, W]

        def predictor(windows: Tensor) -> Tensor:  # [k·B, ΣC_m, *roi] → probabilities [k·B, C_out, *roi]
            parts = dict(zip(self.modalities, windows.split(channels, dim=1), strict=True))
            return torch.sigmoid(self(parts, mask.repeat(windows.shape[0] // B, 1)).logits)

        prob = sliding_window_inference(
            volume, self.roi_size, predictor, self.sw_overlap, self.sw_batch_size, self.sw_mode
        )
        return torch.logit(prob.clamp(1e-7, 1 - 1e-7))
