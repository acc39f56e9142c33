"""ShaSpec: Eq. (4), auxiliary-loss masking, DAO/DCO against hand computations, official-code switches, heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmbench.masks import zero_fill
from mmbench.methods import ShaSpec
from mmbench.methods.shaspec import modality_pairs
from mmbench.registry import METHODS
from mmbench.types import Task

HEADS = {
    "classification": (Task.MULTICLASS, {"image": (1, 28, 28), "audio": (32, 13)}, 10),
    "features": (Task.MULTICLASS, {"text": (24,), "audio": (10,), "visual": (7,)}, 5),
    "segmentation": (Task.SEGMENTATION, {m: (1, 16, 16, 16) for m in ("flair", "t1", "t1ce", "t2")}, 3),
}


def _model(head: str, **kwargs) -> ShaSpec:
    """A small model of ``head`` (segmentation: 3-level U-Nets; the default size runs in test_contract.py)."""
    torch.manual_seed(0)
    task, shapes, num_classes = HEADS[head]
    if task is Task.SEGMENTATION:
        kwargs.setdefault("seg_widths", (4, 8, 16))
    return ShaSpec(list(shapes), shapes, task, num_classes, **kwargs)


def _inputs(model: ShaSpec, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, *model.input_shapes[m], generator=g) for m in model.modalities}


def _mask(n: int, m: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, m, generator=g) < 0.5
    mask[torch.arange(n), torch.randint(m, (n,), generator=g)] = True
    return mask


def _target(model: ShaSpec, n: int) -> torch.Tensor:
    if model.task is Task.SEGMENTATION:
        return (torch.rand(n, 3, *model.input_shapes[model.modalities[0]][1:]) < 0.3).float()
    return torch.randint(model.num_classes, (n,))


def _batch(model: ShaSpec, inputs, mask):
    n = mask.shape[0]
    return {"inputs": inputs, "mask": mask, "target": _target(model, n), "index": torch.arange(n)}


def _noisy(inputs, mask, modalities):
    """Masked-out inputs replaced by large noise."""
    out = {}
    for i, m in enumerate(modalities):
        keep = mask[:, i].reshape(-1, *([1] * (inputs[m].dim() - 1)))
        out[m] = torch.where(keep, inputs[m], 100 * torch.randn_like(inputs[m]))
    return out


# ------------------------------------------------------------------------------------------------ Eq. (4)
@pytest.mark.parametrize("head", list(HEADS))
def test_missing_features_are_mean_of_observed_shared_features(head):
    model = _model(head).eval()
    n = 6
    mask = _mask(n, model.num_modalities, seed=3)
    assert (~mask).any() and (mask.sum(1) > 1).any()  # some rows miss modalities, some average several
    with torch.no_grad():
        aux = model(_inputs(model, n), mask).aux
    r, fused = aux["shared"], aux["fused"]
    skip_keys = [k for k in aux if k.startswith("skip")]
    assert len(skip_keys) == (2 if head == "segmentation" else 0)  # 3-level U-Net: 2 skip levels
    for b in range(n):
        obs = mask[b].nonzero().flatten()
        expected = r[b, obs].mean(0)
        for m in range(model.num_modalities):
            if not mask[b, m]:
                torch.testing.assert_close(fused[b, m], expected)
    for key in skip_keys:  # the same rule at every skip level (missing_skips="masked_mean")
        skip = aux[key]
        for b in range(n):
            obs = mask[b].nonzero().flatten()
            for m in (~mask[b]).nonzero().flatten():
                torch.testing.assert_close(skip[b, m], skip[b, obs].mean(0))


@pytest.mark.parametrize("head", ["classification", "segmentation"])
def test_residual_fusion_is_identity_when_projection_is_zero(head):
    model = _model(head).eval()
    with torch.no_grad():
        for p in model.proj.parameters():
            p.zero_()
        mask = torch.ones(2, model.num_modalities, dtype=torch.bool)
        aux = model(_inputs(model, 2), mask).aux
    torch.testing.assert_close(aux["fused"], aux["shared"], rtol=0, atol=0)


def test_observed_fused_feature_is_residual_projection():
    model = _model("features").eval()
    mask = _mask(5, 3, seed=1)
    with torch.no_grad():
        aux = model(_inputs(model, 5), mask).aux
        r, s = aux["shared"], aux["specific"]
        f = r + model.proj(torch.cat([r, s], -1))  # Eq. 2
    keep = mask.unsqueeze(-1).expand_as(f)
    torch.testing.assert_close(aux["fused"][keep], f[keep])


# ---------------------------------------------------------------------------------------- aux-loss masking
def test_aux_losses_ignore_masked_out_inputs():
    model = _model("features").train()
    mask = torch.tensor([[True, True, False], [False, True, True], [True, False, True], [True, True, True]])
    inputs = zero_fill(_inputs(model, 4), mask, model.modalities)
    batch = _batch(model, inputs, mask)
    clean = model.loss(model(inputs, mask), batch)
    noisy = model.loss(model(_noisy(inputs, mask, model.modalities), mask), batch)
    for key in ("dao", "dco"):
        torch.testing.assert_close(clean[key], noisy[key], rtol=0, atol=0)


@pytest.mark.parametrize("dao", ["l1", "mse", "kl", "ce"])
@pytest.mark.parametrize("aux_on_missing", [False, True])
def test_aux_gradients_reach_specific_encoder_of_missing_modality_only_if_asked(dao, aux_on_missing):
    model = _model("features", dao=dao, aux_on_missing=aux_on_missing).train()
    mask = torch.tensor([[True, True, False]] * 4)  # "visual" is missing in every row
    inputs = _inputs(model, 4)
    terms = model.loss(model(zero_fill(inputs, mask, model.modalities), mask), _batch(model, inputs, mask))
    (terms["dao"] + terms["dco"]).backward()

    def grad_norm(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_norm(model.specific["text"]) > 0
    if aux_on_missing:
        assert grad_norm(model.specific["visual"]) > 0
    else:
        assert grad_norm(model.specific["visual"]) == 0
        assert grad_norm(model.stems["visual"]) == 0


def test_missing_modality_specific_encoder_gets_no_gradient_from_total_loss():
    model = _model("segmentation", seg_widths=(4, 8)).train()
    mask = torch.tensor([[True, True, True, False]] * 2)
    inputs = _inputs(model, 2)
    model.loss(model(zero_fill(inputs, mask, model.modalities), mask), _batch(model, inputs, mask))["loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.specific["t2"].parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.specific["t1"].parameters())


# ------------------------------------------------------------------------------- DAO / DCO by hand
def _hand_dao(kind, r, dao_logits, counted, pairs):
    terms = []
    B, M = counted.shape
    if kind == "ce":
        for b in range(B):
            for i in range(M):
                if counted[b, i]:
                    q = torch.softmax(dao_logits[b, i], -1)
                    terms.append(-(torch.full((M,), 1.0 / M) * q.log()).sum())
    else:
        for b in range(B):
            for a, c in pairs:
                if counted[b, a] and counted[b, c]:
                    if kind == "l1":
                        terms.append((r[b, a] - r[b, c]).abs().mean())
                    elif kind == "mse":
                        terms.append(((r[b, a] - r[b, c]) ** 2).mean())
                    else:
                        p, q = torch.softmax(dao_logits[b, a], -1), torch.softmax(dao_logits[b, c], -1)
                        terms.append((p * (p / q).log()).sum())
    # the paper's reduction (default): each sample's terms summed, then the mean over the B samples
    return torch.stack(terms).sum() / B if terms else torch.tensor(0.0)


def _hand_dco(dco_logits, counted):
    terms = [
        F.cross_entropy(dco_logits[b, i][None], torch.tensor([i]))
        for b in range(counted.shape[0])
        for i in range(counted.shape[1])
        if counted[b, i]
    ]
    return torch.stack(terms).sum() / counted.shape[0]


@pytest.mark.parametrize("dao", ["l1", "mse", "kl", "ce"])
@pytest.mark.parametrize("aux_on_missing", [False, True])
@pytest.mark.parametrize("head", ["features", "segmentation"])
def test_dao_and_dco_match_hand_computation(dao, aux_on_missing, head):
    kwargs = {"seg_widths": (4, 8)} if head == "segmentation" else {}
    model = _model(head, dao=dao, aux_on_missing=aux_on_missing, alpha=0.3, beta=0.7, **kwargs).eval()
    n, M = 5, model.num_modalities
    mask = _mask(n, M, seed=2)
    inputs = zero_fill(_inputs(model, n), mask, model.modalities)
    batch = _batch(model, inputs, mask)
    with torch.no_grad():
        out = model(inputs, mask)
        terms = model.loss(out, batch)
    counted = torch.ones_like(mask) if aux_on_missing else mask
    pairs = modality_pairs(M, "all")  # the default: every pair of observed modalities
    dao_ref = _hand_dao(dao, out.aux["shared"], out.aux.get("dao_logits"), counted, pairs)
    dco_ref = _hand_dco(out.aux["dco_logits"], counted)
    torch.testing.assert_close(terms["dao"], dao_ref)
    torch.testing.assert_close(terms["dco"], dco_ref)
    torch.testing.assert_close(terms["loss"], terms["task"] + 0.3 * dao_ref + 0.7 * dco_ref)
    assert set(terms) == {"loss", "task", "dao", "dco"}


def test_dco_classifies_pooled_specific_features():
    model = _model("segmentation", seg_widths=(4, 8)).eval()
    mask = torch.ones(2, 4, dtype=torch.bool)
    with torch.no_grad():
        aux = model(_inputs(model, 2), mask).aux
        expected = model.dco_head(aux["specific"].mean(dim=(-3, -2, -1)))
    torch.testing.assert_close(aux["dco_logits"], expected)


def test_modality_pairs():
    assert modality_pairs(4, "cyclic") == [(0, 1), (1, 2), (2, 3), (3, 0)]  # train_SS.py:285-290
    assert modality_pairs(2) == [(0, 1)]
    assert modality_pairs(3, "all") == [(0, 1), (0, 2), (1, 2)]
    assert modality_pairs(1) == []


# ---------------------------------------------------------------------------------- official-code switches
def test_first_available_in_eval_uses_first_observed_shared_feature():
    model = _model("features", missing_fill="first_available").eval()
    mask = torch.tensor([[False, True, True], [True, False, True], [False, False, True], [True, True, False]])
    with torch.no_grad():
        aux = model(_inputs(model, 4), mask).aux
    r, fused = aux["shared"], aux["fused"]
    for b in range(4):
        first = int(mask[b].nonzero()[0])
        for m in (~mask[b]).nonzero().flatten():
            torch.testing.assert_close(fused[b, m], r[b, first], rtol=0, atol=0)


def test_first_available_in_training_draws_an_observed_modality_per_sample():
    model = _model("features", missing_fill="first_available", dropout=0.0).train()
    n = 64
    mask = torch.tensor([[False, True, True]] * n)  # "text" is filled from "audio" or "visual"
    torch.manual_seed(1)
    with torch.no_grad():
        aux = model(_inputs(model, n), mask).aux
    r, fused = aux["shared"], aux["fused"]
    from_audio = (fused[:, 0] == r[:, 1]).all(-1)
    from_visual = (fused[:, 0] == r[:, 2]).all(-1)
    assert bool((from_audio ^ from_visual).all())  # exactly one observed modality per sample, never the mean
    assert 10 < int(from_audio.sum()) < n - 10  # both are drawn (uniform choice)


def test_zero_input_skips_are_shared_encoder_response_to_zero_volume():
    model = _model("segmentation", missing_skips="zero_input").eval()
    mask = torch.tensor([[True, False, True, False], [False, True, True, True]])
    with torch.no_grad():
        aux = model(_inputs(model, 2), mask).aux
        zero_levels = model.shared(torch.zeros(1, 1, 16, 16, 16))
    skips = [aux["skip0"], aux["skip1"]]
    for b in range(2):
        for m in range(4):
            for level, skip in enumerate(skips):
                if not mask[b, m]:
                    torch.testing.assert_close(skip[b, m], zero_levels[level][0])
    # the bottleneck still follows missing_fill (Eq. 4 mean by default)
    r = aux["shared"]
    torch.testing.assert_close(aux["fused"][0, 1], r[0, [0, 2]].mean(0))


def test_official_combination_first_available_with_zero_input_skips():
    model = _model("segmentation", missing_fill="first_available", missing_skips="zero_input", seg_widths=(4, 8))
    model.eval()
    mask = torch.tensor([[False, False, True, True]])
    with torch.no_grad():
        aux = model(_inputs(model, 1), mask).aux
    torch.testing.assert_close(aux["fused"][0, 0], aux["shared"][0, 2], rtol=0, atol=0)


def test_variant_records_every_switch_and_bad_choices_raise():
    model = _model("features", dao="kl", missing_fill="first_available", aux_on_missing=True)
    assert model.variant() == {
        "dao": "kl",
        "alpha": 0.1,
        "beta": 0.02,
        "missing_fill": "first_available",
        "aux_on_missing": True,
        "missing_skips": "masked_mean",
        "dao_pairs": "all",
        "dao_reduction": "batch",
        "dco_reduction": "batch",
        "seg_loss": "harness",
        "sw_blend": "logits",
        "sw_mode": "gaussian",
        "sw_overlap": 0.5,
        "init": "kaiming",
    }
    with pytest.raises(ValueError, match="dao must be one of"):
        _model("features", dao="l2")
    with pytest.raises(ValueError, match="missing_fill must be one of"):
        _model("features", missing_fill="random")
    with pytest.raises(ValueError, match=r"one \(C, D, H, W\) shape"):
        ShaSpec(["a", "b"], {"a": (1, 8, 8, 8), "b": (1, 8, 8, 4)}, Task.SEGMENTATION, 3)


# --------------------------------------------------------------------------------------------- three heads
SWITCHES = [
    {},
    {"missing_fill": "first_available", "aux_on_missing": True, "dao": "kl"},
    {"missing_skips": "zero_input", "dao": "ce"},
]


def test_registered_and_constructible_from_linked_args_only():
    assert METHODS.get("shaspec") is ShaSpec
    for task, shapes, num_classes in HEADS.values():
        ShaSpec(list(shapes), shapes, task, num_classes)
    ShaSpec(["a", "b"], {"a": (6,), "b": (4,)}, Task.REGRESSION, 1)
    ShaSpec(["a", "b"], {"a": (6,), "b": (4,)}, Task.MULTILABEL, 3)


@pytest.mark.parametrize("head", list(HEADS))
def test_output_shapes(head):
    model = _model(head).eval()
    mask = _mask(3, model.num_modalities)
    with torch.no_grad():
        out = model(_inputs(model, 3), mask)
    task, shapes, num_classes = HEADS[head]
    spatial = next(iter(shapes.values()))[1:] if task is Task.SEGMENTATION else ()
    assert tuple(out.logits.shape) == (3, num_classes, *spatial)
    assert out.aux["fused"].shape[:2] == (3, model.num_modalities)
    assert tuple(out.aux["dco_logits"].shape) == (3, model.num_modalities, model.num_modalities)


def test_segmentation_pads_sizes_that_are_not_multiples():
    model = ShaSpec(["a", "b"], {"a": (1, 12, 20, 9), "b": (1, 12, 20, 9)}, Task.SEGMENTATION, 3, seg_widths=(4, 8, 16))
    with torch.no_grad():
        out = model.eval()(_inputs(model, 2), torch.tensor([[True, False], [True, True]]))
    assert tuple(out.logits.shape) == (2, 3, 12, 20, 9)


@pytest.mark.parametrize("head", list(HEADS))
def test_every_parameter_gets_a_gradient(head):
    model = _model(head, dao="kl").train()  # the KL DAO adds the only optional module (dao_head)
    mask = torch.ones(2, model.num_modalities, dtype=torch.bool)
    inputs = _inputs(model, 2)
    terms = model.loss(model(inputs, mask), _batch(model, inputs, mask))
    terms["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("switches", SWITCHES, ids=["paper", "code_fill_aux_kl", "zero_skips_ce"])
@pytest.mark.parametrize("head", list(HEADS))
def test_no_peeking(head, switches):
    model = _model(head, **switches).eval()
    n = 4
    inputs = _inputs(model, n)
    for seed in range(2):
        mask = _mask(n, model.num_modalities, seed)  # rows mix patterns
        with torch.no_grad():
            a = model(zero_fill(inputs, mask, model.modalities), mask)
            b = model(_noisy(inputs, mask, model.modalities), mask)
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.aux["fused"], b.aux["fused"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("switches", SWITCHES, ids=["paper", "code_fill_aux_kl", "zero_skips_ce"])
@pytest.mark.parametrize("head", list(HEADS))
def test_sample_independence(head, switches):
    model = _model(head, **switches).eval()
    n, M = 4, model.num_modalities
    inputs = _inputs(model, n)
    mask = _mask(n, M, 0)
    with torch.no_grad():
        ref = model(zero_fill(inputs, mask, model.modalities), mask).logits
        for seed in (1, 2):
            other = _mask(n, M, seed)
            other[0] = mask[0]
            out = model(zero_fill(inputs, other, model.modalities), other).logits
            torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-5)


def test_sliding_window_prediction_no_peeking_and_shape():
    shapes = {m: (1, 16, 16, 16) for m in ("flair", "t1")}
    model = ShaSpec(list(shapes), shapes, Task.SEGMENTATION, 3, seg_widths=(4, 8, 16), sw_batch_size=2).eval()
    assert model.roi_size == (16, 16, 16)
    g = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(2, 1, 24, 20, 16, generator=g) for m in shapes}  # whole volumes > roi
    mask = torch.tensor([[True, False], [False, True]])
    with torch.no_grad():
        a = model.predict_logits(zero_fill(inputs, mask, model.modalities), mask)
        b = model.predict_logits(_noisy(inputs, mask, model.modalities), mask)
    assert tuple(a.shape) == (2, 3, 24, 20, 16)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # row 0 alone gives the same windows as in the batch: the mask is repeated per window position correctly
    inputs0 = {m: v[:1] for m, v in zero_fill(inputs, mask, model.modalities).items()}
    with torch.no_grad():
        torch.testing.assert_close(model.predict_logits(inputs0, mask[:1]), a[:1], rtol=1e-5, atol=1e-5)


def test_sliding_window_with_one_window_equals_forward():
    shapes = {m: (1, 16, 16, 16) for m in ("a", "b")}
    model = ShaSpec(list(shapes), shapes, Task.SEGMENTATION, 3, seg_widths=(4, 8)).eval()
    inputs = _inputs(model, 2)
    mask = torch.tensor([[True, False], [True, True]])
    with torch.no_grad():
        torch.testing.assert_close(model.predict_logits(inputs, mask), model(inputs, mask).logits)
