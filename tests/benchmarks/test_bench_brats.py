"""BraTS pipeline figures on CPU (prints, no timed assertions): generation, loading raw vs cached, model step, SW inference.

Run: ``.venv/bin/python -m pytest tests/benchmarks/test_bench_brats.py -m slow -s -q``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mmbench.data.brats import MODALITIES, BraTSCase, BraTSPatchDataset, BraTSVolumeDataset, VolumeCache, discover_cases
from mmbench.data.synthetic_brats import generate_cases
from mmbench.functional.sliding_window import sliding_window_inference

NUM_CASES = 24
PATCH = 64
BATCH = 2
WORKERS = 2


class SmallNet(nn.Module):
    """A small 3D conv encoder-decoder (4 → 3 channels), about 50 k parameters."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv3d(4, width, 3, padding=1),
            nn.InstanceNorm3d(width),
            nn.LeakyReLU(),
            nn.Conv3d(width, 2 * width, 3, stride=2, padding=1),
            nn.InstanceNorm3d(2 * width),
            nn.LeakyReLU(),
            nn.Conv3d(2 * width, 2 * width, 3, padding=1),
            nn.LeakyReLU(),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose3d(2 * width, width, 2, stride=2), nn.LeakyReLU(), nn.Conv3d(width, 3, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.down(x))


def _stack(inputs: dict[str, Tensor]) -> Tensor:
    return torch.cat([inputs[m] for m in MODALITIES], dim=1)  # [B, 4, D, H, W]


def _time_loader(ds: BraTSPatchDataset, epochs: int = 2) -> tuple[float, float]:
    """(first-batch latency incl. worker start, steady-state seconds per batch) over ``epochs`` passes."""
    loader = DataLoader(ds, batch_size=BATCH, num_workers=WORKERS, shuffle=True, persistent_workers=False)
    first, steady, n = 0.0, 0.0, 0
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        t0 = time.perf_counter()
        for i, batch in enumerate(loader):
            t1 = time.perf_counter()
            assert batch["inputs"]["flair"].shape == (BATCH, 1, PATCH, PATCH, PATCH)
            if i == 0:
                first += t1 - t0
            else:
                steady += t1 - t0
                n += 1
            t0 = time.perf_counter()
    return first / epochs, steady / n


@pytest.mark.slow
def test_bench_brats_pipeline(tmp_path: Path) -> None:
    torch.manual_seed(0)
    root = tmp_path / "brats_synth"
    t0, c0 = time.perf_counter(), time.process_time()
    generate_cases(root, num_cases=NUM_CASES, seed=0, spacing_mm=2.0)
    gen_s, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    cases = discover_cases(root)
    print(
        f"\n[brats] generate {NUM_CASES} cases at 2 mm (99×117×95) + write .nii.gz: {gen_s:.1f} s wall, "
        f"{gen_cpu:.1f} s CPU (one process; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )

    raw = BraTSPatchDataset(cases, patch_size=PATCH, fg_prob=0.5, seed=0)
    raw_first, raw_batch = _time_loader(raw)
    cache_dir = tmp_path / "cache"
    t0 = time.perf_counter()
    cache = VolumeCache(cache_dir)
    for case in cases:
        cache.load(case)
    fill_s = time.perf_counter() - t0
    cached = BraTSPatchDataset(cases, patch_size=PATCH, fg_prob=0.5, seed=0, cache_dir=cache_dir)
    cached_first, cached_batch = _time_loader(cached)
    print(f"[brats] cache fill ({NUM_CASES} cases, decode + z-score + crop + .npy write): {fill_s:.2f} s")
    print(
        f"[brats] data loading, batch {BATCH}×4×{PATCH}³, DataLoader {WORKERS} workers: "
        f"raw .nii.gz {raw_batch * 1e3:.0f} ms/batch (first batch {raw_first:.2f} s), "
        f"cached .npy {cached_batch * 1e3:.0f} ms/batch (first batch {cached_first:.2f} s)"
    )

    threads = torch.get_num_threads()
    torch.set_num_threads(WORKERS)  # the model gets the cores the loader workers used
    try:
        _bench_model(cached, cases, cache_dir)
    finally:
        torch.set_num_threads(threads)


def _bench_model(cached: BraTSPatchDataset, cases: list[BraTSCase], cache_dir: Path) -> None:
    net = SmallNet()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    batch = next(iter(DataLoader(cached, batch_size=BATCH)))
    x, y = _stack(batch["inputs"]), batch["target"].float()
    steps = []
    for _ in range(4):
        t0 = time.perf_counter()
        loss = nn.functional.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append(time.perf_counter() - t0)
    step_s = sum(steps[1:]) / len(steps[1:])
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"[brats] model step (fwd+bwd+AdamW, {n_params / 1e3:.0f} k params, batch {BATCH}×4×{PATCH}³, "
        f"{torch.get_num_threads()} threads): {step_s * 1e3:.0f} ms"
    )

    item = BraTSVolumeDataset(cases[:1], cache_dir=cache_dir)[0]
    vol = _stack({m: t[None] for m, t in item["inputs"].items()})  # [1, 4, X, Y, Z]
    net.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        out = sliding_window_inference(vol, PATCH, net, overlap=0.5, sw_batch_size=2, mode="gaussian")
        sw_s = time.perf_counter() - t0
    assert out.shape == (1, 3, *vol.shape[2:])
    print(
        f"[brats] sliding-window inference, one cropped 2 mm volume {tuple(vol.shape[2:])}, roi {PATCH}³, "
        f"overlap 0.5, gaussian: {sw_s:.2f} s"
    )
