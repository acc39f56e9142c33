"""nn/lenet.py: the LeNet-5 layout (LeCun et al. 1998) on 28×28, checked against a hand-written functional forward,
and its use as Unimodal's ``encoder="lenet5"`` (the image-only lower bound of ShaSpec Table 3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import make_dm
from mmbench.masks import zero_fill
from mmbench.methods import Unimodal
from mmbench.nn.lenet import LeNet5
from mmbench.types import Task


def test_lenet5_layout_and_parameter_count():
    net = LeNet5(1, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(c.weight.shape) for c in convs] == [(6, 1, 5, 5), (16, 6, 5, 5)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(400, 120), (120, 84), (84, 10)]
    # the classic LeNet-5 count with full C3 connections on a (padded) 32×32 field: 156 + 2,416 + 48,120 + 10,164 + 850
    assert sum(p.numel() for p in net.parameters()) == 61_706


def test_lenet5_feature_maps_are_28_14_10_5():
    net = LeNet5(1, 10)
    sizes = []
    for m in net.features:
        m.register_forward_hook(lambda _m, _i, out: sizes.append(tuple(out.shape[1:])))
    net(torch.zeros(2, 1, 28, 28))
    assert sizes[0] == (6, 28, 28) and sizes[2] == (6, 14, 14) and sizes[3] == (16, 10, 10) and sizes[5] == (16, 5, 5)


def test_lenet5_matches_a_hand_written_forward():
    torch.manual_seed(0)
    net = LeNet5(1, 10).eval()
    x = torch.randn(3, 1, 28, 28)
    c1, c3 = net.features[0], net.features[3]
    f5, f6, out = net.classifier[0], net.classifier[2], net.classifier[4]
    h = F.max_pool2d(F.relu(F.conv2d(x, c1.weight, c1.bias, padding=2)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, c3.weight, c3.bias)), 2).reshape(3, 400)
    h = F.relu(h @ f5.weight.T + f5.bias)
    h = F.relu(h @ f6.weight.T + f6.bias)
    torch.testing.assert_close(net(x), h @ out.weight.T + out.bias)


def test_lenet5_other_sizes_and_a_too_small_image():
    assert tuple(LeNet5(3, 4, (32, 20))(torch.zeros(1, 3, 32, 20)).shape) == (1, 4)
    assert LeNet5(3, 4, (32, 20)).classifier[0].in_features == 16 * 6 * 3
    with pytest.raises(ValueError, match="at least 12×12"):
        LeNet5(1, 10, (10, 28))


def _unimodal_lenet(dm):
    return Unimodal(
        modalities=dm.modalities,
        input_shapes=dm.input_shapes,
        task=dm.task,
        num_classes=dm.num_classes,
        modality="image",
        encoder="lenet5",
    )


def test_unimodal_lenet5_is_lenet_with_the_prior_and_records_the_switch():
    torch.manual_seed(0)
    dm = make_dm("classification")
    dm.setup("fit")
    method = _unimodal_lenet(dm).eval()
    assert isinstance(method.model, LeNet5)
    assert method.variant()["encoder"] == "lenet5"
    assert Unimodal(dm.modalities, dm.input_shapes, dm.task, dm.num_classes).variant()["encoder"] == "default"
    items = [dm.datasets["train"][i] for i in range(4)]
    inputs = {m: torch.stack([it["inputs"][m] for it in items]) for m in dm.modalities}
    mask = torch.tensor([[True, True], [True, False], [False, True], [False, False]])
    with torch.no_grad():
        method.prior_logits.copy_(torch.arange(method.num_classes, dtype=torch.float))
        logits = method(zero_fill(inputs, mask, dm.modalities), mask).logits
        torch.testing.assert_close(logits[:2], method.model(inputs["image"][:2]))  # the audio never matters
        torch.testing.assert_close(logits[2:], method.prior_logits.expand(2, -1))


def test_unimodal_lenet5_trains():
    torch.manual_seed(0)
    dm = make_dm("classification")
    dm.setup("fit")
    method = _unimodal_lenet(dm)
    batch = next(iter(dm.train_dataloader()))
    x, y = batch["inputs"]["image"], torch.as_tensor(batch["target"])
    mask = torch.ones(x.shape[0], 2, dtype=torch.bool)
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = F.cross_entropy(method({"image": x, "audio": batch["inputs"]["audio"]}, mask).logits, y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_unimodal_lenet5_needs_an_image():
    with pytest.raises(ValueError, match=r"encoder 'lenet5' needs a \(C, H, W\) image"):
        Unimodal(("a", "b"), {"a": (3,), "b": (3,)}, Task.MULTICLASS, 2, encoder="lenet5")
    with pytest.raises(ValueError, match="encoder 'lenet5'"):
        Unimodal(("a",), {"a": (1, 16, 16, 16)}, Task.SEGMENTATION, 3, encoder="lenet5")
