"""Item 8 diagnosis: why vector ShaSpec stays at ln 10 under Adam + coupled L2 (wd 1e-2) on SMIL AV-MNIST.

A plain PyTorch loop (no Lightning) over the same data module and model classes as
``experiments/paper/shaspec_avmnist_table3.yaml``, logging per layer and per epoch: the loss-gradient norm
``‖∇L‖``, the weight norm ``‖w‖`` and the ratio ``‖∇L‖ / (wd·‖w‖)`` (how much of the gradient Adam sees is the
task and how much the L2 term), and train loss / image-only test accuracy.

    PYTHONPATH=src python experiments/paper/diagnostics/shaspec_optim.py --method shaspec --epochs 4
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from mmbench.data import AVMNISTDataModule
from mmbench.methods import ShaSpec, Unimodal


def _std(o: object) -> float:
    """Std of a module output (the last level when a backbone returns a feature pyramid)."""
    t = o[-1] if isinstance(o, (list, tuple)) else o
    return float(t.std()) if isinstance(t, torch.Tensor) else float("nan")


def activation_scales(model: torch.nn.Module, dm: AVMNISTDataModule) -> dict[str, float]:
    """Std of each top-level submodule's output on one training batch (eval mode, no dropout)."""
    stds: dict[str, float] = {}
    hooks = []
    for name, mod in model.named_modules():
        if name.count(".") <= 1 and name and not isinstance(mod, (torch.nn.ModuleDict, torch.nn.ReLU)):
            hooks.append(mod.register_forward_hook(lambda m, i, o, n=name: stds.__setitem__(n, _std(o))))
    batch = dm.apply_missingness(next(iter(dm.train_dataloader())), "train")
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(batch["inputs"], batch["mask"])
    model.train(was)
    for h in hooks:
        h.remove()
    stds["logits"] = float(out.logits.std(0).mean())  # spread of the logits across samples
    return stds


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="shaspec", choices=["shaspec", "unimodal"])
    p.add_argument("--opt", default="adam", choices=["adam", "adamw"])
    p.add_argument("--wd", type=float, default=1e-2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--audio", type=float, default=0.2)
    p.add_argument("--init", default="default", choices=["default", "kaiming_fan_in", "kaiming_fan_out"])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    dm = AVMNISTDataModule(variant="smil", audio_fraction=a.audio, val_per_class=0, batch_size=32, mask_seed=0)
    dm.prepare_data()
    dm.setup("fit")
    facts = dict(modalities=dm.modalities, input_shapes=dm.input_shapes, task=dm.task, num_classes=dm.num_classes)
    if a.method == "shaspec":
        # ShaSpec's own init switch: "default" = PyTorch's defaults (init="torch"), the rest start from He init
        init = "torch" if a.init == "default" else "kaiming"
        model = ShaSpec(**facts, feature_dim=128, stem_dim=128, head_hidden=128, dropout=a.dropout, init=init)
    else:
        model = Unimodal(**facts, modality="image")
    if a.init != "default":  # He init for every Linear/Conv (the official code: kaiming_normal_, fan_out)
        mode = "fan_in" if a.init == "kaiming_fan_in" else "fan_out"
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                torch.nn.init.kaiming_normal_(mod.weight, mode=mode, nonlinearity="relu")
                if mod.bias is not None:
                    torch.nn.init.zeros_(mod.bias)
    acts = activation_scales(model, dm)
    print("activation std at init:", {k: round(v, 4) for k, v in acts.items()})
    opt_cls = torch.optim.Adam if a.opt == "adam" else torch.optim.AdamW
    opt = opt_cls(model.parameters(), lr=1e-3, weight_decay=a.wd)
    names = [n for n, q in model.named_parameters() if q.dim() >= 2]  # weight matrices / kernels
    params = dict(model.named_parameters())
    log: list[dict] = [{"epoch": 0, "activation_std": acts}]
    step = 0
    for epoch in range(a.epochs):
        model.train()
        gsum = {n: 0.0 for n in names}
        losses, nsteps = [], 0
        for batch in dm.train_dataloader():
            batch = dm.apply_missingness(batch, "train", epoch)
            out = model(batch["inputs"], batch["mask"])
            terms = model.loss(out, batch)
            opt.zero_grad()
            terms["loss"].backward()
            for n in names:
                gsum[n] += float(params[n].grad.norm())
            opt.step()
            losses.append(float(terms.get("task", terms["loss"])))
            nsteps += 1
            step += 1
            if epoch == 0 and nsteps in (1, 5, 10, 20):
                print(f"  step {nsteps}: task {losses[-1]:.3f}")
        row = {"epoch": epoch + 1, "task_loss": sum(losses) / len(losses)}
        for n in names:
            g, w = gsum[n] / nsteps, float(params[n].detach().norm())
            row[n] = {"grad": g, "weight": w, "grad_over_l2": g / (a.wd * w) if a.wd > 0 else math.inf}
        # image-only test accuracy (Table 3 protocol): audio masked out for every test sample
        model.eval()
        dm.setup("test")
        correct = total = 0
        with torch.no_grad():
            for loader in dm.test_dataloader() if isinstance(dm.test_dataloader(), list) else [dm.test_dataloader()]:
                for batch in loader:
                    batch = dm.apply_missingness(batch, "test")
                    mask = batch["mask"].clone()
                    mask[:, dm.modalities.index("audio")] = False
                    mask[:, dm.modalities.index("image")] = True
                    pred = model(batch["inputs"], mask).logits.argmax(1)
                    correct += int((pred == batch["target"]).sum())
                    total += int(pred.numel())
                break
        row["test_acc_image_only"] = correct / total
        log.append(row)
        print(f"epoch {epoch + 1}: task {row['task_loss']:.4f}  image-only acc {row['test_acc_image_only']:.4f}")
        for n in names:
            r = row[n]
            print(f"   {n:45s} |g| {r['grad']:.2e}  |w| {r['weight']:.3f}  |g|/(wd|w|) {r['grad_over_l2']:.3g}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "log": log}, f, indent=1)


if __name__ == "__main__":
    main()
