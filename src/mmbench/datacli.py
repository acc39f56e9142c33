"""``mmbench data ...``: data utilities.

* ``mmbench data brats-synth --out DIR --cases N [--seed S] [--spacing_mm 2] [--generator_version 2]``: write
  semi-synthetic BraTS case folders (real MNI152 anatomy, synthetic contrasts and tumours; see
  ``mmbench.data.synthetic_brats``), a seeded train/val/test split of their ids, and the marker
  ``mmbench-synthetic.json`` (generator version, seed, spacing, count, case ids, sha256 of the files) by which
  ``BraTSDataModule(root=DIR)`` labels results ``dataset_variant=semi-synthetic(gen=v…)`` instead of ``real``.
"""

from __future__ import annotations

import time
from pathlib import Path

from mmbench.errors import MMBenchError

__all__ = ["cli"]


def brats_synth(
    out: str, cases: int = 24, seed: int = 0, spacing_mm: float = 2.0, generator_version: str | None = None
) -> list[Path]:
    """Generate ``cases`` semi-synthetic BraTS cases into ``out`` and write ``out/splits/{train,val,test}.txt``.

    ``generator_version=None`` is the current ``mmbench.data.synthetic_brats.GENERATOR_VERSION``.
    """
    from mmbench.data.brats.splits import random_split, write_split
    from mmbench.data.synthetic_brats import GENERATOR_VERSION, GENERATOR_VERSIONS, generate_cases

    if cases < 8:
        raise MMBenchError(f"--cases must be >= 8 (a 75/12.5/12.5 train/val/test split), got {cases}")
    if spacing_mm <= 0:
        raise MMBenchError(f"--spacing_mm must be > 0 (mm), got {spacing_mm}")
    version = GENERATOR_VERSION if generator_version is None else generator_version
    if version not in GENERATOR_VERSIONS:
        raise MMBenchError(f"--generator_version must be one of {', '.join(GENERATOR_VERSIONS)}, got {version!r}")
    start = time.perf_counter()
    paths = generate_cases(Path(out), cases, seed, spacing_mm, generator_version=version)
    split_files = write_split(Path(out) / "splits", random_split([p.name for p in paths], seed=seed))
    print(
        f"wrote {len(paths)} semi-synthetic BraTS cases (generator v{version}) to {out} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    for name, path in split_files.items():
        print(f"  split {name}: {path}")
    return paths


def cli(args: list[str]) -> None:
    """Dispatch ``mmbench data <tool> ...``."""
    import argparse

    from jsonargparse import ArgumentParser

    from mmbench.errors import summarize_parser_error

    parser = ArgumentParser(prog="mmbench data", description="data utilities", exit_on_error=False, allow_abbrev=False)
    sub = parser.add_subcommands()
    synth = ArgumentParser(
        description="write semi-synthetic BraTS case folders (BraTS 2018-2021 naming)",
        exit_on_error=False,
        allow_abbrev=False,
    )
    synth.add_argument("--out", type=str, required=True, help="output folder")
    synth.add_argument("--cases", type=int, default=24, help="number of cases")
    synth.add_argument("--seed", type=int, default=0, help="generator seed")
    synth.add_argument("--spacing_mm", type=float, default=2.0, help="voxel spacing of the written grid (mm)")
    synth.add_argument(
        "--generator_version", type=str, default=None, help="generator version (default: the current one)"
    )
    sub.add_subcommand("brats-synth", synth)
    try:
        ns = parser.parse_args(args)
    except argparse.ArgumentError as e:
        raise MMBenchError(f"mmbench data: {summarize_parser_error(str(e))}") from None
    if ns.subcommand == "brats-synth":
        opts = ns["brats-synth"]
        brats_synth(opts.out, opts.cases, opts.seed, opts.spacing_mm, opts.generator_version)
