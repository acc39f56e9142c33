"""UL4M4 (methods/ul4m4.py): what the method promises beyond the generic contracts (tests/methods/test_contract.py).

K = 1 is mean-fill of the embeddings; the autoencoders only see observed training inputs; the unsupervised stage
never touches val/test; ``imputer_fit`` picks the fit set (every observed embedding by default, as the official
EDF/MM-IMDb scripts; ``complete_rows`` on request); the state round-trips
through ``state_dict`` and a fitted model is not re-fitted.
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from conftest import TASK_CASES, make_dm
from mmbench.data.synthetic import SyntheticDataModule
from mmbench.masks import BernoulliMissing, FixedPattern, PatternDistribution, zero_fill
from mmbench.methods import UL4M4
from mmbench.nn.imputer import UL4M4Imputer
from mmbench.registry import METHODS
from mmbench.types import Task

SEG_SHAPE = [1, 8, 8, 8]  # smaller than conftest's volumes: tiny 2-level U-Nets
TINY = {"embed_dim": 8, "ae_hidden": 16, "d_model": 8, "num_heads": 2, "ae_epochs": 1, "seg_widths": (4, 8)}


def _dm(case, rate=0.5, **kwargs):
    extra = {"input_shapes": {m: SEG_SHAPE for m in ("flair", "t1", "t1ce", "t2")}} if case == "segmentation" else {}
    return make_dm(case, missingness=BernoulliMissing(rate) if rate else None, **{**extra, **kwargs})


def _method(dm, **kwargs):
    torch.manual_seed(0)
    return UL4M4(dm.modalities, dm.input_shapes, dm.task, dm.num_classes, **{**TINY, **kwargs})


def _train_tensors(dm):
    """The whole training split: inputs ``{m: [N, ...]}`` and the epoch-0 training masks ``bool[N, M]``."""
    train = dm.datasets["train"]
    index = torch.arange(len(train))
    inputs = {m: torch.stack([train[i]["inputs"][m] for i in range(len(train))]) for m in dm.modalities}
    return inputs, dm.masks_for("train", index)


def test_registered_with_every_task_and_variant():
    assert METHODS.get("ul4m4") is UL4M4
    assert set(UL4M4.supported_tasks) == set(Task)
    dm = _dm("features")
    assert _method(dm, num_clusters=5).variant() == {"K": 5, "imputer_fit": "observed", "kmeans": "lloyd"}
    v = _method(dm, imputer_fit="complete_rows", imputer_official_one_update=True).variant()
    assert v == {"K": 16, "imputer_fit": "complete_rows", "kmeans": "official_one_update"}


def test_encoders_are_frozen_and_not_optimised():
    dm = _dm("classification")
    method = _method(dm)
    method.fit_unsupervised(dm)
    assert all(not p.requires_grad for p in method.encoders.parameters())
    optimised = {id(p) for group in method.configure_optimizers().param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in method.encoders.parameters()}
    assert optimised == {id(p) for p in method.parameters() if p.requires_grad}


@pytest.mark.parametrize("case", ["features", "classification"])
def test_k1_is_mean_fill_of_observed_training_embeddings(case):
    dm = _dm(case, num_samples=(40, 8, 8))
    dm.setup("fit")
    method = _method(dm, num_clusters=1, imputer_fit="observed")
    method.fit_unsupervised(dm)
    method.eval()
    inputs, mask = _train_tensors(dm)
    emb = method.embed(inputs, mask)  # frozen encoders (identity for the feature vectors)
    assert 0 < int(mask.sum()) < mask.numel()
    test = {m: torch.randn(3, *dm.input_shapes[m]) for m in dm.modalities}
    M = len(dm.modalities)
    for i, m in enumerate(dm.modalities):
        expected = emb[i][mask[:, i]].mean(0)  # mean over the observed training entries only
        hide = torch.ones(3, M, dtype=torch.bool)
        hide[:, i] = False
        with torch.no_grad():
            out = method(test, hide)
        torch.testing.assert_close(out.aux[f"completed_{m}"], expected.expand(3, -1), rtol=1e-5, atol=1e-5)
        observed = method.embed(test, hide)
        for j, other in enumerate(dm.modalities):  # observed embeddings are kept as they are
            if j != i:
                torch.testing.assert_close(out.aux[f"completed_{other}"], observed[j])


@pytest.mark.parametrize("case", ["classification", "segmentation"])
def test_autoencoders_only_see_observed_training_inputs(case, monkeypatch):
    dm = _dm(case)
    dm.setup("fit")
    inputs, mask = _train_tensors(dm)
    seen: list[tuple[str, torch.Tensor]] = []
    original = UL4M4._autoencoder_step

    def spy(self, modality, x, decoder, optimizer):
        seen.append((modality, x.detach().clone()))
        return original(self, modality, x, decoder, optimizer)

    monkeypatch.setattr(UL4M4, "_autoencoder_step", spy)
    method = _method(dm, ae_epochs=2, imputer_fit="observed")
    method.fit_unsupervised(dm)
    assert {m for m, _ in seen} == set(dm.modalities)  # raw inputs: every modality has an autoencoder
    for m, x in seen:
        i = dm.modalities.index(m)
        ref = inputs[m].flatten(1)  # [N, F]
        rows = x.flatten(1)
        match = (rows[:, None, :] == ref[None, :, :]).all(-1)  # [n, N]: which training sample each row is
        assert match.any(1).all(), f"{m}: an autoencoder input is not a training input (zero-filled?)"
        assert mask[match.float().argmax(1), i].all(), f"{m}: an autoencoder saw a masked-out training input"
    per_modality = {m: sum(x.shape[0] for mm, x in seen if mm == m) for m in dm.modalities}
    assert per_modality == {m: 2 * int(mask[:, i].sum()) for i, m in enumerate(dm.modalities)}


class _TrainOnlyDM(SyntheticDataModule):
    """Any access to validation or test data raises."""

    def build_split(self, split):
        if split != "train":
            raise AssertionError(f"fit_unsupervised read the {split} split")
        return super().build_split(split)

    def masks_for(self, split, index, epoch=0):
        if split != "train":
            raise AssertionError(f"fit_unsupervised asked for {split} masks")
        return super().masks_for(split, index, epoch)

    def val_dataloader(self):
        raise AssertionError("fit_unsupervised read the val loader")

    def test_dataloader(self):
        raise AssertionError("fit_unsupervised read the test loader")

    def mask_table(self, protocol, split="test"):
        raise AssertionError("fit_unsupervised read an evaluation mask table")


@pytest.mark.parametrize("imputer_fit", ["complete_rows", "observed"])
@pytest.mark.parametrize("case", ["classification", "features"])
def test_unsupervised_stage_never_reads_val_or_test(case, imputer_fit):
    dm = _TrainOnlyDM(**TASK_CASES[case], num_samples=(48, 16, 16), batch_size=4, missingness=BernoulliMissing(0.5))
    method = _method(dm, imputer_fit=imputer_fit)
    method.fit_unsupervised(dm)
    assert method.is_fitted
    assert set(dm.datasets) == {"train"}


@pytest.mark.parametrize("imputer_fit", ["complete_rows", "observed"])
def test_imputer_fit_set_default_is_every_observed_embedding(imputer_fit, monkeypatch):
    """Default: the official EDF / MM-IMDb fit set (every training row, its own mask); complete_rows on request."""
    dm = _dm("features")
    dm.setup("fit")
    _, mask = _train_tensors(dm)
    fitted: list[torch.Tensor] = []
    original = UL4M4Imputer.fit

    def spy(self, X, m):
        fitted.append(m.clone())
        return original(self, X, m)

    monkeypatch.setattr(UL4M4Imputer, "fit", spy)
    method = _method(dm, num_clusters=2, **({} if imputer_fit == "observed" else {"imputer_fit": imputer_fit}))
    method.fit_unsupervised(dm)
    (got,) = fitted
    if imputer_fit == "complete_rows":
        assert got.all() and got.shape[0] == int(mask.all(1).sum()) < mask.shape[0]
    else:  # every training row, with its own training mask (the loader shuffles: compare pattern counts)
        assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, mask.tolist()))


def test_complete_rows_without_complete_rows_raises():
    dm = make_dm("features", missingness=PatternDistribution({"text+audio": 1.0, "visual": 1.0}))
    with pytest.raises(ValueError, match="none of the 48 training samples observes every modality"):
        _method(dm, imputer_fit="complete_rows").fit_unsupervised(dm)
    _method(dm, num_clusters=2).fit_unsupervised(
        dm
    )  # the default fits on observed embeddings  # fine on observed embeddings


def test_modality_never_observed_in_training_raises():
    dm = make_dm("features", missingness=FixedPattern(["text", "audio"]))
    with pytest.raises(ValueError, match=r"cannot impute modalities \['visual'\]"):
        _method(dm, imputer_fit="observed").fit_unsupervised(dm)


@pytest.mark.parametrize("case", ["classification", "features", "segmentation"])
def test_state_dict_round_trip_reproduces_outputs_and_is_not_refitted(case):
    dm = _dm(case)
    dm.setup("fit")
    dm.setup("test")
    method = _method(dm, num_clusters=3, imputer_fit="observed")  # partial centres: a richer imputer state
    method.fit_unsupervised(dm)
    method.eval()
    inputs = {m: torch.stack([dm.datasets["test"][i]["inputs"][m] for i in range(4)]) for m in dm.modalities}
    M = len(dm.modalities)
    mask = torch.tensor([[True] * M] + [[j == i % M for j in range(M)] for i in range(3)])  # complete + one observed
    x = zero_fill(inputs, mask, dm.modalities)
    with torch.no_grad():
        ref = method(x, mask).logits

    torch.manual_seed(123)  # a different initialisation
    clone = UL4M4(
        dm.modalities,
        dm.input_shapes,
        dm.task,
        dm.num_classes,
        **{**TINY, "num_clusters": 3, "imputer_fit": "observed"},
    )
    assert not clone.is_fitted
    clone.load_state_dict(method.state_dict())
    clone.eval()
    assert clone.is_fitted
    with torch.no_grad():
        torch.testing.assert_close(clone(x, mask).logits, ref)

    class _NoData:
        def train_dataloader(self):
            raise AssertionError("a fitted UL4M4 re-ran its unsupervised stage")

    clone.fit_unsupervised(_NoData())  # resuming: the buffer flag skips the stage


def test_forward_before_fit_raises():
    dm = _dm("features")
    method = _method(dm)
    x = {m: torch.zeros(2, *dm.input_shapes[m]) for m in dm.modalities}
    with pytest.raises(RuntimeError, match="not fitted"):
        method(x, torch.ones(2, len(dm.modalities), dtype=torch.bool))


def test_segmentation_skips_none_and_sizes_that_are_not_multiples():
    dm = make_dm("segmentation", input_shapes={m: [1, 9, 8, 8] for m in ("flair", "t1", "t1ce", "t2")})
    dm.setup("fit")
    method = _method(dm, seg_skips="none", num_clusters=2)
    method.fit_unsupervised(dm)
    method.eval()
    assert tuple(method.pad_spatial(torch.zeros(1, 1, 9, 8, 8)).shape[2:]) == (10, 8, 8)
    assert method.embedding_shapes == [(8, 5, 4, 4)] * 4
    x = {m: torch.randn(2, 1, 9, 8, 8) for m in dm.modalities}
    mask = torch.tensor([[True, False, False, True], [False, True, False, False]])
    with torch.no_grad():
        assert tuple(method(x, mask).logits.shape) == (2, 3, 9, 8, 8)
    with pytest.raises(ValueError, match="seg_skips"):
        _method(dm, seg_skips="zero")


def test_segmentation_window_other_than_the_training_patch_is_refused_at_construction():
    """The imputer's embeddings have the training patch's shape: a larger window used to fail only at test time,
    after training (a 48³ window over 32³ patches); now the constructor says so, and the default window works."""
    dm = make_dm("segmentation", input_shapes={m: [1, 8, 8, 8] for m in ("flair", "t1", "t1ce", "t2")})
    with pytest.raises(ValueError, match=r"UL4M4: roi_size \(16, 16, 16\) must equal the training patch \(8, 8, 8\)"):
        _method(dm, roi_size=16)
    assert _method(dm, roi_size=8).roi_size == _method(dm).roi_size == (8, 8, 8)


def test_lightning_checkpoint_resume_does_not_refit(tmp_path, monkeypatch):
    dm = _dm("features")
    method = _method(dm, imputer_fit="observed", num_clusters=3)
    kwargs = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, default_root_dir=tmp_path, **kwargs)
    trainer.fit(method, datamodule=dm)
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)

    loaded = UL4M4.load_from_checkpoint(ckpt, weights_only=True)  # hparams and state load without pickles
    assert loaded.is_fitted
    loaded.eval()
    method.eval()
    x = {m: torch.randn(3, *dm.input_shapes[m]) for m in dm.modalities}
    mask = torch.tensor([[True, False, False], [False, True, True], [True, True, True]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, mask).logits, method(x, mask).logits)

    calls = []
    monkeypatch.setattr(UL4M4, "_train_autoencoders", lambda self, dm: calls.append("ae"))
    monkeypatch.setattr(UL4M4, "_fit_imputer", lambda self, X, mask: calls.append("imputer"))
    fresh = _method(dm, imputer_fit="observed", num_clusters=3)
    resumed = pl.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, default_root_dir=tmp_path, **kwargs)
    resumed.fit(fresh, datamodule=dm, ckpt_path=ckpt)  # the state is restored before on_fit_start
    assert calls == []
    assert fresh.is_fitted
