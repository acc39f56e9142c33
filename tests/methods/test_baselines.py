"""The reference baselines (methods/baselines.py): contracts on every task with tiny settings, and what each
baseline specifically promises (mean_fill's observed-only means, HeMIS's moments, ModDrop's dropping, Unimodal's
prior, late fusion's masked mean)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import make_dm
from mmbench.cli import cli_main
from mmbench.functional.fusion import drop_modalities, masked_concat, masked_mean, masked_mean_var
from mmbench.masks import all_pattern_ids, pattern_mask, zero_fill
from mmbench.methods import HeMIS, LateFusion, MeanFill, ModDrop, Unimodal, ZeroFill
from mmbench.registry import METHODS
from mmbench.types import Task

BASELINES = {
    "zero_fill": ZeroFill,
    "mean_fill": MeanFill,
    "late_fusion": LateFusion,
    "moddrop": ModDrop,
    "hemis": HeMIS,
    "unimodal": Unimodal,
}
CASES = ["classification", "features", "multilabel", "regression", "segmentation"]
SEG_SHAPE = [1, 8, 8, 8]  # smaller than conftest's volumes: these tests run tiny U-Nets (2 levels)


def _build(name, case):
    torch.manual_seed(0)
    extra = {"input_shapes": {m: SEG_SHAPE for m in ("flair", "t1", "t1ce", "t2")}} if case == "segmentation" else {}
    dm = make_dm(case, **extra)
    dm.setup("fit")
    dm.setup("test")
    method = BASELINES[name](
        modalities=dm.modalities,
        input_shapes=dm.input_shapes,
        task=dm.task,
        num_classes=dm.num_classes,
        hidden_dim=8,
        unet_widths=(4, 8),
    )
    method.fit_unsupervised(dm)
    return dm, method


def _batch(dm, split="test", n=4):
    items = [dm.datasets[split][i] for i in range(n)]
    inputs = {m: torch.stack([it["inputs"][m] for it in items]) for m in dm.modalities}
    return inputs, torch.stack([torch.as_tensor(it["target"]) for it in items])


def _random_mask(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, m, generator=g) < 0.5
    mask[torch.arange(n), torch.randint(m, (n,), generator=g)] = True
    return mask


def _noisy(inputs, mask, modalities):
    """Masked-out inputs replaced by large noise."""
    out = {}
    for i, m in enumerate(modalities):
        keep = mask[:, i].reshape(-1, *([1] * (inputs[m].dim() - 1)))
        out[m] = torch.where(keep, inputs[m], 100 * torch.randn_like(inputs[m]))
    return out


# ------------------------------------------------------------------------------------------------- contracts
def test_registered_names_and_tasks():
    for name, cls in BASELINES.items():
        assert METHODS.get(name) is cls
        assert set(cls.supported_tasks) == set(Task), name


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(BASELINES))
def test_shapes_for_every_pattern(name, case):
    dm, method = _build(name, case)
    method.eval()
    inputs, _ = _batch(dm)
    M = len(dm.modalities)
    expected = (4, 3, *SEG_SHAPE[1:]) if case == "segmentation" else (4, dm.num_classes)
    with torch.no_grad():
        for pid in all_pattern_ids(M):
            mask = pattern_mask(pid, M).expand(4, M).clone()
            logits = method(zero_fill(inputs, mask, dm.modalities), mask).logits
            assert tuple(logits.shape) == expected
            assert torch.isfinite(logits).all()
    assert method.variant(), "every baseline records its switches"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(BASELINES))
def test_every_parameter_gets_a_gradient(name, case):
    dm, method = _build(name, case)
    method.train()
    inputs, target = _batch(dm, "train")
    mask = torch.ones(4, len(dm.modalities), dtype=torch.bool)
    terms = method.loss(method(inputs, mask), {"inputs": inputs, "target": target, "mask": mask})
    terms["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(BASELINES))
def test_no_peeking_and_sample_independence(name, case):
    dm, method = _build(name, case)
    method.eval()
    inputs, _ = _batch(dm)
    M = len(dm.modalities)
    with torch.no_grad():
        for seed in range(3):
            mask = _random_mask(4, M, seed)
            clean = method(zero_fill(inputs, mask, dm.modalities), mask).logits
            noisy = method(_noisy(inputs, mask, dm.modalities), mask).logits
            torch.testing.assert_close(clean, noisy, rtol=1e-5, atol=1e-5)
            other = _random_mask(4, M, seed + 10)
            other[0] = mask[0]
            row0 = method(zero_fill(inputs, other, dm.modalities), other).logits[0]
            torch.testing.assert_close(row0, clean[0], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ fusion kernels
def test_masked_concat_zeroes_missing_features():
    feats = torch.randn(2, 3, 4, 5)  # [B, M, C, S]
    mask = torch.tensor([[True, False, True], [False, True, False]])
    out = masked_concat(feats, mask).reshape(2, 3, 4, 5)
    torch.testing.assert_close(out[mask], feats[mask])
    assert (out[~mask] == 0).all()


def test_masked_mean_matches_subset_mean():
    feats = torch.randn(3, 4, 6)
    mask = torch.tensor([[True, False, True, True], [False, True, False, False], [True] * 4])
    out = masked_mean(feats, mask)
    for b in range(3):
        torch.testing.assert_close(out[b], feats[b, mask[b]].mean(0))


def test_hemis_moments_reference_and_zero_variance_with_one_modality():
    feats = torch.randn(4, 3, 5, 2, 2)  # [B, M, C, H, W]
    mask = torch.tensor([[True, False, False], [False, True, True], [True, True, True], [False, False, True]])
    out = masked_mean_var(feats, mask)
    assert out.shape == (4, 10, 2, 2)
    mean, var = out[:, :5], out[:, 5:]
    for b in range(4):
        obs = feats[b, mask[b]]
        torch.testing.assert_close(mean[b], obs.mean(0))
        torch.testing.assert_close(var[b], obs.var(0, unbiased=False))
    for b in (0, 3):  # one observed modality: the mean is its features, the variance exactly 0
        torch.testing.assert_close(mean[b], feats[b, mask[b]][0])
        assert (var[b] == 0).all()


def test_hemis_fusion_is_permutation_invariant():
    feats = torch.randn(5, 4, 6)
    mask = _random_mask(5, 4, 0)
    ref = masked_mean_var(feats, mask)
    for seed in range(3):
        perm = torch.randperm(4, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(masked_mean_var(feats[:, perm], mask[:, perm]), ref)


# -------------------------------------------------------------------------------------------------- mean_fill
class _FakeDataModule:
    """Train batches whose masked-out slots hold huge values; ``apply_missingness`` attaches masks but does not
    zero-fill, so only the mask can keep those values out of the means."""

    modalities = ("vec", "vol")

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        n = 10
        self.mask = torch.rand(n, 2, generator=g) < 0.6
        self.mask[:, 0] |= ~self.mask[:, 1]
        self.vec = torch.randn(n, 3, generator=g)
        self.vol = torch.randn(n, 2, 2, 2, 2, generator=g)
        self.splits: list[str] = []

    def train_dataloader(self):
        vec = torch.where(self.mask[:, :1], self.vec, torch.full_like(self.vec, 1e9))
        vol = torch.where(self.mask[:, 1].reshape(-1, 1, 1, 1, 1), self.vol, torch.full_like(self.vol, -1e9))
        rows = [{"inputs": {"vec": vec[i], "vol": vol[i]}, "index": i} for i in range(len(vec))]
        return DataLoader(rows, batch_size=3)

    def apply_missingness(self, batch, split, epoch=0):
        self.splits.append(split)
        batch["mask"] = self.mask[batch["index"]]
        return batch


def test_mean_fill_uses_only_observed_training_entries():
    dm = _FakeDataModule()
    method = MeanFill(("vec", "vol"), {"vec": (3,), "vol": (2, 2, 2, 2)}, Task.REGRESSION, 1, hidden_dim=4)
    method.fit_unsupervised(dm)
    assert set(dm.splits) == {"train"}
    obs_vec, obs_vol = dm.vec[dm.mask[:, 0]], dm.vol[dm.mask[:, 1]]
    torch.testing.assert_close(method.train_mean("vec"), obs_vec.mean(0))
    torch.testing.assert_close(method.train_mean("vol"), obs_vol.mean(dim=(0, 2, 3, 4)).reshape(2, 1, 1, 1))
    assert method.mean_count.tolist() == dm.mask.sum(0).tolist()
    # the means travel with the checkpoint
    fresh = MeanFill(("vec", "vol"), {"vec": (3,), "vol": (2, 2, 2, 2)}, Task.REGRESSION, 1, hidden_dim=4)
    fresh.load_state_dict(method.state_dict())
    torch.testing.assert_close(fresh.train_mean("vec"), method.train_mean("vec"))


def test_mean_fill_feeds_the_mean_to_the_encoder_of_a_missing_modality():
    dm, method = _build("mean_fill", "features")
    assert (method.mean_count > 0).all()
    inputs, _ = _batch(dm)
    mask = torch.tensor([[True, False, True]] * 4)
    filled = method.prepare_inputs(_noisy(inputs, mask, dm.modalities), mask)
    torch.testing.assert_close(filled["audio"], method.train_mean("audio").expand(4, -1))
    torch.testing.assert_close(filled["text"], inputs["text"])


# ---------------------------------------------------------------------------------------------------- moddrop
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.9, 1.0])
def test_drop_modalities_never_leaves_a_sample_with_none(rate):
    torch.manual_seed(0)
    mask = _random_mask(2000, 4, 1)
    dropped = drop_modalities(mask, rate)
    assert not (dropped & ~mask).any(), "only observed modalities may be kept"
    assert dropped.any(1).all(), "every sample keeps at least one modality"
    if rate == 0.0:
        assert torch.equal(dropped, mask)
    if rate == 1.0:
        assert (dropped.sum(1) == 1).all()
    if rate == 0.25:  # rows with >= 2 observed rarely need rescuing: the drop rate is close to the nominal one
        many = mask.sum(1) >= 3
        frac = 1 - dropped[many].sum() / mask[many].sum()
        assert abs(float(frac) - 0.25) < 0.03


def test_moddrop_never_drops_at_evaluation_and_draws_no_random_numbers():
    dm, method = _build("moddrop", "features")
    inputs, _ = _batch(dm)
    mask = torch.ones(4, 3, dtype=torch.bool)
    method.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        a = method(inputs, mask).logits
        b = ZeroFill.forward(method, inputs, mask).logits  # the same network with the mask as given
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(a, b)


def test_moddrop_drops_in_training_only(monkeypatch):
    dm, method = _build("moddrop", "features")
    method.drop_rate = 0.9
    inputs, _ = _batch(dm, n=16)
    mask = torch.ones(16, 3, dtype=torch.bool)
    seen = []
    original = ZeroFill.forward
    monkeypatch.setattr(ZeroFill, "forward", lambda self, x, m: seen.append(m) or original(self, x, m))
    method.train()
    method(inputs, mask)
    method.eval()
    method(inputs, mask)
    assert not torch.equal(seen[0], mask) and seen[0].any(1).all()
    assert torch.equal(seen[1], mask)
    with pytest.raises(ValueError, match="drop_rate"):
        ModDrop(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, drop_rate=1.5)


# --------------------------------------------------------------------------------------- unimodal, late fusion
@pytest.mark.parametrize("case", ["features", "segmentation"])
def test_unimodal_predicts_the_prior_without_its_modality(case):
    dm, method = _build("unimodal", case)
    assert method.modality == dm.modalities[0]
    with torch.no_grad():
        method.prior_logits.copy_(torch.arange(method.num_classes, dtype=torch.float))
    method.eval()
    inputs, _ = _batch(dm)
    mask = torch.ones(4, len(dm.modalities), dtype=torch.bool)
    mask[:2, 0] = False
    logits = method(zero_fill(inputs, mask, dm.modalities), mask).logits
    prior = method.prior_logits.reshape(1, -1, *([1] * (logits.dim() - 2))).expand_as(logits[:2])
    torch.testing.assert_close(logits[:2], prior)
    assert not torch.allclose(logits[2:], prior)
    mask[2:, 1:] = False  # the other modalities never matter
    torch.testing.assert_close(method(zero_fill(inputs, mask, dm.modalities), mask).logits[2:], logits[2:])


def test_unimodal_rejects_an_unknown_modality():
    with pytest.raises(ValueError, match="not one of"):
        Unimodal(("a", "b"), {"a": (3,), "b": (3,)}, Task.MULTICLASS, 2, modality="c")


def test_late_fusion_segmentation_is_the_masked_mean_of_per_modality_logits():
    dm, method = _build("late_fusion", "segmentation")
    method.eval()
    inputs, _ = _batch(dm)
    mask = _random_mask(4, 4, 3)
    with torch.no_grad():
        out = method(inputs, mask)
    per = out.aux["per_modality_logits"]  # [B, M, 3, D, H, W]
    assert per.shape == (4, 4, 3, *SEG_SHAPE[1:])
    for b in range(4):
        torch.testing.assert_close(out.logits[b], per[b, mask[b]].mean(0))


# ------------------------------------------------------------------------------------------ full modality
@pytest.mark.parametrize("name", ["full_modality.yaml", "full_modality_seg.yaml"])
def test_full_modality_yaml_is_zero_fill_with_training_missingness_off(name, tmp_cwd):
    exp = Path(__file__).resolve().parents[2] / "experiments"
    cli = cli_main(
        ["--config", str(exp / "data/avmnist_lite.yaml"), "--config", str(exp / "methods" / name)], run=False
    )
    assert isinstance(cli.model, ZeroFill)
    assert cli.datamodule.training_regime == "full"
    assert len(cli.datamodule.eval_protocols) == 2  # test masks still come from the data YAML's protocols
