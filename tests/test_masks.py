import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmbench.masks import (
    AllPatterns,
    BernoulliMissing,
    FixedPattern,
    MaskTable,
    PatternDistribution,
    PatternProtocol,
    PerClassFraction,
    RateProtocol,
    ShaSpecCodeSampler,
    WarmupThen,
    all_pattern_ids,
    counter_uniform,
    pattern_id_from_name,
    pattern_ids,
    pattern_mask,
    pattern_name,
    zero_fill,
)

MODS = ("flair", "t1", "t1ce", "t2")


def test_pattern_ids_and_names_follow_design():
    mask = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=torch.bool)
    assert pattern_ids(mask).tolist() == [1 + 4, 15, 8]
    assert pattern_name(5, MODS) == "flair+t1ce"
    assert pattern_name(15, MODS) == "flair+t1+t1ce+t2"
    assert pattern_id_from_name("t1ce+flair", MODS) == 5
    for pid in range(1, 16):
        assert pattern_id_from_name(pattern_name(pid, MODS), MODS) == pid
        assert pattern_ids(pattern_mask(pid, 4)[None]).item() == pid
    ids = all_pattern_ids(4)
    assert sorted(ids) == list(range(1, 16))
    assert [bin(i).count("1") for i in ids] == sorted(bin(i).count("1") for i in ids)
    with pytest.raises(ValueError, match="unknown modalities"):
        pattern_id_from_name("flair+dwi", MODS)


def test_zero_fill_zeroes_only_masked_inputs():
    inputs = {"a": torch.ones(3, 2), "b": torch.ones(3, 1, 2, 2)}
    mask = torch.tensor([[True, False], [False, True], [True, True]])
    out = zero_fill(inputs, mask, ("a", "b"))
    assert out["a"].sum(1).tolist() == [2, 0, 2]
    assert out["b"].flatten(1).sum(1).tolist() == [0, 4, 4]


SPECS = [
    BernoulliMissing(0.5),
    BernoulliMissing({"flair": 0.9, "t2": 0.1}, min_present=2),
    PatternDistribution({"flair": 1, "t1+t2": 3}),
    ShaSpecCodeSampler(),
    FixedPattern(["t1", "t2"]),
    WarmupThen(2, BernoulliMissing(0.3, resample_each_epoch=True)),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: type(s).__name__)
def test_masks_are_pure_functions_of_seed_split_index(spec):
    idx = torch.arange(500)
    a = spec.masks(MODS, 3, "train", idx, epoch=4)
    b = spec.masks(MODS, 3, "train", idx, epoch=4)
    assert torch.equal(a, b)
    # any subset / order of indices gives the same rows (batch order, sharding)
    perm = torch.randperm(500)[:123]
    assert torch.equal(spec.masks(MODS, 3, "train", perm, epoch=4), a[perm])
    # re-instantiation from the same arguments gives the same masks
    assert a.dtype == torch.bool and a.shape == (500, 4)
    assert (a.sum(1) >= 1).all()


def _loader_masks(num_workers: int) -> torch.Tensor:
    from mmbench.data.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(num_samples=(64, 8, 8), missingness=BernoulliMissing(0.5), num_workers=num_workers)
    dm.setup("fit")
    rows = torch.zeros(64, 3, dtype=torch.bool)
    for batch in DataLoader(dm.datasets["train"], batch_size=5, shuffle=True, num_workers=num_workers):
        batch = dm.apply_missingness(batch, "train")
        rows[batch["index"]] = batch["mask"]
    return rows


def test_loader_masks_do_not_depend_on_workers_or_batch_order():
    assert torch.equal(_loader_masks(0), _loader_masks(2))


