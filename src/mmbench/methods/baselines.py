"""Reference baselines: the rows every missing-modality table needs.

========================  =====================================================================================
registry name             what it is
========================  =====================================================================================
``zero_fill``             intermediate fusion; a missing modality's *features* are zeros (RFNet's convention)
``mean_fill``             a missing modality's *input* is its training mean (observed entries only); then fusion
``late_fusion``           masked mean of per-modality predictions
``moddrop``               ``zero_fill`` trained with extra random modality dropout (ModDrop, Neverova et al. 2016)
``hemis``                 HeMIS (Havaei et al. 2016): mean and variance of the observed modalities' features
``unimodal``              one modality only; rows without it get learned constant (prior) logits
========================  =====================================================================================

The full-modality "upper bound" is configuration, not code: ``experiments/methods/full_modality.yaml`` trains
``zero_fill`` with ``missingness: null`` (its rows read ``training_regime=full``; test masks still come from the
evaluation protocol).

Every method runs on every task: the backbone (``mmbench.nn.backbones.make_backbone``) gives vector tasks
(multiclass, multilabel, regression) one encoder level per modality and an MLP head, and segmentation 3-D U-Net
encoders (fusion at every level) and one shared decoder. The fusion kernels (``mmbench.functional.fusion``) are
row-wise and select with ``torch.where`` on the mask, so a masked-out input never reaches the output (no peeking)
and a row never depends on another row's mask (sample independence). There is no batch normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from mmbench.functional.fusion import drop_modalities, fill_inputs, masked_concat, masked_mean, masked_mean_var
from mmbench.methods.base import MissingModalityMethod
from mmbench.nn.lenet import LeNet5
from mmbench.registry import METHODS
from mmbench.types import MethodOutput

if TYPE_CHECKING:
    from mmbench.data.base import MultimodalDataModule

__all__ = ["HeMIS", "LateFusion", "MeanFill", "ModDrop", "Unimodal", "ZeroFill"]


def _check_rate(rate: float) -> float:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"drop_rate must be in [0, 1], got {rate}")
    return float(rate)


class _FusionMethod(MissingModalityMethod):
    """Skeleton of the intermediate-fusion baselines: encode each modality, fuse level by level, decode.

    ``forward``: ``x = prepare_inputs(inputs, mask)`` → per modality a list of levels (``Backbone.encoder``) →
    stacked ``[B, M, C_l, *S_l]`` → ``fuse(level, mask)`` ``[B, C'_l, *S_l]`` → ``Backbone.decoder`` → logits.

    Subclasses set ``fused_channels(c)`` (channels of a fused level) and ``fuse``; ``prepare_inputs`` defaults to
    the identity.

    Args:
        hidden_dim: per-modality feature width and head width (vector tasks).
        unet_widths: channels per U-Net level (segmentation).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).
    """

    def __init__(
        self, *args: Any, hidden_dim: int = 64, unet_widths: tuple[int, ...] = (8, 16, 32, 64), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        backbone = self.make_backbone(hidden_dim, unet_widths)
        self.encoders = backbone.encoders(self.input_shapes)
        fused = [self.fused_channels(c) for c in backbone.widths]
        self.decoder = backbone.decoder(fused, self.num_classes, hidden=hidden_dim, act_first=False)

    def fused_channels(self, channels: int) -> int:
        """Channels of a fused level whose per-modality features have ``channels``."""
        raise NotImplementedError

    def fuse(self, feats: Tensor, mask: Tensor) -> Tensor:
        """``[B, M, C, *S]``, ``bool[B, M]`` → ``[B, fused_channels(C), *S]``."""
        raise NotImplementedError

    def prepare_inputs(self, inputs: Mapping[str, Tensor], mask: Tensor) -> Mapping[str, Tensor]:
        """Inputs as the encoders see them (default: unchanged)."""
        return inputs

    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:
        x = self.prepare_inputs(inputs, mask)
        per_modality = [self.encoders[m](self.pad_spatial(x[m])) for m in self.modalities]  # M lists of L levels
        fused = [self.fuse(torch.stack(level, dim=1), mask) for level in zip(*per_modality, strict=True)]
        return MethodOutput(logits=self.crop_spatial(self.decoder(fused), x[self.modalities[0]].shape))


# ----------------------------------------------------------------------------------------------- the methods
@METHODS.register("zero_fill")
class ZeroFill(_FusionMethod):
    """Zero filling: intermediate fusion where a missing modality contributes zero features.

    Each modality has its own encoder; features are concatenated in canonical order (at every U-Net level for
    segmentation) with a masked-out modality's features replaced by zeros, then an MLP head (or a shared U-Net
    decoder) predicts. This is the "zero features" convention RFNet uses to evaluate all 15 BraTS subsets. It is
    trained under the data module's training masks, like every other method.

    No peeking holds by construction: the mask is applied here, not by the data module. A masked-out modality
    enters only through ``torch.where(mask, features, 0)``, which outputs the constant 0 whatever the features
    (hence the input) are, and everything after it is a row-wise function without batch statistics.

    Args:
        hidden_dim: per-modality feature width and head width (vector tasks).
        unet_widths: channels per U-Net level (segmentation; spatial sizes must be multiples of
            ``2**(len(unet_widths) - 1)``).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).
    """

    def fused_channels(self, channels: int) -> int:  # noqa: D102
        return self.num_modalities * channels

    def fuse(self, feats: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        return masked_concat(feats, mask)

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {"fill": "zero_features", "fusion": "concat"}


@METHODS.register("mean_fill")
class MeanFill(_FusionMethod):
    """Mean imputation: a missing modality's input is replaced by its training mean, then concat fusion.

    The means come from ``fit_unsupervised``: one pass over ``self.train_batches(datamodule)`` (training masks,
    epoch 0), summing each modality over the rows where
    it is observed only. They are elementwise for vectors, sequences and images, and one value per channel for
    volumes (training patches and evaluation volumes differ in size). They live in buffers, so checkpoints carry
    them. A modality never observed in training keeps a mean of 0 (zero filling).

    No peeking: a masked-out input is replaced with ``torch.where(mask, x, mean)`` before its encoder, so the
    encoder sees the same constant whatever the input holds.

    Args:
        hidden_dim: per-modality feature width and head width (vector tasks).
        unet_widths: channels per U-Net level (segmentation).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).
    """

    mean_count: Tensor  # long[M]: training rows in which each modality is observed (set by fit_unsupervised)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i, m in enumerate(self.modalities):
            self.register_buffer(f"mean_{i}", torch.zeros(self._mean_shape(m)))
        self.register_buffer("mean_count", torch.zeros(self.num_modalities, dtype=torch.long))

    def _mean_shape(self, modality: str) -> tuple[int, ...]:
        shape = self.input_shapes[modality]
        return (shape[0], *([1] * (len(shape) - 1))) if len(shape) == 4 else shape  # volumes: per channel

    def train_mean(self, modality: str) -> Tensor:
        """The fill value of ``modality``, broadcastable against one sample ``[*input_shapes[modality]]``."""
        buf = getattr(self, f"mean_{self.modalities.index(modality)}")
        assert isinstance(buf, Tensor)
        return buf

    @torch.no_grad()
    def fit_unsupervised(self, datamodule: MultimodalDataModule) -> None:
        """Per-modality means over the observed entries of the training split (training masks, epoch 0)."""
        sums = {m: torch.zeros(self._mean_shape(m), dtype=torch.float64) for m in self.modalities}
        counts = torch.zeros(self.num_modalities, dtype=torch.long)
        for batch in self.train_batches(datamodule):
            mask = batch["mask"].cpu()
            counts += mask.sum(0)
            for i, m in enumerate(self.modalities):
                x = batch["inputs"][m].cpu().double()[mask[:, i]]  # [n_observed, *shape]; masked-out rows dropped
                if x.dim() == 5:  # volumes [n, C, D, H, W]: per-channel mean of each row, rows weighted equally
                    x = x.mean(dim=(2, 3, 4)).reshape(-1, *sums[m].shape)
                sums[m] += x.sum(0)
        for i, m in enumerate(self.modalities):
            mean = sums[m] / counts[i].clamp(min=1)
            self.train_mean(m).copy_(mean.to(self.train_mean(m).dtype))
        self.mean_count.copy_(counts)

    def prepare_inputs(self, inputs: Mapping[str, Tensor], mask: Tensor) -> Mapping[str, Tensor]:  # noqa: D102
        return fill_inputs(inputs, mask, {m: self.train_mean(m) for m in self.modalities}, self.modalities)

    def fused_channels(self, channels: int) -> int:  # noqa: D102
        return self.num_modalities * channels

    def fuse(self, feats: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        return feats.flatten(1, 2)  # every modality is "present" after imputation

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {"fill": "train_mean_input", "fusion": "concat"}


@METHODS.register("moddrop")
class ModDrop(ZeroFill):
    """ModDrop (Neverova et al., TPAMI 2016): ``zero_fill`` trained with random modality dropout.

    In training, each observed modality of each row is additionally dropped with probability ``drop_rate``
    (``drop_modalities``: a row never ends with none; one of its observed modalities is restored). In evaluation
    the mask alone decides and no random number is drawn. No peeking holds as for ``zero_fill``.

    Args:
        drop_rate: probability of dropping an observed modality during training.
        hidden_dim: per-modality feature width and head width (vector tasks).
        unet_widths: channels per U-Net level (segmentation).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).
    """

    def __init__(self, *args: Any, drop_rate: float = 0.25, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop_rate = _check_rate(drop_rate)

    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:  # noqa: D102
        if self.training and self.drop_rate > 0:
            mask = drop_modalities(mask, self.drop_rate)
        return super().forward(inputs, mask)

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {**super().variant(), "drop_rate": self.drop_rate}


@METHODS.register("hemis")
class HeMIS(_FusionMethod):
    """HeMIS (Havaei et al., MICCAI 2016): per-modality encoders fused by mean and variance over what is observed.

    Each modality has its own encoder (back-end); the "abstraction layer" computes, per sample, the mean and the
    population variance of the observed modalities' features (``masked_mean_var``; variance 0 when one modality
    is observed), concatenates ``[mean, var]`` and a shared head (front-end) predicts. For segmentation this
    happens at every U-Net level and the fused skips feed one shared decoder (the U-HeMIS layout of Dorent et al.
    2019). The fusion is permutation-invariant over modalities and never reads a masked-out modality.

    Args:
        hidden_dim: per-modality feature width and head width (vector tasks).
        unet_widths: channels per U-Net level (segmentation).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).
    """

    def fused_channels(self, channels: int) -> int:  # noqa: D102
        return 2 * channels

    def fuse(self, feats: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        return masked_mean_var(feats, mask)

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {"fusion": "mean_var"}


@METHODS.register("late_fusion")
class LateFusion(MissingModalityMethod):
    """Late fusion: one model per modality; the prediction is the masked mean of the observed models' logits.

    ``logits = Σ_i mask_i · f_i(x_i) / Σ_i mask_i``. Vector tasks: ``f_i`` = encoder + linear head; segmentation:
    ``f_i`` = a U-Net per modality (encoder-decoder to ``C`` region logits). A missing modality's model output is
    computed but selected away with ``torch.where``, so it never reaches the output.

    Args:
        hidden_dim: encoder output width (vector tasks).
        unet_widths: channels per U-Net level (segmentation).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).
    """

    def __init__(
        self, *args: Any, hidden_dim: int = 64, unet_widths: tuple[int, ...] = (8, 16, 32, 64), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        backbone = self.make_backbone(hidden_dim, unet_widths)
        self.models = nn.ModuleDict(
            {
                m: nn.Sequential(
                    backbone.encoder(self.input_shapes[m]), backbone.decoder(backbone.widths, self.num_classes)
                )
                for m in self.modalities
            }
        )

    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:  # noqa: D102
        per_modality = torch.stack(
            [self.models[m](self.pad_spatial(inputs[m])) for m in self.modalities], dim=1
        )  # [B, M, C, *S]
        logits = self.crop_spatial(masked_mean(per_modality, mask), inputs[self.modalities[0]].shape)
        return MethodOutput(logits=logits, aux={"per_modality_logits": per_modality})

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {"fusion": "masked_mean_logits"}


@METHODS.register("unimodal")
class Unimodal(MissingModalityMethod):
    """One modality only: the lower-bound rows of a table.

    A model (encoder + head, or a U-Net) sees ``modality`` alone. Rows where that modality is missing get
    ``prior_logits`` (``[C]``, broadcast over voxels for segmentation): a learned constant trained by the task
    loss on the training rows that lack the modality, i.e. the best input-free prediction (class log-prior,
    target mean, per-region background rate). It stays at 0 (uniform) if training never hides the modality. So in
    patterns without ``modality`` the method predicts the prior, honestly, rather than being left out.

    ``encoder="lenet5"`` replaces the task backbone by ``nn.lenet.LeNet5`` (conv5×6 → pool → conv5×16 → pool →
    fc120 → fc84 → classes; LeCun et al. 1998), the image-only lower bound of ShaSpec Table 3 ("LeNet, image only").
    It needs a ``(C, H, W)`` image modality and a vector task; ``hidden_dim`` and ``unet_widths`` are then unused.

    Args:
        modality: the modality used (default: the first in canonical order).
        hidden_dim: encoder output width (vector tasks, ``encoder="default"``).
        unet_widths: channels per U-Net level (segmentation).
        encoder: ``default`` = the task backbone's encoder + MLP head; ``lenet5`` = LeNet-5 (images only).
        **kwargs: ``MissingModalityMethod`` arguments (the linked data facts, evaluation settings).

    Raises:
        ValueError: ``encoder="lenet5"`` on a dense task or a modality that is not a ``(C, H, W)`` image.
    """

    def __init__(
        self,
        *args: Any,
        modality: str | None = None,
        hidden_dim: int = 64,
        unet_widths: tuple[int, ...] = (8, 16, 32, 64),
        encoder: Literal["default", "lenet5"] = "default",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.modality = modality if modality is not None else self.modalities[0]
        if self.modality not in self.modalities:
            raise ValueError(f"modality {self.modality!r} is not one of {list(self.modalities)}")
        self.hparams["modality"] = self.modality
        self.index = self.modalities.index(self.modality)
        self.encoder_name = encoder
        if encoder == "lenet5":
            shape = tuple(self.input_shapes[self.modality])
            if self.task.dense or len(shape) != 3:
                raise ValueError(
                    f"encoder 'lenet5' needs a (C, H, W) image modality and a vector task; "
                    f"got modality {self.modality!r} of shape {shape}, task {self.task.value!r}"
                )
            self.model: nn.Module = LeNet5(int(shape[0]), self.num_classes, (int(shape[1]), int(shape[2])))
        elif encoder == "default":
            backbone = self.make_backbone(hidden_dim, unet_widths)
            backbone_encoder = backbone.encoder(self.input_shapes[self.modality])
            self.model = nn.Sequential(backbone_encoder, backbone.decoder(backbone.widths, self.num_classes))
        else:
            raise ValueError(f"encoder must be 'default' or 'lenet5', got {encoder!r}")
        self.prior_logits = nn.Parameter(torch.zeros(self.num_classes))

    def forward(self, inputs: Mapping[str, Tensor], mask: Tensor) -> MethodOutput:  # noqa: D102
        x = inputs[self.modality]
        logits = self.crop_spatial(self.model(self.pad_spatial(x)), x.shape)  # [B, C, *S]
        keep = mask[:, self.index].reshape(-1, *([1] * (logits.dim() - 1)))  # [B, 1, ..., 1]
        prior = self.prior_logits.reshape(1, -1, *([1] * (logits.dim() - 2)))  # [1, C, 1, ...]
        return MethodOutput(logits=torch.where(keep, logits, prior.to(logits.dtype)))

    def variant(self) -> dict[str, object]:  # noqa: D102
        return {"modality": self.modality, "encoder": self.encoder_name, "when_missing": "prior_logits"}
