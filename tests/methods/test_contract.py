"""Contract tests for every registered method × every task it declares (DESIGN.md §2).

* shapes and finiteness for random masks and for every pattern;
* every trainable parameter gets a gradient with all modalities observed;
* no peeking: in eval, replacing masked-out inputs by noise leaves outputs unchanged;
* sample independence: a row's eval output does not change when other rows' masks change;
* the unsupervised stage reads no masked-out training entry (they are NaN here) and nothing of val/test.
"""

from __future__ import annotations

import pytest
import torch

import mmbench.methods  # noqa: F401  (registers every method)
from conftest import TASK_CASES, make_dm
from mmbench.data.base import TensorSplit
from mmbench.masks import BernoulliMissing, all_pattern_ids, pattern_mask, zero_fill
from mmbench.methods import MeanFill
from mmbench.registry import METHODS
from mmbench.types import Task

# every task family the harness ships; a method must declare the tasks it supports
CASES = [
    (name, case)
    for name, cls in METHODS.items()
    for case, spec in TASK_CASES.items()
    if spec["task"] in cls.supported_tasks
]


def _build(name, case):
    torch.manual_seed(0)
    dm = make_dm(case)
    dm.setup("fit")
    dm.setup("test")
    cls = METHODS.get(name)
    method = cls(modalities=dm.modalities, input_shapes=dm.input_shapes, task=dm.task, num_classes=dm.num_classes)
    method.fit_unsupervised(dm)
    return dm, method


def _batch(dm, split="test", n=4):
    items = [dm.datasets[split][i] for i in range(n)]
    inputs = {m: torch.stack([it["inputs"][m] for it in items]) for m in dm.modalities}
    target = torch.stack([torch.as_tensor(it["target"]) for it in items])
    return inputs, target


def _random_mask(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, m, generator=g) < 0.5
    mask[torch.arange(n), torch.randint(m, (n,), generator=g)] = True
    return mask


def _expected_shape(dm, n):
    if dm.task is Task.SEGMENTATION:
        return (n, 3, *dm.input_shapes[dm.modalities[0]][1:])
    return (n, dm.num_classes)


def test_every_method_declares_classification_and_segmentation_support():
    for name, cls in METHODS.items():
        assert Task.MULTICLASS in cls.supported_tasks, name
        assert Task.SEGMENTATION in cls.supported_tasks, name


@pytest.mark.parametrize(("name", "case"), CASES)
def test_output_shapes_for_every_pattern(name, case):
    dm, method = _build(name, case)
    method.eval()
    inputs, _ = _batch(dm)
    M = len(dm.modalities)
    with torch.no_grad():
        for pid in all_pattern_ids(M):
            mask = pattern_mask(pid, M).expand(4, M).clone()
            out = method(zero_fill(inputs, mask, dm.modalities), mask)
            assert tuple(out.logits.shape) == _expected_shape(dm, 4)
            assert torch.isfinite(out.logits).all()
        mask = _random_mask(4, M, 1)
        assert torch.isfinite(method(zero_fill(inputs, mask, dm.modalities), mask).logits).all()


@pytest.mark.parametrize(("name", "case"), CASES)
def test_every_parameter_gets_a_gradient(name, case):
    dm, method = _build(name, case)
    method.train()
    inputs, target = _batch(dm, "train")
    mask = torch.ones(4, len(dm.modalities), dtype=torch.bool)
    out = method(inputs, mask)
    terms = method.loss(out, {"inputs": inputs, "target": target, "mask": mask, "index": torch.arange(4)})
    assert "loss" in terms and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    missing = [n for n, p in method.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize(("name", "case"), CASES)
def test_no_peeking(name, case):
    dm, method = _build(name, case)
    method.eval()
    inputs, _ = _batch(dm)
    M = len(dm.modalities)
    for seed in range(3):
        mask = _random_mask(4, M, seed)
        clean = zero_fill(inputs, mask, dm.modalities)
        noisy = {}
        for i, m in enumerate(dm.modalities):
            keep = mask[:, i].reshape(-1, *([1] * (inputs[m].dim() - 1)))
            noisy[m] = torch.where(keep, inputs[m], 100 * torch.randn_like(inputs[m]))
        with torch.no_grad():
            a, b = method(clean, mask).logits, method(noisy, mask).logits
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "case"), CASES)
def test_sample_independence(name, case):
    dm, method = _build(name, case)
    method.eval()
    inputs, _ = _batch(dm)
    M = len(dm.modalities)
    mask = _random_mask(4, M, 0)
    with torch.no_grad():
        ref = method(zero_fill(inputs, mask, dm.modalities), mask).logits
        for seed in range(1, 4):
            other = _random_mask(4, M, seed)
            other[0] = mask[0]
            out = method(zero_fill(inputs, other, dm.modalities), other).logits
            torch.testing.assert_close(out[0], ref[0], rtol=1e-5, atol=1e-5)


class _Forbidden(torch.utils.data.Dataset):
    def __len__(self):
        raise AssertionError("the unsupervised stage touched a val/test split")

    def __getitem__(self, i):
        raise AssertionError("the unsupervised stage touched a val/test split")


def _forbidden(*args, **kwargs):
    raise AssertionError("the unsupervised stage asked for a val/test loader")


def _poisoned_dm(case):
    """A data module whose masked-out training entries are NaN and whose val/test splits raise when touched."""
    for mask_seed in range(20):  # the first seed with both a complete training row (UL4M4) and a missing entry
        dm = make_dm(case, missingness=BernoulliMissing(0.3, min_present=1), mask_seed=mask_seed)
        dm.setup("fit")
        train = dm.datasets["train"]
        assert isinstance(train, TensorSplit)
        mask = dm.masks_for("train", torch.arange(len(train)), 0)  # the epoch-0 training masks
        if mask.all(1).any() and not mask.all():
            break
    for i, m in enumerate(dm.modalities):
        x = train.inputs[m].clone()
        x[~mask[:, i]] = float("nan")
        train.inputs[m] = x
    dm.datasets = {"train": train, "val": _Forbidden(), "test": _Forbidden()}
    dm.val_dataloader = dm.test_dataloader = dm.predict_dataloader = _forbidden
    return dm


def _fit_state_is_finite(method):
    state = [t for t in method.state_dict().values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return all(torch.isfinite(t).all() for t in state)


@pytest.mark.parametrize(("name", "case"), CASES)
def test_unsupervised_stage_reads_only_observed_training_entries(name, case):
    torch.manual_seed(0)
    dm = _poisoned_dm(case)
    method = METHODS.get(name)(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
    method.fit_unsupervised(dm)  # raises if val/test is touched
    assert _fit_state_is_finite(method), "the unsupervised stage read a masked-out (NaN) training entry"
    method.eval()
    n = 4
    inputs = {m: torch.zeros(n, *dm.input_shapes[m]) for m in dm.modalities}
    with torch.no_grad():
        assert torch.isfinite(method(inputs, torch.ones(n, len(dm.modalities), dtype=torch.bool)).logits).all()


def test_unsupervised_contract_catches_a_method_that_reads_raw_batches():
    """The check above can fail: a mean-fill that skips ``train_batches`` and sums raw inputs is caught."""

    class Peeking(MeanFill):
        def train_batches(self, datamodule, max_batches=None):
            for batch in datamodule.train_dataloader():  # no masking: masked-out entries are read
                batch["mask"] = torch.ones(len(batch["index"]), len(self.modalities), dtype=torch.bool)
                yield batch

    dm = _poisoned_dm("features")
    method = Peeking(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
    method.fit_unsupervised(dm)
    assert not _fit_state_is_finite(method)
