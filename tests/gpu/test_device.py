"""Device and precision checks: every registered method × task on ``cpu`` and ``cuda``, in fp32 and ``bf16-mixed``.

Each body runs with a ``device`` parameter (``tests/gpu/gpu_helpers.py``): the ``cpu`` cases run in ``make test``
(the CPU evidence that the code is device- and dtype-clean, bf16 autocast included), the ``cuda`` cases are marked
``gpu`` and run in ``make test-gpu``; without CUDA they skip. Inputs are the contract tests' tiny data modules
(``tests/conftest.py``).

* a training step (``training_step`` under the precision plugin's autocast, backward, AdamW step) and an
  evaluation step (``predict_logits``, sliding windows for segmentation, then the per-pattern metrics): finite
  loss, gradients and outputs, everything on the device, fp32 master weights and gradients;
* no host sync in the hot path (batch hook after transfer, training step, backward, evaluation forward);
* the same through a Lightning ``Trainer`` (``fit`` + ``test``) with ``accelerator=device`` and each precision;
* the mask pipeline and the per-pattern metrics on the device against a CPU reference;
* the UL4M4 kernels on CUDA equal to CPU (tolerances in that test's docstring).
"""

from __future__ import annotations

import inspect
import math
import warnings

import lightning.pytorch as pl
import pytest
import torch
from gpu_helpers import DEVICES, HAS_CUDA, PRECISIONS, autocast, no_host_sync, to_device

import mmbench.methods  # noqa: F401  (registers every method)
from conftest import TASK_CASES, make_dm
from mmbench.functional import imputation as imp
from mmbench.masks import pattern_ids
from mmbench.metrics.factory import task_metrics
from mmbench.metrics.per_pattern import PerPatternMetric
from mmbench.nn.imputer import UL4M4Imputer
from mmbench.registry import METHODS
from mmbench.types import Task

CASES = [
    (name, case)
    for name, cls in METHODS.items()
    for case, spec in TASK_CASES.items()
    if spec["task"] in cls.supported_tasks
]

# known host syncs inside the hot path of methods (files the device tests may not edit; see the report of issue 16)
KNOWN_SYNCS = {
    "ul4m4": "UL4M4.impute: bool(self.fitted), imputer dims.tolist(), torch.unique/nonzero/boolean indexing in "
    "greedy_complete (src/mmbench/methods/ul4m4.py, nn/imputer.py, functional/imputation.py)",
    "shaspec": "dao_loss builds its pair index with torch.tensor(list, device=...) every step "
    "(src/mmbench/methods/shaspec.py dao_loss)",
}


# CPU runs of segmentation use 8³ volumes and 3-level U-Nets (4, 8, 16): bf16 3-D convolutions are slow on CPU.
# CUDA runs use the contract tests' 16³ volumes and each method's default widths.
CPU_SEG_SHAPE = [1, 8, 8, 8]
CPU_SEG_WIDTHS = (4, 8, 16)

# metrics defined on any non-empty set of rows (Pearson, sentiment F1 can be NaN on a 4-row test batch)
ALWAYS_DEFINED = {"acc", "f1_micro", "subset_acc", "mae", "mse", "dice_et", "dice_tc", "dice_wt", "dice_mean"}

IMPUTER_AUTOCAST_BUG = (
    "known bug: UL4M4Imputer.fit/transform run their GEMM distances (addmm) in bf16 under the autocast of "
    "bf16-mixed, so UL4M4's forward imputes differently from fp32 (fix: torch.autocast(device_type, enabled=False) "
    "around fit and transform in src/mmbench/nn/imputer.py)"
)


def _init_params(cls: type) -> set[str]:
    """Constructor parameter names of ``cls`` and of the classes its ``**kwargs`` forward to (its MRO)."""
    return {p for k in cls.__mro__ if "__init__" in vars(k) for p in inspect.signature(k.__init__).parameters}


