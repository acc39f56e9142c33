"""ShaSpec's paper defaults and official-code switches (issue 12): each switch changes exactly what it names."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
import torch
import torch.nn.functional as F

from mmbench.functional.sliding_window import sliding_window_inference
from mmbench.masks import zero_fill
from mmbench.methods import ShaSpec
from mmbench.methods.shaspec import (
    dao_loss,
    dco_loss,
    modality_pairs,
    official_seg_loss,
)
from mmbench.types import Task

BRATS = ("flair", "t1", "t1ce", "t2")


def _seg(**kwargs) -> ShaSpec:
    torch.manual_seed(0)
    kwargs.setdefault("seg_widths", (4, 8))
    return ShaSpec(list(BRATS), {m: (1, 8, 8, 8) for m in BRATS}, Task.SEGMENTATION, 3, **kwargs)


def _features(**kwargs) -> ShaSpec:
    torch.manual_seed(0)
    shapes = {"text": (12,), "audio": (6,), "visual": (5,), "depth": (4,)}
    return ShaSpec(list(shapes), shapes, Task.MULTICLASS, 4, **kwargs)


def _patterns(M: int) -> list[tuple[int, ...]]:
    return [c for k in range(1, M + 1) for c in combinations(range(M), k)]


# ------------------------------------------------------------------------------------------ item 1: pairs
@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_every_sample_with_two_observed_modalities_gets_a_dao_under_the_default(
    kind: str,
) -> None:
    M = 4
    g = torch.Generator().manual_seed(0)
    patterns = _patterns(M)
    mask = torch.zeros(len(patterns), M, dtype=torch.bool)
    for b, p in enumerate(patterns):
        mask[b, list(p)] = True
    shared = torch.randn(len(patterns), M, 6, generator=g)
    for b, p in enumerate(patterns):  # one sample per pattern, alone in its batch
        value = dao_loss(kind, shared[b : b + 1], mask[b : b + 1], modality_pairs(M))
        assert (float(value) > 0) == (len(p) >= 2), p
    # the official cyclic pairs leave flair+t1ce and t1+t2 without a DAO (the test can fail)
    cyclic = [
        p
        for b, p in enumerate(patterns)
        if len(p) >= 2 and float(dao_loss(kind, shared[b : b + 1], mask[b : b + 1], modality_pairs(M, "cyclic"))) == 0
    ]
    assert cyclic == [(0, 2), (1, 3)]


def test_default_pairs_are_every_pair_and_cyclic_is_the_code() -> None:
    assert modality_pairs(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert modality_pairs(4, "cyclic") == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert _seg().pairs == modality_pairs(4, "all")


# ------------------------------------------------------------------------------------- item 2: reduction
def test_per_sample_aux_weight_does_not_depend_on_the_missing_rate_under_the_default() -> None:
    """d(loss)/d(sample 0's terms) stays alpha/B when the other samples lose modalities; not so for "counted"."""
    B, M = 8, 4
    g = torch.Generator().manual_seed(1)
    base = torch.randn(B, M, 5, generator=g)
    logits = torch.randn(B, M, M, generator=g)
    grads: dict[str, list[torch.Tensor]] = {"batch": [], "counted": []}
    for rate_mask in (
        torch.ones(B, M, dtype=torch.bool),
        torch.tensor([[True] * M] + [[True, False, False, False]] * 7),
    ):
        for red in grads:
            shared = base.clone().requires_grad_(True)
            dco_logits = logits.clone().requires_grad_(True)
            loss = dao_loss("l1", shared, rate_mask, modality_pairs(M), reduction=red) + dco_loss(
                dco_logits, rate_mask, reduction=red
            )
            loss.backward()
            grads[red].append(torch.cat([shared.grad[0].flatten(), dco_logits.grad[0].flatten()]))
    torch.testing.assert_close(grads["batch"][0], grads["batch"][1])
    assert not torch.allclose(grads["counted"][0], grads["counted"][1])


def test_reductions_by_hand() -> None:
    shared = torch.tensor([[[1.0, 3.0], [2.0, 1.0], [0.0, 0.0]], [[4.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])  # [2, 3, 2]
    mask = torch.tensor([[True, True, True], [True, False, True]])
    pairs = modality_pairs(3)  # (0,1) (0,2) (1,2)
    # sample 0: |1-2|,|3-1| → 1.5 ; |1-0|,|3-0| → 2 ; |2-0|,|1-0| → 1.5 ; sample 1: only (0,2): |4-1|,|0-1| → 2
    assert float(dao_loss("l1", shared, mask, pairs, reduction="batch")) == pytest.approx((1.5 + 2 + 1.5 + 2) / 2)
    assert float(dao_loss("l1", shared, mask, pairs, reduction="counted")) == pytest.approx((1.5 + 2 + 1.5 + 2) / 4)
    logits = torch.zeros(2, 3, 3)  # uniform: every CE is ln 3
    assert float(dco_loss(logits, mask, reduction="batch")) == pytest.approx(5 * math.log(3) / 2)
    assert float(dco_loss(logits, mask, reduction="counted")) == pytest.approx(math.log(3))


def test_model_loss_uses_the_chosen_reductions() -> None:
    model = _features(dao_reduction="counted", dco_reduction="counted", alpha=0.3, beta=0.7).eval()
    default = _features(alpha=0.3, beta=0.7).eval()
    g = torch.Generator().manual_seed(3)
    x = {m: torch.randn(6, *s, generator=g) for m, s in model.input_shapes.items()}
    mask = torch.rand(6, 4, generator=g) < 0.6
    mask[:, 0] = True
    batch = {
        "inputs": zero_fill(x, mask, model.modalities),
        "mask": mask,
        "target": torch.randint(4, (6,)),
    }
    for m, red in ((model, "counted"), (default, "batch")):
        with torch.no_grad():
            out = m(batch["inputs"], mask)
            terms = m.loss(out, batch)
        dao = dao_loss("l1", out.aux["shared"], mask, modality_pairs(4), reduction=red)
        dco = dco_loss(out.aux["dco_logits"], mask, reduction=red)
        torch.testing.assert_close(terms["dao"], dao)
        torch.testing.assert_close(terms["dco"], dco)
        torch.testing.assert_close(terms["loss"], terms["task"] + 0.3 * dao + 0.7 * dco)


# ----------------------------------------------------------------------------------- item 4: other switches
def test_official_seg_loss_by_hand() -> None:
    logits = torch.tensor([[[[[0.0, 2.0]]], [[[-1.0, 1.0]]]]])  # [1, 2, 1, 1, 2]
    target = torch.tensor([[[[[0.0, 1.0]]], [[[1.0, 1.0]]]]])
    p = torch.sigmoid(logits)
    dice0 = 1 - 2 * (p[0, 0] * target[0, 0]).sum() / (p[0, 0].sum() + 1 + 1)
    dice1 = 1 - 2 * (p[0, 1] * target[0, 1]).sum() / (p[0, 1].sum() + 2 + 1)
    bce = [F.binary_cross_entropy(p[0, c].flatten(), target[0, c].flatten()) for c in range(2)]
    expected = (dice0 + dice1) / 2 + bce[0] + bce[1]
    torch.testing.assert_close(official_seg_loss(logits, target), expected)


def test_seg_loss_switch_changes_only_the_task_term() -> None:
    harness, official = _seg().eval(), _seg(seg_loss="official").eval()
    official.load_state_dict(harness.state_dict())
    g = torch.Generator().manual_seed(0)
    x = {m: torch.randn(2, 1, 8, 8, 8, generator=g) for m in BRATS}
    mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    target = (torch.rand(2, 3, 8, 8, 8, generator=g) < 0.3).float()
    batch = {"inputs": x, "mask": mask, "target": target}
    with torch.no_grad():
        a = harness.loss(harness(x, mask), batch)
        out = official(x, mask)
        b = official.loss(out, batch)
    torch.testing.assert_close(b["task"], official_seg_loss(out.logits, target))
    assert not torch.allclose(a["task"], b["task"])
    torch.testing.assert_close(a["dao"], b["dao"])
    torch.testing.assert_close(a["dco"], b["dco"])


def test_sw_blend_probabilities_averages_sigmoids() -> None:
    model = _seg(
        sw_blend="probabilities",
        sw_mode="constant",
        sw_overlap=1 / 3,
        roi_size=(8, 8, 8),
    ).eval()
    logits_model = _seg(sw_mode="constant", sw_overlap=1 / 3, roi_size=(8, 8, 8)).eval()
    logits_model.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(0)
    x = {m: torch.randn(1, 1, 12, 10, 8, generator=g) for m in BRATS}  # overlapping windows along D and H
    mask = torch.tensor([[True, True, False, True]])
    vol = torch.cat([x[m] for m in BRATS], 1)

    def prob(w: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(dict(zip(BRATS, w.split(1, 1), strict=True)), mask.repeat(w.shape[0], 1)).logits)

    with torch.no_grad():
        expected = sliding_window_inference(vol, (8, 8, 8), prob, 1 / 3, 1, "constant")
        got = model.predict_logits(x, mask)
        other = logits_model.predict_logits(x, mask)
    torch.testing.assert_close(torch.sigmoid(got), expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, other, atol=1e-4)  # blending logits differs where windows overlap


def test_kaiming_init_is_the_default_and_torch_init_is_a_switch() -> None:
    he, default = _features(), _features(init="torch")
    lin = (
        he.proj
        if isinstance(he.proj, torch.nn.Linear)
        else next(m for m in he.proj.modules() if isinstance(m, torch.nn.Linear))
    )
    w = lin.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / w.shape[1]), rel=0.15)
    assert all(
        float(m.bias.abs().max()) == 0 for m in he.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None
    )
    lin0 = (
        default.proj
        if isinstance(default.proj, torch.nn.Linear)
        else next(m for m in default.proj.modules() if isinstance(m, torch.nn.Linear))
    )
    assert lin0.weight.std().item() == pytest.approx(1 / math.sqrt(3 * w.shape[1]), rel=0.15)  # torch's default


def test_variant_records_the_new_switches() -> None:
    v = _seg(
        dao_pairs="cyclic",
        dao_reduction="counted",
        seg_loss="official",
        sw_blend="probabilities",
    ).variant()
    assert {
        k: v[k]
        for k in (
            "dao_pairs",
            "dao_reduction",
            "dco_reduction",
            "seg_loss",
            "sw_blend",
            "init",
        )
    } == {
        "dao_pairs": "cyclic",
        "dao_reduction": "counted",
        "dco_reduction": "batch",
        "seg_loss": "official",
        "sw_blend": "probabilities",
        "init": "kaiming",
    }
    for name in ("dao_reduction", "dco_reduction", "seg_loss", "sw_blend", "init"):
        with pytest.raises(ValueError, match=f"{name} must be one of"):
            _features(**{name: "nope"})
