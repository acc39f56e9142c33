"""GPU performance figures of mmbench (issue 16), printed as they come and written to one JSON file.

Run (``make bench-gpu``)::

    python tests/benchmarks/bench_gpu.py --device cuda --out bench_gpu.json
    python tests/benchmarks/bench_gpu.py --device cpu --quick --out bench_cpu_quick.json   # tiny sizes, proves it runs

Sections (``--sections`` picks some; every figure is measured by this run, nothing is hard-coded):

* ``shaspec``: one training step (forward + loss + backward + AdamW) of ShaSpec 3-D at the paper widths
  (``PAPER_SEG_WIDTHS``, 4 contrasts, batch 1, one modality missing) and of a plain 3-D U-Net of the same widths
  (the 4 contrasts as 4 input channels), at 128³ and 80×160×160, fp32 and bf16 autocast: median step time,
  peak memory, and the ShaSpec/U-Net ratios. ShaSpec's shared encoder runs on B·M rows, plus M specific encoders.
* ``sliding_window``: ShaSpec (paper widths, window ``PAPER_ROI_SIZE``) ``predict_logits`` on one whole
  240×240×155 volume (overlap 0.5, Gaussian blending, one window per call), fp32 and bf16.
* ``imputer``: ``UL4M4Imputer`` fit (k-means++ + 10 Lloyd updates, ``tol=0``) and transform at N = 80,000,
  K = 64, dims 768/1024/768, half of the (sample, modality) slots missing, on ``--device`` and on CPU.
* ``loader``: the cached BraTS patch loader (``BraTSPatchDataset`` over a ``VolumeCache`` of semi-synthetic 1 mm
  cases, 128³ patches, batch 1) in samples/s with 4 and 8 workers, against the samples/s of the ShaSpec step.
* ``demo``: one AV-MNIST-lite demo cell (ShaSpec, missing rate 0.5, 15 epochs, all-patterns test) through a
  Lightning ``Trainer`` on ``--device`` and on CPU (one thread, as the demo sweep runs its cells).

``--quick`` shrinks every size so the whole run takes about a minute on a laptop CPU. ``--budget-s`` bounds the
total: a section that would start after the budget is recorded as skipped. Memory: CUDA
``max_memory_allocated``; CPU the rise of the process's peak resident set (``VmHWM`` after resetting it through
``/proc/self/clear_refs``), so CPU figures include allocator slack.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmbench.methods import ShaSpec
from mmbench.methods.base import task_loss
from mmbench.methods.shaspec import PAPER_ROI_SIZE, PAPER_SEG_WIDTHS
from mmbench.nn.imputer import UL4M4Imputer
from mmbench.nn.unet3d import UNet3DDecoder, UNet3DEncoder, pad_far_end, padded_shape
from mmbench.types import Task

BRATS = ("flair", "t1", "t1ce", "t2")
SECTIONS = ("shaspec", "sliding_window", "imputer", "loader", "demo")
GIB = 2**30


# ------------------------------------------------------------------------------------------------------ sizes
def sizes(quick: bool) -> dict[str, Any]:
    """Every size the run uses (``--quick``: tiny ones)."""
    if quick:
        return {
            "widths": (4, 8, 16, 16),
            "patches": [(16, 16, 16), (16, 32, 32)],
            "warmup": 1,
            "steps": 1,
            "sw_roi": (16, 16, 16),
            "sw_volume": (20, 20, 16),
            "imputer": {"N": 4000, "dims": [32, 48, 32], "K": 16},
            "loader": {"cases": 2, "spacing_mm": 2.0, "patch": 32, "samples_per_case": 8, "workers": [1, 2]},
            "demo": {"max_epochs": 1, "limit_batches": 4},
        }
    return {
        "widths": PAPER_SEG_WIDTHS,
        "patches": [(128, 128, 128), (80, 160, 160)],
        "warmup": 2,
        "steps": 5,
        "sw_roi": PAPER_ROI_SIZE,
        "sw_volume": (240, 240, 155),
        "imputer": {"N": 80_000, "dims": [768, 1024, 768], "K": 64},
        "loader": {"cases": 6, "spacing_mm": 1.0, "patch": 128, "samples_per_case": 12, "workers": [4, 8]},
        "demo": {"max_epochs": 15, "limit_batches": None},
    }


# -------------------------------------------------------------------------------------------- measuring tools
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _vm_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class PeakMemory:
    """Peak memory of a block: CUDA ``max_memory_allocated`` (absolute), CPU rise of ``VmHWM`` over ``VmRSS``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_gib: float | None = None

    def __enter__(self) -> PeakMemory:
        _sync(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
                self._rss = _vm_kib("VmRSS")
            except OSError:
                self._rss = None
        return self

    def __exit__(self, *exc: object) -> None:
        _sync(self.device)
        if self.device.type == "cuda":
            self.peak_gib = torch.cuda.max_memory_allocated(self.device) / GIB
        elif self._rss is not None:
            self.peak_gib = (_vm_kib("VmHWM") - self._rss) / 2**20


def _autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


class Report:
    """Collects figures, prints each line, rewrites the JSON after every section."""

    def __init__(self, out: Path | None, budget_s: float) -> None:
        self.out, self.budget_s, self.start = out, budget_s, time.perf_counter()
        self.figures: dict[str, Any] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def line(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    def save(self) -> None:
        self.figures["wall_s"] = round(self.elapsed(), 2)
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(self.figures, indent=2) + "\n")


# -------------------------------------------------------------------------------------------- ShaSpec vs U-Net
class PlainUNet3D(nn.Module):
    """The contrasts as input channels → one ``UNet3DEncoder`` → ``UNet3DDecoder``: ``[B, M, D, H, W] → [B, 3, …]``."""

    def __init__(self, in_channels: int, widths: Sequence[int], out_channels: int = 3) -> None:
        super().__init__()
        self.encoder = UNet3DEncoder(in_channels, widths)
        self.decoder = UNet3DDecoder(widths, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        D, H, W = x.shape[-3:]
        feats = self.encoder(pad_far_end(x, padded_shape((D, H, W), self.encoder.multiple)))
        return self.decoder(feats[-1], feats[:-1])[..., :D, :H, :W]


def _segmentation_batch(patch: Sequence[int], device: torch.device, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(1, 1, *patch, generator=g).to(device) for m in BRATS}
    target = (torch.rand(1, 3, *patch, generator=g) < 0.1).to(device)
    mask = torch.tensor([[True, False, True, True]], device=device)  # t1 missing
    return {"inputs": inputs, "target": target, "mask": mask, "index": torch.zeros(1, dtype=torch.long)}


def _step_figures(
    step: Callable[[], None], device: torch.device, warmup: int, steps: int
) -> dict[str, float | str | None]:
    try:
        for _ in range(warmup):
            step()
        with PeakMemory(device) as mem:
            times = [_timed(step, device) for _ in range(steps)]
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"step_s": None, "peak_gib": None, "error": "out of memory"}
    return {
        "step_s": statistics.median(times),
        "peak_gib": mem.peak_gib,
        "samples_per_s": 1.0 / statistics.median(times),
    }


def bench_shaspec(rep: Report, device: torch.device, sz: dict[str, Any]) -> None:
    widths = tuple(sz["widths"])
    out: dict[str, Any] = {"widths": list(widths), "batch": 1, "modalities": len(BRATS), "runs": []}
    for patch in sz["patches"]:
        for precision in ("fp32", "bf16"):
            row: dict[str, Any] = {"patch": list(patch), "precision": precision}
            torch.manual_seed(0)
            shaspec = ShaSpec(BRATS, {m: (1, *patch) for m in BRATS}, Task.SEGMENTATION, 3, seg_widths=widths)
            shaspec = shaspec.to(device).train()
            opt = torch.optim.AdamW(shaspec.parameters(), lr=1e-4)
            batch = _segmentation_batch(patch, device)

            def sha_step(
                model: ShaSpec = shaspec, o: torch.optim.Optimizer = opt, b: dict = batch, p: str = precision
            ) -> None:
                with _autocast(device, p):
                    loss = model.loss(model(b["inputs"], b["mask"]), b)["loss"]  # type: ignore[arg-type]
                o.zero_grad(set_to_none=True)
                loss.backward()
                o.step()

            row["shaspec"] = _step_figures(sha_step, device, sz["warmup"], sz["steps"])
            row["shaspec"]["params_m"] = sum(p.numel() for p in shaspec.parameters()) / 1e6
            del shaspec, opt, sha_step  # the step's defaults hold the model: free it before the U-Net's peak
            if device.type == "cuda":
                torch.cuda.empty_cache()
            unet = PlainUNet3D(len(BRATS), widths).to(device).train()
            opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
            x = torch.cat([batch["inputs"][m] for m in BRATS], 1)  # [1, 4, D, H, W]

            def unet_step(
                model: nn.Module = unet,
                o: torch.optim.Optimizer = opt,
                b: dict = batch,
                p: str = precision,
                x: Tensor = x,
            ) -> None:
                with _autocast(device, p):
                    loss = task_loss(model(x), b["target"], Task.SEGMENTATION)
                o.zero_grad(set_to_none=True)
                loss.backward()
                o.step()

            row["unet"] = _step_figures(unet_step, device, sz["warmup"], sz["steps"])
            row["unet"]["params_m"] = sum(p.numel() for p in unet.parameters()) / 1e6
            del unet, opt, unet_step
            if device.type == "cuda":
                torch.cuda.empty_cache()
            s, u = row["shaspec"], row["unet"]
            if s.get("step_s") and u.get("step_s"):
                row["ratio_time"] = s["step_s"] / u["step_s"]
                if s.get("peak_gib") and u.get("peak_gib"):
                    row["ratio_memory"] = s["peak_gib"] / u["peak_gib"]
            out["runs"].append(row)
            rep.line(
                f"shaspec step {'x'.join(map(str, patch))} {precision}: ShaSpec {_fmt(s, 'step_s', 's')}, "
                f"peak {_fmt(s, 'peak_gib', 'GiB')}; U-Net {_fmt(u, 'step_s', 's')}, peak {_fmt(u, 'peak_gib', 'GiB')}; "
                f"ratio time {row.get('ratio_time', float('nan')):.2f}, memory {row.get('ratio_memory', float('nan')):.2f}"
            )
    rep.figures["shaspec"] = out


def _fmt(d: dict[str, Any], key: str, unit: str) -> str:
    v = d.get(key)
    return f"{v:.3f} {unit}" if isinstance(v, float) else str(d.get("error", "n/a"))


# ----------------------------------------------------------------------------------------------- sliding window
def bench_sliding_window(rep: Report, device: torch.device, sz: dict[str, Any]) -> None:
    roi, vol = tuple(sz["sw_roi"]), tuple(sz["sw_volume"])
    torch.manual_seed(0)
    model = ShaSpec(BRATS, {m: (1, *roi) for m in BRATS}, Task.SEGMENTATION, 3, seg_widths=tuple(sz["widths"]))
    model = model.to(device).eval()
    g = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(1, 1, *vol, generator=g).to(device) for m in BRATS}
    mask = torch.ones(1, len(BRATS), dtype=torch.bool, device=device)
    out: dict[str, Any] = {"volume": list(vol), "roi": list(roi), "overlap": model.sw_overlap, "runs": []}
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), _autocast(device, precision):
            model({m: x[..., : roi[0], : roi[1], : roi[2]] for m, x in inputs.items()}, mask)  # warm-up window
            with PeakMemory(device) as mem:
                seconds = _timed(lambda: model.predict_logits(inputs, mask), device)
        out["runs"].append({"precision": precision, "seconds": seconds, "peak_gib": mem.peak_gib})
        rep.line(
            f"sliding window {'x'.join(map(str, vol))}, roi {'x'.join(map(str, roi))}, {precision}: {seconds:.2f} s"
        )
    rep.figures["sliding_window"] = out


