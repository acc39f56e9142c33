"""Backbones: the per-task choice of encoders and decoders, so that a method never branches on the task.

``make_backbone(task, input_shapes, width=..., widths=...)`` returns

* a ``VectorBackbone`` for vector outputs (multiclass, multilabel, regression): every encoder maps its input to
  **one feature level** ``[[B, width]]`` (``make_encoder`` picks an MLP, 1-D conv, LeNet or 3-D conv stem by input
  shape); decoders are ``MLPHead``s;
* a ``VolumeBackbone`` for dense outputs (3-D segmentation): every encoder is a ``UNet3DEncoder`` returning
  ``L = len(widths)`` levels ``[B, widths[l], *S/2^l]`` (bottleneck last); decoders are U-Net decoders that take
  the (fused) levels; inputs are padded to ``multiple`` by the method base.

A method written against ``Backbone`` (encode each modality to levels, fuse each level with
``mmbench.functional.fusion``, decode the fused levels) runs on every task the factory supports.

Example:
    >>> import torch
    >>> from mmbench.types import Task
    >>> bb = make_backbone(Task.MULTICLASS, {"a": (6,), "b": (1, 28, 28)}, width=16)
    >>> levels = bb.encoder((1, 28, 28))(torch.zeros(2, 1, 28, 28))
    >>> [tuple(f.shape) for f in levels]
    [(2, 16)]
    >>> bb = make_backbone(Task.SEGMENTATION, {"a": (1, 16, 16, 16)}, widths=(4, 8))
    >>> [tuple(f.shape) for f in bb.encoder((1, 16, 16, 16))(torch.zeros(2, 1, 16, 16, 16))]
    [(2, 4, 16, 16, 16), (2, 8, 8, 8, 8)]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmbench.nn.encoders import MLPEncoder, make_encoder
from mmbench.nn.heads import FusedUNetDecoder, MLPDecoder, MLPHead, TokenTransformerHead, UpDecoder
from mmbench.nn.unet3d import UNet3DEncoder, padded_shape
from mmbench.types import Task

__all__ = ["Backbone", "LevelEncoder", "VectorBackbone", "VolumeBackbone", "make_backbone"]


class LevelEncoder(nn.Module):
    """Wrap a vector encoder ``[B, ...] → [B, C]`` as a one-level feature list ``[[B, C]]``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor) -> list[Tensor]:  # noqa: D102
        return [self.encoder(x)]


class Backbone(ABC):
    """Factory of the encoders and decoders of one output family (see the module docstring).

    Attributes:
        widths: channels of each feature level, bottleneck last (vectors: one level).
        multiple: spatial sizes the encoders need to be multiples of (1 = no constraint).
    """

    widths: tuple[int, ...]
    multiple: int = 1

    @abstractmethod
    def encoder(self, in_shape: Sequence[int]) -> nn.Module:
        """Per-modality encoder ``[B, *in_shape]`` → levels ``[B, widths[l], *S_l]``."""

    def encoders(self, input_shapes: Mapping[str, Sequence[int]]) -> nn.ModuleDict:
        """One ``encoder`` per modality, in the order of ``input_shapes``."""
        return nn.ModuleDict({m: self.encoder(s) for m, s in input_shapes.items()})

    @abstractmethod
    def decoder(
        self,
        level_channels: Sequence[int],
        out_channels: int,
        hidden: int | None = None,
        dropout: float = 0.0,
        act_first: bool = True,
    ) -> nn.Module:
        """Decoder ``levels (level l with level_channels[l] channels) → logits [B, out_channels, *S_0]``.

        ``hidden``/``dropout``/``act_first`` shape an ``MLPHead`` (vector outputs; ignored by dense decoders).
        """

    @abstractmethod
    def stem(self, in_shape: Sequence[int], dim: int) -> tuple[nn.Module, tuple[int, ...]]:
        """A per-modality stem that maps a modality to a common input of a shared trunk, and its output shape."""

    @abstractmethod
    def trunk(self, in_shape: Sequence[int]) -> nn.Module:
        """An encoder on stem outputs of shape ``in_shape`` → levels (e.g. ShaSpec's shared encoder)."""

    @abstractmethod
    def mixer(self, in_channels: int, out_channels: int) -> nn.Module:
        """Channel mixing of one level ``[N, C_in, *S] → [N, C_out, *S]`` (a linear layer or a 3³ conv)."""

    @abstractmethod
    def embedder(self, in_shape: Sequence[int], dim: int) -> tuple[nn.Module, tuple[int, ...]]:
        """An encoder to a flat embedding (levels, last = embedding map) and the embedding map's shape."""

    @abstractmethod
    def reconstructor(self, embedding_shape: Sequence[int], out_shape: Sequence[int], hidden: int) -> nn.Module:
        """Autoencoder decoder: embedding map ``[B, *embedding_shape]`` → ``[B, *out_shape]`` (at least)."""

    @abstractmethod
    def token_decoder(
        self,
        embedding_shapes: Sequence[Sequence[int]],
        out_channels: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        dropout: float,
        skips: bool,
    ) -> nn.Module:
        """Decoder of M per-modality embedding maps (plus fused skip levels) → logits; see ``TokenDecoder``."""


