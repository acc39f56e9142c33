"""Which optimiser learns ET on the semi-synthetic BraTS scale of ``experiments/paper/sweeps/brats_synth.yaml``?

Probe on the **validation** split only (16 cases of the seeded 96/16/16 split; no test case is read): a plain
PyTorch loop (no Lightning) over the same data module and method classes, the ShaSpec-code training sampler, one
torch thread, and every ``--eval_every`` epochs the mean per-case ET/TC/WT Dice (``logits > 0``; a case with an empty
region and an empty prediction scores 1) with all four contrasts and with T1c missing (zero-filled).

    PYTHONPATH=src python experiments/paper/diagnostics/brats_optim_probe.py --method zero_fill --optimizer adamw
    PYTHONPATH=src python experiments/paper/diagnostics/brats_optim_probe.py --method zero_fill --optimizer sgd

``adamw``: AdamW, weight decay 0, ``--lr`` (default 1e-3). ``sgd``: the paper's Table 1 optimiser, SGD with Nesterov
momentum 0.99, lr 1e-2, poly decay (power 0.9) per step over the run (``mmbench.methods.optim.PolyLR``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mmbench.data import BraTSDataModule
from mmbench.masks import ShaSpecCodeSampler
from mmbench.methods import HeMIS, MeanFill, ShaSpec, ZeroFill
from mmbench.methods.optim import PolyLR

METHODS = {"zero_fill": ZeroFill, "shaspec": ShaSpec, "mean_fill": MeanFill, "hemis": HeMIS}
PATTERNS = {"all four": (1, 1, 1, 1), "no T1c": (1, 1, 0, 1)}  # flair, t1, t1ce, t2


def _dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    total = int(pred.sum() + target.sum())
    return 1.0 if total == 0 else 2.0 * float((pred & target).sum()) / total


def evaluate(model: torch.nn.Module, dm: BraTSDataModule) -> dict[str, np.ndarray]:
    """Mean per-case [ET, TC, WT] Dice in % on the validation split, per pattern of ``PATTERNS``."""
    val = dm._dataset("val")
    model.eval()
    out = {}
    with torch.no_grad():
        for name, observed in PATTERNS.items():
            mask = torch.tensor([observed], dtype=torch.bool)
            scores = []
            for i in range(len(val)):  # type: ignore[arg-type]
                item = val[i]
                inputs = {m: item["inputs"][m][None] * o for m, o in zip(dm.modalities, observed, strict=True)}
                pred = model.predict_logits(inputs, mask)[0] > 0  # [3, D, H, W]
                scores.append([_dice(pred[c], item["target"][c].bool()) for c in range(3)])
            out[name] = np.mean(scores, axis=0) * 100
    model.train()
    return out


def main() -> None:
    """Parse the arguments, train, print one line per epoch."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=sorted(METHODS), default="zero_fill")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--eval_every", type=int, default=4)
    p.add_argument("--spacing_mm", type=float, default=4.0)
    p.add_argument("--cases", type=int, default=128)
    p.add_argument("--roi", type=int, default=48, help="evaluation window (48: one window per 4 mm brain)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    dm = BraTSDataModule(
        num_synthetic_cases=a.cases, spacing_mm=a.spacing_mm, patch_size=32, samples_per_case=1,
        missingness=ShaSpecCodeSampler(resample_each_epoch=True),
    )  # fmt: skip
    dm.setup("fit")
    widths = {"seg_widths": [8, 16, 32, 64]} if a.method == "shaspec" else {"unet_widths": [8, 16, 32, 64]}
    model = METHODS[a.method](dm.modalities, dm.input_shapes, dm.task, dm.num_classes, roi_size=a.roi, **widths)
    steps = len(dm.train_dataloader())
    sched = None
    if a.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
        sched = PolyLR(opt, total_iters=a.epochs * steps, power=0.9)
    t0 = time.time()
    for epoch in range(a.epochs):
        losses = []
        for batch in dm.train_dataloader():
            batch = dm.apply_missingness(batch, "train", epoch=epoch)
            loss = model.loss(model(batch["inputs"], batch["mask"]), batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(float(loss.detach()))
        line = f"epoch {epoch + 1} ({(epoch + 1) * steps} steps) loss {np.mean(losses):.3f} t {time.time() - t0:.0f}s"
        if (epoch + 1) % a.eval_every == 0 or epoch + 1 == a.epochs:
            scores = evaluate(model, dm)
            line += "  val ET/TC/WT: " + "; ".join(f"{k} {np.round(v, 1).tolist()}" for k, v in scores.items())
        print(line, flush=True)


if __name__ == "__main__":
    main()