def test_masks_identical_in_a_fresh_process():
    code = (
        "import torch;from mmbench.masks import BernoulliMissing;"
        "m=BernoulliMissing(0.4).masks(('a','b','c'),7,'val',torch.arange(200));"
        "print(''.join('1' if v else '0' for v in m.flatten().tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    here = BernoulliMissing(0.4).masks(("a", "b", "c"), 7, "val", torch.arange(200))
    assert out == "".join("1" if v else "0" for v in here.flatten().tolist())


def test_split_seed_and_epoch_change_masks():
    spec = BernoulliMissing(0.5, resample_each_epoch=True)
    idx = torch.arange(400)
    base = spec.masks(MODS, 0, "train", idx, 0)
    assert not torch.equal(base, spec.masks(MODS, 1, "train", idx, 0))
    assert not torch.equal(base, spec.masks(MODS, 0, "val", idx, 0))
    assert not torch.equal(base, spec.masks(MODS, 0, "train", idx, 1))
    fixed = BernoulliMissing(0.5)  # default: one mask per sample for the whole run
    assert torch.equal(fixed.masks(MODS, 0, "train", idx, 0), fixed.masks(MODS, 0, "train", idx, 5))


def _binomial_tol(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-9  # 5 sigma


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.8])
def test_bernoulli_observed_rates_match_the_conditional_distribution(rate):
    n = 20000
    spec = BernoulliMissing(rate, min_present=1)
    m = spec.masks(MODS, 0, "train", torch.arange(n))
    assert (m.sum(1) >= 1).all()
    q = 1 - rate
    expected = q / (1 - rate**4)  # P(observed | at least one observed)
    observed = m.float().mean(0).numpy()
    assert np.all(np.abs(observed - expected) < _binomial_tol(expected, n))


def test_bernoulli_min_present_holds_and_infeasible_specs_fail():
    m = BernoulliMissing(0.7, min_present=3).masks(MODS, 0, "train", torch.arange(3000))
    assert (m.sum(1) >= 3).all()
    with pytest.raises(ValueError, match="cannot be met"):
        BernoulliMissing(0.5, min_present=5).masks(MODS, 0, "train", torch.arange(3))
    with pytest.raises(ValueError, match="cannot leave"):
        BernoulliMissing({"flair": 1.0, "t1": 1.0, "t1ce": 1.0, "t2": 1.0}, min_present=1).validate(MODS)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
            BernoulliMissing(bad)


def test_shaspec_code_sampler_pattern_frequencies():
    n = 30000
    pids = pattern_ids(ShaSpecCodeSampler().masks(MODS, 0, "train", torch.arange(n)))
    freq = torch.bincount(pids, minlength=16).double() / n
    for pid in range(1, 16):
        k = bin(pid).count("1")
        p = 1 / 4 / math.comb(4, k)
        assert abs(freq[pid].item() - p) < _binomial_tol(p, n), (pid, freq[pid].item(), p)
    assert abs(freq[15].item() - 0.25) < _binomial_tol(0.25, n)  # the full set: 1/M
    assert freq[0] == 0


def test_pattern_distribution_and_fixed_pattern():
    n = 20000
    pids = pattern_ids(PatternDistribution({"flair": 1, "t1+t2": 3}).masks(MODS, 0, "train", torch.arange(n)))
    assert set(pids.unique().tolist()) == {1, 2 + 8}
    assert abs((pids == 1).double().mean().item() - 0.25) < _binomial_tol(0.25, n)
    fixed = FixedPattern(["t2", "t1"]).masks(MODS, 0, "train", torch.arange(10))
    assert (pattern_ids(fixed) == 10).all()


def test_warmup_is_full_modality_then_inner_spec():
    spec = WarmupThen(2, BernoulliMissing(0.5, resample_each_epoch=True))
    idx = torch.arange(300)
    assert spec.masks(MODS, 0, "train", idx, 0).all() and spec.masks(MODS, 0, "train", idx, 1).all()
    after = spec.masks(MODS, 0, "train", idx, 2)
    assert not after.all() and (after.sum(1) >= 1).all()