class VectorBackbone(Backbone):
    """Vector outputs: one feature level of ``width`` per modality; MLP heads.

    Args:
        width: feature width of every encoder.
    """

    def __init__(self, width: int) -> None:
        self.widths = (int(width),)

    def encoder(self, in_shape: Sequence[int]) -> nn.Module:  # noqa: D102
        return LevelEncoder(make_encoder(in_shape, self.widths[0]))

    def decoder(  # noqa: D102
        self,
        level_channels: Sequence[int],
        out_channels: int,
        hidden: int | None = None,
        dropout: float = 0.0,
        act_first: bool = True,
    ) -> nn.Module:
        return MLPHead(int(level_channels[-1]), out_channels, hidden, dropout, act_first)

    def stem(self, in_shape: Sequence[int], dim: int) -> tuple[nn.Module, tuple[int, ...]]:  # noqa: D102
        return make_encoder(in_shape, dim), (int(dim),)

    def trunk(self, in_shape: Sequence[int]) -> nn.Module:  # noqa: D102
        width = self.widths[0]
        return LevelEncoder(nn.Sequential(nn.ReLU(), MLPEncoder(math.prod(in_shape), width, hidden=width)))

    def mixer(self, in_channels: int, out_channels: int) -> nn.Module:  # noqa: D102
        return nn.Linear(in_channels, out_channels)

    def embedder(self, in_shape: Sequence[int], dim: int) -> tuple[nn.Module, tuple[int, ...]]:
        """A ``(D,)`` vector is its own embedding (identity); other inputs get ``make_encoder`` to ``dim``."""
        if len(in_shape) == 1:
            return LevelEncoder(nn.Identity()), (int(in_shape[0]),)
        return LevelEncoder(make_encoder(in_shape, dim)), (int(dim),)

    def reconstructor(self, embedding_shape: Sequence[int], out_shape: Sequence[int], hidden: int) -> nn.Module:  # noqa: D102
        return MLPDecoder(math.prod(embedding_shape), out_shape, hidden)

    def token_decoder(  # noqa: D102
        self,
        embedding_shapes: Sequence[Sequence[int]],
        out_channels: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        dropout: float,
        skips: bool,
    ) -> nn.Module:
        dims = [math.prod(s) for s in embedding_shapes]
        return _TokenDecoder(TokenTransformerHead(dims, out_channels, d_model, num_heads, num_layers, dropout))


