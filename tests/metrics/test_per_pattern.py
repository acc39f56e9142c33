import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from torchmetrics.classification import MulticlassAccuracy

from mmbench.masks import pattern_ids, pattern_name
from mmbench.metrics.factory import task_metrics
from mmbench.metrics.per_pattern import PerPatternMetric
from mmbench.types import Task

MODS = ("image", "audio", "text")


def _random_batch(n, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g)
    target = torch.randint(c, (n,), generator=g)
    mask = torch.rand(n, 3, generator=g) < 0.6
    mask[mask.sum(1) == 0, 0] = True
    return logits, target, mask


@pytest.mark.parametrize("batches", [1, 4])
def test_per_pattern_metrics_equal_sklearn_on_boolean_subsets(batches):
    m = PerPatternMetric(task_metrics(Task.MULTICLASS, 5), MODS)
    all_l, all_t, all_m = [], [], []
    for b in range(batches):
        logits, target, mask = _random_batch(200, seed=b)
        m.update(logits, target, mask)
        all_l.append(logits), all_t.append(target), all_m.append(mask)
    logits, target, mask = torch.cat(all_l), torch.cat(all_t), torch.cat(all_m)
    pred = logits.argmax(1)
    rows = {(r["pattern"], r["metric"]): r for r in m.compute()}
    pids = pattern_ids(mask)
    for pid in range(1, 8):
        sel = pids == pid
        name = pattern_name(pid, MODS)
        if not sel.any():
            assert (name, "acc") not in rows
            continue
        y, p = target[sel].numpy(), pred[sel].numpy()
        assert rows[(name, "acc")]["n"] == int(sel.sum())
        assert rows[(name, "acc")]["value"].item() == pytest.approx(accuracy_score(y, p), abs=1e-6)
        assert rows[(name, "f1_micro")]["value"].item() == pytest.approx(f1_score(y, p, average="micro"), abs=1e-6)
        ref_macro = f1_score(y, p, average="macro", labels=sorted(set(y) | set(p)))
        assert rows[(name, "f1_macro")]["value"].item() == pytest.approx(ref_macro, abs=1e-6)
    assert rows[("all", "acc")]["n"] == len(target)
    assert rows[("all", "acc")]["value"].item() == pytest.approx(accuracy_score(target.numpy(), pred.numpy()))
    # micro-F1 equals accuracy for single-label tasks (consistency check)
    for (p, metric), r in rows.items():
        if metric == "f1_micro":
            assert r["value"].item() == pytest.approx(rows[(p, "acc")]["value"].item(), abs=1e-6)


def test_reset_and_unseen_patterns_are_absent():
    m = PerPatternMetric(lambda: MulticlassAccuracy(3, average="micro"), ("a", "b"), name="acc")
    m.update(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([[True, False], [True, False]]))
    rows = m.compute()
    assert {r["pattern"] for r in rows} == {"a", "all"}
    assert rows[0]["value"].item() == 0.5
    m.reset()
    assert m.compute() == []


def test_row_without_observed_modality_is_rejected():
    m = PerPatternMetric(task_metrics(Task.MULTICLASS, 3), ("a", "b"))
    with pytest.raises(ValueError, match="no observed modality"):
        m.update(torch.randn(2, 3), torch.tensor([0, 1]), torch.tensor([[True, False], [False, False]]))