def test_eval_tables_and_hashes():
    t = AllPatterns().table(MODS, 5, seed=0)
    assert len(t) == 15 * 5
    assert torch.equal(torch.bincount(pattern_ids(t.mask)), torch.tensor([0] + [5] * 15))
    assert t.hash == AllPatterns().table(MODS, 5, seed=123).hash  # all_patterns does not depend on the seed
    r1 = RateProtocol(0.5).table(MODS, 100, seed=0)
    assert r1.hash == RateProtocol(0.5).table(MODS, 100, seed=0).hash
    assert r1.hash != RateProtocol(0.5).table(MODS, 100, seed=1).hash
    assert r1.hash != RateProtocol(0.3).table(MODS, 100, seed=0).hash
    assert r1.hash.startswith("sha256:")


def _ladder_label(spec) -> str:
    """The sweep's former isinstance ladder (``sweep.missing_label`` before specs described themselves)."""
    import re

    def slug(text: str) -> str:
        out = re.sub(r"[^A-Za-z0-9._+=-]+", "-", text).strip("-.")
        return re.sub(r"_{2,}", "_", out) or "x"

    def fmt(x: float) -> str:
        return f"{float(x):g}"

    if isinstance(spec, BernoulliMissing):
        if isinstance(spec.rate, dict):
            label = "bernoulli-" + "-".join(f"{k}{fmt(v)}" for k, v in sorted(spec.rate.items()))
        else:
            label = f"bernoulli{fmt(spec.rate)}"
        if spec.min_present != 1:
            label += f"-min{spec.min_present}"
    elif isinstance(spec, FixedPattern):
        label = "fixed-" + "+".join(spec.observed)
    elif isinstance(spec, PatternDistribution):
        label = "patterns"
    elif isinstance(spec, ShaSpecCodeSampler):
        label = "shaspec-code"
    elif isinstance(spec, WarmupThen):
        label = f"warmup{spec.warmup_epochs}-{_ladder_label(spec.then)}"
    else:
        label = type(spec).__name__.lower()
    return slug(label)


LABEL_SPECS = [
    BernoulliMissing(0.5),
    BernoulliMissing(0.0),
    BernoulliMissing(1 / 3, min_present=2),
    BernoulliMissing({"t2": 0.25, "flair": 0.7}),
    BernoulliMissing({"flair": 0.1}, min_present=0),
    FixedPattern(["flair", "t1ce"]),
    FixedPattern(["odd name.", "x"]),
    PatternDistribution({"flair": 1.0, "t1+t2": 2.0}),
    ShaSpecCodeSampler(),
    WarmupThen(3, BernoulliMissing(0.7)),
    WarmupThen(0, FixedPattern(["t1 ", "t2."])),
    WarmupThen(2, WarmupThen(1, ShaSpecCodeSampler())),
]


@pytest.mark.parametrize("spec", LABEL_SPECS, ids=lambda s: type(s).__name__)
def test_spec_labels_match_the_former_sweep_ladder(spec):
    from mmbench.sweep import missing_label

    assert missing_label(spec) == _ladder_label(spec)
    assert missing_label(PerClassFraction("audio", 0.2)) == _ladder_label(PerClassFraction("audio", 0.2))


def test_spec_labels_name_the_spec():
    assert BernoulliMissing(0.5).label() == "bernoulli0.5"
    assert BernoulliMissing({"t2": 0.25, "flair": 0.7}, min_present=2).label() == "bernoulli-flair0.7-t20.25-min2"
    assert FixedPattern(["flair", "t1ce"]).label() == "fixed-flair+t1ce"
    assert WarmupThen(3, BernoulliMissing(0.7)).label() == "warmup3-bernoulli0.7"


