"""Fusion maths over per-modality features under a per-sample mask. Pure functions, no parameters.

Layout: ``feats`` is ``[B, M, C, *S]`` (``S`` = spatial dims, none for vectors), ``mask`` is ``bool[B, M]`` with
``True`` = observed. Every kernel is row-wise and selects with ``torch.where`` on the mask, so a masked-out
modality's features never reach the output (no peeking) and a row never depends on another row's mask (sample
independence).

* ``masked_concat``: concatenation with missing modalities' features replaced by zeros (zero filling).
* ``masked_mean`` / ``masked_mean_var``: first (and second) moments over the observed modalities (HeMIS).
* ``drop_modalities``: training-time modality dropout that never leaves a row empty (ModDrop).
* ``fill_weights`` / ``fill_missing``: give a missing modality a weighted mix of the observed modalities'
  features (ShaSpec Eq. 4: the mean; or one chosen observed modality).
* ``fill_inputs``: replace masked-out inputs by fixed per-modality values (mean imputation).

Example:
    >>> import torch
    >>> feats = torch.tensor([[[1.0], [3.0]], [[2.0], [4.0]]])  # [B=2, M=2, C=1]
    >>> mask = torch.tensor([[True, True], [True, False]])
    >>> masked_mean(feats, mask).flatten().tolist()
    [2.0, 2.0]
    >>> masked_concat(feats, mask).tolist()
    [[1.0, 3.0], [2.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "FillRule",
    "broadcast_mask",
    "drop_modalities",
    "fill_inputs",
    "fill_missing",
    "fill_weights",
    "masked_concat",
    "masked_mean",
    "masked_mean_var",
]

FillRule = Literal["mean", "first_available"]
"""How a missing modality is filled from observed ones: the mean (Eq. 4) or one observed modality."""


def broadcast_mask(mask: Tensor, like: Tensor) -> Tensor:
    """``bool[B, M]`` → ``bool[B, M, 1, ..., 1]`` broadcastable against ``like`` ``[B, M, ...]``."""
    return mask.reshape(*mask.shape, *([1] * (like.dim() - 2)))


def masked_concat(feats: Tensor, mask: Tensor) -> Tensor:
    """Concatenate per-modality features with the masked-out ones replaced by zeros.

    Args:
        feats: ``[B, M, C, *S]``.
        mask: ``bool[B, M]``, True = observed.

    Returns:
        ``[B, M·C, *S]`` in canonical modality order.
    """
    return torch.where(broadcast_mask(mask, feats), feats, feats.new_zeros(())).flatten(1, 2)


def masked_mean(feats: Tensor, mask: Tensor) -> Tensor:
    """Mean over the observed modalities: ``[B, M, C, *S]`` → ``[B, C, *S]`` (zeros for a row with none)."""
    keep = broadcast_mask(mask, feats)
    n = keep.sum(1).clamp(min=1).to(feats.dtype)  # [B, 1, ..., 1]
    return torch.where(keep, feats, feats.new_zeros(())).sum(1) / n


def masked_mean_var(feats: Tensor, mask: Tensor) -> Tensor:
    """HeMIS abstraction: first and second moments over the observed modalities.

    The variance is the population variance (``tf.nn.moments`` in the U-HeMIS code), so it is exactly 0 when one
    modality is observed. Both moments are symmetric in the modality axis (permutation-invariant).

    Args:
        feats: ``[B, M, C, *S]``.
        mask: ``bool[B, M]``.

    Returns:
        ``[B, 2·C, *S]``: ``[mean, var]`` concatenated on the channel axis.
    """
    keep = broadcast_mask(mask, feats)
    n = keep.sum(1).clamp(min=1).to(feats.dtype)  # [B, 1, ..., 1]
    zero = feats.new_zeros(())
    mean = torch.where(keep, feats, zero).sum(1) / n  # [B, C, *S]
    var = torch.where(keep, (feats - mean.unsqueeze(1)) ** 2, zero).sum(1) / n  # [B, C, *S]
    return torch.cat([mean, var], dim=1)


def drop_modalities(mask: Tensor, rate: float) -> Tensor:
    """ModDrop: drop each observed modality with probability ``rate``, never leaving a row with none.

    A row whose every observed modality was dropped gets back one of its observed modalities, chosen uniformly.
    Uses the global torch RNG on ``mask.device``; call it only in training.

    Args:
        mask: ``bool[B, M]``.
        rate: drop probability in ``[0, 1]``.

    Returns:
        ``bool[B, M]``, a subset of ``mask`` with at least one True per row (where ``mask`` has one).
    """
    kept = mask & (torch.rand(mask.shape, device=mask.device) >= rate)
    score = torch.rand(mask.shape, device=mask.device).masked_fill(~mask, -1.0)
    rescue = F.one_hot(score.argmax(1), mask.shape[1]).bool() & mask  # one random observed modality per row
    return torch.where(kept.any(1, keepdim=True), kept, rescue)


def fill_weights(mask: Tensor, rule: FillRule, training: bool) -> Tensor:
    """Per-sample weights over modalities used to build a missing modality's feature from observed ones.

    Args:
        mask: ``bool[B, M]``.
        rule: ``"mean"``: ``1/K`` on each of the K observed modalities (ShaSpec Eq. 4); ``"first_available"``:
            one-hot on one observed modality: uniformly random per sample in training, the first in canonical order
            in eval.
        training: whether the module is in training mode.

    Returns:
        ``float[B, M]``, zero on missing modalities, rows summing to 1 (0 for a row with nothing observed).
    """
    observed = mask.float()  # [B, M]
    if rule == "mean":
        return observed / observed.sum(1, keepdim=True).clamp(min=1.0)
    # training: a uniformly random observed modality; eval: argmax returns the first maximal index = first observed
    score = torch.where(mask, torch.rand(mask.shape, device=mask.device), -1.0) if training else observed  # [B, M]
    choice = score.argmax(1)  # [B]
    return F.one_hot(choice, mask.shape[1]).float() * observed


def fill_missing(source: Tensor, kept: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """Keep ``kept`` for observed modalities; give missing ones ``Σ_i weights_i · source_i`` over observed ``i``.

    ShaSpec Eq. 4 with ``source`` = the shared features ``r`` and ``weights = fill_weights(mask, "mean", ...)``.

    Args:
        source: ``[B, M, *F]`` features the fill is built from (missing modalities' entries are never read).
        kept: ``[B, M, *F]`` features of observed modalities (e.g. ``f`` of ShaSpec Eq. 2, or ``source`` itself).
        mask: ``bool[B, M]``.
        weights: ``float[B, M]`` from ``fill_weights``.

    Returns:
        ``[B, M, *F]``.
    """
    keep = broadcast_mask(mask, source)  # [B, M, 1, ..., 1]
    observed = torch.where(keep, source, 0.0)  # missing modalities' features never enter the fill
    w = weights.to(source.dtype).reshape(keep.shape)  # [B, M, 1, ..., 1]
    fill = (w * observed).sum(1, keepdim=True)  # [B, 1, *F]
    return torch.where(keep, kept, fill)


def fill_inputs(
    inputs: Mapping[str, Tensor], mask: Tensor, values: Mapping[str, Tensor], modalities: Sequence[str]
) -> dict[str, Tensor]:
    """Replace each masked-out input by a fixed value (e.g. its training mean).

    Args:
        inputs: ``{name: Tensor[B, *shape]}``.
        mask: ``bool[B, M]``, columns in ``modalities`` order.
        values: ``{name: Tensor}`` broadcastable against one sample ``[*shape]``.
        modalities: canonical order.

    Returns:
        ``{name: Tensor[B, *shape]}``; observed rows unchanged, masked-out rows the constant (never the input).
    """
    out = {}
    for i, m in enumerate(modalities):
        x = inputs[m]
        keep = mask[:, i].reshape(-1, *([1] * (x.dim() - 1)))  # [B, 1, ..., 1]
        out[m] = torch.where(keep, x, values[m].to(x.dtype))
    return out