# ---------------------------------------------------------------------------------------------------- imputer
def _imputer_data(N: int, dims: Sequence[int], seed: int = 0) -> tuple[list[Tensor], Tensor]:
    """Weakly clustered float32 embeddings (64 latent groups); each row one of the 6 patterns with 1-2 observed."""
    patterns = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=torch.bool)
    g = torch.Generator().manual_seed(seed)
    group = torch.randint(64, (N,), generator=g)
    X = [(0.5 * torch.randn(64, d, generator=g))[group] + torch.randn(N, d, generator=g) for d in dims]
    return X, patterns[torch.randint(len(patterns), (N,), generator=g)]


def bench_imputer(rep: Report, device: torch.device, sz: dict[str, Any]) -> None:
    cfg = sz["imputer"]
    X, mask = _imputer_data(cfg["N"], cfg["dims"])
    out: dict[str, Any] = {**cfg, "max_iter": 10, "tol": 0.0, "missing": "each row 1 or 2 of 3 observed", "runs": []}
    targets = [device] if device.type == "cpu" else [device, torch.device("cpu")]
    for dev in targets:
        Xd, maskd = [x.to(dev) for x in X], mask.to(dev)
        imputer = UL4M4Imputer(cfg["K"], max_iter=10, tol=0.0).to(dev)
        with PeakMemory(dev) as mem:
            fit_s = _timed(lambda imp=imputer, a=Xd, b=maskd: imp.fit(a, b), dev)
            transform_s = _timed(lambda imp=imputer, a=Xd, b=maskd: imp.transform(a, b), dev)
        row = {
            "device": dev.type,
            "threads": torch.get_num_threads() if dev.type == "cpu" else None,
            "fit_s": fit_s,
            "transform_s": transform_s,
            "lloyd_updates": imputer.num_iter,
            "peak_gib": mem.peak_gib,
        }
        out["runs"].append(row)
        rep.line(
            f"UL4M4 imputer N={cfg['N']} K={cfg['K']} dims={cfg['dims']} on {dev.type}: fit {fit_s:.2f} s "
            f"({imputer.num_iter} Lloyd updates), transform {transform_s:.2f} s"
        )
        del Xd, maskd, imputer
    if len(out["runs"]) == 2:
        gpu, cpu = out["runs"]
        out["speedup_fit"] = cpu["fit_s"] / gpu["fit_s"]
        out["speedup_transform"] = cpu["transform_s"] / gpu["transform_s"]
    rep.figures["imputer"] = out