def _smil_reference(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """SMIL's rule written out: per class, the floor(fraction·n_c + 0.5) samples with the smallest uniforms."""
    u = counter_uniform(seed, "train:per_class_fraction", np.arange(len(labels)))
    audio = np.zeros(len(labels), dtype=bool)
    for c in set(labels.tolist()):
        members = [i for i in range(len(labels)) if labels[i] == c]
        k = math.floor(fraction * len(members) + 0.5)
        audio[sorted(members, key=lambda i: (u[i], i))[:k]] = True
    return np.stack([np.ones(len(labels), dtype=bool), audio], axis=1)  # [N, 2]: image always observed


def test_per_class_fraction_is_a_spec_that_sees_labels():
    labels = np.array([0] * 7 + [1] * 12 + [2] * 3)[np.random.default_rng(0).permutation(22)]
    spec = PerClassFraction("audio", 0.3)
    assert spec.needs_labels and WarmupThen(1, spec).needs_labels and not BernoulliMissing(0.5).needs_labels
    idx = torch.tensor([3, 0, 21, 3, 10])
    want = torch.from_numpy(_smil_reference(labels, 0.3, seed=4))
    torch.testing.assert_close(spec.masks(("image", "audio"), 4, "train", torch.arange(22), labels=labels), want)
    torch.testing.assert_close(spec.masks(("image", "audio"), 4, "train", idx, labels=labels), want[idx])
    # through a warm-up: full modality first, then the per-class table
    warm = WarmupThen(2, spec)
    assert warm.masks(("image", "audio"), 4, "train", idx, epoch=1, labels=labels).all()
    torch.testing.assert_close(warm.masks(("image", "audio"), 4, "train", idx, epoch=2, labels=labels), want[idx])
    # other splits: every modality but the partial one, no labels needed
    assert spec.masks(("image", "audio"), 4, "val", idx).tolist() == [[True, False]] * 5
    with pytest.raises(ValueError, match="needs class labels"):
        spec.masks(("image", "audio"), 4, "train", idx)


def test_any_tensor_data_module_feeds_labels_to_a_label_aware_spec():
    from mmbench.data.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(
        input_shapes={"image": [3], "audio": [2]}, num_samples=(40, 8, 8), missingness=PerClassFraction("audio", 0.5)
    )
    dm.setup("fit")
    labels = dm.datasets["train"].target.numpy()
    want = torch.from_numpy(_smil_reference(labels, 0.5, seed=0))
    torch.testing.assert_close(dm.masks_for("train", torch.arange(40)), want)
    batch = dm.apply_missingness(next(iter(dm.train_dataloader())), "train")
    torch.testing.assert_close(batch["mask"], want[batch["index"]])


def test_pattern_protocol_masks_one_pattern_for_every_sample():
    mods = ("flair", "t1", "t1ce", "t2")
    table = PatternProtocol(["t2", "flair"]).table(mods, 5, seed=0, split="val")
    assert table.protocol == "pattern(t2+flair)" and table.sample_index.tolist() == list(range(5))
    assert table.mask.tolist() == [[True, False, False, True]] * 5
    # the hash of the same rows built by hand (MaskTable.hash covers protocol, modalities, rows and masks)
    by_hand = MaskTable("pattern(t2+flair)", mods, torch.arange(5), torch.tensor([[1, 0, 0, 1]] * 5).bool())
    assert table.hash == by_hand.hash
    with pytest.raises(ValueError, match="at least one"):
        PatternProtocol([])


@pytest.mark.parametrize(
    ("spec", "regime"),
    [
        (None, "full"),
        (FixedPattern(["a"]), "dedicated"),
        (WarmupThen(3, FixedPattern(["a"])), "dedicated"),  # ShaSpec's warm-up, then one dedicated pattern
        (WarmupThen(3, BernoulliMissing(0.5)), "non-dedicated"),
        (WarmupThen(3, BernoulliMissing(0.0)), "non-dedicated"),  # a warm-up is never "full"
        (BernoulliMissing(0.5), "non-dedicated"),
    ],
)
def test_training_regime_labels(spec, regime):
    from mmbench.data.synthetic import SyntheticDataModule

    dm = SyntheticDataModule(input_shapes={"a": [3], "b": [2]}, num_samples=(8, 4, 4), missingness=spec)
    assert dm.training_regime == regime