def _make(name: str, case: str, device: str):
    """The contract tests' data module of ``case`` and a fresh ``name`` method for it (not fitted, on CPU)."""
    torch.manual_seed(0)
    cls = METHODS.get(name)
    dm_kwargs, kwargs = {}, {}
    if device == "cpu" and TASK_CASES[case]["task"] is Task.SEGMENTATION:
        dm_kwargs["input_shapes"] = dict.fromkeys(TASK_CASES[case]["input_shapes"], CPU_SEG_SHAPE)
        params = _init_params(cls)
        kwargs = {k: CPU_SEG_WIDTHS for k in ("seg_widths", "unet_widths") if k in params}
        assert kwargs, f"{name} has no U-Net width argument (seg_widths / unet_widths)"
    if "ae_epochs" in _init_params(cls):
        kwargs["ae_epochs"] = 1  # UL4M4's autoencoder pretraining: one epoch exercises it (keeps the suite short)
    dm = make_dm(case, **dm_kwargs)
    method = cls(
        modalities=dm.modalities, input_shapes=dm.input_shapes, task=dm.task, num_classes=dm.num_classes, **kwargs
    )
    return dm, method


def _build(name: str, case: str, device: str):
    dm, method = _make(name, case, device)
    dm.setup("fit")
    dm.setup("test")
    method.to(device)
    method.fit_unsupervised(dm)  # on the method's device (UL4M4: autoencoders and imputer fit there)
    return dm, method


def _train_batch(dm, device: str) -> dict:
    batch = next(iter(dm.train_dataloader()))
    batch = dm.apply_missingness(batch, "train")
    batch["mask"][0] = True  # one complete row, so every modality's parameters are reached
    return to_device(batch, device)