# ------------------------------------------------------------------------------------------------------ loader
def _write_case(args: tuple[str, int, float]) -> str:
    """Generate and write one semi-synthetic case (a process-pool task)."""
    from mmbench.data.synthetic_brats import _save, generate_case

    root, index, spacing = args
    case_id = f"BraTSSynth_{index:05d}"
    case_dir = Path(root) / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    case = generate_case(index, seed=0, spacing_mm=spacing)
    for contrast, img in case.images.items():
        _save(img, case.affine, case_dir / f"{case_id}_{contrast}.nii.gz")
    _save(case.seg, case.affine, case_dir / f"{case_id}_seg.nii.gz")
    return str(case_dir)


def bench_loader(rep: Report, device: torch.device, sz: dict[str, Any], tmp: Path) -> None:
    from torch.utils.data import DataLoader

    from mmbench.data.brats import BraTSPatchDataset, VolumeCache, discover_cases

    cfg = sz["loader"]
    root = tmp / "brats"
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(min(cfg["cases"], os.cpu_count() or 1)) as pool:
        pool.map(_write_case, [(str(root), i, cfg["spacing_mm"]) for i in range(cfg["cases"])])
    gen_s = time.perf_counter() - t0
    cases = discover_cases(root)
    cache_dir = tmp / "cache"
    t0 = time.perf_counter()
    cache = VolumeCache(cache_dir)
    shape = None
    for case in cases:
        shape = tuple(cache.load(case).image.shape)
    fill_s = time.perf_counter() - t0
    rep.line(
        f"loader: {len(cases)} cases at {cfg['spacing_mm']:g} mm generated in {gen_s:.1f} s, cache filled in "
        f"{fill_s:.1f} s (cropped volume {shape})"
    )
    ds = BraTSPatchDataset(cases, cfg["patch"], cfg["samples_per_case"], fg_prob=0.5, cache_dir=cache_dir)
    out: dict[str, Any] = {
        "cases": len(cases),
        "spacing_mm": cfg["spacing_mm"],
        "cropped_volume": list(shape or ()),
        "patch": cfg["patch"],
        "batch": 1,
        "generate_s": gen_s,
        "cache_fill_s": fill_s,
        "runs": [],
    }
    for workers in cfg["workers"]:
        loader = DataLoader(
            ds, batch_size=1, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda", prefetch_factor=2
        )
        t_start, n, t_first = time.perf_counter(), 0, None
        for i, batch in enumerate(loader):
            _ = batch["inputs"]["flair"].to(device, non_blocking=True)
            if i == workers:  # every worker has delivered once: start the steady-state clock here
                t_first = time.perf_counter()
            elif i > workers:
                n += 1
        _sync(device)
        steady = (time.perf_counter() - t_first) if t_first is not None else float("nan")
        sps = n / steady if n else float("nan")
        out["runs"].append(
            {"workers": workers, "samples_per_s": sps, "samples": n, "epoch_s": time.perf_counter() - t_start}
        )
        rep.line(f"loader: {workers} workers, {cfg['patch']}³ patches: {sps:.1f} samples/s (steady, {n} samples)")
    steps = rep.figures.get("shaspec", {}).get("runs", [])
    gpu = {
        r["precision"]: r["shaspec"].get("samples_per_s")
        for r in steps
        if tuple(r["patch"]) == (cfg["patch"],) * 3 and r["shaspec"].get("samples_per_s")
    }
    out["shaspec_step_samples_per_s"] = gpu
    if gpu:
        best = max(r["samples_per_s"] for r in out["runs"])
        out["fed"] = {p: best >= v for p, v in gpu.items()}
        rep.line(f"loader vs ShaSpec step at {cfg['patch']}³: step {gpu} samples/s, loader best {best:.1f} samples/s")
    rep.figures["loader"] = out