class VolumeBackbone(Backbone):
    """Dense 3-D outputs: ``UNet3DEncoder`` levels per modality; U-Net decoders over (fused) levels.

    Args:
        input_shapes: ``(C, D, H, W)`` per modality (the training patch).
        widths: U-Net channels per level.
    """

    def __init__(self, input_shapes: Mapping[str, Sequence[int]], widths: Sequence[int]) -> None:
        self.widths = tuple(int(w) for w in widths)
        self.multiple = 2 ** (len(self.widths) - 1)
        bad = {m: tuple(s) for m, s in input_shapes.items() if len(s) != 4}
        if bad:
            raise ValueError(f"3-D segmentation needs (C, D, H, W) inputs, got {bad}")
        self.input_shapes = {m: tuple(int(v) for v in s) for m, s in input_shapes.items()}

    def encoder(self, in_shape: Sequence[int]) -> nn.Module:  # noqa: D102
        return UNet3DEncoder(int(in_shape[0]), self.widths)

    def decoder(  # noqa: D102
        self,
        level_channels: Sequence[int],
        out_channels: int,
        hidden: int | None = None,
        dropout: float = 0.0,
        act_first: bool = True,
    ) -> nn.Module:
        return FusedUNetDecoder(self.widths, out_channels, level_channels)

    def stem(self, in_shape: Sequence[int], dim: int) -> tuple[nn.Module, tuple[int, ...]]:
        """Volumes feed the trunk directly (identity stem)."""
        return nn.Identity(), tuple(int(s) for s in in_shape)

    def trunk(self, in_shape: Sequence[int]) -> nn.Module:  # noqa: D102
        return UNet3DEncoder(int(in_shape[0]), self.widths)

    def mixer(self, in_channels: int, out_channels: int) -> nn.Module:
        """A 3³ convolution without bias (ShaSpec's official ``CompositionalLayer``)."""
        return nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)

    def embedder(self, in_shape: Sequence[int], dim: int) -> tuple[nn.Module, tuple[int, ...]]:
        """A ``UNet3DEncoder``; the embedding is its bottleneck map of the padded patch ``(C_b, d, h, w)``."""
        padded = padded_shape(in_shape[1:], self.multiple)
        return self.encoder(in_shape), (self.widths[-1], *(s // self.multiple for s in padded))

    def reconstructor(self, embedding_shape: Sequence[int], out_shape: Sequence[int], hidden: int) -> nn.Module:  # noqa: D102
        return UpDecoder(self.widths, int(embedding_shape[0]), int(out_shape[0]))

    def token_decoder(  # noqa: D102
        self,
        embedding_shapes: Sequence[Sequence[int]],
        out_channels: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        dropout: float,
        skips: bool,
    ) -> nn.Module:
        channels = sum(int(s[0]) for s in embedding_shapes)  # the M bottleneck maps concatenated
        if skips:
            return _TokenDecoder(FusedUNetDecoder(self.widths, out_channels, [*self.widths[:-1], channels]), maps=True)
        return _TokenDecoder(UpDecoder(self.widths, channels, out_channels), maps=True, levels=False)


class _TokenDecoder(nn.Module):
    """``(embeddings [M × [B, *E_m]], skips [f_0 … f_{L−2}]) → logits`` for ``Backbone.token_decoder``.

    Vector family: the embeddings are tokens of a ``TokenTransformerHead`` (skips are empty). Dense family
    (``maps=True``): the M embedding maps are concatenated on channels into a bottleneck and decoded with the
    skips (``levels=True``, a ``FusedUNetDecoder``) or without (an ``UpDecoder``).
    """

    def __init__(self, net: nn.Module, maps: bool = False, levels: bool = True) -> None:
        super().__init__()
        self.net = net
        self.maps, self.levels = maps, levels

    def forward(self, embeddings: Sequence[Tensor], skips: Sequence[Tensor]) -> Tensor:
        if not self.maps:
            return self.net(embeddings)
        bottleneck = torch.cat(list(embeddings), 1)  # [B, Σ C_m, d, h, w]
        return self.net([*skips, bottleneck]) if self.levels else self.net(bottleneck)


def make_backbone(
    task: Task | str,
    input_shapes: Mapping[str, Sequence[int]],
    width: int = 64,
    widths: Sequence[int] = (8, 16, 32, 64),
) -> Backbone:
    """The backbone of ``task``: ``VolumeBackbone(input_shapes, widths)`` for dense tasks, else ``VectorBackbone``.

    Args:
        task: the data module's task.
        input_shapes: per-modality input shapes (no batch dim).
        width: feature width of vector encoders.
        widths: U-Net channels per level of 3-D encoders.
    """
    if Task(task).dense:
        return VolumeBackbone(input_shapes, widths)
    return VectorBackbone(width)
