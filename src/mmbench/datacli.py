"""``mmbench data ...``: data utilities.

* ``mmbench data brats-synth --out DIR --cases N [--seed S] [--spacing-mm 2]``: write semi-synthetic BraTS case
  folders (real MNI152 anatomy, synthetic contrasts and tumours; see ``mmbench.data.synthetic_brats``) and a
  seeded train/val/test split of their ids.
"""

from __future__ import annotations

import time
from pathlib import Path

from mmbench.errors import MMBenchError

__all__ = ["cli"]


def brats_synth(out: str, cases: int = 24, seed: int = 0, spacing_mm: float = 2.0) -> list[Path]:
    """Generate ``cases`` semi-synthetic BraTS cases into ``out`` and write ``out/splits/{train,val,test}.txt``."""
    from mmbench.data.brats.splits import random_split, write_split
    from mmbench.data.synthetic_brats import generate_cases

    if cases < 8:
        raise MMBenchError(f"--cases must be >= 8 (a 75/12.5/12.5 train/val/test split), got {cases}")
    start = time.perf_counter()
    paths = generate_cases(Path(out), cases, seed, spacing_mm)
    split_files = write_split(Path(out) / "splits", random_split([p.name for p in paths], seed=seed))
    print(f"wrote {len(paths)} semi-synthetic BraTS cases to {out} in {time.perf_counter() - start:.1f} s")
    for name, path in split_files.items():
        print(f"  split {name}: {path}")
    return paths


def cli(args: list[str]) -> None:
    """Dispatch ``mmbench data <tool> ...``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="mmbench data", description="data utilities")
    sub = parser.add_subcommands()
    synth = ArgumentParser(description="write semi-synthetic BraTS case folders (BraTS 2018-2021 naming)")
    synth.add_argument("--out", type=str, required=True, help="output folder")
    synth.add_argument("--cases", type=int, default=24, help="number of cases")
    synth.add_argument("--seed", type=int, default=0, help="generator seed")
    synth.add_argument("--spacing_mm", type=float, default=2.0, help="voxel spacing of the written grid (mm)")
    sub.add_subcommand("brats-synth", synth)
    ns = parser.parse_args(args)
    if ns.subcommand == "brats-synth":
        opts = ns["brats-synth"]
        brats_synth(opts.out, opts.cases, opts.seed, opts.spacing_mm)
