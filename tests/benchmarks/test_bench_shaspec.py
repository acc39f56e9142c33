"""ShaSpec cost figures (slow; run with ``pytest -m slow -s tests/benchmarks/test_bench_shaspec.py``).

Printed figures:

* parameter count and training throughput (samples/s: forward + loss + backward + AdamW step, after one warm-up
  step, on the current torch thread count) for each head at its default size;
* peak memory of one 3-D training step (batch 1, 4 contrasts) at 64³ and 96³. CPU: ``tracemalloc`` does not see
  torch's allocator, so each size runs in a fresh subprocess that reads the kernel's resident-set counters in
  ``/proc/self/status``: ``VmRSS`` just before the step, and ``VmHWM`` (peak RSS) after it, the peak having been
  reset by writing ``5`` to ``/proc/self/clear_refs``. (``ru_maxrss`` is not used: Linux carries the parent's peak
  into a forked child, so it reports the pytest process's peak.) On CUDA, ``torch.cuda.max_memory_allocated`` is
  reported as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from mmbench.methods import ShaSpec
from mmbench.types import Task

BRATS = ("flair", "t1", "t1ce", "t2")
HEADS = {
    # name: (task, input shapes, num_classes, batch size)
    "classification (AV-MNIST)": (Task.MULTICLASS, {"image": (1, 28, 28), "audio": (32, 13)}, 10, 64),
    "features (mfeat views)": (Task.MULTICLASS, {"text": (216,), "audio": (76,), "vision": (47,)}, 10, 64),
    "segmentation (4 x 64^3)": (Task.SEGMENTATION, {m: (1, 64, 64, 64) for m in BRATS}, 3, 1),
}

_STEP = r"""
import json, sys, torch
from mmbench.methods import ShaSpec

def status_kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)

size, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
mods = ("flair", "t1", "t1ce", "t2")
model = ShaSpec(mods, {m: (1, size, size, size) for m in mods}, "segmentation", 3).to(device).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
inputs = {m: torch.randn(1, 1, size, size, size, device=device) for m in mods}
mask = torch.tensor([[True, False, True, True]], device=device)
target = (torch.rand(1, 3, size, size, size, device=device) < 0.2).float()
before = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
out = model(inputs, mask)
loss = model.loss(out, {"inputs": inputs, "mask": mask, "target": target, "index": torch.zeros(1)})["loss"]
loss.backward()
opt.step()
after = status_kib("VmHWM")
cuda_peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
print(json.dumps({"device": device, "rss_before_kib": before, "rss_peak_kib": after, "cuda_peak_bytes": cuda_peak}))
"""


def _batch(model: ShaSpec, n: int) -> dict:
    inputs = {m: torch.randn(n, *model.input_shapes[m]) for m in model.modalities}
    mask = torch.ones(n, model.num_modalities, dtype=torch.bool)
    mask[::2, -1] = False  # mixed patterns
    if model.task is Task.SEGMENTATION:
        target = (torch.rand(n, 3, *model.input_shapes[model.modalities[0]][1:]) < 0.2).float()
    else:
        target = torch.randint(model.num_classes, (n,))
    return {"inputs": inputs, "mask": mask, "target": target, "index": torch.arange(n)}


def _train_step(model: ShaSpec, opt: torch.optim.Optimizer, batch: dict) -> None:
    out = model(batch["inputs"], batch["mask"])
    loss = model.loss(out, batch)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.slow
@pytest.mark.parametrize("head", list(HEADS))
def test_parameters_and_training_throughput(head):
    task, shapes, num_classes, n = HEADS[head]
    torch.manual_seed(0)
    model = ShaSpec(list(shapes), shapes, task, num_classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = _batch(model, n)
    _train_step(model, opt, batch)  # warm-up
    steps = 3 if task is Task.SEGMENTATION else 20
    start = time.perf_counter()
    for _ in range(steps):
        _train_step(model, opt, batch)
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    rate = steps * n / elapsed
    print(
        f"\nshaspec {head}: {params:,} parameters; training {rate:.3g} samples/s "
        f"= {elapsed / steps:.3f} s/step (batch {n}, {steps} steps, {torch.get_num_threads()} thread(s))"
    )
    assert params > 0 and rate > 0


@pytest.mark.slow
@pytest.mark.parametrize("size", [64, 96])
def test_peak_memory_of_3d_training_step(size):
    threads = torch.get_num_threads()
    proc = subprocess.run(
        [sys.executable, "-c", _STEP, str(size), str(threads)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    step_mib = (fig["rss_peak_kib"] - fig["rss_before_kib"]) / 1024
    line = (
        f"\nshaspec segmentation {size}^3 training step (batch 1, 4 contrasts, default widths, {fig['device']}): "
        f"peak RSS {fig['rss_peak_kib'] / 1024:.0f} MiB, +{step_mib:.0f} MiB over the process before the step "
        f"(/proc VmRSS before, VmHWM peak)"
    )
    if fig["cuda_peak_bytes"] is not None:
        line += f"; CUDA max_memory_allocated {fig['cuda_peak_bytes'] / 2**20:.0f} MiB"
    print(line)
    assert fig["rss_peak_kib"] >= fig["rss_before_kib"] > 0