def _eval_batch(dm, device: str) -> dict:
    """The first test batch (masks of the all-patterns table); segmentation volumes grown so sliding windows run."""
    batch = next(iter(dm.test_dataloader()[0]))
    if dm.task is Task.SEGMENTATION:  # [B, 1, S, S, S] → [B, 1, S, 5S/4, 3S/2]: 2 × 3 windows of the S³ roi
        S = batch["target"].shape[-1]

        def grow(x: torch.Tensor) -> torch.Tensor:
            x = torch.cat([x, x[..., : S // 4, :]], -2)  # H: S → 5S/4
            return torch.cat([x, x[..., : S // 2]], -1)  # W: S → 3S/2

        batch["inputs"] = {m: grow(v) for m, v in batch["inputs"].items()}
        batch["target"] = grow(batch["target"])
    return to_device(batch, device)


def _training_step(method, batch: dict, optimizer, device: str, precision: str) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer attached: logging is skipped
        with autocast(device, precision):
            loss = method.training_step(batch, 0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(("name", "case"), CASES)
def test_train_and_eval_step(name, case, precision, device):
    dm, method = _build(name, case, device)
    optimizer = method.configure_optimizers()
    method.train()
    batch = _train_batch(dm, device)
    before = {n: p.detach().clone() for n, p in method.named_parameters() if p.requires_grad}
    loss = _training_step(method, batch, optimizer, device, precision)
    assert loss.device.type == device and loss.dtype == torch.float32 and torch.isfinite(loss)
    grads = {n: p.grad for n, p in method.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    for n, p in method.named_parameters():
        assert p.dtype == torch.float32 and p.device.type == device, (n, p.dtype, p.device)  # fp32 master weights
        if p.requires_grad:
            g = grads[n]
            assert g.dtype == torch.float32 and g.device == p.device and torch.isfinite(g).all(), n
    moved = [n for n, p in method.named_parameters() if p.requires_grad and not torch.equal(p.detach(), before[n])]
    assert moved, "the optimiser step changed no parameter"

    method.eval()
    batch = _eval_batch(dm, device)
    with torch.no_grad(), autocast(device, precision):
        logits = method.predict_logits(batch["inputs"], batch["mask"])
    B = batch["mask"].shape[0]
    expected = (B, 3, *batch["target"].shape[2:]) if dm.task is Task.SEGMENTATION else (B, dm.num_classes)
    assert tuple(logits.shape) == expected and logits.device.type == device and torch.isfinite(logits).all()
    # the device metrics equal the same metrics on CPU (some regression metrics are NaN on 4 rows, on both)
    make = task_metrics(dm.task, dm.num_classes)
    on_device, on_cpu = PerPatternMetric(make, dm.modalities).to(device), PerPatternMetric(make, dm.modalities)
    on_device.update(logits, batch["target"], batch["mask"])
    on_cpu.update(logits.float().cpu(), batch["target"].cpu(), batch["mask"].cpu())
    got, ref = on_device.compute(), on_cpu.compute()
    assert [(r["pattern"], r["metric"], r["n"]) for r in got] == [(r["pattern"], r["metric"], r["n"]) for r in ref]
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a["value"], b["value"], rtol=1e-5, atol=1e-6, equal_nan=True)
    assert any(math.isfinite(float(r["value"])) for r in got if r["pattern"] == "all")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "case"), CASES)
def test_bf16_eval_close_to_fp32(request, name, case, device):
    """bf16-mixed evaluation logits stay within 5 % (of the fp32 logits' range) + 0.05 of the fp32 ones."""
    if (name, case) == ("ul4m4", "segmentation"):  # CPU: 0.62 on a range of 3.0; 0.03 with the imputer fixed
        request.applymarker(pytest.mark.xfail(reason=IMPUTER_AUTOCAST_BUG, strict=device == "cpu"))
    dm, method = _build(name, case, device)
    method.eval()
    batch = _eval_batch(dm, device)
    with torch.no_grad():
        ref = method.predict_logits(batch["inputs"], batch["mask"]).float()
        with autocast(device, "bf16-mixed"):
            low = method.predict_logits(batch["inputs"], batch["mask"]).float()
    err = (low - ref).abs().max().item()
    assert err <= 0.05 * ref.abs().max().item() + 0.05, f"max |bf16 − fp32| = {err:.4g}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "case"), CASES)
def test_hot_path_has_no_host_sync(request, name, case, device):
    if name in KNOWN_SYNCS:
        request.applymarker(pytest.mark.xfail(reason=f"known host sync: {KNOWN_SYNCS[name]}", strict=True))
    dm, method = _build(name, case, device)
    optimizer = method.configure_optimizers()
    method.train()
    batch = _train_batch(dm, device)
    _training_step(method, batch, optimizer, device, "bf16-mixed")  # warm-up: lazy inits, optimiser state
    eval_batch = _eval_batch(dm, device)
    with no_host_sync(device):
        batch = dm.on_after_batch_transfer(batch, 0)  # what Lightning calls on the device batch
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*self.log.*")
            with autocast(device, "bf16-mixed"):
                loss = method.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if device == "cuda":  # on CPU, AdamW reads its CPU step counter with .item() (no sync there)
            optimizer.step()
        method.eval()
        with torch.no_grad(), autocast(device, "bf16-mixed"):
            method.predict_logits(eval_batch["inputs"], eval_batch["mask"])


def _trainer_params():
    for name, case in CASES:
        for precision in PRECISIONS:
            for device in DEVICES:
                yield pytest.param(
                    name,
                    case,
                    precision,
                    device.values[0],
                    marks=device.marks,
                    id=f"{name}-{case}-{precision}-{device.id}",
                )


@pytest.mark.parametrize(("name", "case", "precision", "device"), list(_trainer_params()))
def test_trainer_fit_and_test(tmp_path, name, case, precision, device):
    dm, method = _make(name, case, device)
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        precision=precision,
        max_steps=2,
        limit_train_batches=2,
        limit_val_batches=1,
        limit_test_batches=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,  # the base logs loss terms only on the steps the loggers write
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(GPU available|bfloat16|does not have many workers).*")
        trainer.fit(method, datamodule=dm)
        loss = trainer.callback_metrics["train/loss/loss"]
        trainer.test(method, datamodule=dm, verbose=False)
    assert trainer.global_step == 2
    assert method.device.type == device
    assert torch.isfinite(loss), loss
    rows = {r["metric"]: r["value"] for r in method.test_results if r["pattern"] == "all"}
    defined = {m: v for m, v in rows.items() if m in ALWAYS_DEFINED}  # Pearson & co. can be NaN on 4 rows
    assert defined and all(math.isfinite(v) for v in defined.values()), rows


# ------------------------------------------------------------------------------------------------ mask and metrics
@pytest.mark.parametrize("device", DEVICES)
def test_mask_pipeline_on_device(device):
    """Masks are attached on the host before transfer; after transfer only zero-filling runs, on the device."""
    dm = make_dm("features")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    host = dm.on_before_batch_transfer(batch, 0)
    assert host["mask"].device.type == "cpu"
    torch.testing.assert_close(host["mask"], dm.masks_for("val", host["index"]), rtol=0, atol=0)
    moved = to_device(host, device)
    with no_host_sync(device):
        out = dm.on_after_batch_transfer(moved, 0)
    assert out["mask"].device.type == device
    for i, m in enumerate(dm.modalities):
        x = out["inputs"][m]
        assert x.device.type == device
        assert not x[~out["mask"][:, i]].any(), f"masked-out {m} not zero-filled"
        torch.testing.assert_close(x[out["mask"][:, i]].cpu(), batch["inputs"][m][host["mask"][:, i]])
    ids = pattern_ids(out["mask"])
    assert ids.device.type == device
    torch.testing.assert_close(ids.cpu(), pattern_ids(host["mask"]))


@pytest.mark.parametrize("device", DEVICES)
def test_loaders_pin_memory_only_for_cuda(device):
    """Batches are pinned (so Lightning's non-blocking copy is asynchronous) exactly when the Trainer runs on CUDA."""
    dm = make_dm("features")
    dm.setup("fit")
    dm.setup("test")
    assert not dm.train_dataloader().pin_memory  # no Trainer attached
    dm.trainer = pl.Trainer(accelerator=device, devices=1, logger=False, enable_progress_bar=False)
    loaders = [dm.train_dataloader(), dm.val_dataloader(), *dm.test_dataloader()]
    assert all(loader.pin_memory == (device == "cuda") for loader in loaders)


def _metric_inputs(task: Task, num_classes: int, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    if task is Task.MULTICLASS:
        return torch.randn(n, num_classes, generator=g), torch.randint(num_classes, (n,), generator=g)
    if task is Task.MULTILABEL:
        return torch.randn(n, num_classes, generator=g), torch.randint(2, (n, num_classes), generator=g)
    if task is Task.REGRESSION:
        target = torch.randn(n, num_classes, generator=g)
        return target + 0.5 * torch.randn(n, num_classes, generator=g), target
    logits = torch.randn(n, 3, 8, 8, 8, generator=g)
    return logits, (logits + torch.randn(logits.shape, generator=g)) > 0.5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(TASK_CASES))
def test_per_pattern_metric_on_device_matches_cpu_reference(case, device):
    """Per-pattern rows on ``device`` (fp32 and bf16 predictions) equal the base metric on each CPU subset."""
    spec = TASK_CASES[case]
    task, modalities = spec["task"], tuple(spec["input_shapes"])
    num_classes = spec.get("num_classes", 3)
    preds, target = _metric_inputs(task, num_classes, 48, 0)
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(48, len(modalities), generator=g) < 0.6
    mask[torch.arange(48), torch.randint(len(modalities), (48,), generator=g)] = True
    make = task_metrics(task, num_classes)
    for p in (preds, preds.bfloat16()):
        metric = PerPatternMetric(make, modalities).to(device)
        metric.update(p.to(device), target.to(device), mask.to(device))
        rows = {(r["pattern"], r["metric"]): r for r in metric.compute()}
        pids = pattern_ids(mask)
        for pid in [*torch.unique(pids).tolist(), 0]:
            rows_of = slice(None) if pid == 0 else pids == pid
            ref = make()
            ref.update(p.float()[rows_of], target[rows_of])  # the reference sees the same (rounded) values in fp32
            values = ref.compute()
            values = values if isinstance(values, dict) else {"value": values}
            for metric_name, value in values.items():
                key = ("all" if pid == 0 else rows_of_name(pid, modalities), metric_name)
                got = rows[key]["value"]
                assert got.device.type == "cpu" and got.dtype == torch.float32
                torch.testing.assert_close(got, value.float(), rtol=1e-5, atol=1e-6, equal_nan=True, msg=str(key))


def rows_of_name(pid: int, modalities: tuple[str, ...]) -> str:
    from mmbench.masks import pattern_name

    return pattern_name(pid, modalities)


# ------------------------------------------------------------------------------------------------- UL4M4 kernels
def _clustered(n: int, dims: list[int], k: int, seed: int):
    """Well-separated clusters (spread 8 vs noise 1), so rounding cannot flip an assignment; 40 % missing."""
    g = torch.Generator().manual_seed(seed)
    group = torch.randint(k, (n,), generator=g)
    X = [(8 * torch.randn(k, d, generator=g))[group] + torch.randn(n, d, generator=g) for d in dims]
    mask = torch.rand(n, len(dims), generator=g) < 0.6
    mask[torch.arange(n), torch.randint(len(dims), (n,), generator=g)] = True
    X = [torch.where(mask[:, m, None], x, torch.nan) for m, x in enumerate(X)]  # garbage in unobserved slots
    return X, mask


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device (compares CUDA with CPU)")
def test_imputation_kernels_cuda_equal_cpu():
    """UL4M4 kernels on CUDA equal the CPU ones.

    Tolerances (fp32, TF32 off): z-score statistics ``rtol=1e-5, atol=1e-6`` (float64 accumulators);
    partial-modality distances ``rtol=1e-4, atol=1e-4`` (GEMM form ``‖a‖²+‖b‖²−2a·b``, summed in another order);
    k-means++ seeds, Lloyd assignments and iteration counts exactly equal (well-separated data); centres and
    completed embeddings ``rtol=1e-5, atol=1e-5``; observed entries returned bit for bit on both devices.
    """
    dims, K = [48, 64, 32], 16
    X, mask = _clustered(3000, dims, K, 0)
    Xc, maskc = [x.cuda() for x in X], mask.cuda()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        mu, sigma = imp.zscore_fit(X, mask)
        muc, sigmac = imp.zscore_fit(Xc, maskc)
        for a, b in zip(mu + sigma, muc + sigmac, strict=True):
            assert b.device.type == "cuda"
            torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-6)
        a, b = slice(0, 500), slice(500, 900)
        d = imp.partial_modality_distance([x[a] for x in X], mask[a], [x[b] for x in X], mask[b], mu, sigma)
        dc = imp.partial_modality_distance([x[a] for x in Xc], maskc[a], [x[b] for x in Xc], maskc[b], muc, sigmac)
        torch.testing.assert_close(dc.cpu(), d, rtol=1e-4, atol=1e-4)
        res = imp.partial_kmeans(X, mask, K, mu, sigma, max_iter=30, seed=3)
        resc = imp.partial_kmeans(Xc, maskc, K, muc, sigmac, max_iter=30, seed=3)
        assert torch.equal(resc.seeds.cpu(), res.seeds)
        assert torch.equal(resc.assignment.cpu(), res.assignment)
        assert (resc.num_iter, resc.converged) == (res.num_iter, res.converged)
        assert torch.equal(resc.centre_mask.cpu(), res.centre_mask)
        for a, b in zip(res.centres, resc.centres, strict=True):
            torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-5)
        out = imp.greedy_complete(X, mask, res.centres, res.centre_mask, mu, sigma)
        outc = imp.greedy_complete(Xc, maskc, resc.centres, resc.centre_mask, muc, sigmac)
        for m, (a, b) in enumerate(zip(out, outc, strict=True)):
            assert b.device.type == "cuda" and torch.isfinite(b).all()
            assert torch.equal(b[maskc[:, m]].cpu(), X[m][mask[:, m]])  # observed: bit for bit
            torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-5)
        cpu_imputer = UL4M4Imputer(K, max_iter=30).fit(X, mask)
        cuda_imputer = UL4M4Imputer(K, max_iter=30).cuda().fit(Xc, maskc)
        assert all(t.device.type == "cuda" for t in cuda_imputer.buffers())
        for a, b in zip(cpu_imputer.transform(X, mask), cuda_imputer.transform(Xc, maskc), strict=True):
            torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-5)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.xfail(strict=True, reason=IMPUTER_AUTOCAST_BUG)
def test_imputer_ignores_autocast(device):
    """The imputer is exact fp32 maths: an ambient bf16 autocast (Lightning bf16-mixed) must not change it."""
    g = torch.Generator().manual_seed(0)
    dims, n = [48, 64, 32], 600
    group = torch.randint(16, (n,), generator=g)
    X = [((0.5 * torch.randn(16, d, generator=g))[group] + torch.randn(n, d, generator=g)).to(device) for d in dims]
    mask = torch.rand(n, 3, generator=g) < 0.6
    mask[:, 0] |= ~mask.any(1)
    mask = mask.to(device)
    imputer = UL4M4Imputer(16).to(device).fit(X, mask)
    ref = imputer.transform(X, mask)
    with autocast(device, "bf16-mixed"):
        out = imputer.transform(X, mask)
        refit = UL4M4Imputer(16).to(device).fit(X, mask)
    for a, b in zip(ref, out, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    torch.testing.assert_close(refit.centres, imputer.centres, rtol=0, atol=0)
