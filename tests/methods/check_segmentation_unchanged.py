"""Segmentation-path equivalence of two checkouts, in seconds (issue 11, "Behaviour does not change").

For every method of the previous commit: seed 0, build on a 4 × 1×16³ synthetic segmentation set, run the
unsupervised stage, train 2 epochs with AdamW(1e-3, 0) under the training masks, then compare bit for bit the
last training loss, the eval logits on training-patch-sized volumes and the sliding-window logits on larger
(16×20×24) volumes. ::

    python tests/methods/check_segmentation_unchanged.py --before /tmp/base --after .

Exit code 1 when anything differs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

METHODS = ["zero_fill", "mean_fill", "moddrop", "hemis", "late_fusion", "unimodal", "shaspec", "ul4m4"]

RUN = r"""
import sys, torch
import mmbench.methods  # noqa: F401
from mmbench.data.synthetic import SyntheticDataModule
from mmbench.masks import BernoulliMissing
from mmbench.registry import METHODS
torch.set_num_threads(1)
out = {}
for name in sys.argv[2:]:
    shapes = {m: [1, 16, 16, 16] for m in ("flair", "t1", "t1ce", "t2")}
    dm = SyntheticDataModule(task="segmentation", input_shapes=shapes, num_samples=(8, 4, 4), batch_size=4,
                             missingness=BernoulliMissing(0.3, min_present=1))
    dm.setup("fit")
    dm.setup("test")
    torch.manual_seed(0)
    model = METHODS.get(name)(dm.modalities, dm.input_shapes, dm.task, dm.num_classes)
    model.fit_unsupervised(dm)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    model.train()
    torch.manual_seed(1)
    for epoch in range(2):
        for batch in dm.train_dataloader():
            batch = dm.apply_missingness(batch, "train", epoch)
            loss = model.loss(model(batch["inputs"], batch["mask"]), batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    batch = dm.apply_missingness(next(iter(dm.test_dataloader()[0])), "test")
    big = {m: torch.nn.functional.pad(x, (0, 8, 0, 4, 0, 0)) for m, x in batch["inputs"].items()}
    with torch.no_grad():
        out[name] = [loss.detach(), model.predict_logits(batch["inputs"], batch["mask"]),
                     model.predict_logits(big, batch["mask"])]
torch.save(out, sys.argv[1])
"""


def _run(root: Path, path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", RUN, str(path), *METHODS], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{root}: failed\n{proc.stderr[-2000:]}")


def main() -> int:
    """Run both checkouts and print one line per method."""
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, default=Path("."))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a_path, b_path = Path(tmp) / "before.pt", Path(tmp) / "after.pt"
        _run(args.before.resolve(), a_path)
        _run(args.after.resolve(), b_path)
        a, b = torch.load(a_path), torch.load(b_path)
    failed = False
    for name in METHODS:
        same = all(torch.equal(x, y) for x, y in zip(a[name], b[name], strict=True))
        failed |= not same
        shapes = " / ".join(str(tuple(t.shape)) for t in a[name][1:])
        print(f"{name:12s} loss + logits {shapes}: {'identical' if same else 'DIFFERENT'}")
    print("IDENTICAL" if not failed else "DIFFERENT")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
