"""UL4M4 imputer benchmark: wall time and peak memory, speed-up over the loop reference, scaling in N.

Prints figures only (no timed assertions). Run with::

    .venv/bin/python -m pytest tests/benchmarks/test_bench_ul4m4.py -m slow -s -q

Setting: M = 3 modalities of dims (768, 1024, 768) (MOSI's BERT/WavLM/CLIP sizes), K = 64, half the
(sample, modality) slots missing with at least one observed per sample (each sample's pattern is uniform over
the six patterns with one or two observed modalities), float32, a fixed 10 Lloyd updates (``tol = 0``; the
run also stops early if an assignment repeats, and the number of updates is printed). Device: CUDA when
available (``UL4M4_BENCH_DEVICE`` overrides), else CPU; torch's thread count is whatever the session set.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from mmbench.nn.imputer import UL4M4Imputer

pytestmark = pytest.mark.slow

DIMS = [768, 1024, 768]
K = 64
MAX_ITER = 10
PATTERNS = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=torch.bool)


def _device() -> torch.device:
    name = os.environ.get("UL4M4_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _load_reference() -> ModuleType:
    """The loop reference lives in the kernels' test file; load it by path (test dirs are not packages)."""
    path = Path(__file__).resolve().parents[1] / "functional" / "test_imputation.py"
    spec = importlib.util.spec_from_file_location("_ul4m4_loop_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_data(N: int, seed: int = 0, device: torch.device | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Weakly clustered float32 embeddings (64 latent groups) and a half-missing mask."""
    g = torch.Generator().manual_seed(seed)
    group = torch.randint(64, (N,), generator=g)
    X = []
    for d in DIMS:
        means = torch.randn(64, d, generator=g) * 0.5
        x = means[group]
        x += torch.randn(N, d, generator=g)
        X.append(x.to(device))
    mask = PATTERNS[torch.randint(len(PATTERNS), (N,), generator=g)].to(device)
    return X, mask


class PeakMemory:
    """Peak extra resident memory (CPU: polled ``/proc/self/statm``; CUDA: ``max_memory_allocated``)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:  # not Linux: the high-water mark (only a delta above the old peak shows)
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            time.sleep(0.002)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._max = self._rss()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self._max, self._rss()) - self._base


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float, float]:
    """``(result, wall seconds, process CPU seconds)``; CPU time is the steadier figure on a shared machine."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0, time.process_time() - c0


def run_vectorised(X: list[torch.Tensor], mask: torch.Tensor, device: torch.device) -> dict[str, float]:
    imp = UL4M4Imputer(num_clusters=K, max_iter=MAX_ITER, tol=0.0, seed=0)
    with PeakMemory(device) as mem:
        _, t_fit, c_fit = timed(lambda: imp.fit(X, mask), device)
        out, t_tr, c_tr = timed(lambda: imp.transform(X, mask), device)
    assert all(bool(torch.isfinite(o).all()) for o in out)
    return {
        "fit": t_fit,
        "transform": t_tr,
        "total": t_fit + t_tr,
        "cpu": c_fit + c_tr,
        "mem": mem.peak_bytes,
        "iters": imp.num_iter,
    }


def _header(device: torch.device) -> str:
    return f"device={device} torch_threads={torch.get_num_threads()} dims={DIMS} K={K} max_iter={MAX_ITER} tol=0"


def test_bench_fit_transform_20k() -> None:
    device = _device()
    X, mask = make_data(20_000, device=device)
    data_mb = sum(x.numel() * x.element_size() for x in X) / 2**20
    r = run_vectorised(X, mask, device)
    print(
        f"\n[ul4m4 bench] {_header(device)} N=20000 missing={1 - mask.float().mean():.3f} data={data_mb:.0f} MiB\n"
        f"  fit {r['fit']:.2f} s ({r['iters']} Lloyd updates) + transform {r['transform']:.2f} s"
        f" = {r['total']:.2f} s wall ({r['cpu']:.2f} s CPU); peak extra memory {r['mem'] / 2**20:.0f} MiB"
    )


def test_bench_speedup_over_loop_reference() -> None:
    ref = _load_reference()
    N = 200  # the loop reference finishes in under a minute here
    X, mask = make_data(N, seed=1)
    device = torch.device("cpu")
    r = run_vectorised(X, mask, device)

    def loop() -> int:
        objs = ref.ref_objects([x.double().numpy() for x in X], mask.numpy())
        mu, sd = ref.ref_zscore_fit(objs, DIMS)
        centres, _, _, num_iter = ref.ref_kmeans(objs, K, mu, sd, MAX_ITER, 0.0, 0)
        ref.ref_complete(objs, centres, mu, sd)
        return int(num_iter)

    ref_iters, t_ref, c_ref = timed(loop, device)
    print(
        f"\n[ul4m4 bench] loop reference vs vectorised, {_header(device)} N={N}\n"
        f"  loop reference {t_ref:.2f} s wall / {c_ref:.2f} s CPU ({ref_iters} Lloyd updates);"
        f" vectorised {r['total']:.3f} s wall / {r['cpu']:.3f} s CPU ({r['iters']} updates)\n"
        f"  speed-up {t_ref / r['total']:.0f}x wall, {c_ref / max(r['cpu'], 1e-9):.0f}x CPU (target >= 50x)"
    )


def test_bench_scaling_in_n() -> None:
    device = _device()
    print(f"\n[ul4m4 bench] scaling, {_header(device)}")
    for N in (5_000, 20_000, 80_000):
        X, mask = make_data(N, seed=2, device=device)
        r = run_vectorised(X, mask, device)
        per, per_cpu = r["total"] / (N * K) * 1e9, r["cpu"] / (N * K) * 1e9
        print(
            f"  N={N:>6}: fit {r['fit']:6.2f} s + transform {r['transform']:6.2f} s = {r['total']:6.2f} s wall"
            f" ({r['cpu']:6.2f} s CPU, {r['iters']} updates); time/(N*K) = {per:6.0f} ns wall, {per_cpu:6.0f} ns CPU;"
            f" peak extra memory {r['mem'] / 2**20:.0f} MiB"
        )
        del X, mask
