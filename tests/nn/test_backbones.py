"""Backbones pick encoders/decoders by task; heads decode level lists; shapes and layer layouts per family."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmbench.nn.backbones import VectorBackbone, VolumeBackbone, make_backbone
from mmbench.nn.heads import FusedUNetDecoder, MLPHead, TokenTransformerHead, UpDecoder
from mmbench.types import Task

VECTOR_SHAPES = {"vec": (6,), "seq": (32, 13), "img": (1, 28, 28)}
VOLUME_SHAPES = {m: (1, 16, 16, 16) for m in ("a", "b")}


@pytest.mark.parametrize("task", [Task.MULTICLASS, Task.MULTILABEL, Task.REGRESSION])
def test_vector_tasks_get_one_level_per_modality(task):
    bb = make_backbone(task, VECTOR_SHAPES, width=12)
    assert isinstance(bb, VectorBackbone) and bb.widths == (12,) and bb.multiple == 1
    encoders = bb.encoders(VECTOR_SHAPES)
    assert list(encoders) == list(VECTOR_SHAPES)
    for m, shape in VECTOR_SHAPES.items():
        levels = encoders[m](torch.randn(3, *shape))
        assert [tuple(f.shape) for f in levels] == [(3, 12)]
    head = bb.decoder([2 * 12], 5, hidden=7)
    assert tuple(head([torch.randn(3, 24)]).shape) == (3, 5)


def test_segmentation_gets_unet_levels_and_a_fused_decoder():
    bb = make_backbone(Task.SEGMENTATION, VOLUME_SHAPES, widths=(4, 8, 16))
    assert isinstance(bb, VolumeBackbone) and bb.multiple == 4
    levels = bb.encoder((1, 16, 16, 16))(torch.randn(2, 1, 16, 16, 16))
    assert [tuple(f.shape) for f in levels] == [(2, 4, 16, 16, 16), (2, 8, 8, 8, 8), (2, 16, 4, 4, 4)]
    decoder = bb.decoder([2 * w for w in bb.widths], 3)
    assert isinstance(decoder, FusedUNetDecoder)
    fused = [torch.cat([f, f], 1) for f in levels]  # two modalities concatenated at every level
    assert tuple(decoder(fused).shape) == (2, 3, 16, 16, 16)


def test_segmentation_needs_volumes():
    with pytest.raises(ValueError, match=r"needs \(C, D, H, W\) inputs"):
        make_backbone(Task.SEGMENTATION, {"a": (6,)})


def test_mlp_head_layouts():
    """The three head layouts the methods use, layer by layer."""
    kinds = lambda head: [type(m).__name__ for m in head.net]  # noqa: E731
    assert kinds(MLPHead(8, 3)) == ["Linear"]
    assert kinds(MLPHead(8, 3, act_first=True)) == ["ReLU", "Linear"]  # late fusion's per-modality head
    assert kinds(MLPHead(8, 3, hidden=4)) == ["Linear", "ReLU", "Linear"]  # fusion baselines
    assert kinds(MLPHead(8, 3, hidden=4, dropout=0.2, act_first=True)) == [  # ShaSpec's 2-FC head with dropout
        "ReLU",
        "Dropout",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
    ]


def test_stems_trunks_and_mixers_per_family():
    vec = make_backbone(Task.MULTICLASS, VECTOR_SHAPES, width=10)
    stem, shape = vec.stem((1, 28, 28), 16)
    assert shape == (16,) and tuple(stem(torch.randn(2, 1, 28, 28)).shape) == (2, 16)
    assert [tuple(f.shape) for f in vec.trunk(shape)(torch.randn(2, 16))] == [(2, 10)]
    assert isinstance(vec.mixer(20, 10), nn.Linear)
    vol = make_backbone(Task.SEGMENTATION, VOLUME_SHAPES, widths=(4, 8))
    stem, shape = vol.stem((1, 16, 16, 16), 16)
    assert isinstance(stem, nn.Identity) and shape == (1, 16, 16, 16)
    mixer = vol.mixer(16, 8)
    assert isinstance(mixer, nn.Conv3d) and mixer.bias is None and mixer.kernel_size == (3, 3, 3)


def test_embedders_reconstructors_and_token_decoders():
    vec = make_backbone(Task.MULTICLASS, VECTOR_SHAPES, width=10)
    ident, shape = vec.embedder((6,), 32)
    x = torch.randn(2, 6)
    assert shape == (6,) and torch.equal(ident(x)[-1], x)  # a feature vector is its own embedding
    enc, shape = vec.embedder((1, 28, 28), 32)
    assert shape == (32,) and tuple(
        vec.reconstructor(shape, (1, 28, 28), 16)(enc(torch.randn(2, 1, 28, 28))[-1]).shape
    ) == (
        2,
        1,
        28,
        28,
    )
    dec = vec.token_decoder([(6,), (32,)], 4, d_model=8, num_heads=2, num_layers=1, dropout=0.0, skips=False)
    assert isinstance(dec.net, TokenTransformerHead)
    assert tuple(dec([torch.randn(2, 6), torch.randn(2, 32)], []).shape) == (2, 4)

    vol = make_backbone(Task.SEGMENTATION, {"a": (1, 12, 12, 12)}, widths=(4, 8))
    enc, shape = vol.embedder((1, 12, 12, 12), 0)
    assert shape == (8, 6, 6, 6)  # bottleneck of the padded patch (12 → 12, a multiple of 2 and ≥ 4)
    recon = vol.reconstructor(shape, (1, 12, 12, 12), 0)
    assert isinstance(recon, UpDecoder) and tuple(recon(torch.randn(2, *shape)).shape) == (2, 1, 12, 12, 12)
    dec = vol.token_decoder([shape, shape], 3, 0, 0, 0, 0.0, skips=True)
    skips = [torch.randn(2, 4, 12, 12, 12)]
    assert tuple(dec([torch.randn(2, *shape), torch.randn(2, *shape)], skips).shape) == (2, 3, 12, 12, 12)
    dec = vol.token_decoder([shape, shape], 3, 0, 0, 0, 0.0, skips=False)
    assert tuple(dec([torch.randn(2, *shape), torch.randn(2, *shape)], []).shape) == (2, 3, 12, 12, 12)