# -------------------------------------------------------------------------------------------------------- demo
@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bench_demo(rep: Report, device: torch.device, sz: dict[str, Any], tmp: Path) -> None:
    import lightning.pytorch as pl

    from mmbench.data import AVMNISTDataModule
    from mmbench.masks import AllPatterns, BernoulliMissing

    cfg = sz["demo"]
    out: dict[str, Any] = {"method": "shaspec", "data": "avmnist lite", "rate": 0.5, **cfg, "runs": []}
    targets = [device] if device.type == "cpu" else [device, torch.device("cpu")]
    for dev in targets:
        pl.seed_everything(0, verbose=False)
        dm = AVMNISTDataModule(
            variant="lite", batch_size=64, missingness=BernoulliMissing(0.5), eval_protocols=[AllPatterns()]
        )
        model = ShaSpec(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
        limit = cfg["limit_batches"]
        trainer = pl.Trainer(
            accelerator=dev.type,
            devices=1,
            max_epochs=cfg["max_epochs"],
            limit_train_batches=limit,
            limit_val_batches=limit,
            limit_test_batches=limit,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp / f"demo_{dev.type}",
        )
        with _threads(1 if dev.type == "cpu" else None), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            trainer.fit(model, datamodule=dm)
            fit_s = time.perf_counter() - t0
            trainer.test(model, datamodule=dm, verbose=False)
            total_s = time.perf_counter() - t0
        acc = next((r["value"] for r in model.test_results if r["pattern"] == "all" and r["metric"] == "acc"), None)
        out["runs"].append({"device": dev.type, "fit_s": fit_s, "fit_test_s": total_s, "test_acc_all": acc})
        rep.line(
            f"demo cell (ShaSpec, AV-MNIST-lite) on {dev.type}: fit {fit_s:.1f} s, fit+test {total_s:.1f} s, acc {acc}"
        )
    rep.figures["demo"] = out


# -------------------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the selected sections and return the figures (also written to ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check that the script runs)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--budget-s", type=float, default=240.0, help="skip sections that would start after this")
    parser.add_argument(
        "--cudnn-benchmark", action="store_true", help="let cuDNN autotune (off by default, as in the Trainer)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    sz = sizes(args.quick)
    rep = Report(args.out, args.budget_s)
    rep.figures["meta"] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "quick": args.quick,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "bf16": "torch.autocast(bfloat16) around forward + loss; fp32 weights and AdamW",
    }
    rep.line(f"bench_gpu on {rep.figures['meta']['device']} ({'quick' if args.quick else 'full'} sizes)")
    with tempfile.TemporaryDirectory(prefix="mmbench_bench_gpu_") as tmpdir:
        tmp = Path(tmpdir)
        for name in [s for s in SECTIONS if s in args.sections]:
            if rep.elapsed() > args.budget_s:
                rep.figures[name] = {"skipped": f"budget of {args.budget_s:.0f} s spent"}
                rep.line(f"{name}: skipped (budget)")
                continue
            t0 = time.perf_counter()
            run: Callable[..., None] = {
                "shaspec": bench_shaspec,
                "sliding_window": bench_sliding_window,
                "imputer": bench_imputer,
                "loader": lambda r, d, s: bench_loader(r, d, s, tmp),
                "demo": lambda r, d, s: bench_demo(r, d, s, tmp),
            }[name]
            run(rep, device, sz)
            rep.figures.setdefault(name, {})["section_s"] = time.perf_counter() - t0
            rep.save()
    rep.save()
    rep.line(f"done; figures in {args.out}" if args.out else "done")
    return rep.figures


if __name__ == "__main__":
    main()
